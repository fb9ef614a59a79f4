"""Start-up checks of config values: one line each, before any data is read or a model is built.

The schemas in :mod:`seq2seq.config.schema` check types and choices; this module is the one
place that checks ranges, with one table of rules (:data:`RULES`) and one list of the keys each
rule applies to (``valid.decode.batch_size=0`` fails at once, not as a traceback at the first
validation), plus the combinations of keys that cannot work together (:func:`check_model`,
:func:`check_train_config`) and the sacreBLEU tokenizer names.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from seq2seq.config.schema import DecodeConfig, ModelConfig, ServeConfig, TrainRunConfig
from seq2seq.utils.errors import ConfigError

# Sentencepiece reserves 4 ids (<pad> <unk> <s> </s>) and needs one piece per character besides;
# a corpus too rich for the size asked is reported when sentencepiece is trained.
MIN_VOCAB_SIZE = 8

RULES: dict[str, Callable[[Any], bool]] = {
    ">= 1": lambda x: x >= 1,
    ">= 0": lambda x: x >= 0,
    "> 0": lambda x: x > 0,
    "in [0, 1)": lambda x: 0 <= x < 1,
    "in (0, 1]": lambda x: 0 < x <= 1,
    f">= {MIN_VOCAB_SIZE}": lambda x: x >= MIN_VOCAB_SIZE,
    ">= 2 (a token and </s>)": lambda x: x >= 2,
    "in 0..65535": lambda x: 0 <= x <= 65535,
}


def check_values(cfg: TrainRunConfig) -> None:
    """Raise a one-line :class:`ConfigError` for the first out-of-range value of ``cfg`` (None: unset)."""
    _check_rules(_values(cfg))
    check_decode(cfg.valid.decode, "valid.decode.")
    check_decode(cfg.test.decode, "test.decode.")
    check_bleu_tokenize(cfg.valid.bleu_tokenize, "valid.bleu_tokenize")


def check_bleu_tokenize(name: str, key: str) -> None:
    """A one-line :class:`ConfigError` unless sacreBLEU can tokenize with ``name`` (checked at
    start-up: a bad name would otherwise end a training at its first validation)."""
    from sacrebleu.metrics.bleu import BLEU

    if name not in BLEU.TOKENIZERS:
        choices = ", ".join(BLEU.TOKENIZERS)
        raise ConfigError(f"{key}={name} is not a sacreBLEU tokenizer; choose one of: {choices}")
    try:
        BLEU(tokenize=name)  # e.g. ja-mecab needs an extra package
    except Exception as err:  # noqa: BLE001 (whatever sacreBLEU raises, said in one line)
        reason = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise ConfigError(f"{key}={name}: sacreBLEU cannot use this tokenizer here ({reason})") from None


def check_decode(decode: DecodeConfig, prefix: str = "") -> None:
    """The search settings' ranges, for ``valid.decode``/``test.decode`` (``prefix``), seq2seq-translate
    (no prefix) and the library's translate(); a one-line :class:`ConfigError` naming the key."""
    _check_rules(
        [
            (f"{prefix}beam_size", decode.beam_size, ">= 1"),
            (f"{prefix}min_length", decode.min_length, ">= 0"),
            (f"{prefix}max_output_ratio", decode.max_output_ratio, "> 0"),
            (f"{prefix}max_output_extra", decode.max_output_extra, ">= 0"),
            (f"{prefix}batch_size", decode.batch_size, ">= 1"),
        ]
    )
    if not 1 <= decode.n_best <= decode.beam_size:
        raise ConfigError(f"{prefix}n_best={decode.n_best} must be between 1 and {prefix}beam_size={decode.beam_size}")


def check_serve(cfg: ServeConfig) -> None:
    """``seq2seq-serve``'s search settings (:func:`check_decode`) and its own limits."""
    check_decode(cfg)
    limits = ("max_batch_tokens", "max_queue", "max_sentences", "max_sentence_tokens", "max_body_bytes")
    _check_rules(
        [(name, getattr(cfg, name), ">= 1") for name in limits]
        + [
            ("max_wait_ms", cfg.max_wait_ms, ">= 0"),
            ("port", cfg.port, "in 0..65535"),
            ("max_sentence_tokens", cfg.max_sentence_tokens, ">= 2 (a token and </s>)"),
        ]
    )


def _check_rules(values: list[tuple[str, Any, str]]) -> None:
    for key, value, rule in values:
        if value is not None and not RULES[rule](value):
            raise ConfigError(f"{key} must be {rule}, got {value}")


