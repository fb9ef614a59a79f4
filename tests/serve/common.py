"""What several serve tests share: sentences and malformed bodies, the offline reference, and
``seq2seq-serve`` started as a process of its own."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from seq2seq.bench.serve import free_port
from seq2seq.config.schema import DecodeConfig
from seq2seq.decode.loading import build_translator

SENTENCES = ["d a h c f b e g", "b c a", "", "h g f e d c b a", "a"]

# Bodies for POST /v1/translate with max_sentences=8, max_sentence_tokens=40, max_body_bytes=4000,
# each with (a part of) the one-line error it must get.
MALFORMED = [
    (b"{not json", "body is not JSON"),
    (b"\xff\xfe\x00garbage", "body is not UTF-8"),
    (b"[1, 2]", "must be a JSON object"),
    (b'{"text": "one string"}', "text must be a non-empty list"),
    (b'{"text": []}', "text must be a non-empty list"),
    (b'{"text": [1, 2]}', "text[0] must be a string"),
    (b'{"text": ["a"], "beam_size": 0}', "beam_size must be an integer from 1 to 64"),
    (b'{"text": ["a"], "beam_size": "5"}', "beam_size must be an integer"),
    (b'{"text": ["a"], "n_best": 9, "beam_size": 2}', "n_best must be an integer from 1 to 2"),
    (b'{"text": ["a"], "attention": "yes"}', "attention must be true or false"),
    (b'{"text": ["a"], "beamsize": 5}', "unknown field 'beamsize'"),
    (b'{"beam_size": 5}', "text is required"),
    (json.dumps({"text": ["a"] * 9}).encode(), "more than max_sentences=8"),
    (json.dumps({"text": [" ".join("abcdefgh") * 6]}).encode(), "more than max_sentence_tokens=40"),
    (json.dumps({"text": ["a " * 3000]}).encode(), "over max_body_bytes=4000"),
]
LIMITS = ("max_sentences=8", "max_sentence_tokens=40", "max_body_bytes=4000")


def offline(checkpoint: Path, sentences: list[str], beam_size: int = 5) -> list[str]:
    """What seq2seq-translate writes for ``sentences`` (same engine and settings, one process)."""
    translator = build_translator(checkpoint, DecodeConfig(beam_size=beam_size), device="cpu", precision="fp32")
    return [t.text for t in translator.translate(sentences)]


def start_server(checkpoint: Path, cwd: Path, *keys: str, seconds: float = 90) -> tuple[subprocess.Popen, str]:
    """``seq2seq-serve checkpoint=... port=FREE device=cpu precision=fp32 KEYS`` as a process, its
    output piped; returns it and ``http://127.0.0.1:PORT`` once ``/health`` is 200."""
    import httpx

    port = free_port()
    exe = Path(sys.executable).with_name("seq2seq-serve")
    args = [str(exe), f"checkpoint={checkpoint}", f"port={port}", "device=cpu", "precision=fp32", *keys]
    server = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=cwd)
    base = f"http://127.0.0.1:{port}"
    deadline = time.time() + seconds
    try:
        while True:
            assert server.poll() is None, server.stderr.read()[-2000:]
            try:
                if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                    return server, base
            except httpx.TransportError:
                pass
            assert time.time() < deadline, "the server did not become healthy"
            time.sleep(0.1)
    except BaseException:
        server.kill()
        raise
