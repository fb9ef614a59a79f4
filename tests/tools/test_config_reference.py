"""docs/reference/config.md lists every configuration key, and is not stale."""

from __future__ import annotations

import dataclasses

from tools import config_reference


def test_the_configuration_reference_is_up_to_date():
    """Fails when a key, a default or a comment of seq2seq/config/schema.py changed without
    ``python tools/config_reference.py`` rewriting the page."""
    page = config_reference.PAGE.read_text(encoding="utf-8")
    assert page == config_reference.render(), "docs/reference/config.md is stale: run python tools/config_reference.py"


def test_every_key_of_every_command_is_listed_with_a_meaning():
    def count(cls: type, skip: tuple[str, ...] = ()) -> int:
        fields = [f for f in dataclasses.fields(cls) if f.name not in skip]
        hints = __import__("typing").get_type_hints(cls, vars(config_reference.schema))
        return sum(count(hints[f.name]) if dataclasses.is_dataclass(hints[f.name]) else 1 for f in fields)

    expected = sum(count(cls, skip) for _, cls, _, skip in config_reference.COMMANDS)
    rows = [line for line in config_reference.render().splitlines() if line.startswith("| `")]
    assert len(rows) == expected and f"{expected} keys in all." in config_reference.render()
    assert all(not line.endswith("|  |") for line in rows), [line for line in rows if line.endswith("|  |")]
    assert "| `train.lr` | float | `0.001` |" in config_reference.render()
