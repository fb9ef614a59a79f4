"""The page at ``/`` (``seq2seq/serve/static/``) in headless Chromium, over a real server.

uvicorn serves :func:`seq2seq.serve.app.create_app` on 127.0.0.1 (a free port) in a thread of the
test process, over the trained toy reversal model. ``headless.dump_dom`` only loads an address, so
the page is driven by its hash: ``#text=...&beam=5&nbest=3&submit=1`` fills the form and presses
Translate once ``/health`` is 200; ``body[data-state]`` says when it is done.
"""

from __future__ import annotations

import contextlib
import json
import re
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import headless

pytest.importorskip("uvicorn")
pytest.importorskip("starlette")

from seq2seq.config.schema import ServeConfig  # noqa: E402
from seq2seq.serve.app import create_app  # noqa: E402
from seq2seq.serve.model import ServedModel, load_served_model  # noqa: E402

SCREENSHOT = Path("/tmp/serve_page.png")
NO_CHROMIUM = "chromium not installed (Debian: apt-get install -y chromium); .ci/run installs it"
NEEDS_CHROMIUM = pytest.mark.skipif(headless.chromium() is None, reason=NO_CHROMIUM)
Loader = Callable[[], ServedModel]


@contextlib.contextmanager
def serving(cfg: ServeConfig, load: Loader, ready: bool = True, timeout: float = 60) -> Iterator[str]:
    """``create_app(cfg, load)`` under uvicorn in a thread; yields ``http://127.0.0.1:PORT`` once it
    listens (and, with ``ready``, once ``/health`` is 200). Stopped on exit."""
    import uvicorn

    port = headless.free_port()
    config = uvicorn.Config(create_app(cfg, load), host="127.0.0.1", port=port, log_level="warning", access_log=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="seq2seq-serve-test", daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while not (server.started and (not ready or headless.get(f"{base}/health", timeout=5)[0] == 200)):
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the server at {base} did not become ready")
            time.sleep(0.05)
        yield base
    finally:
        server.should_exit = True
        thread.join(timeout=30)


@pytest.fixture(scope="module")
def server(toy_checkpoint) -> Iterator[str]:
    """The toy model served; sentences of more than 16 tokens are refused (413)."""
    cfg = ServeConfig(checkpoint=str(toy_checkpoint), device="cpu", precision="fp32", max_sentence_tokens=16)
    with serving(cfg, lambda: load_served_model(cfg)) as base:
        yield base


def post_translate(base: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(
        f"{base}/v1/translate", json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def page_url(base: str, **hash_values: Any) -> str:
    return f"{base}/#{urllib.parse.urlencode(hash_values, quote_via=urllib.parse.quote)}"


class Page(HTMLParser):
    """What the page drew: its state, the status line, and per translation its fields, n-best list,
    heatmap row and column labels and cell count."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.state: str | None = None
        self.status: dict[str, str] = {}  # "model", "message"
        self.results: list[dict[str, Any]] = []
        self._capture: tuple[str, int, Callable[[str], None]] | None = None  # tag, depth, where the text goes
        self._text: list[str] = []
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        classes = (a.get("class") or "").split()
        if self._capture is not None:
            name, depth, put = self._capture
            self._capture = (name, depth + (tag == name), put)
            return
        if tag == "body":
            self.state = a.get("data-state")
        elif tag == "article" and "s2s-result" in classes:
            self.results.append({"fields": {}, "n_best": [], "rows": [], "cols": [], "cells": 0})
        elif tag == "span" and a.get("id") in ("model", "message"):
            self._start(tag, lambda text, key=a["id"]: self.status.__setitem__(key, text))
        elif self.results:
            result = self.results[-1]
            result["cells"] += tag == "td" and "s2s-cell" in classes
            if tag == "dd" and a.get("data-field"):
                self._start(tag, lambda text, key=a["data-field"]: result["fields"].__setitem__(key, text))
            elif tag == "span" and "s2s-candidate" in classes:
                self._start(tag, result["n_best"].append)
            elif tag == "th" and "s2s-row" in classes:
                self._start(tag, result["rows"].append)
            elif tag == "th" and "s2s-col" in classes:
                self._start(tag, result["cols"].append)

    def _start(self, tag: str, put: Callable[[str], None]) -> None:
        self._capture, self._text = (tag, 1, put), []

    def handle_data(self, data: str) -> None:
        if self._capture is not None:
            self._text.append(data)

    def handle_endtag(self, tag: str) -> None:
        if self._capture is None or tag != self._capture[0]:
            return
        name, depth, put = self._capture
        if depth > 1:
            self._capture = (name, depth - 1, put)
            return
        put("".join(self._text).strip())
        self._capture = None


def test_page_assets_are_all_served_by_the_app(server):
    status, content_type, body = headless.get(f"{server}/")
    assert status == 200 and content_type.startswith("text/html")
    html = body.decode()
    assets = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert set(assets) == {"/static/tab/style.css", "/static/page.css", "/static/page.js"}
    _, _, script = headless.get(f"{server}/static/page.js")
    imports = re.findall(r'^import .* from "([^"]+)";$', script.decode(), flags=re.MULTILINE)
    assert imports == ["/static/tab/dom.js", "/static/tab/heatmap.js"]
    for asset in [*assets, *imports]:  # no CDN: every file from this server
        status, content_type, _ = headless.get(f"{server}{asset}")
        kind = "text/css" if asset.endswith(".css") else "text/javascript"
        assert status == 200 and content_type.startswith(kind), asset
    assert "://" not in html.split("-->", 1)[1] and "://" not in script.decode()


@NEEDS_CHROMIUM
def test_page_translates_and_draws_one_cell_per_word_pair(server):
    sentences = ["d a h c f b e g", "b c a"]
    status, body = post_translate(server, {"text": sentences, "beam_size": 5, "n_best": 3, "attention": True})
    assert status == 200
    expected = body["translations"]
    assert expected[0]["text"] == "g e b f c h a d"  # the toy model reverses
    url = page_url(server, text="\n".join(sentences), beam=5, nbest=3, submit=1)
    page = Page(headless.dump_dom(url))
    assert page.state == "done", page.status
    assert page.status["model"].startswith("Model best.pt: src → trg") and "dev BLEU" in page.status["model"]
    assert len(page.results) == len(sentences)
    for sentence, shown, answer in zip(sentences, page.results, expected, strict=True):
        assert shown["fields"]["source"] == sentence
        assert shown["fields"]["translation"] == answer["text"]
        assert shown["n_best"] == [c["text"] for c in answer["n_best"]] and len(shown["n_best"]) == 3
        attention = answer["attention"]
        assert shown["rows"] == attention["rows"] == answer["text"].split()
        assert shown["cols"] == attention["cols"] == [*sentence.split(), "</s>"]
        assert shown["cells"] == len(attention["rows"]) * len(attention["cols"])  # output word x source word
    headless.screenshot(page_url(server, text="\n".join(sentences), beam=5, nbest=3, submit=1, focus=2), SCREENSHOT)
    assert SCREENSHOT.stat().st_size > 0


@NEEDS_CHROMIUM
def test_api_errors_are_shown_in_the_status_line(server):
    too_long = " ".join("abcdefghijkl"[i % 12] for i in range(20))
    status, body = post_translate(server, {"text": [too_long], "beam_size": 1, "n_best": 1, "attention": True})
    assert status == 413
    page = Page(headless.dump_dom(page_url(server, text=too_long, beam=1, submit=1)))
    assert page.state == "error" and page.results == []
    assert page.status["message"] == f"{body['error']} (field {body['field']}) [HTTP 413]"


@NEEDS_CHROMIUM
def test_page_waits_while_the_model_loads_then_says_why_it_failed(toy_checkpoint):
    cfg = ServeConfig(checkpoint=str(toy_checkpoint), device="cpu")
    gate = threading.Event()

    def load() -> ServedModel:
        gate.wait(30)
        raise RuntimeError("no model here (test)")

    with serving(cfg, load, ready=False) as base:
        try:
            loading = Page(headless.dump_dom(page_url(base, text="d a h", submit=1), budget_ms=2500))
        finally:
            gate.set()
        while headless.get(f"{base}/health")[2] == b'{"status":"loading"}':
            time.sleep(0.05)
        failed = Page(headless.dump_dom(f"{base}/", budget_ms=2000))
    assert loading.state == "loading" and loading.status["model"] == "model loading…" and loading.results == []
    assert failed.state == "error"
    assert failed.status["message"] == "the model did not load: no model here (test)"
