"""Checkpoints you can trust: exact resume, kill -9, Ctrl-C, keep-best, averaging, safe loading, NaN."""

from __future__ import annotations

import functools
import logging
import os
import pickle
import signal
import stat
import time
from pathlib import Path

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from seq2seq.checkpoint.store import (
    CheckpointManager,
    average_checkpoints,
    load_checkpoint,
    load_model,
    save_checkpoint,
)
from seq2seq.cli.commands import average_main, train_main, translate_main
from seq2seq.training.trainer import Trainer, TrainingError, train
from seq2seq.utils.errors import CheckpointError, ConfigError
from seq2seq.utils.files import atomic_write_text
from tests.conftest import (
    SMALL_TOY_CLI,
    Finished,
    run_main,
    small_toy_config,
    toy_train_cli,
    toy_train_config,
    toy_train_process,
)

TOY_CLI = [*SMALL_TOY_CLI, "train.log_every=10", "valid.attention_examples=0"]


train_process = functools.partial(toy_train_process, TOY_CLI)  # scripts/train.py in a new process
train_cli = functools.partial(toy_train_cli, TOY_CLI)  # the same command, in this process


def wait_for(path: Path, text: str, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if path.exists() and text in path.read_text():
            return
        time.sleep(0.1)
    raise AssertionError(f"{text!r} did not appear in {path}")


def scalar_steps(run_dir: Path, tag: str) -> list[int]:
    acc = EventAccumulator(str(run_dir / "tensorboard"), size_guidance={"scalars": 0})
    acc.Reload()
    return [e.step for e in acc.Scalars(tag)]


# ------------------------------------------------------------------------------------------------
# Exact resume


def test_interrupted_and_resumed_run_is_bit_exact(tmp_path):
    """30 steps straight == 20 steps, stop, resume to 30 (same seed, CPU, several epochs): identical weights."""
    straight = train(small_toy_config(max_steps=30, valid_every=10), tmp_path / "a")
    train(small_toy_config(max_steps=20, valid_every=10), tmp_path / "b")
    resumed = train(small_toy_config(max_steps=30, valid_every=10, resume=True), tmp_path / "b")
    a = load_checkpoint(tmp_path / "a" / "checkpoints" / "latest.pt")
    b = load_checkpoint(tmp_path / "b" / "checkpoints" / "latest.pt")
    assert a["progress"]["step"] == b["progress"]["step"] == 30
    for name, tensor in a["model"].items():
        assert torch.equal(tensor, b["model"][name]), name  # bit-exact, not just close
    for sa, sb in zip(a["optimizer"]["state"].values(), b["optimizer"]["state"].values()):
        assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert a["progress"]["epoch"] == b["progress"]["epoch"]
    assert a["progress"]["batch_in_epoch"] == b["progress"]["batch_in_epoch"]
    assert straight == resumed


def test_resume_refuses_a_different_model(tmp_path):
    train(small_toy_config(max_steps=2, valid_every=2), tmp_path)
    cfg = small_toy_config(max_steps=4, valid_every=2)
    cfg.model.attention_dim = 32
    with pytest.raises(ConfigError, match=r"different model/data config \(model.attention_dim: 64 -> 32"):
        train(cfg, tmp_path)


def test_resume_policy(tmp_path):
    with pytest.raises(ConfigError, match="nothing to resume"):
        train(small_toy_config(max_steps=2, resume=True), tmp_path / "fresh")
    train(small_toy_config(max_steps=2, valid_every=2), tmp_path / "run")
    with pytest.raises(ConfigError, match="already holds a training run"):
        train(small_toy_config(max_steps=4, resume=False), tmp_path / "run")


def test_kill_9_then_resume_finishes_with_continuous_steps(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    command = ["train.max_steps=100", "train.valid_every=20"]
    proc = train_process(run, *command)
    wait_for(run / "train.log", "validation at step 40")
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    assert not list(run.rglob("*.tmp"))  # no half-written checkpoint under any name
    load_checkpoint(run / "checkpoints" / "latest.pt")  # what was there is complete

    result = train_cli(run, *command)  # the same command again
    assert result.returncode == 0, result.stderr[-2000:]
    log = (run / "train.log").read_text()
    assert "resumed from" in log and "validation at step 100" in log
    model, _, _, payload = load_model(run / "checkpoints" / "best.pt")
    assert payload["progress"]["step"] in range(20, 101, 20)
    steps = scalar_steps(run, "train/loss")
    assert steps == sorted(set(steps)) and steps[-1] == 100  # no step logged twice, none missing at the end
    assert scalar_steps(run, "valid/bleu") == [20, 40, 60, 80, 100]


def test_ctrl_c_saves_and_exits_cleanly(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    proc = train_process(run, "train.max_steps=100000", "train.valid_every=1000")
    wait_for(run / "train.log", "step 20 |")
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130
    last = stderr.strip().splitlines()[-1]
    assert last.startswith("stopped: SIGINT at step ") and "saved" in last and "Traceback" not in stderr
    payload = load_checkpoint(run / "checkpoints" / "latest.pt")
    step = payload["progress"]["step"]
    assert step >= 20
    result = train_cli(run, f"train.max_steps={step + 10}", "train.valid_every=1000")
    assert result.returncode == 0, result.stderr[-2000:]
    assert f"resumed from {run / 'checkpoints' / 'latest.pt'}: step {step}" in (run / "train.log").read_text()


# ------------------------------------------------------------------------------------------------
# Keeping the best, averaging


def test_keep_best_keeps_the_right_files(tmp_path):
    manager = CheckpointManager(tmp_path, keep_best=2, higher_is_better=True)
    scores = {100: 10.0, 200: 20.0, 300: 15.0, 400: 5.0, 500: 25.0}
    for step, score in scores.items():
        manager.save({"model": {}, "config": {}, "tokenizers": {"src": b"spm"}, "step": step}, step, score)
        files = sorted(p.name for p in tmp_path.glob("step_*.pt"))
        best_two = sorted(scores, key=lambda s: -scores[s] if s <= step else 0)
        ranked = [s for s in best_two if s <= step][:2]
        assert files == sorted({f"step_{s}.pt" for s in ranked} | {f"step_{step}.pt"})
        assert load_checkpoint(tmp_path / "latest.pt")["step"] == step
        assert load_checkpoint(tmp_path / "best.pt")["step"] == ranked[0]
    assert manager.ranking == [(25.0, 500), (20.0, 200)]


def test_keep_best_by_loss(tmp_path):
    manager = CheckpointManager(tmp_path, keep_best=1, higher_is_better=False)
    for step, loss in [(1, 3.0), (2, 2.0), (3, 2.5)]:
        manager.save({"model": {}, "config": {}, "tokenizers": {"src": b"spm"}, "step": step}, step, loss)
    assert load_checkpoint(tmp_path / "best.pt")["step"] == 2
    assert sorted(p.name for p in tmp_path.glob("step_*.pt")) == ["step_2.pt", "step_3.pt"]


def test_training_keeps_best_and_averages(tmp_path):
    cfg = toy_train_config(max_steps=120, valid_every=20, keep_best=3, average_best=True, test_enabled=False)
    cfg.valid.attention_examples = 0
    train(cfg, tmp_path)
    directory = tmp_path / "checkpoints"
    latest = load_checkpoint(directory / "latest.pt")
    ranking = latest["checkpoints"]["ranking"]
    assert len(ranking) == 3 and ranking == sorted(ranking, key=lambda r: -r[0])
    kept = {p.name for p in directory.glob("step_*.pt")}
    assert kept == {f"step_{int(s)}.pt" for _, s in ranking} | {"step_120.pt"}
    best = load_checkpoint(directory / "best.pt")
    if (directory / "averaged.pt").exists():  # the average was kept: it is not worse on dev
        assert len(best["averaged_from"]) == 3 and best["metrics"]["bleu"] >= ranking[0][0]
    else:
        assert best["progress"]["step"] == ranking[0][1]


def test_average_script(tmp_path):
    run = tmp_path / "run"
    train(small_toy_config(max_steps=60, valid_every=20, keep_best=3), run)
    paths = sorted((run / "checkpoints").glob("step_*.pt"))
    assert len(paths) == 3
    out = tmp_path / "avg.pt"
    result = run_main(average_main, *map(str, paths), "--output", str(out))
    assert result.returncode == 0, result.stderr
    _, _, _, payload = load_model(out)  # loads and builds like any checkpoint
    weights = [load_checkpoint(p)["model"]["decoder.output.weight"] for p in paths]
    torch.testing.assert_close(payload["model"]["decoder.output.weight"], sum(weights) / 3)
    best = run_main(average_main, str(run), "--best", "2", "-o", str(tmp_path / "b.pt"))
    assert best.returncode == 0, best.stderr
    ranking = load_checkpoint(run / "checkpoints" / "latest.pt")["checkpoints"]["ranking"]
    expected = average_checkpoints([run / "checkpoints" / f"step_{int(s)}.pt" for _, s in ranking[:2]])
    for name, tensor in load_checkpoint(tmp_path / "b.pt")["model"].items():
        torch.testing.assert_close(tensor, expected["model"][name])


# ------------------------------------------------------------------------------------------------
# Safe loading


class _Evil:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_crafted_pickle_is_refused_and_runs_nothing(tmp_path):
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pt"
    torch.save({"model": _Evil(marker), "config": {}}, evil)
    with open(evil, "rb") as handle:  # sanity: an unsafe load *would* create the file
        assert handle.read(2) == b"PK"
    with pytest.raises(CheckpointError, match="refused to load"):
        load_checkpoint(evil)
    assert not marker.exists()
    result = run_main(translate_main, f"checkpoint={evil}", stdin="a b\n")
    assert result.returncode == 1
    assert result.stderr.startswith(f"error: {evil}: refused to load") and len(result.stderr.splitlines()) == 1
    assert not marker.exists()
    plain = tmp_path / "plain.pkl"
    plain.write_bytes(pickle.dumps(_Evil(marker)))
    with pytest.raises(CheckpointError):
        load_checkpoint(plain)
    assert not marker.exists()


def test_checkpoint_of_another_config_is_a_clear_error(tmp_path, quick_checkpoint):
    payload = load_checkpoint(quick_checkpoint)
    payload["config"]["model"]["attention_dim"] = 48
    save_checkpoint(tmp_path / "other.pt", payload)
    with pytest.raises(CheckpointError, match=r"weights do not fit this model/vocabulary: .* differ in shape"):
        load_model(tmp_path / "other.pt")


def test_truncated_checkpoint_is_a_clear_error(tmp_path, quick_checkpoint):
    data = quick_checkpoint.read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        load_checkpoint(tmp_path / "cut.pt")


# ------------------------------------------------------------------------------------------------
# NaN/inf


def _poison(trainer: Trainer, bad_calls: set[int]) -> None:
    forward = trainer.model.forward
    calls = {"n": 0}

    def poisoned(*args, **kwargs):
        out = forward(*args, **kwargs)
        calls["n"] += 1
        return out * float("nan") if calls["n"] in bad_calls and trainer.model.training else out

    trainer.model.forward = poisoned


def test_nan_loss_skips_the_step_and_training_goes_on(tmp_path, caplog):
    trainer = Trainer.build(small_toy_config(max_steps=30, valid_every=30), tmp_path)
    _poison(trainer, {5, 6})
    before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    trainer.fit()
    assert trainer.progress.step == 30 and trainer.progress.skipped_steps == 2
    assert "skipped a batch" in caplog.text
    assert all(torch.isfinite(v).all() for v in trainer.model.state_dict().values())
    assert any(not torch.equal(before[k], v) for k, v in trainer.model.state_dict().items())


def test_repeated_nan_stops_without_writing_a_checkpoint(tmp_path):
    trainer = Trainer.build(small_toy_config(max_steps=30, valid_every=10, max_bad_steps=3), tmp_path)
    _poison(trainer, set(range(1, 1000)))
    with pytest.raises(TrainingError, match="NaN/inf for 3 batches in a row after step 0; stopped without saving"):
        trainer.fit()
    assert not (tmp_path / "checkpoints").exists() or not list((tmp_path / "checkpoints").iterdir())


def test_early_stopping(tmp_path, monkeypatch, caplog):
    scripted = iter([20.0, 25.0, 24.0, 25.0, 30.0, 31.0])  # dev BLEU at steps 10, 20, ...

    def fake_dev(*args, **kwargs):
        return {"loss": 1.0, "ppl": 2.7, "bleu": next(scripted)}, []

    monkeypatch.setattr("seq2seq.training.trainer.evaluate_dev", fake_dev)
    with caplog.at_level(logging.INFO):
        metrics = train(small_toy_config(max_steps=1000, valid_every=10, patience=2), tmp_path)
    assert metrics["step"] == 40  # best at 20; 24 and 25 (a tie) do not improve on it
    assert "early stopping: no improvement in 2 validations" in caplog.text


# ------------------------------------------------------------------------------------------------
# Bad input through the real command line: one clear line, non-zero exit


def _corpus(root: Path, de: list[str] | bytes, en: list[str]) -> Path:
    root.mkdir(exist_ok=True)
    (root / "train.de").write_bytes(de if isinstance(de, bytes) else "".join(s + "\n" for s in de).encode())
    (root / "train.en").write_text("".join(s + "\n" for s in en))
    for split in ("val",):
        (root / f"{split}.de").write_text("ein hund\nzwei katzen\n")
        (root / f"{split}.en").write_text("a dog\ntwo cats\n")
    return root


def custom_cli(tmp_path: Path, root: Path, *args: str) -> Finished:
    run = tmp_path / "run"
    cmd = [
        "data=custom",
        f"data.root={root}",
        "data.vocab_size=40",
        "train.max_steps=3",
        "train.valid_every=3",
        "test.enabled=false",
        f"hydra.run.dir={run}",
        *args,
    ]
    return run_main(train_main, *cmd, cwd=tmp_path)


GOOD = ["ein hund läuft", "zwei katzen schlafen", "ein vogel singt"] * 5
GOOD_EN = ["a dog runs", "two cats sleep", "a bird sings"] * 5


@pytest.mark.parametrize(
    "de, en, message",
    [
        (GOOD, GOOD_EN[:-1], "train.de has 15 lines but {root}/train.en has 14: parallel files must align"),
        (b"ein hund\n\xff\xfe kaputt\n", ["a dog", "broken"], "{root}/train.de:2: undecodable bytes at byte 0"),
        ([], [], "the train corpus is empty"),
    ],
    ids=["line-counts", "undecodable", "empty"],
)
def test_bad_corpus_is_one_clear_line(tmp_path, de, en, message):
    root = _corpus(tmp_path / "corpus", de, en)
    result = custom_cli(tmp_path, root)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message.format(root=root) in lines[0], result.stderr
    assert "Traceback" not in result.stderr


def test_missing_files_are_named(tmp_path):
    root = _corpus(tmp_path / "corpus", GOOD, GOOD_EN)
    (root / "train.en").unlink()
    result = custom_cli(tmp_path, root)
    assert result.returncode == 1
    assert result.stderr.strip() == f"error: {root}/train.en[.gz]: file not found (its pair {root}/train.de exists)"


def test_recoverable_lines_are_skipped_and_counted(tmp_path):
    de = GOOD + ["", "lang " * 200]
    en = GOOD_EN + ["orphan target", "long"]
    root = _corpus(tmp_path / "corpus", de, en)
    result = custom_cli(tmp_path, root, "data.max_len=50")
    assert result.returncode == 0, result.stderr[-2000:]
    log = (tmp_path / "run" / "train.log").read_text()
    assert f"{root}/train.de + {root}/train.en: skipped 1 pairs with an empty side (line 16)" in log
    assert "train: dropped 1 of 16 pairs longer than data.max_len=50 subword tokens" in log


def test_train_from_a_missing_checkpoint_for_translation(tmp_path):
    result = run_main(translate_main, f"checkpoint={tmp_path / 'none.pt'}")
    assert result.returncode == 1 and result.stderr == f"error: {tmp_path / 'none.pt'}: checkpoint not found\n"


def test_unknown_key_exit_code(tmp_path):
    result = train_cli(tmp_path / "run", "train.learning_rate=1")
    assert result.returncode == 2
    assert result.stderr.startswith("error: unknown config key 'train.learning_rate'; valid keys of train:")
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_atomic_writes_leave_no_temporaries_and_respect_the_umask(tmp_path):
    target = tmp_path / "out.txt"
    old = os.umask(0o027)
    try:
        atomic_write_text(target, "one\n")
    finally:
        os.umask(old)
    assert target.read_text() == "one\n"
    assert stat.S_IMODE(target.stat().st_mode) == 0o640  # what open() would give, not mkstemp's 0600
    target.chmod(0o604)
    atomic_write_text(target, "two\n")  # replacing a file keeps its mode
    assert target.read_text() == "two\n" and stat.S_IMODE(target.stat().st_mode) == 0o604
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]
