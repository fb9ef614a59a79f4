"""The allowed values of config keys: ``str``-valued enums, so an unknown choice fails at
start-up with the list of valid options (:mod:`seq2seq.config.schema` uses them in its schemas)."""

from __future__ import annotations

from enum import Enum


class Choice(str, Enum):
    """A config choice: a ``str`` enum whose names equal its values."""

    def __str__(self) -> str:
        return self.value


class TaskName(Choice):
    multi30k = "multi30k"
    toy_reverse = "toy_reverse"
    custom = "custom"
    hub = "hub"


class FileFormat(Choice):
    auto = "auto"
    text = "text"
    tsv = "tsv"
    jsonl = "jsonl"


class SpmType(Choice):
    unigram = "unigram"
    bpe = "bpe"


class EncoderType(Choice):
    rnn = "rnn"
    transformer = "transformer"


class DecoderType(Choice):
    rnn = "rnn"
    transformer = "transformer"


class AttentionType(Choice):
    bahdanau = "bahdanau"
    dot = "dot"


class RNNType(Choice):
    gru = "gru"
    lstm = "lstm"


class InitHidden(Choice):
    bridge = "bridge"
    zero = "zero"


class Optimizer(Choice):
    adam = "adam"
    adamw = "adamw"


class Scheduler(Choice):
    constant = "constant"
    inverse_sqrt = "inverse_sqrt"
    plateau = "plateau"
    linear = "linear"


class Device(Choice):
    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"


class Precision(Choice):
    auto = "auto"
    fp32 = "fp32"
    bf16 = "bf16"
    fp16 = "fp16"
    int8 = "int8"  # translation on the CPU only: dynamic int8 quantisation (seq2seq/decode/int8.py)


class Engine(Choice):
    torch = "torch"
    ctranslate2 = "ctranslate2"


class ExportFormat(Choice):
    ctranslate2 = "ctranslate2"
    shortlist = "shortlist"


class Metric(Choice):
    bleu = "bleu"
    loss = "loss"


class OutputFormat(Choice):
    text = "text"
    json = "json"


class AlignFormat(Choice):
    jsonl = "jsonl"
    pharaoh = "pharaoh"
