"""``seq2seq-serve`` as a process on 127.0.0.1 under a few hundred malformed requests: bodies the
app refuses, and requests broken at the HTTP level that uvicorn refuses or that end early. The
process must answer each with a 4xx, count them, log no traceback, keep translating as
``seq2seq-translate`` does, and stop with status 0 on SIGTERM."""

from __future__ import annotations

import random
import re
import signal
import socket
import time

import pytest

pytest.importorskip("uvicorn")
httpx = pytest.importorskip("httpx")

from tests.serve.common import LIMITS, MALFORMED, SENTENCES, offline, start_server  # noqa: E402

POST = b"POST /v1/translate HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
CHUNK = b"1000\r\n" + b"a" * 0x1000 + b"\r\n"
# Raw requests, each with the status it must get (None: the client hangs up before its body is
# complete, so no answer can come).
BROKEN_HTTP = [
    (b"GARBAGE\r\n\r\n", 400),  # no request line
    (POST + b"Content-Length: abc\r\n\r\n", 400),
    (POST + b"No colon in this header\r\n\r\n", 400),
    (POST + b"Content-Length: 4\r\n\r\n\xff\xfe\x00a", 400),  # not UTF-8
    (POST + b"Transfer-Encoding: chunked\r\n\r\n" + CHUNK * 2 + b"0\r\n\r\n", 413),  # no length given
    (POST + b'Content-Length: 100\r\n\r\n{"text": ["d a', None),
]


def send_raw(base: str, request: bytes, hang_up: bool) -> int | None:
    """Send ``request`` on a socket of its own; the answer's status (None after hanging up)."""
    host, port = base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(request)
        if hang_up:
            return None
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    return int(answer.split(b" ", 2)[1])


def error_counts(base: str) -> dict[str, float]:
    text = httpx.get(f"{base}/metrics", timeout=10).text
    return {kind: float(n) for kind, n in re.findall(r'^seq2seq_errors_total\{kind="(\w+)"\} (\S+)$', text, re.M)}


def test_a_served_process_survives_hundreds_of_malformed_requests(toy_checkpoint, tmp_path):
    server, base = start_server(toy_checkpoint, tmp_path, *LIMITS)
    rng = random.Random(0)
    statuses: dict[int, int] = {}
    hung_up = 0
    try:
        with httpx.Client(base_url=base, timeout=10) as client:
            for _ in range(300):
                if rng.random() < 0.8:
                    body, expected = rng.choice(MALFORMED)
                    answer = client.post("/v1/translate", content=body, headers={"content-type": "application/json"})
                    status, error = answer.status_code, answer.json()["error"]
                    assert expected in error and "\n" not in error, (body[:40], error)
                else:
                    request, expected_status = rng.choice(BROKEN_HTTP)
                    status = send_raw(base, request, hang_up=expected_status is None)
                    hung_up += status is None
                    assert status == expected_status, request[:60]
                if status is not None:
                    statuses[status] = statuses.get(status, 0) + 1
            assert server.poll() is None
            good = client.post("/v1/translate", json={"text": SENTENCES}).json()["translations"]
            assert [t["text"] for t in good] == offline(toy_checkpoint, SENTENCES)
            assert client.get("/health").status_code == 200
        assert set(statuses) <= {400, 413, 422} and sum(statuses.values()) + hung_up == 300
        assert hung_up > 0 and {400, 413, 422} <= set(statuses)
        deadline = time.time() + 10  # a hang-up is counted once the server notices it
        while error_counts(base).get("disconnected", 0) < hung_up and time.time() < deadline:
            time.sleep(0.1)
        errors = error_counts(base)
        assert errors.get("disconnected") == hung_up and "internal" not in errors
        server.send_signal(signal.SIGTERM)
        assert server.wait(60) == 0
        log = server.stderr.read()
        assert "Traceback" not in log, log[-2000:]
    finally:
        if server.poll() is None:
            server.kill()
