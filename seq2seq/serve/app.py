"""``seq2seq-serve``: translation over HTTP (Starlette, served by uvicorn).

Routes (JSON unless said otherwise):

* ``POST /v1/translate`` ``{"text": [...], "beam_size", "n_best", "length_penalty", "min_length",
  "attention"}`` -> ``{"translations": [{"text", "score", "n_best": [{"text", "score"}], "src_tokens",
  "trg_tokens", "attention"?}]}`` in input order; ``attention`` is word-level (pieces merged into
  words as the TensorBoard tab does): ``{"rows": output words, "cols": source words + </s>,
  "weights"}``.
* ``POST /translator/translate``: OpenNMT-py's ``onmt_server`` body ``[{"src": "...", "id": N}]``
  and answer ``[[{"src", "tgt", "n_best", "pred_score"}]]``, so its clients work unchanged (the
  ``id`` selects nothing: one model is served; no ``align``, no ``/translator/models`` admin).
* ``GET /v1/models``, ``GET /health`` (503 while the model loads), ``GET /metrics`` (Prometheus).
* ``GET /``: a page that translates and draws the attention, with the attention tab's modules.

The model is loaded after the server starts listening, so ``/health`` answers at once; the
sentences of concurrent requests are searched together (:mod:`seq2seq.serve.batching`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from seq2seq.config.schema import ServeConfig
from seq2seq.decode.translation import Translation
from seq2seq.inspect.word_merging import EOS_PIECE, word_matrix, words
from seq2seq.serve.batching import Batcher, QueueFull, Search
from seq2seq.serve.metrics import ServeMetrics
from seq2seq.serve.model import ServedModel
from seq2seq.serve.requests import BadRequest, checked_sentences, count_tokens, read_json, translate_request

log = logging.getLogger(__name__)

STATIC = Path(__file__).resolve().parent / "static"
# The attention tab's ES modules and style, served as files (the plugin's code is not imported).
TAB_STATIC = Path(__file__).resolve().parent.parent / "tbplugin" / "static"
RETRY_AFTER_SECONDS = 1

Loader = Callable[[], ServedModel]


class _State:
    """What the routes share: the settings, the model once loaded, its batcher, the metrics."""

    def __init__(self, cfg: ServeConfig, load: Loader) -> None:
        self.cfg = cfg
        self.load = load
        self.model: ServedModel | None = None
        self.batcher: Batcher | None = None
        self.failed: str | None = None  # why loading failed
        self.metrics = ServeMetrics()


def create_app(cfg: ServeConfig, load: Loader) -> Starlette:
    """The app serving the model ``load()`` returns (called in a thread once the server runs)."""
    state = _State(cfg, load)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        loading = asyncio.get_running_loop().create_task(_load(state))
        yield
        await loading
        if state.batcher is not None:
            await state.batcher.close()  # the requests in flight are answered first

    routes = [
        Route("/v1/translate", _route(state, "translate", _translate), methods=["POST"]),
        Route("/translator/translate", _route(state, "opennmt", _opennmt), methods=["POST"]),
        Route("/v1/models", lambda request: _models(state), methods=["GET"]),
        Route("/health", lambda request: _health(state), methods=["GET"]),
        Route("/metrics", lambda request: _metrics(state), methods=["GET"]),
        Route("/", lambda request: FileResponse(STATIC / "index.html"), methods=["GET"]),
        Mount("/static/tab", StaticFiles(directory=TAB_STATIC)),
        Mount("/static", StaticFiles(directory=STATIC)),
    ]
    handlers = {404: _http_error, 405: _http_error}
    return Starlette(routes=routes, lifespan=lifespan, exception_handlers=handlers)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    """An unknown route (404) or method (405, with ``Allow``) as one line of JSON, as every error."""
    assert isinstance(exc, HTTPException)
    where = f"{request.method} {request.url.path}"
    if exc.status_code == 405:
        message = f"{where}: method not allowed (allowed: {(exc.headers or {}).get('Allow', '')})"
    elif request.url.path.startswith("/static/"):
        message = f"{where}: no such file"
    else:
        routes = (
            f"{m} {r.path}" for r in request.app.routes if isinstance(r, Route) for m in r.methods or () if m != "HEAD"
        )
        message = f"{where}: no such route (routes: {', '.join(routes)})"
    return JSONResponse({"error": message}, status_code=exc.status_code, headers=exc.headers)


async def _load(state: _State) -> None:
    start = time.perf_counter()
    try:
        model = await asyncio.get_running_loop().run_in_executor(None, state.load)
    except Exception as err:  # noqa: BLE001 (said in /health and the log; the server stays up to say it)
        state.failed = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        log.error("the model did not load: %s", state.failed)
        return
    cfg = state.cfg
    state.batcher = Batcher(model.translator, cfg.max_batch_tokens, cfg.max_wait_ms, cfg.max_queue, state.metrics.batch)
    state.batcher.start()
    state.model = model
    log.info("model loaded in %.1f s: %s", time.perf_counter() - start, model.describe())


def _route(state: _State, name: str, handler: Callable[[_State, Any], Any]) -> Callable[[Request], Any]:
    """A translation route: read and check the body, answer, count; every error one line of JSON."""

    async def endpoint(request: Request) -> Response:
        start = time.perf_counter()
        try:
            if state.model is None:
                raise BadRequest(state.failed or "the model is still loading", 503, kind="unavailable")
            body = await read_json(request, state.cfg.max_body_bytes)
            response = JSONResponse(await handler(state, body))
        except BadRequest as err:
            state.metrics.errors.labels(err.kind).inc()
            response = JSONResponse(err.body(), status_code=err.status, headers=_retry(err.status))
        except QueueFull as err:
            state.metrics.errors.labels("overloaded").inc()
            response = JSONResponse({"error": str(err)}, status_code=503, headers=_retry(503))
        except Exception as err:  # noqa: BLE001 (a failed search is a 500 for this request only)
            log.exception("%s failed", request.url.path)
            state.metrics.errors.labels("internal").inc()
            response = JSONResponse({"error": f"internal error: {type(err).__name__}"}, status_code=500)
        state.metrics.requests.labels(name, str(response.status_code)).inc()
        state.metrics.latency.labels(name).observe(time.perf_counter() - start)
        return response

    return endpoint


def _retry(status: int) -> dict[str, str]:
    return {"Retry-After": str(RETRY_AFTER_SECONDS)} if status == 503 else {}


async def _translate(state: _State, body: Any) -> dict[str, Any]:
    assert state.model is not None and state.batcher is not None
    request = translate_request(body, state.cfg, state.model.tokenizers)
    results = await state.batcher.translate(request.text, request.tokens, request.search)
    return {"translations": [translation_json(t, request.search.attention) for t in results]}


async def _opennmt(state: _State, body: Any) -> list[list[dict[str, Any]]]:
    """OpenNMT-py's ``onmt_server`` route: ``[{"src", "id"}]`` in, ``[[{"src", "tgt", "n_best",
    "pred_score"}]]`` out (each source's ``n_best`` candidates in turn)."""
    assert state.model is not None and state.batcher is not None
    if not isinstance(body, list) or not all(isinstance(item, dict) and "src" in item for item in body):
        raise BadRequest('the body must be a list of {"src": "...", "id": N} objects', field="src")
    sources = checked_sentences([item["src"] for item in body], "src", state.cfg)
    tokens = count_tokens(sources, "src", state.cfg, state.model.tokenizers)
    cfg = state.cfg
    search = Search(cfg.beam_size, cfg.n_best, cfg.length_penalty, cfg.min_length, attention=False)
    results = await state.batcher.translate(sources, tokens, search)
    out = [
        {"src": t.source, "tgt": candidate.text, "n_best": search.n_best, "pred_score": candidate.score}
        for t in results
        for candidate in (t.n_best if t.hypotheses else [t] * search.n_best)
    ]
    return [out]


def translation_json(translation: Translation, attention: bool) -> dict[str, Any]:
    """One translation as the API answers it; with ``attention`` its word-level matrix."""
    candidates = translation.n_best if translation.hypotheses else [translation]
    out: dict[str, Any] = {
        "text": translation.text,
        "score": round(translation.score, 6),
        "n_best": [{"text": c.text, "score": round(c.score, 6)} for c in candidates],
        "src_tokens": translation.src_tokens,
        "trg_tokens": translation.trg_tokens,
    }
    if attention:
        out["attention"] = word_attention(translation)
    return out


def word_attention(translation: Translation) -> dict[str, Any]:
    """``{"rows": output words, "cols": source words + </s>, "weights"}``: pieces merged as the tab does."""
    if translation.attention is None or not translation.trg_tokens:
        return {"rows": [], "cols": [], "weights": []}
    src, trg = translation.src_tokens, translation.trg_tokens
    matrix = word_matrix(translation.attention, src, trg, keep_eos=True)
    return {
        "rows": words(trg),
        "cols": words(src) + [EOS_PIECE],
        "weights": [[round(float(w), 4) for w in row] for row in matrix],
    }


def _models(state: _State) -> JSONResponse:
    if state.model is None:
        return JSONResponse(
            {"error": state.failed or "the model is still loading"}, status_code=503, headers=_retry(503)
        )
    return JSONResponse({"models": [state.model.info]})


def _health(state: _State) -> JSONResponse:
    if state.model is not None:
        return JSONResponse({"status": "ok"})
    status = "failed" if state.failed else "loading"
    return JSONResponse({"status": status, **({"error": state.failed} if state.failed else {})}, status_code=503)


def _metrics(state: _State) -> Response:
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    if state.batcher is not None:
        state.metrics.queued.set(state.batcher.waiting)
    return Response(generate_latest(state.metrics.registry), media_type=CONTENT_TYPE_LATEST)
