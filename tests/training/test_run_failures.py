"""Trust, part 2: crafted checkpoint configs, disk full, stale temporaries, pruning only our files."""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from seq2seq.checkpoint.store import CheckpointManager, load_checkpoint, load_model
from seq2seq.cli.commands import train_main, translate_main
from seq2seq.config.schema import TrainRunConfig
from seq2seq.config.serialization import from_container, to_container
from seq2seq.utils.errors import CheckpointError, ConfigError
from tests.conftest import REPO, run_main
from tests.training.test_run_lock import train_cli, wait_for

CANARY = f"canary-{uuid.uuid4().hex}"


# ------------------------------------------------------------------------------------------------
# Item 3: a checkpoint's config is data, never interpolated


def crafted(checkpoint: Path, tmp_path: Path, **planted: str) -> Path:
    """A copy of ``checkpoint`` whose config has ``section.key`` set to an interpolation."""
    payload = load_checkpoint(checkpoint)
    for dotted, value in planted.items():
        section, key = dotted.split("__")
        payload["config"][section][key] = value
    path = tmp_path / "crafted.pt"
    torch.save(payload, path)
    return path


@pytest.mark.parametrize("field", ["model__hidden_size", "data__root"], ids=["int-field", "string-field"])
def test_interpolation_in_a_checkpoint_config_is_refused_and_never_resolved(
    quick_checkpoint, tmp_path, field, monkeypatch
):
    """``${oc.env:...}`` in an int field used to print the secret; in a string field it resolved silently."""
    path = crafted(quick_checkpoint, tmp_path, **{field: "${oc.env:SEQ2SEQ_TEST_CANARY}"})
    monkeypatch.setenv("SEQ2SEQ_TEST_CANARY", CANARY)
    with pytest.raises(CheckpointError) as err:
        load_model(path)
    message = str(err.value)
    assert CANARY not in message and "\n" not in message
    assert message.startswith(f"{path}: refused: its config value {field.replace('__', '.')} contains '${{'")

    result = run_main(translate_main, f"checkpoint={path}", stdin="a b c\n")
    assert result.returncode == 1 and len(result.stderr.splitlines()) == 1, result.stderr
    assert CANARY not in result.stdout + result.stderr and "refused" in result.stderr


def test_from_container_refuses_interpolations_in_nested_values():
    data = to_container(TrainRunConfig())
    data["train"]["betas"] = [0.9, "${oc.env:HOME}"]
    with pytest.raises(ConfigError, match=r"config value train\.betas\.1 contains '\$\{'"):
        from_container(TrainRunConfig, data)


# ------------------------------------------------------------------------------------------------
# Item 4: disk full, stale temporaries, pruning only our files


@contextlib.contextmanager
def small_disk(where: Path, size: str) -> Iterator[bool]:
    """A tmpfs of ``size`` mounted at ``where``; yields False (and mounts nothing) where that is impossible."""
    where.mkdir(parents=True, exist_ok=True)
    mounted = (
        os.geteuid() == 0
        and subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)], capture_output=True
        ).returncode
        == 0
    )
    try:
        yield mounted
    finally:
        if mounted:
            subprocess.run(["umount", "-l", str(where)], check=False)


def test_prune_deletes_only_the_files_it_wrote(tmp_path):
    manager = CheckpointManager(tmp_path, keep_best=1)
    mine = ["step_5000.backup.pt", "step_abc.pt", "step_7.pt.orig", "notes.txt"]
    for name in mine:
        (tmp_path / name).write_text("user file")
    for step, score in [(1, 1.0), (2, 0.5), (3, 2.0)]:
        manager.save({"model": {}, "config": {}}, step, score)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([*mine, "step_3.pt", "latest.pt", "best.pt"])


def _payload(step: int) -> dict:
    return {
        "model": {"w": torch.full((250_000,), float(step))},
        "config": {},
        "tokenizers": {"src": b"spm"},
        "progress": {"step": step},
    }


