"""``seq2seq-benchmark serve``: what ``seq2seq-serve`` sustains under concurrent clients.

The same engine and settings (``bench.serve_engine``, ``bench.serve_precision``, ``train.device``,
``train.threads``, beam ``bench.serve_beam``, ``bench.shortlist``) translate the test split's
first ``bench.serve_sentences`` sentences offline, in one call of a translator built as
``seq2seq-translate`` builds it (its default batching): one untimed call gives the reference
outputs. ``seq2seq-serve`` runs as a child process on 127.0.0.1 and a free port. Once ``/health``
answers 200, untimed warm-up requests (a few rounds at the highest concurrency, as the offline
translator's untimed call warms it), then each concurrency of ``bench.serve_concurrency`` runs
that many asynchronous clients, each sending one sentence per ``POST /v1/translate`` and the next
once answered, until the level's ``bench.serve_sentences`` requests are sent or
``bench.serve_seconds`` have passed. The offline call is timed before the first level and after
each one, while the server idles (the two never share the CPU): a level is compared with the
mean rate of the offline calls just before and just after it, so that a shared machine's speed,
which drifts by the minute, changes both alike.

Per level: sentences/s over the level's wall time, the p50/p90/p99 of the client-side request
latency, the offline sentences/s beside it and their ratio, the server's mean search batch (from
``GET /metrics``), and ``same_outputs``: every served translation equals the offline one of its
sentence (with a shortlist they may legitimately differ: a shortlist is built per batch). The
clients run in this process, on the same CPU as the server: their cost is part of the served
figure, so they are made cheap (aiohttp on uvloop: about 0.2 ms of CPU time a request). The
server is stopped with SIGTERM at the end; its exit status is reported (0 expected).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from seq2seq.bench.translate import test_data
from seq2seq.config.schema import BenchmarkConfig, DecodeConfig
from seq2seq.data.corpus import load_split
from seq2seq.decode.ctranslate2 import CT2Translator
from seq2seq.decode.loading import build_translator
from seq2seq.decode.translator import Translator
from seq2seq.utils.errors import ConfigError

WARMUP_ROUNDS = 4  # untimed requests before the levels: this many per client at the highest concurrency
START_SECONDS = 300  # the server's /health must answer 200 within this
STOP_SECONDS = 60  # after SIGTERM (its graceful shutdown allows 30 s)
REQUEST_SECONDS = 300
LOG_TAIL = 2000  # characters of the server's log shown when it fails


@dataclass
class Level:
    """One concurrency's requests: their latencies (ms), the served texts by sentence, the wall time."""

    concurrency: int
    latencies_ms: list[float]
    texts: dict[int, str]
    seconds: float
    mean_batch: float | None = None  # the server's mean sentences per search batch


@dataclass
class Server:
    """A running ``seq2seq-serve`` child: its process, address and log file."""

    process: subprocess.Popen
    url: str
    log: Path

    def tail(self) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return text[-LOG_TAIL:].strip() or "(nothing)"


