"""The package's layers, checked by import-linter (contracts in pyproject.toml), and the proof that
each contract can fail: a copy of the package with one forbidden import breaks exactly it."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

LINT = Path(sys.executable).with_name("lint-imports")

# contract id -> (file of the copy, the import planted in it)
BREAKERS = {
    "layers": ("seq2seq/utils/files.py", "import seq2seq.training.trainer"),
    "model-alone": ("seq2seq/model/attention.py", "import seq2seq.data.tokenizer"),
    "entry-points-on-top": ("seq2seq/training/loss.py", "import seq2seq.bench.flops"),
    "records-through-inspect": ("seq2seq/training/validation.py", "import seq2seq.tbplugin.plugin"),
    # a deferred import (inside a function) closing a cycle between two sibling modules
    "no-cycles": ("seq2seq/data/batching.py", "def _late():\n    import seq2seq.data.streaming"),
}


def lint(root: Path, *contracts: str) -> subprocess.CompletedProcess:
    args = [str(LINT), "--no-cache", "--no-logo", *(a for c in contracts for a in ("--contract", c))]
    return subprocess.run(args, cwd=root, capture_output=True, text=True, env={"PYTHONPATH": str(root)}, timeout=120)


def test_the_package_keeps_every_contract():
    result = lint(REPO)
    assert result.returncode == 0, result.stdout[-3000:]
    assert f"Contracts: {len(BREAKERS)} kept, 0 broken." in result.stdout


@pytest.mark.parametrize("contract", sorted(BREAKERS))
def test_each_contract_catches_a_forbidden_import(tmp_path, contract):
    shutil.copytree(REPO / "seq2seq", tmp_path / "seq2seq", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    path, planted = BREAKERS[contract]
    target = tmp_path / path
    target.write_text(target.read_text() + f"\n{planted}\n")
    result = lint(tmp_path, contract)
    assert result.returncode == 1, result.stdout[-3000:]
    assert "0 kept, 1 broken" in result.stdout
