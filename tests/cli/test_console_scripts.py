"""Every console script of pyproject.toml is installed and answers ``--help``; the interactive no-op check."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from seq2seq.cli.translate import _check_interactive
from seq2seq.config.schema import TranslateConfig
from seq2seq.utils.errors import ConfigError
from tests.conftest import REPO

# [project.scripts] of pyproject.toml (tomllib needs Python 3.11; the project supports 3.10)
_SECTION = (REPO / "pyproject.toml").read_text().split("[project.scripts]", 1)[1].split("\n[", 1)[0]
SCRIPTS = dict(re.findall(r'^([\w-]+)\s*=\s*"([^"]+)"', _SECTION, re.M))


def test_every_tool_has_a_console_script():
    assert set(SCRIPTS) == {
        f"seq2seq-{name}" for name in ("train", "translate", "score", "average", "aer", "benchmark", "export", "serve")
    }


# Runs each installed console script file given on its command line as ``NAME --help``, one after
# the other in this one fresh Python, and prints {name: [exit status, stdout, stderr]} as JSON.
HELP_RUNNER = """
import contextlib, io, json, runpy, sys, traceback
from hydra.core.global_hydra import GlobalHydra

results = {}
for path in sys.argv[1:]:
    out, err, status = io.StringIO(), io.StringIO(), 0
    sys.argv = [path, "--help"]
    GlobalHydra.instance().clear()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            runpy.run_path(path, run_name="__main__")
        except SystemExit as exit_:
            status = exit_.code if isinstance(exit_.code, int) else int(exit_.code is not None)
        except BaseException:
            traceback.print_exc()
            status = 1
    results[path.rsplit("/", 1)[-1]] = [status, out.getvalue(), err.getvalue()]
print(json.dumps(results))
"""


@pytest.fixture(scope="module")
def helps() -> dict[str, tuple[int, str, str]]:
    """``NAME --help`` of every installed console script: the installed files themselves, run in
    one new Python (a new interpreter for each would spend seconds importing the same packages)."""
    paths = []
    for name in SCRIPTS:
        path = Path(sys.executable).parent / name
        executable = str(path) if path.exists() else shutil.which(name)
        if executable:
            paths.append(executable)
    done = subprocess.run([sys.executable, "-c", HELP_RUNNER, *paths], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    return {name: tuple(result) for name, result in json.loads(done.stdout).items()}


@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_console_script_help(helps, name):
    assert name in helps, f"{name} is not installed: pip install -e ."
    status, stdout, stderr = helps[name]
    assert status == 0, stderr[-2000:]
    assert "usage" in stdout.lower() or "powered by hydra" in stdout.lower()
    assert "Traceback" not in stderr


@pytest.mark.parametrize("option", ["input", "output", "alignments", "heatmaps", "tensorboard"])
def test_interactive_refuses_file_options_it_would_ignore(option):
    cfg = TranslateConfig(checkpoint="x.pt", interactive=True, **{option: "somewhere"})
    with pytest.raises(ConfigError, match=f"interactive=true .* cannot use {option}=somewhere"):
        _check_interactive(cfg)
    _check_interactive(TranslateConfig(checkpoint="x.pt", interactive=True, show_attention=True))


@pytest.mark.parametrize("name", ["seq2seq-translate", "seq2seq-score", "seq2seq-export", "seq2seq-serve"])
def test_help_shows_the_commands_own_keys_only(helps, name):
    """Not the training config groups (data, model, train, experiment), which do nothing there."""
    status, stdout, _ = helps[name]
    assert status == 0 and f"usage: {name} " in stdout
    assert "Configuration groups" not in stdout and "experiment:" not in stdout
    assert "== Keys and their defaults" in stdout
