"""Subword tokenization with sentencepiece (Kudo & Richardson, 2018).

The toolkit trains the model on the training split (one joint model for both languages, or one
per language), caches it in the run directory and stores its bytes in every checkpoint, so a
checkpoint alone can tokenize input and detokenize output. Ids 0-3 are reserved for
``<pad> <unk> <s> </s>``.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import sentencepiece as spm

from seq2seq.config.schema import DataConfig
from seq2seq.config.special_ids import BOS, EOS, PAD, UNK
from seq2seq.utils.errors import ConfigError, DataError
from seq2seq.utils.files import atomic_write_bytes

log = logging.getLogger(__name__)


FEW_TEXTS = 64  # encode_batch encodes fewer texts one by one (measured crossover on 2 cores)


class Tokenizer:
    """Text <-> subword ids for one language (or both, when the vocabulary is joint)."""

    def __init__(self, proto: bytes, source: str = "sentencepiece model") -> None:
        """``proto``: a serialized sentencepiece model; ``source`` names it in errors (a file)."""
        if not isinstance(proto, bytes | bytearray):
            raise DataError(f"{source}: not a sentencepiece model (bytes expected, got {type(proto).__name__})")
        self.proto = bytes(proto)
        try:
            self.sp = spm.SentencePieceProcessor(model_proto=self.proto)
        except (RuntimeError, TypeError, ValueError):  # its message names a C++ source line, not the problem
            raise DataError(f"{source}: not a sentencepiece model (unreadable or corrupt)") from None
        if (self.sp.pad_id(), self.sp.unk_id(), self.sp.bos_id(), self.sp.eos_id()) != (PAD, UNK, BOS, EOS):
            raise DataError(
                f"{source}: sentencepiece model must use ids pad=0 unk=1 bos=2 eos=3 (train it with this toolkit)"
            )

    @classmethod
    def load(cls, path: str | Path) -> Tokenizer:
        path = Path(path)
        if not path.is_file():
            raise DataError(f"{path}: sentencepiece model not found")
        try:
            proto = path.read_bytes()
        except OSError as err:
            raise DataError(f"{path}: cannot read the sentencepiece model ({err.strerror or err})") from None
        return cls(proto, str(path))

    def __getstate__(self) -> bytes:  # picklable for ``datasets.map(num_proc=N)`` workers
        return self.proto

    def __setstate__(self, proto: bytes) -> None:
        self.__init__(proto)  # type: ignore[misc]

    def save(self, path: str | Path) -> None:
        atomic_write_bytes(path, self.proto)

    def __len__(self) -> int:
        return self.sp.get_piece_size()

    def encode(self, text: str) -> list[int]:
        """Subword ids of ``text``, without BOS/EOS."""
        return self.sp.encode(text)

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        """Subword ids of each of ``texts``. sentencepiece encodes a list on a pool of threads it
        starts per call, which only pays from a few dozen texts on (one text: 50 us instead of 3)."""
        if len(texts) < FEW_TEXTS:
            return [self.sp.encode(text) for text in texts]
        return self.sp.encode(list(texts))

    def decode(self, ids: Iterable[int]) -> str:
        """Plain text of ``ids``; stops at EOS and ignores pad/BOS."""
        return self.sp.decode(strip_special(ids))

    def pieces(self, ids: Iterable[int]) -> list[str]:
        """The subword pieces of ``ids`` (for plots and alignments), stopping at EOS."""
        return [self.sp.id_to_piece(i) for i in strip_special(ids)]

    def tokenize(self, text: str) -> list[str]:
        return self.sp.encode(text, out_type=str)


def strip_special(ids: Iterable[int]) -> list[int]:
    """Ids up to (not including) the first EOS, without pad and BOS."""
    out = []
    for i in ids:
        i = int(i)
        if i == EOS:
            break
        if i not in (PAD, BOS):
            out.append(i)
    return out


@dataclass
class Tokenizers:
    """The source and target tokenizers of a model (the same object when joint)."""

    src: Tokenizer
    trg: Tokenizer

    @property
    def joint(self) -> bool:
        return self.src is self.trg

    def to_state(self) -> dict[str, bytes]:
        state = {"src": self.src.proto}
        if not self.joint:
            state["trg"] = self.trg.proto
        return state

    def encode_sources(self, sentences: Sequence[str]) -> dict[int, list[int]]:
        """The source ids, ``</s>`` appended, of each non-blank sentence, by its position (a blank
        sentence has no entry: it gets an empty translation)."""
        rows = [i for i, s in enumerate(sentences) if s.strip()]
        encoded = self.encode_source_batch([sentences[i].strip() for i in rows])
        return dict(zip(rows, encoded))

    def encode_source_batch(self, sentences: list[str]) -> list[list[int]]:
        """Source ids of ``sentences``, each ending in ``</s>`` (the encoder's end-of-source marker)."""
        return [ids + [EOS] for ids in self.src.encode_batch(sentences)]

    @classmethod
    def from_state(cls, state: dict[str, bytes], source: str = "tokenizers") -> Tokenizers:
        """The tokenizers of :meth:`to_state` output; ``source`` names it in errors (a checkpoint)."""
        if not isinstance(state, dict) or "src" not in state or not set(state) <= {"src", "trg"}:
            raise DataError(f"{source}: expected a dict of sentencepiece models with keys src (and trg)")
        src = Tokenizer(state["src"], f"{source}.src")
        trg = Tokenizer(state["trg"], f"{source}.trg") if "trg" in state else src
        return cls(src, trg)


def train_sentencepiece(
    sentences: Sequence[str],
    vocab_size: int,
    model_type: str = "unigram",
    character_coverage: float = 1.0,
    seed: int = 0,
) -> Tokenizer:
    """Train a sentencepiece model on ``sentences``.

    ``vocab_size`` is an upper bound: a corpus too small for it gets the largest vocabulary it
    supports (logged), so tiny toy corpora work with the default size.
    """
    sentences = [s for s in sentences if s.strip()]
    if not sentences:
        raise DataError("cannot train sentencepiece: the training text is empty")
    spm.set_random_generator_seed(seed)
    model = _SpmSink()
    try:
        _train_spm(sentences, model, vocab_size, model_type, character_coverage)
    except RuntimeError as err:
        raise _spm_error(err, vocab_size) from None
    tokenizer = Tokenizer(model.data)
    if len(tokenizer) < vocab_size:
        log.info("sentencepiece: corpus supports %d pieces (asked for %d)", len(tokenizer), vocab_size)
    return tokenizer


def _train_spm(sentences: list[str], model: _SpmSink, vocab_size: int, model_type: str, coverage: float) -> None:
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(sentences),
        model_writer=model,
        vocab_size=vocab_size,
        model_type=model_type,
        character_coverage=coverage,
        hard_vocab_limit=False,
        pad_id=PAD,
        unk_id=UNK,
        bos_id=BOS,
        eos_id=EOS,
        input_sentence_size=0,
        shuffle_input_sentence=False,
        num_threads=2,
        minloglevel=2,
    )


