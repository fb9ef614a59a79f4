"""The Python API (``from seq2seq import load_translator, plot_attention``) and the README's snippet."""

from __future__ import annotations

import contextlib
import io
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest

from seq2seq import load_translator, plot_attention
from seq2seq.utils.errors import CheckpointError, ConfigError
from tests.conftest import REPO


def readme_python_block(section: str = "Use from Python", holding: str = "load_translator(") -> str:
    """The first ```python block under the README heading ``section`` that holds ``holding``."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    start = text.index(f"## {section}\n")
    blocks = re.compile(r"```python\n(.*?)```", re.S).finditer(text, start)
    match = next((m for m in blocks if holding in m.group(1)), None)
    assert match, f"no python block with {holding!r} under '## {section}'"
    return match.group(1)


def test_readme_snippet_runs(toy_checkpoint, tmp_path, monkeypatch):
    """The README's code, exactly as written, against a tiny trained checkpoint at the path it names."""
    code = readme_python_block()
    path = re.search(r'load_translator\("([^"]+)"', code).group(1)
    (tmp_path / path).parent.mkdir(parents=True)
    shutil.copy(toy_checkpoint, tmp_path / path)
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    output = io.StringIO()
    with contextlib.redirect_stdout(output):
        exec(compile(code, "README.md", "exec"), namespace)
    assert output.getvalue().strip()
    r = namespace["r"]
    assert r.attention.shape == (len(r.trg_tokens), len(r.src_tokens))
    assert namespace["fig"]._repr_png_().startswith(b"\x89PNG")


def test_results_have_tokens_and_attention_rows_that_sum_to_one(toy_checkpoint):
    tr = load_translator(toy_checkpoint, device="cpu")
    sentences = ["d a h c f", "", "a b c"]  # 8-token ones are at the toy model's limit
    results = tr.translate(sentences, beam_size=3)
    assert [r.source for r in results] == sentences
    good = results[0]
    assert good.text == "f c h a d"  # the toy model reverses
    assert good.src_tokens[-1] == good.trg_tokens[-1] == "</s>"
    assert isinstance(good.attention, np.ndarray) and good.attention.shape == (6, 6)
    np.testing.assert_allclose(good.attention.sum(axis=1), 1.0, atol=1e-4)
    assert good.attention_layers.shape[2:] == good.attention.shape
    assert results[1].text == "" and results[1].attention.shape == (0, 0)
    assert [r.text for r in tr.translate("d a h c f", beam_size=1)] == [good.text]  # one string is one sentence


def test_n_best_keeps_one_result_per_sentence_with_its_candidates(toy_checkpoint):
    tr = load_translator(toy_checkpoint, device="cpu")
    (r,) = tr.translate(["d a h c f b e g"], beam_size=4, n_best=3)
    assert len(r.n_best) == 3 and r.n_best[0].text == r.text and r.n_best[0].score == r.score
    assert [c.score for c in r.n_best] == sorted((c.score for c in r.n_best), reverse=True)
    for c in r.n_best:
        assert c.attention.shape == (len(c.trg_tokens), len(r.src_tokens))
        np.testing.assert_allclose(c.attention.sum(axis=1), 1.0, atol=1e-4)


def test_a_shortlist_and_parallel_batches_keep_the_toy_translations(toy_checkpoint, tmp_path):
    from seq2seq.config.schema import ExportConfig
    from seq2seq.deploy.export import run_export

    shortlist = tmp_path / "toy.shortlist"
    run_export(ExportConfig(checkpoint=str(toy_checkpoint), output=str(shortlist), format="shortlist"))
    sentences = ["d a h c f b e g", "a b c", "h g f e d"] * 10
    plain = [r.text for r in load_translator(toy_checkpoint, device="cpu").translate(sentences, batch_size=4)]
    fast = load_translator(toy_checkpoint, device="cpu", shortlist=shortlist)
    assert [r.text for r in fast.translate(sentences, batch_size=4, parallel_batches=2)] == plain
    with pytest.raises(ConfigError, match="is not a shortlist"):
        load_translator(toy_checkpoint, device="cpu", shortlist=toy_checkpoint)


def test_bad_arguments_are_one_line_errors(toy_checkpoint, tmp_path):
    with pytest.raises(ConfigError, match="precision='fp64': expected one of auto, fp32, bf16, fp16"):
        load_translator(toy_checkpoint, precision="fp64")
    with pytest.raises(ConfigError, match="device='gpu': expected auto, cpu, cuda or cuda:N"):
        load_translator(toy_checkpoint, device="gpu")
    with pytest.raises(CheckpointError, match="checkpoint not found"):
        load_translator(tmp_path / "missing.pt")
    tr = load_translator(toy_checkpoint, device="cpu")
    with pytest.raises(ConfigError, match="n_best=4 must be between 1 and beam_size=2"):
        tr.translate(["a b"], beam_size=2, n_best=4)


def test_plot_attention_is_a_figure_that_notebooks_show_inline():
    fig = plot_attention(np.full((2, 3), 1 / 3), ["a", "b", "</s>"], ["x", "</s>"], title="t")
    png = fig._repr_png_()  # what IPython displays for a figure a cell returns
    assert png.startswith(b"\x89PNG")


def test_importing_the_package_leaves_the_matplotlib_backend_alone():
    code = (
        "import seq2seq, seq2seq.api, seq2seq.inspect.plotting, seq2seq.training.trainer, seq2seq.inspect.alignments\n"
        "from seq2seq import load_translator, plot_attention\n"
        "import matplotlib; print(matplotlib.get_backend())"
    )
    env = {**os.environ, "MPLBACKEND": "svg"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "svg"


def test_train_from_python_returns_a_run_that_load_translator_loads(tmp_path):
    """``seq2seq.train(overrides, run_dir=...)``: the command line's overrides, one process, a result."""
    from seq2seq import train
    from tests.conftest import SMALL_TOY_CLI

    result = train(
        [*SMALL_TOY_CLI, "train.max_steps=6", "train.valid_every=3", "train.progress=false"], run_dir=tmp_path
    )
    assert result.run_dir == tmp_path and result.steps == 6
    assert result.best_checkpoint == tmp_path / "checkpoints" / "best.pt" and result.best_checkpoint.is_file()
    assert result.latest_checkpoint.is_file()
    assert result.dev_bleu is not None and 0.0 <= result.dev_bleu <= 100.0
    assert result.metrics["step"] == 6 and "loss" in result.metrics
    (translated,) = load_translator(result.best_checkpoint, device="cpu").translate(["a b c"])
    assert isinstance(translated.text, str)
    again = train(
        [*SMALL_TOY_CLI, "train.max_steps=9", "train.valid_every=3", "train.progress=false"], run_dir=tmp_path
    )
    assert again.steps == 9  # the same directory: resumed, as on the command line


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["train.no_such_key=1"], "unknown config key 'train.no_such_key'"),
        (["model=no_such_model"], "Could not find 'model/no_such_model'"),
        (["hydra.run.dir=elsewhere"], "hydra.run.dir=elsewhere: Hydra's own settings do not apply here"),
        ("data=toy_reverse", "overrides must be a list of key=value strings"),
    ],
    ids=["key", "group", "hydra", "string"],
)
def test_train_from_python_refuses_bad_settings_in_one_line_before_any_work(tmp_path, overrides, message):
    from seq2seq import train

    with pytest.raises(ConfigError) as err:
        train(overrides, run_dir=tmp_path / "run")
    assert message in str(err.value) and "\n" not in str(err.value)
    assert not (tmp_path / "run").exists()
