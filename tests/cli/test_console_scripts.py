"""Every console script of pyproject.toml is installed and answers ``--help``; the interactive no-op check."""

from __future__ import annotations

import pytest

from seq2seq.cli.translate import _check_interactive
from seq2seq.config.schema import TranslateConfig
from seq2seq.utils.errors import ConfigError
from tools.command_reference import console_scripts, find_script, run_helps

# [project.scripts] of pyproject.toml
SCRIPTS = console_scripts()


def test_every_tool_has_a_console_script():
    assert set(SCRIPTS) == {
        f"seq2seq-{name}" for name in ("train", "translate", "score", "average", "aer", "benchmark", "export", "serve")
    }


@pytest.fixture(scope="module")
def helps() -> dict[str, tuple[int, str, str]]:
    """``NAME --help`` of every installed console script: the installed files themselves, run in
    one new Python (a new interpreter for each would spend seconds importing the same packages)."""
    paths = [path for path in map(find_script, SCRIPTS) if path]
    return run_helps(paths)


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
