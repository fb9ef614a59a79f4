"""Every console script of pyproject.toml is installed and answers ``--help``; the interactive no-op check."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from seq2seq.config import TranslateConfig
from seq2seq.errors import ConfigError
from seq2seq.translate_cli import _check_interactive
from tests.conftest import REPO

# [project.scripts] of pyproject.toml (tomllib needs Python 3.11; the project supports 3.10)
_SECTION = (REPO / "pyproject.toml").read_text().split("[project.scripts]", 1)[1].split("\n[", 1)[0]
SCRIPTS = dict(re.findall(r'^([\w-]+)\s*=\s*"([^"]+)"', _SECTION, re.M))


def test_every_tool_has_a_console_script():
    assert set(SCRIPTS) == {
        f"seq2seq-{name}" for name in ("train", "translate", "score", "average", "aer", "benchmark", "export")
    }


@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_console_script_help(name):
    path = Path(sys.executable).parent / name
    executable = str(path) if path.exists() else shutil.which(name)
    assert executable, f"{name} is not installed: pip install -e ."
    done = subprocess.run([executable, "--help"], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "usage" in done.stdout.lower() or "powered by hydra" in done.stdout.lower()
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("option", ["input", "output", "alignments", "heatmaps", "tensorboard"])
def test_interactive_refuses_file_options_it_would_ignore(option):
    cfg = TranslateConfig(checkpoint="x.pt", interactive=True, **{option: "somewhere"})
    with pytest.raises(ConfigError, match=f"interactive=true .* cannot use {option}=somewhere"):
        _check_interactive(cfg)
    _check_interactive(TranslateConfig(checkpoint="x.pt", interactive=True, show_attention=True))