def _spm_error(err: RuntimeError, vocab_size: int) -> Exception:
    """One line for a failed sentencepiece training (its own messages name C++ source lines)."""
    text = str(err)
    needed = re.search(r"smaller than required_chars\. \d+ vs (\d+)", text)
    if needed:
        return ConfigError(
            f"data.vocab_size={vocab_size} is too small for this corpus: sentencepiece needs at least "
            f"{needed.group(1)} (every character plus 4 special tokens); raise data.vocab_size or lower "
            "data.spm_character_coverage"
        )
    reason = text.strip().splitlines()[0] if text.strip() else type(err).__name__
    reason = re.sub(r"^INTERNAL: \S+ \[[^]]*\] ?", "", reason) or reason  # drop the C++ file and assertion
    return DataError(f"sentencepiece training failed: {reason}")


class _SpmSink:
    """A file-like target for ``SentencePieceTrainer(model_writer=...)``."""

    def __init__(self) -> None:
        self.data = b""

    def write(self, data: bytes) -> None:
        self.data += data


def prepare_tokenizers(cfg: DataConfig, train: Any, run_dir: Path, seed: int = 0) -> Tokenizers:
    """The run's tokenizers: reused from ``data.spm_model`` or the run directory, else trained.

    ``train`` is the training split (a ``datasets.Dataset`` with ``src``/``trg`` columns).
    Trained models are cached in ``run_dir`` as ``spm.model`` (joint) or ``spm.{lang}.model``.
    """
    if cfg.spm_model:
        return _load_given(Path(cfg.spm_model), cfg)
    names = spm_file_names(cfg)
    cached = [run_dir / name for name in names]
    if all(path.is_file() for path in cached):
        log.info("reusing sentencepiece model(s) %s", ", ".join(map(str, cached)))
        return _as_pair([Tokenizer.load(path) for path in cached])
    if len(train) > cfg.spm_max_sentences:  # train on a seeded sample of the pairs
        pick = np.random.default_rng(seed).choice(len(train), size=cfg.spm_max_sentences, replace=False)
        train = train.select(np.sort(pick))
    options = dict(
        vocab_size=cfg.vocab_size,
        model_type=str(cfg.spm_type),
        character_coverage=cfg.spm_character_coverage,
        seed=seed,
    )
    if cfg.joint_vocab:
        tokenizers = [train_sentencepiece(list(train["src"]) + list(train["trg"]), **options)]
    else:
        tokenizers = [train_sentencepiece(list(train[column]), **options) for column in ("src", "trg")]
    for tokenizer, path in zip(tokenizers, cached):
        tokenizer.save(path)
        log.info("trained sentencepiece %s: %d pieces -> %s", str(cfg.spm_type), len(tokenizer), path)
    return _as_pair(tokenizers)


def spm_file_names(cfg: DataConfig) -> list[str]:
    """The run directory's sentencepiece file names: ``spm.model`` (joint) or one per language."""
    return ["spm.model"] if cfg.joint_vocab else [f"spm.{cfg.src_lang}.model", f"spm.{cfg.trg_lang}.model"]


def _as_pair(tokenizers: list[Tokenizer]) -> Tokenizers:
    return Tokenizers(tokenizers[0], tokenizers[-1])


def _load_given(path: Path, cfg: DataConfig) -> Tokenizers:
    """``data.spm_model``: a model file (used for both sides) or a directory holding the run's files."""
    if path.is_file():
        return _as_pair([Tokenizer.load(path)])
    if path.is_dir():
        for names in (["spm.model"], [f"spm.{cfg.src_lang}.model", f"spm.{cfg.trg_lang}.model"]):
            if all((path / name).is_file() for name in names):
                return _as_pair([Tokenizer.load(path / name) for name in names])
    raise DataError(
        f"data.spm_model={path}: expected a sentencepiece .model file or a directory with "
        f"spm.model or spm.{cfg.src_lang}.model + spm.{cfg.trg_lang}.model"
    )
