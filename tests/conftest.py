"""Shared fixtures: tiny models over {rnn, transformer} x {bahdanau, dot}, toy corpora on disk."""

from __future__ import annotations

import functools
import os
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

# Keep the datasets cache of a test session out of the user's home.
os.environ.setdefault("HF_DATASETS_CACHE", tempfile.mkdtemp(prefix="seq2seq-hf-"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
if os.environ.get("PYTEST_XDIST_WORKER"):
    # pytest -n N runs N workers side by side: one thread each (and in the processes they start),
    # not N times as many threads as cores.
    os.environ.setdefault("OMP_NUM_THREADS", "1")

import pytest  # noqa: E402
import torch  # noqa: E402

from seq2seq.config.schema import ModelConfig  # noqa: E402
from seq2seq.model.seq2seq import Seq2Seq, build_model  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
MULTI30K = Path(os.environ.get("MULTI30K_ROOT", REPO.parent / "shared" / "data" / "multi30k"))

# (encoder, attention, decoder): the RNN decoder with both scores, and the Transformer decoder.
ARCHITECTURES = [
    ("rnn", "bahdanau", "rnn"),
    ("rnn", "dot", "rnn"),
    ("transformer", "bahdanau", "rnn"),
    ("transformer", "dot", "rnn"),
    ("rnn", "dot", "transformer"),
    ("transformer", "dot", "transformer"),
]


def tiny_model_config(
    encoder: str = "rnn", attention: str = "bahdanau", decoder: str = "rnn", **overrides
) -> ModelConfig:
    """A model small enough to build and run in milliseconds."""
    fields = dict(
        encoder=encoder,
        decoder=decoder,
        attention=attention,
        attention_general=encoder == "rnn",
        emb_dim=16,
        hidden_size=16,
        attention_dim=12,
        enc_layers=2,
        dec_layers=2 if "rnn" in (encoder, decoder) or decoder == "transformer" else 1,
        heads=2,
        ff_size=32,
        dropout=0.0,
        emb_dropout=0.0,
        attention_dropout=0.0,
    )
    fields.update(overrides)
    return ModelConfig(**fields)


def tiny_model(
    encoder: str = "rnn", attention: str = "bahdanau", decoder: str = "rnn", vocab: int = 23, seed: int = 0, **kw
) -> Seq2Seq:
    torch.manual_seed(seed)
    return build_model(tiny_model_config(encoder, attention, decoder, **kw), vocab, vocab).eval()


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log):
    """How ``pytest -n N`` (pytest-xdist) shares out the tests: the modules that use the session's
    trained toy run (``toy_run``, ``toy_checkpoint``) are one unit of work, so that one worker trains
    it; a module with module-scoped fixtures is one unit; every other test is a unit of its own."""
    if config.getvalue("dist") != "load":  # another --dist was asked for
        return None
    from xdist.scheduler import LoadScopeScheduling

    @functools.cache
    def unit(module: str) -> str | None:
        source = (config.rootpath / module).read_text(encoding="utf-8")
        if "toy_checkpoint" in source or "toy_run" in source:
            return "toy_run"
        return module if 'scope="module"' in source else None

    class SharedFixtureScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return unit(nodeid.split("::", 1)[0]) or nodeid

    return SharedFixtureScheduling(config, log)


@pytest.fixture(params=ARCHITECTURES, ids=[f"{e}-{a}-{d}dec" for e, a, d in ARCHITECTURES])
def architecture(request) -> tuple[str, str, str]:
    return request.param


def attention_shape(model: Seq2Seq) -> tuple[int, int]:
    """(layers, heads) of the decoder's attention."""
    if hasattr(model.decoder, "layers"):
        return len(model.decoder.layers), model.decoder.layers[0].cross_attn.heads
    return 1, 1


def padded_batch(lengths: list[int], vocab: int = 23, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """``src (B, S)`` of random ids ending in EOS, padded with 0, and ``lengths (B,)``."""
    g = torch.Generator().manual_seed(seed)
    src = torch.zeros(len(lengths), max(lengths), dtype=torch.long)
    for i, n in enumerate(lengths):
        src[i, : n - 1] = torch.randint(4, vocab, (n - 1,), generator=g)
        src[i, n - 1] = 3
    return src, torch.tensor(lengths)


@dataclass
class Finished:
    """What a finished command left: its exit status and everything it wrote (like CompletedProcess)."""

    returncode: int
    stdout: str
    stderr: str


def run_main(main: Callable[[], None], *args: str, stdin: str | bytes = b"", cwd: Path | None = None) -> Finished:
    """Run the console entry point ``main`` (``seq2seq.cli.commands.translate_main`` ...) in this process as
    ``seq2seq-TOOL args``, with ``stdin`` as standard input and in ``cwd``: what a subprocess would
    report, without the seconds each new Python spends importing torch. An exception that the entry
    point lets through (a traceback in a real process) fails the test."""
    import contextlib
    import io
    import logging
    import sys

    from hydra.core.global_hydra import GlobalHydra

    data = stdin.encode() if isinstance(stdin, str) else stdin
    out, err = io.StringIO(), io.StringIO()
    root = logging.getLogger()
    handlers, level, env, here = root.handlers[:], root.level, dict(os.environ), Path.cwd()
    saved = sys.argv, sys.stdin
    sys.argv, sys.stdin = ["seq2seq", *args], io.TextIOWrapper(io.BytesIO(data), encoding="utf-8")
    code: int | str | None = 0
    try:
        if cwd is not None:
            os.chdir(cwd)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            main()
    except SystemExit as exit_:
        code = exit_.code
        if isinstance(code, str):  # sys.exit("message"): printed, status 1
            err.write(code + "\n")
    finally:
        sys.argv, sys.stdin = saved
        os.chdir(here)
        os.environ.clear()
        os.environ.update(env)
        for handler in set(root.handlers) - set(handlers):  # Hydra's console and train.log handlers
            handler.close()
        root.handlers[:] = handlers
        root.setLevel(level)
        GlobalHydra.instance().clear()
    return Finished(code if isinstance(code, int) else int(code is not None), out.getvalue(), err.getvalue())


def toy_train_process(cli: list[str], run_dir: Path, *args: str) -> subprocess.Popen:
    """``scripts/train.py cli args`` in a new process writing ``run_dir`` (to be sent a signal, or
    to run beside the test)."""
    import sys

    cmd = [sys.executable, str(REPO / "scripts" / "train.py"), *cli, *args, f"hydra.run.dir={run_dir}"]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=run_dir.parent)


def toy_train_cli(cli: list[str], run_dir: Path, *args: str) -> Finished:
    """The same command, run to its end in this process (:func:`run_main`)."""
    from seq2seq.cli.commands import train_main

    return run_main(train_main, *cli, *args, f"hydra.run.dir={run_dir}", cwd=run_dir.parent)


def run_script(name: str, *args: str, stdin: str | None = None, cwd: Path | None = None, timeout: float = 300):
    """Run ``scripts/{name}.py`` with ``args`` in a fresh process; the CompletedProcess."""
    import subprocess
    import sys

    return subprocess.run(
        [sys.executable, str(REPO / "scripts" / f"{name}.py"), *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
    )


def write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


# The tiny toy model of toy_train_config(), as command-line overrides for subprocess tests. On the
# CPU also where a GPU is present: these tests check the CPU paths and exact toy outputs (what CI
# runs); tests/test_cuda.py checks the CUDA ones.
TOY_CLI = [
    "train.device=cpu",
    "data=toy_reverse",
    "data.toy_max_len=8",
    "data.toy_symbols=12",
    "model.emb_dim=64",
    "model.hidden_size=64",
    "model.attention_dim=64",
    "train.batch_tokens=512",
    "train.max_epochs=null",
]


def toy_train_config(test_enabled: bool = True, **train_overrides):
    """A tiny reversal-task run that learns in a few seconds on a CPU."""
    from seq2seq.config.schema import DataConfig, TrainRunConfig

    cfg = TrainRunConfig()
    cfg.data = DataConfig(
        name="toy_reverse", src_lang="src", trg_lang="trg", vocab_size=64, toy_max_len=8, toy_symbols=12
    )
    m = cfg.model
    m.emb_dim, m.hidden_size, m.attention_dim = 64, 64, 64
    m.dropout = m.emb_dropout = 0.1
    t = cfg.train
    t.batch_tokens, t.max_steps, t.max_epochs, t.valid_every, t.warmup_steps = 512, 400, None, 200, 0
    t.progress, t.device = False, "cpu"  # the CPU, as in TOY_CLI
    for key, value in train_overrides.items():
        setattr(t, key, value)
    cfg.test.decode.beam_size = 3
    cfg.test.enabled = test_enabled
    return cfg


# The toy model and training of toy_train_config() as command-line overrides, for the toy_run
# fixture: 400 steps, validations at steps 150, 300 and (the last step) 400, test beam 3.
TOY_RUN_CLI = [
    *TOY_CLI,
    "model.dropout=0.1",
    "model.emb_dropout=0.1",
    "train.max_steps=400",
    "train.valid_every=150",
    "train.log_every=50",
    "test.decode.beam_size=3",
]


@pytest.fixture(scope="session")
def toy_run(tmp_path_factory) -> Path:
    """The run directory of the toy model trained end to end by ``scripts/train.py`` (one process)."""
    run_dir = tmp_path_factory.mktemp("toy_run")
    result = run_script("train", *TOY_RUN_CLI, f"hydra.run.dir={run_dir}", cwd=run_dir)
    assert result.returncode == 0, result.stderr[-3000:]
    return run_dir


@pytest.fixture(scope="session")
def toy_checkpoint(toy_run) -> Path:
    """``best.pt`` of the trained toy model (its run directory is the parent's parent)."""
    from seq2seq.checkpoint.store import load_checkpoint

    path = toy_run / "checkpoints" / "best.pt"
    assert load_checkpoint(path)["metrics"]["bleu"] > 80
    return path


def small_toy_config(**train_overrides):
    """:func:`toy_train_config` without the test split, on 500 training and 20 dev pairs: for tests
    that need a run (checkpoints, resuming), not a model that has learnt anything."""
    cfg = toy_train_config(test_enabled=False, **train_overrides)
    cfg.data.toy_train_size, cfg.data.toy_valid_size = 500, 20
    return cfg


# small_toy_config() as command-line overrides.
SMALL_TOY_CLI = [*TOY_CLI, "data.toy_train_size=500", "data.toy_valid_size=20", "test.enabled=false"]


@pytest.fixture(scope="session")
def quick_checkpoint(tmp_path_factory) -> Path:
    """``best.pt`` of a toy model after 2 steps: untrained, but a complete checkpoint in seconds."""
    from seq2seq.training.trainer import train

    run_dir = tmp_path_factory.mktemp("quick_checkpoint")
    train(small_toy_config(max_steps=2, valid_every=2), run_dir)
    return run_dir / "checkpoints" / "best.pt"