def bench_serve(cfg: BenchmarkConfig, data_overrides: list[str]) -> dict[str, Any]:
    """Served throughput and latency per concurrency beside offline translation (module docstring)."""
    _check(cfg)
    translator = _translator(cfg)
    precision = translator.precision if isinstance(translator, CT2Translator) else translator.options.precision
    if translator.config is None:
        raise ConfigError(f"{cfg.checkpoint} holds no training config: the test split is unknown")
    data = test_data(translator.config, data_overrides)
    sentences = [s for s in load_split(data, "test")["src"] if s.strip()][: cfg.bench.serve_sentences]
    if not sentences:
        raise ConfigError(f"the test split of data={data.name} has no sentences")
    offline = [t.text for t in translator.translate(sentences)]  # untimed: warms the translator up
    with tempfile.TemporaryDirectory(prefix="seq2seq-serve-bench-") as tmp, running_server(cfg, Path(tmp)) as server:
        served_precision = _wait_ready(server)
        top = max(cfg.bench.serve_concurrency)
        _load(server, sentences, cfg.bench.serve_beam, top, WARMUP_ROUNDS * top, cfg.bench.serve_seconds)
        seconds = [_timed(translator, sentences)]
        levels = []
        for concurrency in cfg.bench.serve_concurrency:
            levels.append(_measured(server, sentences, cfg, concurrency))
            seconds.append(_timed(translator, sentences))
        exit_code = stop_server(server)
    rates = [2 * len(sentences) / (before + after) for before, after in zip(seconds, seconds[1:])]
    rows = [_row(level, offline, rate) for level, rate in zip(levels, rates)]
    offline_rate = len(sentences) * len(seconds) / sum(seconds)
    return {
        "mode": "serve",
        "checkpoint": cfg.checkpoint,
        "engine": str(cfg.bench.serve_engine),
        "precision": precision,
        "served_precision": served_precision,
        "beam_size": cfg.bench.serve_beam,
        "shortlist": cfg.bench.shortlist is not None,
        "sentences": len(sentences),
        "offline_sentences_per_sec": round(offline_rate, 2),
        "server_exit_code": exit_code,
        "rows": rows,
    }


def _check(cfg: BenchmarkConfig) -> None:
    bench = cfg.bench
    if not cfg.checkpoint:
        raise ConfigError("benchmark serve needs checkpoint=PATH")
    if not bench.serve_concurrency or min(bench.serve_concurrency) < 1:
        raise ConfigError(f"bench.serve_concurrency must be a list of numbers >= 1, got {bench.serve_concurrency}")
    if bench.serve_sentences < 1 or bench.serve_seconds <= 0:
        raise ConfigError("bench.serve_sentences must be >= 1 and bench.serve_seconds > 0")
    try:
        import aiohttp  # noqa: F401
        import httpx  # noqa: F401
    except ImportError as err:
        raise ConfigError(
            f'benchmark serve needs the serve extra ({err.name} is missing): pip install -e ".[serve]"'
        ) from None


def _translator(cfg: BenchmarkConfig) -> Translator | CT2Translator:
    """The offline translator, built as seq2seq-translate builds it, with the server's settings."""
    return build_translator(
        cfg.checkpoint,
        DecodeConfig(beam_size=cfg.bench.serve_beam),
        engine=str(cfg.bench.serve_engine),
        device=str(cfg.train.device),
        precision=str(cfg.bench.serve_precision),
        shortlist=cfg.bench.shortlist,
        threads=cfg.train.threads,
    )


def _timed(translator: Translator | CT2Translator, sentences: list[str]) -> float:
    """Seconds ``translator`` takes to translate ``sentences`` in one call."""
    start = time.perf_counter()
    translator.translate(sentences)
    return time.perf_counter() - start


# ------------------------------------------------------------------------------------------------
# The server process


def server_command(cfg: BenchmarkConfig, port: int) -> list[str]:
    """``seq2seq-serve`` (the console script beside this Python) with the benchmark's settings."""
    executable = Path(sys.executable).parent / "seq2seq-serve"
    if not executable.exists():
        raise ConfigError(f'{executable} not found: install the package (pip install -e ".[serve]")')
    args = [
        f"checkpoint={cfg.checkpoint}",
        "host=127.0.0.1",
        f"port={port}",
        f"engine={cfg.bench.serve_engine}",
        f"precision={cfg.bench.serve_precision}",
        f"device={cfg.train.device}",
        f"beam_size={cfg.bench.serve_beam}",
        f"max_queue={max(1024, 2 * max(cfg.bench.serve_concurrency))}",
    ]
    if cfg.train.threads:
        args.append(f"threads={cfg.train.threads}")
    if cfg.bench.shortlist:
        args.append(f"shortlist={cfg.bench.shortlist}")
    return [str(executable), *args, *cfg.bench.serve_args]


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now (the server binds it a moment later)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def running_server(cfg: BenchmarkConfig, directory: Path) -> Iterator[Server]:
    """``seq2seq-serve`` running as a child (its output in ``directory/serve.log``); killed on an error."""
    port = free_port()
    log = directory / "serve.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(server_command(cfg, port), stdout=out, stderr=subprocess.STDOUT)
    server = Server(process, f"http://127.0.0.1:{port}", log)
    try:
        yield server
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def _wait_ready(server: Server) -> str | None:
    """Wait for ``/health`` 200; the precision the server reports. A clear error if it dies or fails."""
    import httpx

    deadline = time.monotonic() + START_SECONDS
    with httpx.Client(base_url=server.url, timeout=5) as client:
        while time.monotonic() < deadline:
            if server.process.poll() is not None:
                raise ConfigError(f"seq2seq-serve exited with status {server.process.returncode}:\n{server.tail()}")
            with contextlib.suppress(httpx.TransportError):
                health = client.get("/health")
                if health.status_code == 200:
                    return client.get("/v1/models").json()["models"][0].get("precision")
                if health.json().get("status") == "failed":
                    raise ConfigError(f"seq2seq-serve could not load the model: {health.json().get('error')}")
            time.sleep(0.2)
    raise ConfigError(f"seq2seq-serve was not ready after {START_SECONDS} s:\n{server.tail()}")


