"""The ``seq2seq_attention`` TensorBoard plugin: the "attention" tab.

A dynamic plugin (entry point group ``tensorboard_plugins``): TensorBoard loads
``/data/plugin_entry.html?name=seq2seq_attention`` in an iframe, which imports ``index.js``
from here and calls its ``render()``. Every asset comes from ``static/`` through this plugin
(no CDN, no inline script), so TensorBoard's Content-Security-Policy holds.

Data is read through ``context.data_provider``, the same API with the Rust data server
(``--load_fast=true``) and the Python one (``--load_fast=false``). Routes, under
``/data/plugin/seq2seq_attention/``:

- ``/runs``: runs with attention records, ``["run", ...]``;
- ``/examples?run=``: ``[{"id", "label", "kind", "source", "reference", "steps"}, ...]``;
- ``/attention?run=&example=&step=``: one record at one step (the last without ``step``),
  with piece and word matrices (:mod:`.views`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tensorboard import errors, plugin_util
from tensorboard.backend import http_util
from tensorboard.data import provider
from tensorboard.plugins import base_plugin
from werkzeug import Request, Response, wrappers

from seq2seq.tbplugin.metadata import CROSS, ENCODER, META, PLUGIN_NAME, TAG_PREFIX
from seq2seq.tbplugin.views import attention_response, decode_meta, example_summary

STATIC = Path(__file__).resolve().parent / "static"
ASSETS = {  # file in static/ -> content type
    "index.js": "text/javascript",
    "dom.js": "text/javascript",
    "heatmap.js": "text/javascript",
    "lines.js": "text/javascript",
    "style.css": "text/css",
}
MAX_POINTS = 1_000_000  # "all of them": TensorBoard's --samples_per_plugin already sampled the steps


class AttentionPlugin(base_plugin.TBPlugin):
    """Serves the attention tab's page and its data."""

    plugin_name = PLUGIN_NAME

    def __init__(self, context: base_plugin.TBContext) -> None:
        self._provider = context.data_provider

    def get_plugin_apps(self) -> dict[str, Any]:
        routes: dict[str, Any] = {f"/{name}": self._asset_app(name) for name in ASSETS}
        routes.update(
            {"/runs": self._serve_runs, "/examples": self._serve_examples, "/attention": self._serve_attention}
        )
        return routes

    def is_active(self) -> bool:
        # TensorBoard enables the tab itself once the data provider lists our plugin's data.
        return False

    def frontend_metadata(self) -> base_plugin.FrontendMetadata:
        return base_plugin.FrontendMetadata(es_module_path="/index.js", tab_name="attention")

    # ------------------------------------------------------------------------------------------
    # Routes

    def _asset_app(self, name: str) -> Any:
        content_type = ASSETS[name]

        @wrappers.Request.application
        def serve(request: Request) -> Response:
            return http_util.Respond(request, (STATIC / name).read_bytes(), content_type)

        return serve

    @wrappers.Request.application
    def _serve_runs(self, request: Request) -> Response:
        ctx, eid = plugin_util.context(request.environ), plugin_util.experiment_id(request.environ)
        if self._provider is None:
            return http_util.Respond(request, [], "application/json")
        listing = self._provider.list_blob_sequences(ctx, experiment_id=eid, plugin_name=PLUGIN_NAME)
        runs = sorted(run for run, tags in listing.items() if any(t.startswith(TAG_PREFIX) for t in tags))
        return http_util.Respond(request, runs, "application/json")

    @wrappers.Request.application
    def _serve_examples(self, request: Request) -> Response:
        run = _required(request, "run")
        ctx = plugin_util.context(request.environ)
        examples = []
        for tag, data in sorted(self._read(request, run).items(), key=lambda item: _natural(item[0])):
            if not data or not tag.startswith(TAG_PREFIX):
                continue
            meta = decode_meta(self._provider.read_blob(ctx, blob_key=data[-1].values[META].blob_key))
            examples.append(example_summary(tag[len(TAG_PREFIX) :], meta, [d.step for d in data]))
        return http_util.Respond(request, examples, "application/json")

    @wrappers.Request.application
    def _serve_attention(self, request: Request) -> Response:
        run, example = _required(request, "run"), _required(request, "example")
        data = self._read(request, run, TAG_PREFIX + example).get(TAG_PREFIX + example)
        if not data:
            raise errors.NotFoundError(f"no attention for run {run!r}, example {example!r}")
        steps = [d.step for d in data]
        step = _step(request, steps[-1])
        if step not in steps:
            raise errors.NotFoundError(f"no attention at step {step} (logged: {steps})")
        ctx = plugin_util.context(request.environ)
        values = data[steps.index(step)].values
        blobs = [self._provider.read_blob(ctx, blob_key=v.blob_key) for v in values] + [b""] * 3  # [2] may be absent
        meta = decode_meta(blobs[META])
        body = attention_response(run, example, step, steps, meta, blobs[CROSS], blobs[ENCODER])
        return http_util.Respond(request, body, "application/json")

    def _read(self, request: Request, run: str, tag: str | None = None) -> dict[str, list[provider.BlobSequenceDatum]]:
        """``{tag: [datum per step]}`` of one run (one tag if given), steps ascending."""
        if self._provider is None:
            return {}
        result = self._provider.read_blob_sequences(
            plugin_util.context(request.environ),
            experiment_id=plugin_util.experiment_id(request.environ),
            plugin_name=PLUGIN_NAME,
            downsample=MAX_POINTS,
            run_tag_filter=provider.RunTagFilter(runs=[run], tags=None if tag is None else [tag]),
        )
        return {t: sorted(data, key=lambda d: d.step) for t, data in result.get(run, {}).items()}


def _required(request: Request, name: str) -> str:
    value = request.args.get(name)
    if not value:
        raise errors.InvalidArgumentError(f"missing query parameter {name!r}")
    return value


def _step(request: Request, default: int) -> int:
    value = request.args.get("step")
    if value in (None, ""):
        return default
    try:
        return int(value)
    except ValueError:
        raise errors.InvalidArgumentError(f"step must be an integer, got {value!r}") from None


def _natural(tag: str) -> tuple[Any, ...]:
    """``example_2`` before ``example_10``."""
    head, _, number = tag.rpartition("_")
    return (head, int(number)) if number.isdigit() else (tag, -1)
