"""The commands that decode set up their process as training does: intra-op threads and an
allocator that keeps freed memory (:func:`seq2seq.utils.devices.set_up_process`)."""

from __future__ import annotations

import pytest

from seq2seq.bench.serve import free_port
from seq2seq.cli.commands import serve_main, translate_main
from tests.conftest import run_main


@pytest.fixture
def allocator_calls(monkeypatch) -> list[str]:
    """Records each call of ``keep_freed_memory`` instead of changing this process's malloc."""
    calls: list[str] = []
    monkeypatch.setattr("seq2seq.utils.devices.keep_freed_memory", lambda: calls.append("kept") or True)
    return calls


def test_translate_keeps_freed_memory(toy_checkpoint, allocator_calls):
    done = run_main(translate_main, f"checkpoint={toy_checkpoint}", "device=cpu", stdin="a b c\n")
    assert done.returncode == 0 and done.stdout == "c b a\n" and allocator_calls == ["kept"]


def test_serve_keeps_freed_memory(toy_checkpoint, allocator_calls, monkeypatch):
    pytest.importorskip("uvicorn")
    served: list[int] = []
    monkeypatch.setattr("uvicorn.run", lambda app, **keys: served.append(keys["port"]))
    port = free_port()
    done = run_main(serve_main, f"checkpoint={toy_checkpoint}", f"port={port}", "device=cpu")
    assert done.returncode == 0 and served == [port] and allocator_calls == ["kept"]
