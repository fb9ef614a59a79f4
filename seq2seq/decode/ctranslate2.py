"""``engine=ctranslate2``: translating with a model written by ``seq2seq-export``.

:class:`CT2Translator` has the interface of :class:`seq2seq.decode.translator.Translator` (raw sentences
in, :class:`~seq2seq.decode.translator.Translation` objects out, in input order) and uses the export's
own sentencepiece model(s), so outputs, n-best lists and alignments are written exactly as with
``engine=torch``. The search settings map onto CTranslate2's:

* the output cap ``ceil(max_output_ratio |src| + max_output_extra)`` (``</s>`` included) is
  applied per sentence, and ``min_length`` is CTranslate2's ``min_decoding_length``;
* greedy search reports the summed log-probability, as ours does (two exceptions: an output cut
  by the cap counts its last token where ours counts the forced ``</s>``, and where
  ``min_length`` blocks ``</s>`` CTranslate2 renormalises over the other tokens); beam search
  ranks finished hypotheses by CTranslate2's length normalisation ``log p / |Y|^length_penalty``
  (ours is GNMT's ``((5 + |Y|) / 6)^length_penalty``), so beam outputs may differ where that
  matters;
* attention (for ``alignments=``, heatmaps) is the last layer's cross-attention averaged over
  heads, shaped ``(T, 1, 1, S)``: one layer, one (averaged) head;
* a vocabulary shortlist (``shortlist=FILE``) becomes CTranslate2's vocabulary map (``vmap.txt``,
  given with the model files when loading, so the export directory is not changed): each batch
  decodes over the same target tokens as with ``engine=torch``, except ``<pad>``, which
  CTranslate2 leaves out.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from seq2seq.checkpoint.checks import check_export_metadata, export_tokenizers
from seq2seq.checkpoint.store import checkpoint_config
from seq2seq.config.schema import TrainRunConfig
from seq2seq.config.special_ids import EOS
from seq2seq.data.batching import sentence_batches
from seq2seq.data.tokenizer import Tokenizers
from seq2seq.decode.search import Hypothesis, max_output_lengths
from seq2seq.decode.shortlist import Shortlist
from seq2seq.decode.translation import Translation, empty_translation, make_translation
from seq2seq.decode.translator import DecodeOptions, truncate_sources
from seq2seq.utils.devices import resolve_precision
from seq2seq.utils.errors import CheckpointError, ConfigError, DataError

# The export directory's own description (written by seq2seq.deploy.export) and its format version.
METADATA = "seq2seq.json"
FORMAT_VERSION = 1
# CTranslate2's own files in an export directory (what it loads).
CT2_FILES = {"model.bin", "config.json", "shared_vocabulary.json", "source_vocabulary.json", "target_vocabulary.json"}
# Our precision names -> CTranslate2 compute types.
COMPUTE_TYPES = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16", "int8": "int8"}


def import_ctranslate2() -> Any:
    """The ``ctranslate2`` module, or a one-line error saying how to install it."""
    try:
        import ctranslate2
    except ImportError:
        raise ConfigError('engine=ctranslate2 needs the ctranslate2 package: pip install -e ".[ctranslate2]"') from None
    return ctranslate2


def load_export(directory: str | Path) -> tuple[dict[str, Any], Tokenizers, TrainRunConfig]:
    """The metadata, tokenizers and training config of a ``seq2seq-export`` directory, checked
    (:func:`~seq2seq.checkpoint.checks.check_export_metadata`); the files it names are read from
    inside the directory only."""
    directory = Path(directory)
    if directory.is_file():
        raise ConfigError(
            f"engine=ctranslate2 needs checkpoint=DIR written by seq2seq-export; {directory} is a file "
            f"(export it first: seq2seq-export checkpoint={directory} format=ctranslate2 output=DIR)"
        )
    meta_path = directory / METADATA
    if not meta_path.is_file():
        raise CheckpointError(f"{directory}: not a seq2seq-export directory (no {METADATA})")
    try:
        metadata = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise CheckpointError(f"{meta_path}: unreadable ({err})") from None
    check_export_metadata(metadata, meta_path, FORMAT_VERSION)
    config = checkpoint_config(metadata, str(meta_path))
    try:
        tokenizers = export_tokenizers(directory, metadata["tokenizers"], meta_path)
    except DataError as err:
        raise CheckpointError(str(err)) from None
    return metadata, tokenizers, config


def compute_type(precision: str, device: torch.device) -> tuple[str, str]:
    """``(CTranslate2 compute type, our precision name)`` for ``precision`` on ``device``.

    ``auto`` is bf16 where the hardware computes it natively and CTranslate2 supports it, else fp32.
    """
    ctranslate2 = import_ctranslate2()
    supported = set(ctranslate2.get_supported_compute_types(device.type))
    resolved, _ = resolve_precision(precision, device)
    wanted = COMPUTE_TYPES[resolved]
    if wanted in supported:
        return wanted, resolved
    if str(precision) == "auto":
        return "float32", "fp32"
    choices = ", ".join(p for p, c in COMPUTE_TYPES.items() if c in supported)
    raise ConfigError(f"engine=ctranslate2 precision={resolved}: on this {device.type} CTranslate2 computes {choices}")


class CT2Translator:
    """Raw sentences in, :class:`Translation` objects out, decoded by CTranslate2."""

    def __init__(
        self,
        directory: str | Path,
        options: DecodeOptions,
        device: torch.device | str = "cpu",
        threads: int | None = None,
    ) -> None:
        ctranslate2 = import_ctranslate2()
        self.device = torch.device(device)
        self.metadata, self.tokenizers, self.config = load_export(directory)
        files = None if options.shortlist is None else _model_files(Path(directory), options.shortlist, self.tokenizers)
        self.compute_type, self.precision = compute_type(options.precision, self.device)
        self.max_positions = int(self.metadata.get("max_positions", 1024))
        torch_threads = torch.get_num_threads()
        threads = threads or torch_threads  # as many as PyTorch: side by side, fairly
        # On a CPU, one single-threaded replica per thread (weights shared), each searching its own
        # batch: on 2 cores, beam 5 of test_2016_flickr ran 1.8x faster (int8) than one replica
        # with 2 threads, and one sentence took 8 ms instead of 73 (README, Speed).
        cpu = self.device.type == "cpu"
        self.options = replace(options, parallel_batches=threads if cpu else 1)  # batches at once: one per replica
        try:
            self.translator = ctranslate2.Translator(
                str(directory),
                device=self.device.type,
                compute_type=self.compute_type,
                inter_threads=threads if cpu else 1,
                intra_threads=1 if cpu else threads,
                files=files,
            )
        except (RuntimeError, ValueError, OSError) as err:  # e.g. a truncated model.bin
            reason = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
            raise CheckpointError(f"{directory}: CTranslate2 cannot load the exported model: {reason}") from None
        finally:
            torch.set_num_threads(torch_threads)  # CTranslate2 set the calling thread's OpenMP threads to 1

    def translate(self, sentences: Sequence[str]) -> list[Translation]:
        """Translate ``sentences``; an empty (or blank) sentence gives an empty translation."""
        results = [empty_translation(s, self.options.return_attention) for s in sentences]
        ids = self.tokenizers.encode_sources(sentences)
        limit = min(self.options.max_input_tokens or self.max_positions, self.max_positions)
        cut = truncate_sources(ids, limit)
        rows = list(ids)
        for i, nbest in zip(rows, self.translate_ids([ids[i] for i in rows])):
            results[i] = make_translation(self.tokenizers, sentences[i], ids[i], nbest)
            results[i].truncated = cut.get(i, 0)
        return results

    def translate_ids(self, sources: Sequence[list[int]]) -> list[list[Hypothesis]]:
        """The n-best hypotheses of each source (ids ending in ``</s>``), in input order."""
        results: list[list[Hypothesis] | None] = [None] * len(sources)
        lengths = np.array([len(s) for s in sources], dtype=np.int64)
        o = self.options
        caps = max_output_lengths(torch.from_numpy(lengths), o.max_output_ratio, o.max_output_extra)
        caps = caps.clamp(max=self.max_positions).tolist()
        piece = self.tokenizers.src.sp.id_to_piece
        pending = []  # every batch is submitted before any is awaited: the replicas work in parallel
        for rows in (r.tolist() for r in sentence_batches(lengths, self.options.batch_size)):
            batch = [[piece(i) for i in sources[r]] for r in rows]
            pending.append((rows, self._search(batch, max(caps[r] for r in rows))))
        for rows, outputs in pending:
            for r, output in zip(rows, outputs):
                results[r] = self._hypotheses(output.result(), caps[r], len(sources[r]))
        return results  # type: ignore[return-value]

    def _search(self, batch: list[list[str]], cap: int) -> list[Any]:
        """CTranslate2's search of one batch, submitted asynchronously: one future per sentence."""
        o = self.options
        greedy = o.beam_size <= 1
        return self.translator.translate_batch(
            batch,
            asynchronous=True,
            max_batch_size=len(batch),
            beam_size=max(o.beam_size, 1),
            num_hypotheses=o.n_best,
            length_penalty=0.0 if greedy else o.length_penalty,  # greedy: summed log-probability
            min_decoding_length=o.min_length,
            max_decoding_length=cap,  # one step past the longest real output: its </s> attention row
            max_input_length=0,
            return_scores=True,
            return_attention=o.return_attention,
            return_end_token=True,
            use_vmap=o.shortlist is not None,
        )

    def _hypotheses(self, output: Any, cap: int, src_length: int) -> list[Hypothesis]:
        """Our hypotheses from one CTranslate2 result, cut at ``cap`` tokens (``</s>`` included)."""
        to_id = self.tokenizers.trg.sp.piece_to_id
        hyps = []
        for k, tokens in enumerate(output.hypotheses):
            ids = [to_id(t) for t in tokens]
            n = min(ids.index(EOS) if EOS in ids else len(ids), cap - 1)
            attention = None
            if self.options.return_attention:
                rows = torch.tensor(output.attention[k], dtype=torch.float32)[: n + 1, :src_length]
                attention = rows[:, None, None, :]  # (T, layers=1, heads=1, S)
            hyps.append(Hypothesis(ids[:n], float(output.scores[k]), attention))
        return hyps


def _model_files(directory: Path, shortlist: Shortlist, tokenizers: Tokenizers) -> dict[str, bytes]:
    """CTranslate2's files of the export, plus ``vmap.txt`` written from ``shortlist``: lines of
    ``source piece<TAB>target pieces``, the first with an empty source (always candidates)."""
    shortlist.check_tokenizers(tokenizers)
    src, trg = tokenizers.src.sp.id_to_piece, tokenizers.trg.sp.id_to_piece
    lines = ["\t" + " ".join(trg(int(i)) for i in shortlist.frequent)]
    for source, row in enumerate(shortlist.candidates.tolist()):
        targets = [trg(i) for i in row if i >= 0]
        if targets:
            lines.append(f"{src(source)}\t{' '.join(targets)}")
    files = {p.name: p.read_bytes() for p in directory.iterdir() if p.name in CT2_FILES}
    files["vmap.txt"] = ("\n".join(lines) + "\n").encode("utf-8")
    return files


def is_export_directory(path: str | Path) -> bool:
    """Whether ``path`` is a ``seq2seq-export`` directory (for a hint when engine=torch is given one)."""
    return Path(path).is_dir() and (Path(path) / METADATA).is_file()
