"""Issue 35: crafted or damaged checkpoints, exports and shortlists are one line each, at once.

Each file is made from a small genuine one (a random tiny Transformer checkpoint, its
CTranslate2 export, a shortlist with the genuine digest) with one thing changed.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import time
from pathlib import Path

import pytest
import torch

from seq2seq.api import load_translator
from seq2seq.checkpoint.store import average_checkpoints, load_checkpoint, load_model, save_checkpoint
from seq2seq.cli.commands import average_main, export_main, translate_main
from seq2seq.cli.translate import build_translator
from seq2seq.config.schema import ExportConfig, TranslateConfig
from seq2seq.data.tokenizer import Tokenizers, train_sentencepiece
from seq2seq.decode.shortlist import Shortlist, tokenizer_digest
from seq2seq.decode.translator import DecodeOptions, Translator
from seq2seq.deploy.export import export_ctranslate2, run_export
from seq2seq.training.trainer import train
from seq2seq.utils.errors import CheckpointError, ConfigError, DataError, OutputError
from tests.conftest import run_main, small_toy_config, write_lines
from tests.deploy.test_ctranslate2_export import random_checkpoint, sentences

GARBAGE = b"\x0a\x07garbage" + bytes(range(256))


@pytest.fixture(scope="module")
def genuine(tmp_path_factory) -> Path:
    """A complete checkpoint of an untrained tiny Transformer (joint vocabulary of 40 pieces)."""
    return random_checkpoint(tmp_path_factory.mktemp("genuine") / "model.pt")


@pytest.fixture(scope="module")
def genuine_export(tmp_path_factory, genuine) -> Path:
    pytest.importorskip("ctranslate2")
    return export_ctranslate2(genuine, tmp_path_factory.mktemp("export") / "ct2")


def crafted(genuine: Path, tmp_path: Path, change) -> Path:
    """A copy of ``genuine`` with ``change(payload)`` applied, saved as ``crafted.pt``."""
    payload = load_checkpoint(genuine)
    change(payload)
    path = tmp_path / "crafted.pt"
    torch.save(payload, path)
    return path


def refused(path: Path, error: type[Exception], fragment: str) -> str:
    """Load ``path`` as a model; it must fail with ``error`` naming ``fragment``, in one line, quickly."""
    start = time.monotonic()
    with pytest.raises(error) as caught:
        load_model(path)
    message = str(caught.value)
    assert fragment in message and "\n" not in message, message
    assert time.monotonic() - start < 10
    return message


# ------------------------------------------------------------------------------------------------
# Item 6: checkpoints


def test_garbage_sentencepiece_bytes_in_a_checkpoint(genuine, tmp_path):
    path = crafted(genuine, tmp_path, lambda p: p["tokenizers"].update(src=GARBAGE))
    message = refused(path, CheckpointError, "tokenizers.src: not a sentencepiece model (unreadable or corrupt)")
    assert message.startswith(str(path))


def test_a_checkpoint_without_tokenizers(genuine, tmp_path):
    path = crafted(genuine, tmp_path, lambda p: p.pop("tokenizers"))
    refused(path, CheckpointError, "not a valid checkpoint: no tokenizers entry")


def test_progress_that_is_not_a_dict(genuine, tmp_path):
    path = crafted(genuine, tmp_path, lambda p: p.update(progress=[1, 2]))
    refused(path, CheckpointError, "its progress entry is a list, not a dict")


def test_version_that_is_not_an_integer(genuine, tmp_path):
    path = crafted(genuine, tmp_path, lambda p: p.update(version="x"))
    refused(path, CheckpointError, "its version is a str, not an integer")


def test_config_that_is_not_a_dict(genuine, tmp_path):
    path = crafted(genuine, tmp_path, lambda p: p.update(config="x"))
    refused(path, CheckpointError, "its config entry is a str, not a dict")


def test_config_value_of_the_wrong_type(genuine, tmp_path):
    path = crafted(genuine, tmp_path, lambda p: p["config"]["model"].update(heads="many"))
    refused(path, CheckpointError, "its config is not valid: model.heads")


def test_huge_sizes_are_refused_before_anything_is_allocated(genuine, tmp_path):
    """``hidden_size = emb_dim = 10**6`` used to be a 12 TB allocation: the shapes are compared first."""
    path = crafted(genuine, tmp_path, lambda p: p["config"]["model"].update(hidden_size=10**6, emb_dim=10**6))
    refused(path, CheckpointError, "weights do not fit this model/vocabulary")
    with pytest.raises(CheckpointError, match="weights do not fit"):
        load_translator(path, device="cpu")  # the API's promise: a one-line Seq2SeqError


def test_a_million_layers_are_refused_without_building_them(genuine, tmp_path):
    path = crafted(genuine, tmp_path, lambda p: p["config"]["model"].update(enc_layers=10**7))
    refused(path, CheckpointError, "its config model.enc_layers=10000000 does not fit its weights, which hold 2")


def test_a_crafted_checkpoint_is_one_line_from_the_command(genuine, tmp_path):
    path = crafted(genuine, tmp_path, lambda p: p["config"]["model"].update(dec_layers=10**7))
    result = run_main(translate_main, f"checkpoint={path}", "device=cpu", stdin="ab cd\n")
    assert result.returncode == 1
    assert len(result.stderr.splitlines()) == 1, result.stderr
    assert result.stderr.startswith(f"error: {path}: its config model.dec_layers=10000000 does not fit")


def test_garbage_run_sentencepiece_model_on_resume(tmp_path):
    """``RUN/spm.model`` is reused when a run starts or resumes: garbage there names the file."""
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "spm.model").write_bytes(GARBAGE)
    with pytest.raises(DataError) as caught:
        train(small_toy_config(max_steps=2, valid_every=2), run_dir)
    assert str(caught.value) == f"{run_dir / 'spm.model'}: not a sentencepiece model (unreadable or corrupt)"


def test_data_spm_model_that_is_not_a_sentencepiece_model(tmp_path):
    cfg = small_toy_config(max_steps=2, valid_every=2)
    cfg.data.spm_model = "/etc/passwd"
    with pytest.raises(DataError, match=r"^/etc/passwd: not a sentencepiece model \(unreadable or corrupt\)$"):
        train(cfg, tmp_path / "run")


# ------------------------------------------------------------------------------------------------
# Item 6: export directories (seq2seq.json)


def crafted_export(genuine_export: Path, tmp_path: Path, **changes) -> Path:
    directory = tmp_path / "crafted_export"
    shutil.copytree(genuine_export, directory)
    meta = json.loads((directory / "seq2seq.json").read_text())
    meta.update(changes)
    (directory / "seq2seq.json").write_text(json.dumps(meta))
    return directory


def export_refused(directory: Path, fragment: str) -> None:
    from seq2seq.decode.ctranslate2 import CT2Translator

    with pytest.raises(CheckpointError) as caught:
        CT2Translator(directory, DecodeOptions())
    assert fragment in str(caught.value) and "\n" not in str(caught.value), str(caught.value)


def test_export_tokenizers_as_a_list(genuine_export, tmp_path):
    directory = crafted_export(genuine_export, tmp_path, tokenizers=["spm.model"])
    export_refused(directory, "seq2seq.json: tokenizers must map src (and trg) to sentencepiece file names")


@pytest.mark.parametrize("name", ["../../../../etc/passwd", "/etc/passwd", "link.model"])
def test_export_tokenizer_files_are_read_from_inside_the_directory_only(genuine_export, tmp_path, name):
    directory = crafted_export(genuine_export, tmp_path, tokenizers={"src": name})
    (directory / "link.model").symlink_to("/etc/passwd")
    export_refused(directory, f"tokenizers.src={name!r} is not a file inside the export directory")


def test_export_format_that_is_not_an_integer(genuine_export, tmp_path):
    export_refused(crafted_export(genuine_export, tmp_path, format="1"), "format must be an integer, got a str")


@pytest.mark.parametrize("value", ["abc", 0, -5])
def test_export_max_positions_must_be_a_positive_integer(genuine_export, tmp_path, value):
    directory = crafted_export(genuine_export, tmp_path, max_positions=value)
    export_refused(directory, f"max_positions must be a positive integer, got {value!r}")


def test_truncated_export_model(genuine_export, tmp_path):
    directory = crafted_export(genuine_export, tmp_path)
    data = (directory / "model.bin").read_bytes()
    (directory / "model.bin").write_bytes(data[: len(data) // 2])
    export_refused(directory, f"{directory}: CTranslate2 cannot load the exported model")


# ------------------------------------------------------------------------------------------------
# Item 5: shortlists with a genuine digest and a crafted table


def crafted_shortlist(genuine: Path, tmp_path: Path, candidates=None, frequent=None) -> tuple[Path, Tokenizers]:
    _, tokenizers, _, _ = load_model(genuine)
    rows, size = len(tokenizers.src), len(tokenizers.trg)
    candidates = torch.full((rows, 2), 5) if candidates is None else candidates
    frequent = torch.tensor([4, 6]) if frequent is None else frequent
    path = tmp_path / "crafted.shortlist"
    Shortlist(torch.full((rows, 2), 5), torch.tensor([4]), size, tokenizer_digest(tokenizers)).save(path)
    payload = torch.load(path, weights_only=True)  # the genuine file's format and digest
    torch.save({**payload, "candidates": candidates, "frequent": frequent}, path)
    return path, tokenizers


def test_candidate_ids_beyond_the_target_vocabulary(genuine, tmp_path):
    path, tokenizers = crafted_shortlist(genuine, tmp_path, candidates=torch.full((40, 2), 999))
    with pytest.raises(ConfigError, match=rf"^shortlist={path} is damaged: candidates holds id 999, outside -1\.\.39"):
        Shortlist.load(path, tokenizers)


def test_candidate_ids_beyond_the_vocabulary_with_ctranslate2(genuine, genuine_export, tmp_path):
    path, _ = crafted_shortlist(genuine, tmp_path, candidates=torch.full((40, 2), 999))
    settings = TranslateConfig(checkpoint=str(genuine_export), engine="ctranslate2", device="cpu", shortlist=str(path))
    with pytest.raises(ConfigError, match="candidates holds id 999"):
        build_translator(settings)


def test_fewer_rows_than_the_source_vocabulary(genuine, tmp_path):
    path, tokenizers = crafted_shortlist(genuine, tmp_path, candidates=torch.full((3, 2), 5))
    with pytest.raises(ConfigError, match="candidate table has 3 rows but the source vocabulary has 40 ids"):
        Shortlist.load(path, tokenizers)


def test_a_candidate_table_that_is_not_a_table(genuine, tmp_path):
    path, tokenizers = crafted_shortlist(genuine, tmp_path, candidates=torch.zeros(0, dtype=torch.long))
    with pytest.raises(ConfigError, match=r"is damaged: candidates must have 2 dimensions, got shape \(0,\)"):
        Shortlist.load(path, tokenizers)


def test_no_candidates_per_source_is_a_valid_if_useless_shortlist(genuine, genuine_export, tmp_path):
    """``per_source=0`` writes a ``(V, 0)`` table: only the frequent ids; both engines decode with it."""
    from seq2seq.decode.ctranslate2 import CT2Translator

    path, tokenizers = crafted_shortlist(genuine, tmp_path, candidates=torch.zeros((40, 0), dtype=torch.long))
    options = DecodeOptions(beam_size=2, shortlist=Shortlist.load(path, tokenizers))
    model, _, _, _ = load_model(genuine)
    allowed = {0, 1, 2, 4, 6}  # the frequent ids and the specials (an untrained model writes anything allowed)
    for translator in (Translator(model, tokenizers, options), CT2Translator(genuine_export, options)):
        outputs = translator.translate(sentences(5))
        assert all(set(t.hypotheses[0].tokens) <= allowed for t in outputs)


def test_negative_frequent_ids(genuine, tmp_path):
    path, tokenizers = crafted_shortlist(genuine, tmp_path, frequent=torch.tensor([4, -5]))
    with pytest.raises(ConfigError, match=r"is damaged: frequent holds id -5, outside 0\.\.39"):
        Shortlist.load(path, tokenizers)


def test_floating_point_candidates(genuine, tmp_path):
    path, tokenizers = crafted_shortlist(genuine, tmp_path, candidates=torch.full((40, 2), 5.5))
    with pytest.raises(ConfigError, match="candidates must be an integer tensor, got torch.float32"):
        Shortlist.load(path, tokenizers)


# ------------------------------------------------------------------------------------------------
# Item 1: an output that is an input


def test_export_output_that_is_the_checkpoint(genuine, tmp_path):
    checkpoint = tmp_path / "model.pt"
    shutil.copy(genuine, checkpoint)
    before = checkpoint.read_bytes()
    result = run_main(export_main, f"checkpoint={checkpoint}", "format=shortlist", f"output={checkpoint}", "force=true")
    assert result.returncode == 1 and len(result.stderr.splitlines()) == 1, result.stderr
    assert result.stderr == (
        f"error: output={checkpoint} is checkpoint={checkpoint}: writing it would destroy the checkpoint\n"
    )
    with pytest.raises(OutputError, match="is checkpoint="):
        export_ctranslate2(checkpoint, checkpoint, force=True)
    assert checkpoint.read_bytes() == before


def test_shortlist_output_that_is_a_training_file(genuine, tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    write_lines(corpus / "train.src", sentences(20))
    write_lines(corpus / "train.trg", sentences(20, seed=1))
    data = {"name": "custom", "root": str(corpus), "src_lang": "src", "trg_lang": "trg"}
    checkpoint = crafted(genuine, tmp_path, lambda p: p["config"]["data"].update(data))
    output = corpus / "train.trg"
    with pytest.raises(OutputError, match=rf"^output={output} is corpus={output}: writing it would destroy"):
        run_export(ExportConfig(checkpoint=str(checkpoint), output=str(output), format="shortlist", force=True))
    assert output.read_text().splitlines() == sentences(20, seed=1)


def test_average_output_that_is_an_input_or_a_link_to_one(tmp_path, quick_checkpoint):
    checkpoints = quick_checkpoint.parent
    step = next(checkpoints.glob("step_*.pt"))
    before = step.read_bytes()
    result = run_main(average_main, str(step), str(quick_checkpoint), "-o", str(step))
    assert result.returncode == 1 and len(result.stderr.splitlines()) == 1, result.stderr
    assert result.stderr.startswith(f"error: --output={step} is checkpoint={step}")
    linked = tmp_path / "linked.pt"
    os.link(step, linked)
    result = run_main(average_main, str(step), "-o", str(linked))
    assert result.returncode == 1 and f"--output={linked} is checkpoint={step}" in result.stderr
    best = checkpoints / "best.pt"  # a hard link to the best step_N.pt, which --best 1 reads
    result = run_main(average_main, str(checkpoints.parent), "--best", "1", "-o", str(best))
    assert result.returncode == 1 and f"--output={best} is checkpoint=" in result.stderr, result.stderr
    assert step.read_bytes() == before and os.path.samefile(best, step)


# ------------------------------------------------------------------------------------------------
# Item 8: averaging checkpoints of different vocabularies


def test_average_refuses_checkpoints_of_different_vocabularies(genuine, tmp_path):
    other_spm = train_sentencepiece([s.replace("a", "q") for s in sentences(300, seed=9)], vocab_size=40)
    other = crafted(genuine, tmp_path, lambda p: p["tokenizers"].update(src=other_spm.proto))
    assert load_checkpoint(other)["model"].keys() == load_checkpoint(genuine)["model"].keys()
    with pytest.raises(CheckpointError, match=rf"^{other}: its sentencepiece model differs from that of {genuine}"):
        average_checkpoints([genuine, other])
    save_checkpoint(tmp_path / "same.pt", load_checkpoint(genuine))
    average_checkpoints([genuine, tmp_path / "same.pt"])  # one run's checkpoints still average


# ------------------------------------------------------------------------------------------------
# Item 10: an export follows the umask


def test_export_directory_and_files_follow_the_umask(genuine, tmp_path):
    pytest.importorskip("ctranslate2")
    old = os.umask(0o022)
    try:
        directory = export_ctranslate2(genuine, tmp_path / "ct2")
    finally:
        os.umask(old)
    assert stat.S_IMODE(directory.stat().st_mode) == 0o755
    assert {stat.S_IMODE(p.stat().st_mode) for p in directory.iterdir()} == {0o644}
