"""Slow: real Multi30k training (minutes on a CPU). Run with ``python -m pytest -m slow``.

Reads the corpus from ``MULTI30K_ROOT`` or ``../shared/data/multi30k`` beside the repository.
"""

from __future__ import annotations

import json

import pytest

from tests.conftest import MULTI30K, run_script

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not (MULTI30K / "train.de.gz").is_file(), reason=f"Multi30k not found in {MULTI30K}"),
]


@pytest.mark.parametrize(
    "model", [["model=rnn", "model.attention=bahdanau"], ["model=transformer", "model.attention=dot"]]
)
def test_short_multi30k_training_learns(tmp_path, model):
    run = tmp_path / "run"
    result = run_script(
        "train",
        *model,
        f"data.root={MULTI30K}",
        "train.max_steps=600",
        "train.max_epochs=null",
        "train.valid_every=300",
        "train.progress=false",
        "valid.max_sentences=300",
        "test.decode.beam_size=2",
        f"hydra.run.dir={run}",
        cwd=tmp_path,
        timeout=3600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    log = (run / "train.log").read_text()
    assert "validation at step 600" in log
    scores = json.loads((run / "test.scores.json").read_text())
    assert scores["sentences"] == 1000 and len((run / "test.hyp").read_text().splitlines()) == 1000
    assert scores["bleu"]["score"] > 4.0, scores["bleu"]  # an untrained model scores ~0
