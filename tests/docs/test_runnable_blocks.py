"""Every shell block marked ``<!-- runnable -->`` in the manual runs as it stands and succeeds.

A block is a ```console fence right after the marker; its ``$ `` lines are run one after another
in one shell, in a fresh directory (the toy task or local files only: never the hub or a download).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

PAGES = ["docs/getting-started.md"]
BLOCK = re.compile(r"<!-- runnable -->\n```console\n(.*?)```", re.S)


def runnable_blocks() -> list[tuple[str, list[str]]]:
    found = []
    for page in PAGES:
        for n, match in enumerate(BLOCK.finditer((REPO / page).read_text(encoding="utf-8"))):
            commands = [line[2:] for line in match.group(1).splitlines() if line.startswith("$ ")]
            found.append((f"{page}#{n}", commands))
    return found


def test_the_getting_started_page_has_a_runnable_block():
    assert runnable_blocks() and all(commands for _, commands in runnable_blocks())


@pytest.mark.parametrize(("where", "commands"), runnable_blocks(), ids=[w for w, _ in runnable_blocks()])
def test_runnable_block_succeeds(tmp_path, where, commands):
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    script = "set -euo pipefail\n" + "\n".join(commands)
    done = subprocess.run(["bash", "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"{where}: {done.stderr[-3000:]}"