def stop_server(server: Server) -> int | None:
    """SIGTERM, then its exit status (None: it did not stop within ``STOP_SECONDS`` and was killed)."""
    server.process.send_signal(signal.SIGTERM)
    try:
        return server.process.wait(STOP_SECONDS)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait()
        return None


# ------------------------------------------------------------------------------------------------
# The clients


def _measured(server: Server, sentences: list[str], cfg: BenchmarkConfig, concurrency: int) -> Level:
    """One concurrency level, with the server's mean batch over it."""
    before = _batch_totals(server)
    level = _load(server, sentences, cfg.bench.serve_beam, concurrency, len(sentences), cfg.bench.serve_seconds)
    after = _batch_totals(server)
    batches = after[1] - before[1]
    level.mean_batch = round((after[0] - before[0]) / batches, 2) if batches else None
    return level


def _load(server: Server, sentences: list[str], beam: int, concurrency: int, budget: int, seconds: float) -> Level:
    """``concurrency`` clients sending the first ``budget`` sentences (at most ``seconds`` long)."""
    import aiohttp

    clients = _clients(server, sentences, beam, concurrency, min(budget, len(sentences)), seconds)
    try:
        return _event_loop_run(clients)
    except (aiohttp.ClientError, asyncio.TimeoutError) as err:
        raise ConfigError(f"seq2seq-serve stopped answering ({type(err).__name__}: {err}):\n{server.tail()}") from None


def _event_loop_run(coroutine: Any) -> Any:
    """``asyncio.run``, on uvloop where it is installed (the serve extra): the clients share the
    server's CPU, so the less each request costs them, the less they take from the server."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coroutine)
    return uvloop.run(coroutine)


async def _clients(
    server: Server, sentences: list[str], beam: int, concurrency: int, budget: int, seconds: float
) -> Level:
    """``concurrency`` clients, each sending the next sentence once its last one is answered.

    aiohttp (its HTTP parser is compiled) costs the clients about a tenth of the CPU time per
    request that httpx does, which matters here: on a small machine the clients share the CPU
    with the server (module docstring)."""
    import aiohttp

    level = Level(concurrency, [], {}, 0.0)
    sent = 0  # the next sentence to send (one event loop: no lock needed)
    connector = aiohttp.TCPConnector(limit=concurrency)
    timeout = aiohttp.ClientTimeout(total=REQUEST_SECONDS)
    async with aiohttp.ClientSession(server.url, connector=connector, timeout=timeout) as session:
        start = time.perf_counter()
        deadline = start + seconds

        async def client_loop() -> None:
            nonlocal sent
            while sent < budget and time.perf_counter() < deadline:
                i, sent = sent, sent + 1
                asked = time.perf_counter()
                body = {"text": [sentences[i]], "beam_size": beam}
                async with session.post("/v1/translate", json=body) as answer:
                    if answer.status != 200:
                        text = await answer.text()
                        raise ConfigError(f"POST /v1/translate answered {answer.status}: {text[:300]}")
                    translations = (await answer.json())["translations"]
                level.latencies_ms.append(1000 * (time.perf_counter() - asked))
                level.texts[i] = translations[0]["text"]

        await asyncio.gather(*(client_loop() for _ in range(concurrency)))
        level.seconds = time.perf_counter() - start
    return level


def _batch_totals(server: Server) -> tuple[float, float]:
    """The server's ``seq2seq_batch_sentences`` histogram: (sum, count)."""
    import httpx

    totals = {"seq2seq_batch_sentences_sum": 0.0, "seq2seq_batch_sentences_count": 0.0}
    for line in httpx.get(f"{server.url}/metrics", timeout=30).text.splitlines():
        name, _, value = line.partition(" ")
        if name in totals:
            totals[name] = float(value)
    return totals["seq2seq_batch_sentences_sum"], totals["seq2seq_batch_sentences_count"]