def _values(cfg: TrainRunConfig) -> list[tuple[str, Any, str]]:
    """``(dotted key, value, rule)`` for every value with a range."""
    t, v, d = cfg.train, cfg.valid, cfg.data
    counts = ("valid_every", "batch_tokens", "keep_best", "max_bad_steps", "log_every", "accumulate", "patience")
    return [
        *((f"train.{name}", getattr(t, name), ">= 1") for name in counts),
        ("train.lr", t.lr, "> 0"),
        ("train.label_smoothing", t.label_smoothing, "in [0, 1)"),
        ("train.betas[0]", t.betas[0], "in [0, 1)"),
        ("train.betas[1]", t.betas[1], "in [0, 1)"),
        ("train.weight_decay", t.weight_decay, ">= 0"),
        ("train.warmup_steps", t.warmup_steps, ">= 0"),
        ("train.min_lr", t.min_lr, ">= 0"),
        ("train.plateau_factor", t.plateau_factor, "in (0, 1]"),
        ("train.plateau_patience", t.plateau_patience, ">= 1"),
        ("train.max_steps", t.max_steps, ">= 1"),
        ("train.max_epochs", t.max_epochs, ">= 1"),
        ("train.max_minutes", t.max_minutes, "> 0"),
        ("valid.max_sentences", v.max_sentences, ">= 1"),
        ("valid.attention_examples", v.attention_examples, ">= 0"),
        ("data.vocab_size", d.vocab_size, f">= {MIN_VOCAB_SIZE}"),
        ("data.spm_max_sentences", d.spm_max_sentences, ">= 1"),
        ("data.spm_character_coverage", d.spm_character_coverage, "in (0, 1]"),
        ("data.max_len", d.max_len, ">= 1"),
        ("data.subword_alpha", d.subword_alpha, ">= 0"),
        ("data.stream_buffer", d.stream_buffer, ">= 1"),
        ("data.num_proc", d.num_proc, ">= 1"),
    ]


def check_train_config(cfg: TrainRunConfig) -> None:
    check_subword_sampling(cfg)
    t = cfg.train
    if not (t.max_steps or t.max_epochs or t.max_minutes):
        raise ConfigError("set train.max_steps, train.max_epochs or train.max_minutes (all are empty)")
    if str(t.precision) == "int8":
        raise ConfigError(
            "train.precision=int8 is for translation only (seq2seq-translate precision=int8); "
            "train with auto, fp32, bf16 or fp16"
        )
    if t.average_best and t.keep_best < 2:
        raise ConfigError(
            f"train.average_best=true averages the train.keep_best best checkpoints: set train.keep_best=2 "
            f"or more (it is {t.keep_best})"
        )


def check_subword_sampling(cfg: TrainRunConfig) -> None:
    """``data.subword_alpha``/``data.subword_nbest``: settings that would sample nothing, or not as asked."""
    d = cfg.data
    if not d.subword_alpha:
        return
    if str(d.spm_type) == "bpe" and not d.subword_alpha < 1:
        raise ConfigError(
            f"data.subword_alpha is the BPE-dropout probability with data.spm_type=bpe: must be < 1, "
            f"got {d.subword_alpha}"
        )
    if str(d.spm_type) == "unigram" and not (d.subword_nbest == -1 or d.subword_nbest >= 2):
        raise ConfigError(
            f"data.subword_nbest must be -1 (sample from all segmentations) or >= 2, got {d.subword_nbest} "
            "(with 0 or 1 sentencepiece would not sample)"
        )


def check_model(cfg: ModelConfig, src_vocab: int, trg_vocab: int) -> None:
    """The model's sizes and rates (:data:`RULES`), and the combinations that cannot be built."""
    sizes = ("emb_dim", "hidden_size", "enc_layers", "dec_layers", "heads", "ff_size", "attention_dim")
    rates = ("dropout", "emb_dropout", "attention_dropout")
    _check_rules(
        [(f"model.{name}", getattr(cfg, name), ">= 1") for name in sizes]
        + [(f"model.{name}", getattr(cfg, name), "in [0, 1)") for name in rates]
    )
    if cfg.share_embeddings and src_vocab != trg_vocab:
        raise ConfigError(
            "model.share_embeddings=true needs one vocabulary (data.joint_vocab=true); "
            f"sizes are {src_vocab} and {trg_vocab}"
        )
    if cfg.tie_embeddings and cfg.emb_dim != cfg.hidden_size:
        raise ConfigError(
            f"model.tie_embeddings=true needs model.emb_dim == model.hidden_size ({cfg.emb_dim} != {cfg.hidden_size}); "
            "make them equal or set model.tie_embeddings=false"
        )
    if cfg.decoder == "transformer" and cfg.attention != "dot":
        raise ConfigError(
            "model.decoder=transformer attends with multi-head scaled dot-product attention; set model.attention=dot"
        )
    if "transformer" in (cfg.encoder, cfg.decoder) and cfg.hidden_size % cfg.heads:
        raise ConfigError(f"model.hidden_size={cfg.hidden_size} is not divisible by model.heads={cfg.heads}")