def test_disk_full_while_saving_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    """ENOSPC (a 1.5 MB tmpfs; without root, a patched torch.save) is one line naming the file."""
    directory = tmp_path / "disk"
    with small_disk(directory, "1500k") as mounted:
        manager = CheckpointManager(directory, keep_best=1)
        manager.save(_payload(1), 1, 1.0)  # 1 MB: fits
        if not mounted:
            real_save = torch.save

            def full(obj, handle, *args, **kwargs):
                real_save(obj, handle, *args, **kwargs)
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

            monkeypatch.setattr(torch, "save", full)
        with pytest.raises(CheckpointError) as err:
            manager.save(_payload(2), 2, 2.0)  # a second 1 MB file does not fit
        assert str(err.value) == (
            f"{directory / 'step_2.pt'}: no space left on device while saving the checkpoint of step 2; "
            f"{directory / 'step_1.pt'} is intact"
        )
        assert sorted(p.name for p in directory.iterdir()) == ["best.pt", "latest.pt", "step_1.pt"]  # no temporary
        assert load_checkpoint(directory / "latest.pt")["progress"]["step"] == 1
        assert manager.latest_step == 1 and manager.ranking == [(1.0, 1)]


def fill(disk: Path, leave: int) -> None:
    """Fill the file system of ``disk`` up to ``leave`` free bytes."""
    stats = os.statvfs(disk)
    (disk / "filler").write_bytes(b"\0" * max(stats.f_bavail * stats.f_frsize - leave, 0))


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root")
def test_disk_full_during_training_and_on_sigterm_is_one_line(tmp_path):
    from seq2seq.training.trainer import Trainer, train
    from tests.conftest import small_toy_config

    disk = tmp_path / "disk"
    with small_disk(disk, "16m") as mounted:
        if not mounted:
            pytest.skip("cannot mount a tmpfs here")
        run = disk / "sigterm"  # the save on the way out after SIGTERM
        train(small_toy_config(max_steps=10, valid_every=10), run)
        fill(disk, leave=96 * 1024)  # room for logs, not for a checkpoint
        trainer = Trainer.build(small_toy_config(max_steps=10_000, valid_every=10_000), run)
        trainer.request_stop("SIGTERM")  # what the signal handler does
        with pytest.raises(CheckpointError, match=r"step_11\.pt: no space left on device while saving .* of step 11"):
            trainer.fit()
        assert load_checkpoint(run / "checkpoints" / "latest.pt")["progress"]["step"] == 10
        assert not list(run.rglob("*.tmp"))
        (disk / "filler").unlink()

        run = disk / "cli"  # a periodic save, on the command line
        assert train_cli(run, "train.max_steps=10", "train.valid_every=10").returncode == 0
        fill(disk, leave=96 * 1024)
        result = train_cli(run, "train.max_steps=20", "train.valid_every=10", "valid.attention_examples=0")
        assert result.returncode == 1, result.stderr[-3000:]
        assert result.stderr.splitlines() == [
            f"error: {run / 'checkpoints' / 'step_20.pt'}: no space left on device while saving the checkpoint "
            f"of step 20; {run / 'checkpoints' / 'step_10.pt'} is intact"
        ]
        assert load_checkpoint(run / "checkpoints" / "latest.pt")["progress"]["step"] == 10
        assert not list(run.rglob("*.tmp"))


def test_stale_temporaries_are_removed_when_a_run_starts(tmp_path):
    from seq2seq.training.trainer import train
    from tests.conftest import small_toy_config

    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    stale = run / "checkpoints" / ".step_400.pt.k1ll3d.tmp"
    stale.write_bytes(b"half a checkpoint")
    backup = run / "checkpoints" / "step_5000.backup.pt"
    backup.write_bytes(b"the user's")
    train(small_toy_config(max_steps=2, valid_every=2), run)
    assert not stale.exists() and backup.read_bytes() == b"the user's"
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == [
        "best.pt",
        "latest.pt",
        "step_2.pt",
        "step_5000.backup.pt",
    ]