# ------------------------------------------------------------------------------------------------
# Reporting


def _row(level: Level, offline: list[str], offline_rate: float) -> dict[str, Any]:
    """One concurrency's figures, in the JSON line's keys."""
    p50, p90, p99 = np.percentile(level.latencies_ms, [50, 90, 99])
    rate, offline_rate = round(len(level.texts) / level.seconds, 2), round(offline_rate, 2)
    differ = sum(text != offline[i] for i, text in level.texts.items())
    return {
        "concurrency": level.concurrency,
        "sentences": len(level.texts),
        "sentences_per_sec": rate,
        "p50_ms": round(float(p50), 1),
        "p90_ms": round(float(p90), 1),
        "p99_ms": round(float(p99), 1),
        "offline_sentences_per_sec": offline_rate,
        "ratio": float(f"{rate / offline_rate:.4g}"),  # of the numbers as reported
        "same_outputs": differ == 0,
        "different_outputs": differ,
        "mean_batch_sentences": level.mean_batch,
    }


def serve_table(result: dict[str, Any]) -> str:
    """Concurrency, served sentences/s and latency, offline sentences/s, their ratio, agreement."""
    lines = [
        "| clients | sent/s | p50 ms | p90 ms | p99 ms | offline sent/s | ratio | mean batch | same outputs |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in result["rows"]:
        same = "yes" if r["same_outputs"] else f"no ({r['different_outputs']} of {r['sentences']} differ)"
        lines.append(
            f"| {r['concurrency']} | {r['sentences_per_sec']:.1f} | {r['p50_ms']:.0f} | {r['p90_ms']:.0f} | "
            f"{r['p99_ms']:.0f} | {r['offline_sentences_per_sec']:.1f} | {r['ratio']:.2f} | "
            f"{r['mean_batch_sentences']} | {same} |"
        )
    return "\n".join(lines)


def serve_report(result: dict[str, Any], machine: str) -> str:
    """The machine and settings, the table, and a warning when the server did not exit with 0."""
    shortlist = " + shortlist" if result["shortlist"] else ""
    head = (
        f"{machine}\n{result['checkpoint']}: engine {result['engine']}{shortlist}, precision {result['precision']}, "
        f"beam {result['beam_size']}, the test split's first {result['sentences']} sentences\n"
    )
    code = result["server_exit_code"]
    tail = "" if code == 0 else f"\nwarning: seq2seq-serve exited with {code} after SIGTERM (expected 0)"
    return f"{head}\n{serve_table(result)}{tail}"


def serve_json_lines(result: dict[str, Any], machine: str) -> list[dict[str, Any]]:
    """One JSON object per concurrency: the row plus the run's engine, precision, beam and machine."""
    common = {key: result[key] for key in ("checkpoint", "engine", "precision", "beam_size", "shortlist")}
    exit_code = {"server_exit_code": result["server_exit_code"]}
    return [{"mode": "serve", **row, **common, "machine": machine, **exit_code} for row in result["rows"]]
