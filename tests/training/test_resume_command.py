"""A stopped run names the exact command that continues it, and that command does (default run directory)."""

from __future__ import annotations

import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from seq2seq.cli.commands import train_main
from seq2seq.config.schema import TrainRunConfig
from seq2seq.config.values import check_train_config
from seq2seq.training.resume_command import build_command, override_key, shown_path
from seq2seq.utils.errors import ConfigError
from tests.conftest import REPO, SMALL_TOY_CLI, run_main

CLI = [*SMALL_TOY_CLI, "train.log_every=10"]


def start(args: list[str], cwd: Path) -> subprocess.Popen:
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=cwd)


def wait_for_log(root: Path, text: str, timeout: float = 180) -> Path:
    """The one ``train.log`` under ``root``, once it holds ``text``."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        for log in root.rglob("train.log"):
            if text in log.read_text():
                return log
        time.sleep(0.2)
    raise AssertionError(f"{text!r} did not appear in a train.log under {root}")


def interrupt(proc: subprocess.Popen) -> str:
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr[-2000:]
    assert "Traceback" not in stderr
    return stderr.strip().splitlines()[-1]


def command_in(line: str) -> list[str]:
    assert "run: " in line, line
    return shlex.split(line.split("run: ", 1)[1])


def test_ctrl_c_in_the_default_run_directory_prints_a_command_that_resumes(tmp_path):
    first = start([sys.executable, str(REPO / "scripts" / "train.py"), *CLI, "train.max_steps=100000"], tmp_path)
    log = wait_for_log(tmp_path, "step 20 |")
    run_dir = log.parent
    assert run_dir.parent.parent == tmp_path / "outputs"  # outputs/DATE/TIME, Hydra's default
    last = interrupt(first)
    assert last.startswith("stopped: SIGINT at step ")
    assert log.read_text().strip().splitlines()[-1].endswith(last.split("] - ")[-1])  # also the log's last line
    command = command_in(last)
    assert command[-1] == f"hydra.run.dir={run_dir.relative_to(tmp_path)}"
    assert command[1:-1] == [str(REPO / "scripts" / "train.py"), *CLI, "train.max_steps=100000"]

    second = start(command, tmp_path)  # exactly the printed command, from the same directory
    wait_for_log(tmp_path, "resumed from")
    wait_for_log(tmp_path, "step 40 |")
    again = interrupt(second)
    assert command_in(again) == command  # the same command continues it again
    assert [p.parent for p in tmp_path.rglob("train.log")] == [run_dir]  # no second run directory
    assert f"resumed from {run_dir / 'checkpoints' / 'latest.pt'}" in log.read_text()


def test_time_limit_prints_the_command_that_trains_on(tmp_path):
    script = str(REPO / "scripts" / "train.py")
    done = subprocess.run(
        [sys.executable, script, *CLI, "train.max_minutes=0.02", "hydra.run.dir=first"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    last = (tmp_path / "first" / "train.log").read_text().strip().splitlines()[-1]
    assert "time limit train.max_minutes=0.02 reached at step" in last
    command = command_in(last)
    assert command[-1] == "hydra.run.dir=first" and command.count("hydra.run.dir=first") == 1
    assert command[1] == script
    again = run_main(train_main, *command[2:], cwd=tmp_path)  # the printed command, in this process
    assert again.returncode == 0, again.stderr[-2000:]
    assert "resumed from" in (tmp_path / "first" / "train.log").read_text()


def test_build_command_replaces_the_run_directory_and_changed_keys(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args = ["data=toy_reverse", "hydra.run.dir=old", "train.resume=false", "++train.lr=0.1", "model.heads=[2,4]"]
    command = build_command(["seq2seq-train"], args, tmp_path / "runs" / "a b", {"train.lr": "0.05"})
    assert shlex.split(command) == [
        "seq2seq-train",
        "data=toy_reverse",
        "model.heads=[2,4]",
        "hydra.run.dir=runs/a b",
        "train.lr=0.05",
    ]
    assert shown_path("/elsewhere/run") == "/elsewhere/run"
    assert [override_key(a) for a in ("-m", "+a.b=1", "~c", "d=e", "--config-name")] == [None, "a.b", "c", "d", None]


def test_average_best_needs_several_kept_checkpoints():
    cfg = TrainRunConfig()
    cfg.train.average_best = True
    with pytest.raises(ConfigError, match="train.average_best=true averages the train.keep_best best"):
        check_train_config(cfg)
    cfg.train.keep_best = 3
    check_train_config(cfg)