# ------------------------------------------------------------------------------------------------
# Item 6: an epoch without a single batch


def test_streaming_epoch_without_batches_is_an_error_at_once(tmp_path):
    """Every pair is longer than data.max_len: it used to loop forever with train.max_epochs=null."""
    root = tmp_path / "corpus"
    root.mkdir()
    (root / "train.de").write_text("ein langer satz mit vielen wörtern\n" * 20)
    (root / "train.en").write_text("a long sentence with many words\n" * 20)
    (root / "val.de").write_text("ein hund\n")
    (root / "val.en").write_text("a dog\n")
    cmd = [
        "data=custom",
        f"data.root={root}",
        "data.vocab_size=40",
        "data.streaming=true",
        "data.max_len=2",
        "train.max_epochs=null",
        "train.max_steps=10",
        "test.enabled=false",
        f"hydra.run.dir={tmp_path / 'run'}",
    ]
    result = run_main(train_main, *cmd, cwd=tmp_path)
    assert result.returncode == 2, result.stderr[-2000:]
    assert result.stderr.splitlines() == [
        "error: epoch 0 has no training batch: every pair is empty or longer than data.max_len=2"
    ]


def test_fewer_batches_than_ranks_is_an_error(tmp_path):
    from seq2seq.training.distributed import DistContext
    from seq2seq.training.trainer import Trainer
    from tests.conftest import small_toy_config

    trainer = Trainer.build(small_toy_config(max_steps=2), tmp_path)
    trainer.dist = trainer.batches.ctx = DistContext(rank=0, world=100_000)  # sharding needs no process group
    with pytest.raises(ConfigError, match=r"^epoch 0 has no training batch for each of the 100000 ranks"):
        next(trainer.update_groups(0, 0))


# ------------------------------------------------------------------------------------------------
# Item 12: SIGTERM to rank 0 only must not leave the ranks in different collectives


def _rank_pids(launcher: int) -> dict[int, int]:
    """``{rank: pid}`` of the workers torchrun started (its children with RANK in their environment)."""
    ranks = {}
    for task in Path(f"/proc/{launcher}/task").iterdir():
        for child in (task / "children").read_text().split():
            with contextlib.suppress(OSError):
                env = dict(
                    item.split("=", 1) for item in Path(f"/proc/{child}/environ").read_text().split("\0") if "=" in item
                )
                if "RANK" in env:
                    ranks[int(env["RANK"])] = int(child)
    return ranks


def test_sigterm_to_rank_0_stops_both_ranks_with_a_checkpoint(tmp_path):
    from tests.training.test_distributed import TINY

    run = tmp_path / "run"
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        str(REPO / "scripts" / "train.py"),
        *TINY,
        "train.max_steps=100000",
        "train.valid_every=100000",
        f"hydra.run.dir={run}",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path, env=env, start_new_session=True
    )
    ranks: dict[int, int] = {}
    try:
        wait_for(run / "train.log", "step 30 |", proc, timeout=600)
        ranks = _rank_pids(proc.pid)
        assert sorted(ranks) == [0, 1], ranks
        os.kill(ranks[0], signal.SIGTERM)  # rank 0 only, at whatever point of a step it is
        _, stderr = proc.communicate(timeout=300)  # used to hang until the 60-minute collective timeout
    finally:
        if proc.poll() is None:  # hung: its workers (still its children, so the PIDs are theirs) too
            for pid in [*ranks.values(), proc.pid]:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
    assert "stopped: SIGTERM at step" in stderr, stderr[-3000:]
    assert "terminate called" not in stderr
    step = load_checkpoint(run / "checkpoints" / "latest.pt")["progress"]["step"]
    assert step >= 30 and f"stopped: SIGTERM at step {step}: saved" in stderr
