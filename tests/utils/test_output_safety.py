"""Outputs never destroy inputs or each other, temporaries never follow a planted name, and a
heatmap of any size is drawn (bounded) or skipped without losing the translation."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from seq2seq.checkpoint.store import CheckpointManager, _link
from seq2seq.cli.commands import translate_main
from seq2seq.decode.translation import Translation
from seq2seq.inspect.alignments import save_heatmap
from seq2seq.inspect.plotting import MAX_INCHES, MAX_TOKENS, plot_attention, plot_attention_grid
from seq2seq.training.run_lock import RunInUseError, run_lock
from seq2seq.utils.errors import OutputError
from seq2seq.utils.files import check_distinct_outputs, remove_stale_temporaries
from tests.conftest import run_main, write_lines

# ------------------------------------------------------------------------------------------------
# Item 1: an output is never the checkpoint, the shortlist or another output


@pytest.fixture
def copied_checkpoint(quick_checkpoint, tmp_path) -> Path:
    path = tmp_path / "ck.pt"
    shutil.copyfile(quick_checkpoint, path)
    return path


@pytest.mark.parametrize("option", ["output", "alignments", "heatmaps", "tensorboard"])
def test_an_output_that_is_the_checkpoint_is_refused_and_the_checkpoint_kept(copied_checkpoint, tmp_path, option):
    before = copied_checkpoint.read_bytes()
    source = write_lines(tmp_path / "in.txt", ["a b c"])
    result = run_main(
        translate_main, f"checkpoint={copied_checkpoint}", f"input={source}", f"{option}={copied_checkpoint}"
    )
    assert result.returncode != 0
    assert len(result.stderr.splitlines()) == 1, result.stderr
    assert f"{option}={copied_checkpoint}" in result.stderr and "checkpoint" in result.stderr
    assert copied_checkpoint.read_bytes() == before


def test_a_hard_link_or_symlink_to_the_checkpoint_is_refused(copied_checkpoint, tmp_path):
    hard, soft = tmp_path / "hard.pt", tmp_path / "soft.pt"
    os.link(copied_checkpoint, hard)
    soft.symlink_to(copied_checkpoint)
    for alias in (hard, soft):
        with pytest.raises(OutputError, match=r"^output=.* is checkpoint=.*writing it would destroy the checkpoint$"):
            check_distinct_outputs({"output": alias}, {"checkpoint": copied_checkpoint})


def test_two_outputs_on_one_path_are_refused_before_any_work(copied_checkpoint, tmp_path):
    source = write_lines(tmp_path / "in.txt", ["a b c"])
    same = tmp_path / "out.txt"
    result = run_main(
        translate_main, f"checkpoint={copied_checkpoint}", f"input={source}", f"output={same}", f"alignments={same}"
    )
    assert result.returncode != 0
    assert result.stderr.splitlines() == [
        f"error: alignments={same} and output={same} are the same file; give each its own path"
    ]
    assert not same.exists()


def test_an_output_inside_a_ctranslate2_directory_or_equal_to_the_shortlist_is_refused(tmp_path):
    export = tmp_path / "export"
    export.mkdir()
    (export / "model.bin").write_bytes(b"x")
    with pytest.raises(OutputError, match="lies inside checkpoint="):
        check_distinct_outputs({"output": export / "model.bin"}, {"checkpoint": export})
    with pytest.raises(OutputError, match="is checkpoint="):
        check_distinct_outputs({"heatmaps": export}, {"checkpoint": export})
    shortlist = tmp_path / "short.pt"
    shortlist.write_bytes(b"x")
    with pytest.raises(OutputError, match="is shortlist="):
        check_distinct_outputs({"alignments": shortlist}, {"checkpoint": export, "shortlist": shortlist})


def test_input_as_output_and_shared_devices_stay_allowed(copied_checkpoint, tmp_path):
    source = write_lines(tmp_path / "in.txt", ["a b c", "d e"])
    result = run_main(translate_main, f"checkpoint={copied_checkpoint}", f"input={source}", f"output={source}")
    assert result.returncode == 0, result.stderr
    assert len(source.read_text().splitlines()) == 2  # read first, then replaced by the translations
    check_distinct_outputs({"output": "/dev/stdout", "alignments": "/dev/stdout"})  # written through


# ------------------------------------------------------------------------------------------------
# Item 2: temporaries are new O_EXCL names; a planted file or symlink is never followed


def long_translation(target: int, source: int, layers: int = 1, heads: int = 1) -> Translation:
    weights = torch.softmax(torch.randn(layers, heads, target, source), dim=-1).numpy()  # (L, H, T, S)
    return Translation(
        source="x " * source,
        text="y " * target,
        score=-1.0,
        src_tokens=[f"s{i}" for i in range(source)],
        trg_tokens=[f"t{i}" for i in range(target)],
        attention_layers=weights,
    )


def test_heatmap_temporaries_never_follow_a_planted_symlink(tmp_path):
    maps, victim = tmp_path / "maps", tmp_path / "victim.txt"
    maps.mkdir()
    victim.write_text("precious")
    for name in (".line_00001.png.tmp", ".line_00001.png.0.tmp", "line_00001.png"):
        (maps / name).symlink_to(victim)
    (path,) = save_heatmap(maps, 1, long_translation(4, 5))
    assert victim.read_text() == "precious"
    assert not path.is_symlink() and path.read_bytes().startswith(b"\x89PNG")
    assert sorted(p.name for p in maps.iterdir()) == [".line_00001.png.0.tmp", ".line_00001.png.tmp", "line_00001.png"]


def test_checkpoint_links_never_follow_a_planted_temporary(tmp_path):
    victim, target = tmp_path / "victim.txt", tmp_path / "step_1.pt"
    victim.write_text("precious")
    target.write_bytes(b"checkpoint")
    (tmp_path / f".latest.pt.{os.getpid()}.tmp").symlink_to(victim)  # the old fixed name
    _link(target, tmp_path / "latest.pt")
    assert victim.read_text() == "precious"
    assert os.path.samefile(target, tmp_path / "latest.pt")
    assert [p.name for p in tmp_path.glob(".latest.pt.*.tmp")] == [f".latest.pt.{os.getpid()}.tmp"]


def test_our_temporary_names_are_the_ones_stale_cleanup_recognises(tmp_path, monkeypatch):
    """A killed writer's temporaries are removed at the next start: the names must match."""
    seen = []
    real_link = os.link
    monkeypatch.setattr(os, "link", lambda a, b: (seen.append(Path(b).name), real_link(a, b))[1])
    CheckpointManager(tmp_path).save({"model": {}, "config": {}}, step=3, score=1.0)
    assert seen and all(re.fullmatch(r"\.(latest|best)\.pt\.[0-9a-f]{16}\.tmp", n) for n in seen)
    stale = tmp_path / seen[0]
    stale.write_text("left by kill -9")
    assert remove_stale_temporaries(tmp_path, r"latest\.pt|best\.pt") == [stale]


