"""Write the configuration reference (docs/reference/config.md) from the config dataclasses.

    python tools/config_reference.py            # rewrite docs/reference/config.md
    python tools/config_reference.py --check    # exit 1 if the page is stale

Every key of every command, with its type, its default and its meaning: the comment on the
field's line, or the comment block above the field (a block ends at a blank line). Choices are
listed from their enums. tests/tools/test_config_reference.py fails when the page is stale.
"""

from __future__ import annotations

import dataclasses
import enum
import inspect
import re
import sys
import typing
from pathlib import Path

if __package__ in (None, ""):  # run as ``python tools/NAME.py``: make ``tools`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from seq2seq.config import schema
from tools.markdown_blocks import generated_page_main

PAGE = Path(__file__).resolve().parent.parent / "docs" / "reference" / "config.md"
# (command, schema, key prefix shown, groups left out because another section lists them)
COMMANDS = [
    ("seq2seq-train", schema.TrainRunConfig, "", ()),
    ("seq2seq-translate", schema.TranslateConfig, "", ()),
    ("seq2seq-serve", schema.ServeConfig, "", ()),
    ("seq2seq-score", schema.ScoreConfig, "", ()),
    ("seq2seq-export", schema.ExportConfig, "", ()),
    ("seq2seq-benchmark", schema.BenchmarkConfig, "", ("data", "model", "train", "valid", "test")),
]
HEADER = """# Configuration reference

Every key of every command: `key=value` on the command line (Hydra), with its type, default and
meaning. This page is written by `python tools/config_reference.py` from the config dataclasses
in `seq2seq/config/schema.py` (a test fails when it is stale); a misspelt key or choice stops a
command at once with the valid ones.
"""


def field_comments(cls: type) -> dict[str, str]:
    """The meaning of each field of ``cls`` (its own fields), from the source's comments."""
    comments: dict[str, str] = {}
    block: list[str] = []
    group_owner: str | None = None
    for line in inspect.getsource(cls).splitlines()[1:]:
        stripped = line.strip()
        if not stripped or stripped.startswith(('"""', "def ", "@")):
            block, group_owner = [], None
            continue
        if stripped.startswith("#"):
            if group_owner is not None:
                block, group_owner = [], None
            block.append(stripped.lstrip("# ").rstrip())
            continue
        match = re.match(r"(\w+)\s*:", stripped)
        if not match:
            continue
        name, inline = match.group(1), stripped.split("  # ", 1)[1] if "  # " in stripped else ""
        if inline:
            comments[name] = inline
        elif block:
            comments[name] = " ".join(block) if group_owner is None else f"(as {group_owner})"
            group_owner = group_owner or name
    return comments


def rows(cls: type, prefix: str = "", skip: tuple[str, ...] = ()) -> list[tuple[str, str, str, str]]:
    """``(key, type, default, meaning)`` of every key of ``cls``, nested dataclasses flattened."""
    hints = typing.get_type_hints(cls, vars(schema))
    meanings: dict[str, str] = {}
    for base in reversed(cls.__mro__):
        if dataclasses.is_dataclass(base):
            meanings.update(field_comments(base))
    out = []
    for field in dataclasses.fields(cls):
        if field.name in skip:
            continue
        key, hint = f"{prefix}{field.name}", hints[field.name]
        default = _default(field)
        if dataclasses.is_dataclass(hint):
            out += rows(hint, f"{key}.")
            continue
        out.append((key, _type(hint), _show(default), meanings.get(field.name, "")))
    return out


def _default(field: dataclasses.Field) -> object:
    if field.default is not dataclasses.MISSING:
        return field.default
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    return "???"


def _type(hint: object) -> str:
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    optional = type(None) in typing.get_args(hint)
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        text = " \\| ".join(f"`{m.value}`" for m in hint)
    elif typing.get_origin(hint) is list:
        text = f"list of {_type(args[0])}"
    elif args and len(args) == 1:
        text = _type(args[0])
    else:
        text = getattr(hint, "__name__", str(hint).replace("typing.", ""))
    return f"{text} or null" if optional else text


def _show(value: object) -> str:
    if isinstance(value, enum.Enum):
        value = value.value
    if value is None:
        return "`null`"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if value == "???":
        return "required"
    return f"`{value}`"


def render() -> str:
    parts = [HEADER]
    total = 0
    for command, cls, prefix, skip in COMMANDS:
        table = rows(cls, prefix, skip)
        total += len(table)
        parts.append(f"## {command}\n")
        if skip:
            parts.append(f"Also every key of `seq2seq-train` ({', '.join(f'`{s}.*`' for s in skip)}).\n")
        parts.append("| key | type | default | meaning |\n|---|---|---|---|")
        parts += [f"| `{k}` | {t} | {d} | {m.replace('|', '/')} |" for k, t, d, m in table]
        parts.append("")
    parts.append(f"{total} keys in all.\n")
    return "\n".join(parts)


def main(argv: list[str] | None = None) -> None:
    generated_page_main(PAGE, render, "tools/config_reference.py", __doc__, argv)


if __name__ == "__main__":
    main()
