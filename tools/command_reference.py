"""Write the command reference (docs/reference/commands.md): every console script's ``--help``.

    python tools/command_reference.py            # rewrite docs/reference/commands.md
    python tools/command_reference.py --check    # exit 1 if the page is stale

The commands are those of ``[project.scripts]`` in pyproject.toml, each run as ``NAME --help``
from its installed script file, all in one fresh Python (a new interpreter for each would spend
seconds importing the same packages), with a fixed terminal width so that argparse wraps the
same way everywhere. tests/tools/test_command_reference.py fails when the page is stale.

argparse's layout depends on the Python version: Python 3.10's "optional arguments:" heading is
written as later versions' "options:"; Python 3.13 and later also list ``-o, --output OUTPUT``
where earlier versions write ``-o OUTPUT, --output OUTPUT``, so the page is written with 3.11 or
3.12 (CI's Python).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as ``python tools/NAME.py``: make ``tools`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tools.markdown_blocks import generated_page_main

REPO = Path(__file__).resolve().parent.parent
PAGE = REPO / "docs" / "reference" / "commands.md"
COLUMNS = 100  # the terminal width argparse wraps to
HEADER = """# Command reference

Every console command with its `--help`, as installed by `pip install -e .` (`seq2seq-serve` needs
the `serve` extra, `seq2seq-export format=ctranslate2` the `ctranslate2` extra). The Hydra commands
take `key=value` arguments: the [configuration reference](config.md) gives every key's type,
default and meaning. This page is written by `python tools/command_reference.py` from the
commands themselves (a test fails when it is stale).
"""

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


def console_scripts() -> list[str]:
    """The names in ``[project.scripts]`` of pyproject.toml, in its order (tomllib needs 3.11)."""
    section = (REPO / "pyproject.toml").read_text(encoding="utf-8").split("[project.scripts]", 1)[1]
    return re.findall(r'^([\w-]+)\s*=\s*"[^"]+"', section.split("\n[", 1)[0], re.M)


def find_script(name: str) -> str | None:
    """The installed script file of ``name``: beside this Python's executable, else on PATH."""
    path = Path(sys.executable).parent / name
    return str(path) if path.exists() else shutil.which(name)


def run_helps(paths: list[str], env: dict[str, str] | None = None) -> dict[str, tuple[int, str, str]]:
    """``--help`` of each script file in ``paths``, all in one fresh Python:
    ``{name: (exit status, stdout, stderr)}``; a runner that fails is a RuntimeError with its stderr."""
    done = subprocess.run(
        [sys.executable, "-c", HELP_RUNNER, *paths], capture_output=True, text=True, timeout=600, env=env, cwd=REPO
    )
    if done.returncode != 0:
        raise RuntimeError(f"the --help runner failed:\n{done.stderr[-2000:]}")
    return {name: tuple(result) for name, result in json.loads(done.stdout).items()}


def helps(names: list[str]) -> dict[str, str]:
    """``NAME --help`` of every command in ``names``; exits with the error if one fails."""
    env = {**os.environ, "COLUMNS": str(COLUMNS), "LINES": "50", "NO_COLOR": "1", "PYTHON_COLORS": "0"}
    paths = []
    for name in names:
        path = find_script(name)
        if not path:
            sys.exit(f"{name} is not installed: pip install -e .")
        paths.append(path)
    try:
        results = run_helps(paths, env)
    except RuntimeError as err:
        sys.exit(str(err))
    out = {}
    for name in names:
        status, stdout, stderr = results[name]
        if status != 0:
            sys.exit(f"{name} --help exited with {status}:\n{stderr[-2000:]}")
        out[name] = stdout
    return out


def normalise(text: str) -> str:
    """The help text without trailing blanks and with later Pythons' argparse heading."""
    text = re.sub(r"^optional arguments:$", "options:", text, flags=re.M)
    return "\n".join(line.rstrip() for line in text.strip("\n").splitlines())


def render() -> str:
    names = console_scripts()
    texts = helps(names)
    parts = [HEADER, "\n".join(f"- [`{name}`](#{name})" for name in names), ""]
    for name in names:
        parts += [f"## {name}\n", "```text", f"$ {name} --help", normalise(texts[name]), "```", ""]
    return "\n".join(parts)


def main(argv: list[str] | None = None) -> None:
    generated_page_main(PAGE, render, "tools/command_reference.py", __doc__, argv)


if __name__ == "__main__":
    main()