def test_a_planted_symlink_at_the_lock_file_is_refused_and_not_truncated(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    run = tmp_path / "run"
    run.mkdir()
    (run / ".lock").symlink_to(victim)
    with pytest.raises(RunInUseError, match=r"\.lock: is a symbolic link"), run_lock(run):
        pass
    assert victim.read_text() == "precious"


# ------------------------------------------------------------------------------------------------
# Item 3: heatmaps=/tensorboard= naming a file fail at start-up, before the model is loaded


@pytest.mark.parametrize("option", ["heatmaps", "tensorboard"])
def test_a_file_given_as_a_heatmap_directory_fails_before_any_work(tmp_path, option):
    source = write_lines(tmp_path / "in.txt", ["a b c"])
    taken = tmp_path / "taken"
    taken.write_text("mine")
    out = tmp_path / "out.txt"
    missing_model = tmp_path / "not_loaded_yet.pt"  # the check comes first: no checkpoint needed
    result = run_main(
        translate_main, f"checkpoint={missing_model}", f"input={source}", f"output={out}", f"{option}={taken}"
    )
    assert result.returncode != 0
    assert result.stderr.splitlines() == [
        f"error: {option}={taken}: is a file, not a directory; give a directory for the {option}"
    ]
    assert taken.read_text() == "mine" and not out.exists()


# ------------------------------------------------------------------------------------------------
# Item 4: a heatmap of a long sentence is bounded; a failed image never loses the translation


@pytest.mark.parametrize("plot", ["single", "grid"])
def test_the_heatmap_of_a_1024_token_translation_is_bounded(plot):
    target, source = 1024, 700
    tokens_s, tokens_t = [f"s{i}" for i in range(source)], [f"t{i}" for i in range(target)]
    if plot == "single":
        fig = plot_attention(np.full((target, source), 1 / source), tokens_s, tokens_t)
    else:
        fig = plot_attention_grid(np.full((6, 8, target, source), 1 / source), tokens_s, tokens_t)
    width, height = fig.get_size_inches()
    assert width <= MAX_INCHES and height <= MAX_INCHES
    image = fig.axes[0].images[0].get_array()
    assert image.shape == (MAX_TOKENS, MAX_TOKENS)
    notes = [t.get_text() for t in fig.texts]
    assert f"showing the first {MAX_TOKENS} of 1,024 output tokens and first {MAX_TOKENS} of 700 source tokens" in notes


def test_a_short_sentence_is_drawn_whole_without_a_note():
    fig = plot_attention(np.full((3, 4), 0.25), ["a", "b", "c", "</s>"], ["x", "y", "</s>"])
    assert fig.axes[0].images[0].get_array().shape == (3, 4) and not fig.texts


def test_a_failed_heatmap_is_a_warning_and_the_translation_is_written(copied_checkpoint, tmp_path, monkeypatch):
    def fail(*args, **kwargs):
        raise MemoryError("Unable to allocate 5.5 GiB for an array")

    monkeypatch.setattr("seq2seq.cli.translate.save_heatmap", fail)
    source = write_lines(tmp_path / "in.txt", ["a b c", "d e f"])
    out = tmp_path / "out.txt"
    result = run_main(
        translate_main,
        f"checkpoint={copied_checkpoint}",
        f"input={source}",
        f"output={out}",
        f"heatmaps={tmp_path / 'maps'}",
    )
    assert result.returncode == 0, result.stderr
    assert len(out.read_text().splitlines()) == 2
    assert "line 1: attention heatmap not written (Unable to allocate 5.5 GiB for an array)" in result.stderr
