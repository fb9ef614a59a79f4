"""The ``seq2seq_attention`` TensorBoard plugin: the "attention" tab.

A dynamic plugin (entry point group ``tensorboard_plugins``): TensorBoard loads
``/data/plugin_entry.html?name=seq2seq_attention`` in an iframe, which imports ``index.js``
from here and calls its ``render()``. Every asset comes from ``static/`` through this plugin
(no CDN, no inline script), so TensorBoard's Content-Security-Policy holds.

Data is read through ``context.data_provider``, the same API with the Rust data server
(``--load_fast=true``) and the Python one (``--load_fast=false``). Routes, under
``/data/plugin/seq2seq_attention/``:

- ``/runs``: runs with attention records, ``["run", ...]``;
- ``/examples?run=``: ``{"examples": [{"id", "label", "kind", "source", "reference", "steps"}, ...],
  "skipped": N, "problems": ["example_1 step 300: why", ...]}``;
- ``/attention?run=&example=&step=``: one record at one step (the last without ``step``),
  with piece and word matrices (:mod:`.views`) and the ``skipped`` count of that example.

A malformed record (meta that is not JSON, missing blobs, weights that do not fit the pieces,
wrong field types: :func:`.views.parse_record`) is skipped, never drawn: its step is left out of
``steps``, counted in ``skipped``, and the server logs one warning line naming it.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from tensorboard import errors, plugin_util
from tensorboard.backend import http_util
from tensorboard.data import provider
from tensorboard.plugins import base_plugin
from werkzeug import Request, Response, wrappers

from seq2seq.inspect.record_format import PLUGIN_NAME, TAG_PREFIX
from seq2seq.tbplugin.views import MalformedRecord, Record, attention_response, example_summary, parse_record

STATIC = Path(__file__).resolve().parent / "static"
ASSETS = {  # file in static/ -> content type
    "index.js": "text/javascript",
    "dom.js": "text/javascript",
    "hash.js": "text/javascript",
    "heatmap.js": "text/javascript",
    "lines.js": "text/javascript",
    "style.css": "text/css",
}
MAX_POINTS = 1_000_000  # "all of them": TensorBoard's --samples_per_plugin already sampled the steps
MAX_PROBLEMS = 20  # malformed records named in a response (all are counted)
logger = logging.getLogger(__name__)
Checked = tuple[list[tuple[int, Record]], list[str]]  # (step, record) of the good ones; the bad ones' problems


class AttentionPlugin(base_plugin.TBPlugin):
    """Serves the attention tab's page and its data."""

    plugin_name = PLUGIN_NAME

    def __init__(self, context: base_plugin.TBContext) -> None:
        self._provider = context.data_provider
        self._warned: set[tuple[str, str]] = set()  # (run, problem) already logged

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
        examples, problems = [], []
        for tag, data in sorted(self._read(request, run).items(), key=lambda item: _natural(item[0])):
            if not data or not tag.startswith(TAG_PREFIX):
                continue
            good, bad = self._check(request, tag, data)
            problems += bad
            if good:
                steps = [step for step, _ in good]
                examples.append(example_summary(tag[len(TAG_PREFIX) :], good[-1][1].meta, steps))
        self._warn(run, problems)
        body = {"examples": examples, "skipped": len(problems), "problems": problems[:MAX_PROBLEMS]}
        return http_util.Respond(request, body, "application/json")

    @wrappers.Request.application
    def _serve_attention(self, request: Request) -> Response:
        run, example = _required(request, "run"), _required(request, "example")
        data = self._read(request, run, TAG_PREFIX + example).get(TAG_PREFIX + example)
        if not data:
            raise errors.NotFoundError(f"no attention for run {run!r}, example {example!r}")
        good, bad = self._check(request, TAG_PREFIX + example, data)
        self._warn(run, bad)
        if not good:
            raise errors.NotFoundError(f"no readable attention for {example!r}: {len(bad)} malformed record(s) skipped")
        steps = [s for s, _ in good]
        step = _step(request, steps[-1])
        if step not in steps:
            why = next((p for p in bad if p.startswith(f"{example} step {step}:")), None)
            raise errors.NotFoundError(f"{why}: skipped" if why else f"no attention at step {step} (logged: {steps})")
        body = attention_response(run, example, step, steps, good[steps.index(step)][1])
        return http_util.Respond(request, {**body, "skipped": len(bad)}, "application/json")

    def _check(self, request: Request, tag: str, data: list[provider.BlobSequenceDatum]) -> Checked:
        """Every record of one tag parsed: ``(step, record)`` of the good ones, a problem line per bad one."""
        ctx = plugin_util.context(request.environ)
        good, bad = [], []
        for datum in data:
            try:
                good.append((datum.step, parse_record([self._blob(ctx, i, v) for i, v in enumerate(datum.values)])))
            except MalformedRecord as err:
                bad.append(f"{tag[len(TAG_PREFIX) :]} step {datum.step}: {err}")
        return good, bad

    def _blob(self, ctx: Any, index: int, value: provider.BlobReference) -> bytes:
        try:
            return self._provider.read_blob(ctx, blob_key=value.blob_key)
        except errors.PublicError as err:
            raise MalformedRecord(f"blob {index} unreadable ({err})") from None

    def _warn(self, run: str, problems: list[str]) -> None:
        """One warning line naming the malformed records of ``run`` not named before (not again at
        every page load, nor for ``/attention`` after ``/examples``)."""
        new = [p for p in problems if (run, p) not in self._warned]
        if not new:
            return
        self._warned.update((run, p) for p in new)
        shown = "; ".join(new[:3]) + ("; ..." if len(new) > 3 else "")
        logger.warning("attention tab, run %r: %d malformed record(s) skipped: %s", run, len(new), shown)

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
