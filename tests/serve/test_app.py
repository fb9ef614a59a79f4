"""seq2seq-serve: routes, the OpenNMT-py route, health while loading, metrics, dynamic batching,
bad input and overload, and a graceful stop on SIGTERM."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import threading
import time
from pathlib import Path

import pytest

pytest.importorskip("starlette")
pytest.importorskip("httpx")

from starlette.testclient import TestClient  # noqa: E402

from seq2seq.cli.commands import serve_main, translate_main  # noqa: E402
from seq2seq.config.schema import ServeConfig  # noqa: E402
from seq2seq.decode.translator import DecodeOptions  # noqa: E402
from seq2seq.serve.app import create_app  # noqa: E402
from seq2seq.serve.batching import Batcher, QueueFull, Search  # noqa: E402
from seq2seq.serve.model import load_served_model  # noqa: E402
from tests.conftest import run_main, write_lines  # noqa: E402
from tests.serve.common import MALFORMED, SENTENCES, offline, start_server  # noqa: E402


def serve_config(checkpoint: Path, **keys) -> ServeConfig:
    return ServeConfig(checkpoint=str(checkpoint), device="cpu", precision="fp32", **keys)


@pytest.fixture(scope="module")
def client(toy_checkpoint):
    cfg = serve_config(toy_checkpoint, max_sentences=8, max_sentence_tokens=40, max_body_bytes=4000)
    with TestClient(create_app(cfg, lambda: load_served_model(cfg))) as test_client:
        wait_healthy(test_client)
        yield test_client


def wait_healthy(test_client: TestClient, seconds: float = 60) -> None:
    deadline = time.time() + seconds
    while test_client.get("/health").status_code != 200:
        assert time.time() < deadline, test_client.get("/health").json()
        time.sleep(0.02)


def test_translate_answers_in_input_order_as_seq2seq_translate_does(client, toy_checkpoint, tmp_path):
    answer = client.post("/v1/translate", json={"text": SENTENCES})
    assert answer.status_code == 200
    texts = [t["text"] for t in answer.json()["translations"]]
    source = write_lines(tmp_path / "in.txt", SENTENCES)
    cli = run_main(translate_main, f"checkpoint={toy_checkpoint}", f"input={source}", "precision=fp32", "device=cpu")
    assert texts == cli.stdout.splitlines() and texts[0] == "g e b f c h a d" and texts[2] == ""


def test_n_best_and_word_level_attention(client):
    body = {"text": ["d a h c f b e g", ""], "beam_size": 4, "n_best": 3, "attention": True}
    (first, empty) = client.post("/v1/translate", json=body).json()["translations"]
    assert len(first["n_best"]) == 3 and first["n_best"][0] == {"text": first["text"], "score": first["score"]}
    attention = first["attention"]
    assert attention["rows"] == first["text"].split() and attention["cols"] == [*"dahcfbeg", "</s>"]
    assert all(abs(sum(row) - 1) < 1e-2 for row in attention["weights"])
    assert empty["text"] == "" and empty["attention"] == {"rows": [], "cols": [], "weights": []}


def test_the_opennmt_py_route_answers_in_its_shape(client):
    answer = client.post(
        "/translator/translate", json=[{"src": "d a h c f b e g", "id": 100}, {"src": "b c a", "id": 100}]
    )
    assert answer.status_code == 200
    (results,) = answer.json()
    assert [r["src"] for r in results] == ["d a h c f b e g", "b c a"]
    assert results[0]["tgt"] == "g e b f c h a d" and results[0]["n_best"] == 1
    assert isinstance(results[0]["pred_score"], float)


def test_models_health_and_metrics(client):
    (model,) = client.get("/v1/models").json()["models"]
    assert (model["src_lang"], model["trg_lang"], model["engine"], model["precision"]) == (
        "src",
        "trg",
        "torch",
        "fp32",
    )
    assert model["parameters"] > 0 and model["step"] > 0 and model["dev_bleu"] > 80
    assert client.get("/health").json() == {"status": "ok"}
    client.post("/v1/translate", json={"text": ["b c a"]})
    metrics = client.get("/metrics")
    assert metrics.headers["content-type"].startswith("text/plain")
    text = metrics.text
    for name in (
        "seq2seq_requests_total",
        "seq2seq_sentences_total",
        "seq2seq_request_seconds_bucket",
        "seq2seq_batch_sentences_bucket",
        "seq2seq_queued_sentences",
    ):
        assert name in text, name


def test_unknown_routes_and_methods_are_one_line_json_errors(client):
    missing = client.get("/v1/translations")
    assert missing.status_code == 404 and missing.headers["content-type"] == "application/json"
    assert missing.json()["error"].startswith("GET /v1/translations: no such route (routes: POST /v1/translate,")
    wrong = client.get("/v1/translate")
    assert (wrong.status_code, wrong.headers["allow"]) == (405, "POST")
    assert wrong.json() == {"error": "GET /v1/translate: method not allowed (allowed: POST)"}
    assert client.get("/static/nope.js").json() == {"error": "GET /static/nope.js: no such file"}
    assert client.get("/static/tab/heatmap.js").status_code == 200


def test_health_is_503_while_the_model_loads(toy_checkpoint):
    loaded = threading.Event()
    cfg = serve_config(toy_checkpoint)

    def slow_load():
        loaded.wait(30)
        return load_served_model(cfg)

    with TestClient(create_app(cfg, slow_load)) as test_client:
        assert test_client.get("/health").status_code == 503
        assert test_client.get("/health").json()["status"] == "loading"
        busy = test_client.post("/v1/translate", json={"text": ["a"]})
        assert busy.status_code == 503 and busy.headers["retry-after"] == "1"
        loaded.set()
        wait_healthy(test_client)


def test_hundreds_of_malformed_requests_get_one_line_errors_and_the_server_keeps_translating(client, toy_checkpoint):
    rng = random.Random(0)
    statuses: dict[int, int] = {}
    for _ in range(300):
        body, expected = rng.choice(MALFORMED)
        answer = client.post("/v1/translate", content=body, headers={"content-type": "application/json"})
        statuses[answer.status_code] = statuses.get(answer.status_code, 0) + 1
        assert 400 <= answer.status_code < 500, (body[:40], answer.text)
        error = answer.json()["error"]
        assert expected in error and "\n" not in error
    for body in (b"{}", b"[{}]", b'[{"src": 3}]', b"[]"):
        answer = client.post("/translator/translate", content=body)
        assert 400 <= answer.status_code < 500 and "\n" not in answer.json()["error"]
    assert set(statuses) <= {400, 413, 422} and sum(statuses.values()) == 300
    good = client.post("/v1/translate", json={"text": SENTENCES}).json()["translations"]
    assert [t["text"] for t in good] == offline(toy_checkpoint, SENTENCES)


def test_concurrent_requests_share_search_batches_and_each_gets_its_own(toy_checkpoint):
    """16 single-sentence requests at once: a few batches, not 16, and the offline outputs in order."""
    cfg = serve_config(toy_checkpoint)
    sentences = [" ".join(random.Random(i).sample("abcdefgh", 6)) for i in range(16)]
    expected = offline(toy_checkpoint, sentences)
    batches: list[int] = []

    async def run() -> list[list]:
        model = load_served_model(cfg)
        batcher = Batcher(
            model.translator,
            max_batch_tokens=4096,
            max_wait_ms=50,
            max_queue=100,
            on_batch=lambda n, seconds: batches.append(n),
        )
        batcher.start()
        search = Search(beam_size=5, n_best=1, length_penalty=1.0, min_length=1, attention=False)
        greedy = Search(beam_size=1, n_best=1, length_penalty=1.0, min_length=1, attention=False)
        jobs = [batcher.translate([s], 8, search) for s in sentences] + [batcher.translate([sentences[0]], 8, greedy)]
        results = await asyncio.gather(*jobs)
        await batcher.close()
        return results

    results = asyncio.run(run())
    assert [r[0].text for r in results[:16]] == expected
    assert sum(batches) == 17 and len(batches) <= 4  # beam 5 and greedy never share a batch
    assert 1 in batches  # the greedy request, alone


def test_a_full_queue_is_503_with_retry_after():
    class Slow:
        options = DecodeOptions()
        tokenizers = None

        def translate(self, sentences):
            time.sleep(0.3)
            return [type("T", (), {"text": s})() for s in sentences]

    async def run():
        batcher = Batcher(Slow(), max_batch_tokens=10, max_wait_ms=0, max_queue=2)
        batcher.start()
        search = Search(1, 1, 1.0, 1, False)
        first = asyncio.ensure_future(batcher.translate(["a"], 5, search))
        await asyncio.sleep(0.05)  # the first is being searched; two more fill the queue
        queued = [asyncio.ensure_future(batcher.translate([s], 5, search)) for s in ("b", "c")]
        await asyncio.sleep(0.01)
        with pytest.raises(QueueFull, match="max_queue=2"):
            await batcher.translate(["d"], 5, search)
        done = await asyncio.gather(first, *queued)
        await batcher.close()
        return [r[0].text for r in done]

    assert asyncio.run(run()) == ["a", "b", "c"]


def test_sigterm_answers_the_requests_in_flight_then_exits_0(toy_checkpoint, tmp_path):
    import httpx

    server, base = start_server(toy_checkpoint, tmp_path, "max_sentences=64")
    try:
        big = {"text": ["d a h c f b e g h a"] * 64, "beam_size": 8}
        answers = []
        request = threading.Thread(
            target=lambda: answers.append(httpx.post(f"{base}/v1/translate", json=big, timeout=60))
        )
        request.start()
        time.sleep(0.3)  # the request is being searched
        server.send_signal(signal.SIGTERM)
        request.join(60)
        assert server.wait(60) == 0, server.stderr.read()[-2000:]
        assert answers and answers[0].status_code == 200 and len(answers[0].json()["translations"]) == 64
    finally:
        if server.poll() is None:
            server.kill()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["port=70000"], "error: port must be in 0..65535, got 70000"),
        (["max_queue=0"], "error: max_queue must be >= 1, got 0"),
        (["checkpoint=/no/such/file.pt"], "error: checkpoint=/no/such/file.pt: file not found"),
    ],
)
def test_bad_settings_are_one_line_before_the_server_starts(toy_checkpoint, args, message):
    keys = {a.split("=")[0] for a in args}
    base = [] if "checkpoint" in keys else [f"checkpoint={toy_checkpoint}"]
    result = run_main(serve_main, *base, *args, "port=1" if "port" not in keys else "device=cpu")
    assert result.returncode == 2 if "file not found" not in message else result.returncode == 1
    assert result.stderr.splitlines() == [message]
    assert os.environ.get("NOTHING_STARTED", "") == ""
