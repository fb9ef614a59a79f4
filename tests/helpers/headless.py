"""TensorBoard and headless Chromium on a log directory: the tab's browser test and the README's screenshot.

``tensorboard(logdir, load_fast)`` starts ``python -m tensorboard.main`` on 127.0.0.1 (a free
port) and yields its address once the ``seq2seq_attention`` plugin is enabled; ``dump_dom`` and
``screenshot`` drive Debian's ``chromium`` without a window. The tab itself runs inside an iframe
of TensorBoard's page, so both load that iframe's page, :data:`ENTRY`, directly.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from seq2seq.inspect.record_format import PLUGIN_NAME

ENTRY = f"/data/plugin_entry.html?name={PLUGIN_NAME}"
DATA = f"/data/plugin/{PLUGIN_NAME}"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--hide-scrollbars",
]


def chromium() -> str | None:
    """The Chromium executable (Debian's ``/usr/bin/chromium``), or None."""
    return shutil.which("chromium") or shutil.which("chromium-browser")


def data_server_available() -> bool:
    """Whether TensorBoard's Rust data server (``--load_fast=true``) is installed."""
    try:
        from tensorboard_data_server import server_binary
    except ImportError:
        return False
    return server_binary() is not None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def get(url: str, timeout: float = 30) -> tuple[int, str, bytes]:
    """``(status, content type, body)`` of a GET, HTTP errors included."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.headers.get("Content-Type", ""), response.read()
    except urllib.error.HTTPError as err:
        return err.code, err.headers.get("Content-Type", ""), err.read()


def _plugin_ready(base: str, need_data: bool) -> bool:
    try:
        status, _, body = get(f"{base}/data/plugins_listing", timeout=5)
    except OSError:
        return False
    entry = json.loads(body).get(PLUGIN_NAME) if status == 200 else None
    return entry is not None and (entry["enabled"] or not need_data)


@contextlib.contextmanager
def tensorboard(logdir: str | Path, load_fast: bool, need_data: bool = True, timeout: float = 90) -> Iterator[str]:
    """A TensorBoard on ``logdir``; yields ``http://127.0.0.1:PORT`` once the plugin is listed
    (and enabled, with ``need_data``). Stopped on exit."""
    port = free_port()
    command = [sys.executable, "-m", "tensorboard.main", f"--logdir={logdir}", "--host=127.0.0.1", f"--port={port}"]
    command += [f"--load_fast={str(load_fast).lower()}", "--reload_interval=1"]
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + timeout
            while not _plugin_ready(base, need_data):
                if process.poll() is not None or time.monotonic() > deadline:
                    log.seek(0)
                    raise RuntimeError(f"TensorBoard did not serve {PLUGIN_NAME}:\n{log.read().decode()[-3000:]}")
                time.sleep(0.25)
            yield base
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _chromium(args: list[str], timeout: float) -> subprocess.CompletedProcess:
    binary = chromium()
    if binary is None:
        raise FileNotFoundError("chromium not found (Debian: apt-get install -y chromium)")
    with tempfile.TemporaryDirectory(prefix="seq2seq-chromium-") as profile:
        command = [binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args]
        return subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=True)


def dump_dom(url: str, budget_ms: int = 10_000, timeout: float = 90) -> str:
    """The page's DOM as HTML after its scripts ran (fetches included) for ``budget_ms`` of virtual time."""
    return _chromium([f"--virtual-time-budget={budget_ms}", "--dump-dom", url], timeout).stdout


def screenshot(url: str, path: str | Path, size: tuple[int, int] = (1100, 860), budget_ms: int = 10_000) -> None:
    """A PNG of the page at ``size`` (width, height) pixels."""
    width, height = size
    args = [f"--virtual-time-budget={budget_ms}", f"--window-size={width},{height}", f"--screenshot={path}", url]
    _chromium(args, timeout=90)
