"""docs/reference/commands.md shows every console command's ``--help``, and is not stale."""

from __future__ import annotations

import sys

import pytest

from tools import command_reference


@pytest.fixture(scope="module")
def rendered() -> str:
    return command_reference.render()


@pytest.mark.skipif(sys.version_info >= (3, 13), reason="argparse lays out options differently from Python 3.13")
def test_the_command_reference_is_up_to_date(rendered):
    """Fails when a command's ``--help`` changed without ``python tools/command_reference.py``
    rewriting the page."""
    page = command_reference.PAGE.read_text(encoding="utf-8")
    assert page == rendered, "docs/reference/commands.md is stale: run python tools/command_reference.py"


def test_every_console_script_has_its_help_in_a_code_block(rendered):
    names = command_reference.console_scripts()
    assert len(names) == 8 and "seq2seq-train" in names
    for name in names:
        assert f"## {name}\n\n```text\n$ {name} --help\n" in rendered
    assert rendered.count("```text") == rendered.count("\n```\n") == len(names)
    assert "usage: seq2seq-average" in rendered and "== Keys and their defaults" in rendered


def test_check_mode_fails_on_a_stale_page(tmp_path, monkeypatch, rendered):
    page = tmp_path / "commands.md"
    monkeypatch.setattr(command_reference, "PAGE", page)
    monkeypatch.setattr(command_reference, "render", lambda: rendered)
    with pytest.raises(SystemExit, match="stale"):
        command_reference.main(["--check"])  # no page yet
    command_reference.main([])
    assert page.read_text(encoding="utf-8") == rendered
    command_reference.main(["--check"])
    page.write_text(rendered.replace("usage:", "Usage:", 1), encoding="utf-8")
    with pytest.raises(SystemExit, match="stale"):
        command_reference.main(["--check"])
