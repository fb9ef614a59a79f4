"""Typed configuration schemas, registered in Hydra's ConfigStore.

Every default lives here, in exactly one place. The YAML files under ``configs/`` only pick
values for a group (``data=multi30k``, ``model=transformer``, ...). Choices are ``str``-valued
enums, so an unknown choice fails at start-up with the list of valid options, and an unknown key
fails because the schemas are strict dataclasses.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING

from seq2seq.config.choices import (  # noqa: F401 (re-exported: the schemas' choices are imported from here)
    AlignFormat,
    AttentionType,
    Choice,
    DecoderType,
    Device,
    EncoderType,
    Engine,
    ExportFormat,
    FileFormat,
    InitHidden,
    Metric,
    Optimizer,
    OutputFormat,
    Precision,
    RNNType,
    Scheduler,
    SpmType,
    TaskName,
)


@dataclass
class DataConfig:
    """Where the parallel corpus comes from and how it is tokenized.

    ``root`` is a directory of ``{split}.{lang}[.gz]`` files (or ``{split}.tsv`` /
    ``{split}.jsonl``); when it is empty, ``hub_name`` is loaded with ``datasets``.
    """

    name: TaskName = TaskName.multi30k  # multi30k, toy_reverse (generated), custom (your files), hub (datasets)
    root: str | None = None  # directory of the corpus files (Multi30k: also MULTI30K_ROOT); null: the hub
    src_lang: str = "de"  # source language: the file suffix ({split}.{lang})
    trg_lang: str = "en"  # target language
    # text: {split}.{lang}[.gz] line pairs; tsv, jsonl: one file per split; auto: by the files found
    format: FileFormat = FileFormat.auto
    # File stem of each split under ``root``: Multi30k calls its test split test_2016_flickr.
    train_split: str = "train"
    valid_split: str = "val"
    test_split: str = "test"
    # Hugging Face dataset (data=hub): a hub name (``wmt14``) or a local dataset directory
    # (``save_to_disk`` output, or {train,validation,test}.jsonl/.csv/.parquet files), its
    # configuration (``de-en``) and its split names.
    hub_name: str | None = None
    hub_config: str | None = None
    hub_train_split: str = "train"
    hub_valid_split: str = "validation"
    hub_test_split: str = "test"
    # Sentencepiece: trained on the training split unless ``spm_model`` names one to reuse.
    vocab_size: int = 8000
    joint_vocab: bool = True
    spm_type: SpmType = SpmType.unigram
    spm_model: str | None = None
    spm_character_coverage: float = 1.0
    # Sentencepiece trains on a seeded sample of at most this many training pairs.
    spm_max_sentences: int = 500_000
    # Pairs whose source or target is longer than this (in subword tokens) are dropped.
    max_len: int = 100
    # Subword regularization (Kudo, 2018): each epoch segments the training pairs anew, sampled
    # from sentencepiece (unigram: smoothing alpha over the subword_nbest best segmentations,
    # -1 = all; bpe: BPE-dropout with probability alpha). 0 = the one best segmentation.
    subword_alpha: float = 0.0
    subword_nbest: int = -1
    # Generated sequence-reversal task (data=toy_reverse).
    toy_symbols: int = 20
    toy_min_len: int = 3
    toy_max_len: int = 12
    toy_train_size: int = 5000
    toy_valid_size: int = 200
    toy_test_size: int = 200
    toy_seed: int = 1234
    # Datasets cache (default: the ``datasets`` library's, ~/.cache/huggingface/datasets).
    cache_dir: str | None = None
    # Tokenization workers for datasets.map (used for corpora of 10,000 pairs or more).
    num_proc: int = 1
    # Read and tokenize the training split as a stream (for corpora that should not be
    # materialised); batches are cut from buffers of stream_buffer pairs.
    streaming: bool = False
    stream_buffer: int = 100_000


@dataclass
class ModelConfig:
    """Encoder, decoder and attention. ``hidden_size`` is per direction for a bi-RNN."""

    encoder: EncoderType = EncoderType.rnn  # rnn (bi-GRU/LSTM) or transformer
    decoder: DecoderType = DecoderType.rnn  # rnn (attention-based) or transformer
    # The RNN decoder's attention. model.decoder=transformer always attends with multi-head scaled
    # dot-product attention and needs attention=dot (any other value is a start-up error).
    attention: AttentionType = AttentionType.bahdanau
    # Dot-product attention: divide scores by sqrt(d); "general" adds a weight matrix W.
    attention_scale: bool = True
    attention_general: bool = True
    attention_dim: int = 256  # Bahdanau attention's hidden size
    emb_dim: int = 256  # token embedding size
    hidden_size: int = 256  # RNN state size (per direction), or the Transformer's width
    enc_layers: int = 1  # encoder layers
    dec_layers: int = 1  # decoder layers
    rnn_type: RNNType = RNNType.gru  # the RNN cell: gru or lstm
    bidirectional: bool = True  # a bidirectional RNN encoder
    init_hidden: InitHidden = InitHidden.bridge  # the RNN decoder's first state: bridge (from the encoder) or zero
    # Transformer layers: model width is ``hidden_size``.
    heads: int = 4
    ff_size: int = 1024  # Transformer feed-forward size
    dropout: float = 0.2  # dropout between layers
    emb_dropout: float = 0.2  # dropout on the embeddings
    attention_dropout: float = 0.1  # dropout on the attention weights (Transformer)
    # Share decoder input embeddings with the output projection (needs emb_dim == hidden_size);
    # on Multi30k it reaches in 600 steps the dev BLEU an untied model needs far longer for.
    tie_embeddings: bool = True
    # Share source and target embeddings (needs a joint vocabulary).
    share_embeddings: bool = False


@dataclass
class TrainConfig:
    optimizer: Optimizer = Optimizer.adam  # adam or adamw
    lr: float = 1e-3  # learning rate (the peak, with a warm-up)
    betas: tuple[float, float] = (0.9, 0.98)  # Adam's beta1, beta2
    weight_decay: float = 0.0  # L2 penalty (adam) or decoupled weight decay (adamw)
    # plateau (halve on a stalled dev metric), inverse_sqrt, linear (to 0 at the budget), constant
    scheduler: Scheduler = Scheduler.plateau
    warmup_steps: int = 100  # linear warm-up of the learning rate over this many updates
    plateau_factor: float = 0.5  # scheduler=plateau: multiply the learning rate by this on a stall
    plateau_patience: int = 3  # scheduler=plateau: validations without improvement before it does
    min_lr: float = 1e-5  # the learning rate never goes below this
    label_smoothing: float = 0.1  # label smoothing of the cross-entropy
    clip_grad_norm: float = 1.0  # clip the gradient's global norm to this (0: no clipping)
    batch_tokens: int = 4096  # target tokens (padding included) per batch
    # Gradient accumulation: one update every K batches (a K-times larger effective batch).
    accumulate: int = 1
    max_steps: int | None = None  # stop after this many updates (null: no step limit)
    max_epochs: int | None = 30  # stop after this many epochs (null: no epoch limit)
    # Wall-clock budget: stop (with a final validation) after this many minutes of training.
    max_minutes: float | None = None
    # About twice an epoch of Multi30k at 4,096-token batches (the default run: 30 epochs).
    valid_every: int = 250
    # Dev metric that picks best.pt, early stopping and the plateau schedule.
    best_metric: Metric = Metric.bleu
    # Checkpoints kept besides latest.pt: the keep_best best by best_metric.
    keep_best: int = 1
    # Stop after this many validations in a row without improvement (null: never).
    patience: int | None = None
    # At the end, average the keep_best best checkpoints; kept as best.pt if not worse on dev.
    average_best: bool = False
    # Continue from checkpoints/latest.pt of the run directory. null (auto): if there is one;
    # true: it must exist; false: refuse to start in a directory that already holds a run.
    resume: bool | None = None
    # Stop when this many batches in a row give a NaN/inf loss or gradient (each is skipped).
    max_bad_steps: int = 5
    log_every: int = 50  # log (and write to TensorBoard) the training loss every this many updates
    seed: int = 42  # seeds every random number generator (weights, batches, dropout)
    device: Device = Device.auto  # auto: cuda when PyTorch sees a GPU, else cpu
    threads: int | None = None  # CPU threads (null: PyTorch's choice, one per core)
    # Mixed precision: bf16 autocast (CPU or CUDA) or fp16 with loss scaling (CUDA). auto: bf16
    # where the hardware computes it natively (CUDA with bf16, CPUs with AVX-512 BF16 or AMX),
    # else fp32; the log says which and why.
    precision: Precision = Precision.auto
    # torch.compile the decoder step (slower start, faster steps on long runs).
    compile: bool = False
    progress: bool = True  # a progress bar with the time left


# The longest source (subword tokens, </s> included) a translated sentence is cut to, by default:
# it bounds the memory one input line can take (seq2seq-translate and the Python API).
MAX_INPUT_TOKENS = 1024


@dataclass
class DecodeConfig:
    """Search settings, defined once: ``valid.decode``, ``test.decode``, the keys of
    ``seq2seq-translate`` (:class:`TranslateConfig` extends this class, so ``beam_size=5`` stays a
    top-level key there) and the library's :class:`seq2seq.decode.translator.DecodeOptions`."""

    beam_size: int = 5  # 1: greedy search
    n_best: int = 1  # candidates kept per sentence (at most beam_size)
    length_penalty: float = 1.0  # GNMT's alpha (0: raw log-probability)
    # Shortest output (tokens before </s>, fairseq's min_len): a non-empty source never gets an
    # empty translation; 0 allows it. The length cap below still wins.
    min_length: int = 1
    # Output length cap (</s> included): ceil(max_output_ratio * source length + max_output_extra).
    max_output_ratio: float = 1.5
    max_output_extra: int = 10
    batch_size: int = 64  # sentences per search batch


@dataclass
class ValidConfig:
    attention_examples: int = 3  # dev sentences whose attention is drawn in TensorBoard at each validation
    # Also show every layer/head of the decoder, and the Transformer encoder's self-attention.
    attention_layers: bool = True
    encoder_attention: bool = True
    # Cap on dev sentences decoded for BLEU at each validation (None: all of them).
    max_sentences: int | None = None
    # Dev BLEU decodes greedily by default (cheap, and ranks checkpoints like beam search does).
    decode: DecodeConfig = field(default_factory=lambda: DecodeConfig(beam_size=1, batch_size=128))
    # sacreBLEU tokenizer for dev/test BLEU.
    bleu_tokenize: str = "13a"


@dataclass
class TestConfig:
    """Translating the test split with the best checkpoint when training ends."""

    enabled: bool = True  # translate and score the test split(s) with best.pt when training ends
    # Splits (file stems under data.root, or hub split names) to translate and score, each into
    # test.<split>.hyp and test.<split>.scores.json; null: [data.test_split]. The first is also
    # written as test.hyp and test.scores.json.
    splits: list[str] | None = None
    decode: DecodeConfig = field(default_factory=DecodeConfig)


@dataclass
class TrainRunConfig:
    """The whole training run, as composed by ``configs/train.yaml``."""

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    valid: ValidConfig = field(default_factory=ValidConfig)
    test: TestConfig = field(default_factory=TestConfig)


@dataclass
class BenchConfig:
    steps: int = 100  # timed training steps per repetition
    warmup: int = 10  # untimed steps first
    repeats: int = 3  # timed stretches of bench.steps (the median is reported)
    decode: bool = True  # after training, time decoding of the test split
    beams: list[int] = field(default_factory=lambda: [1, 5])  # beam sizes timed when decoding the test split
    decode_repeats: int = 3  # timed decodings of the test split per beam (the median is reported)
    decode_batch_size: int = 64  # sentences per search batch when timing decoding
    # translate mode: engines and precisions side by side (null: every precision each engine
    # has on this device: torch fp32/bf16/int8 on a CPU, fp32/bf16/fp16 on CUDA; CTranslate2
    # the compute types it supports, when installed and the model is exportable).
    engines: list[str] = field(default_factory=lambda: ["torch", "ctranslate2"])
    precisions: list[str] | None = None
    shortlist: str | None = None  # a seq2seq-export format=shortlist file: every engine also decodes with it
    parallel_batches: int | None = None  # torch: as seq2seq-translate's key (null: one per CPU thread)
    # Side of the square matrix product timed for the machine's peak FLOP/s (for MFU); null:
    # 2,048 on a CPU, 8,192 on a GPU.
    peak_size: int | None = None
    # profile mode: training steps profiled (after bench.warmup untimed ones).
    profile_steps: int = 8
    # latency mode: one sentence at a time, as seq2seq-translate interactive=true translates.
    latency_sentences: int = 100
    latency_beam: int = 5  # latency mode: the beam size
    # serve mode: seq2seq-serve in a child process on 127.0.0.1, loaded by each number of concurrent
    # clients in turn (one test sentence per request), beside the same engine and settings
    # translating those sentences offline in one call, as seq2seq-translate does.
    serve_concurrency: list[int] = field(default_factory=lambda: [1, 8, 32])
    serve_sentences: int = 1000  # requests per concurrency level at most: the test split's first N
    serve_seconds: float = 60.0  # and at most this long per level
    serve_beam: int = 5
    serve_engine: Engine = Engine.torch  # ctranslate2: checkpoint=DIR written by seq2seq-export
    serve_precision: Precision = Precision.auto
    serve_args: list[str] = field(default_factory=list)  # more seq2seq-serve keys, e.g. "['max_wait_ms=10']"
    # scale mode: synthetic corpus sizes (pairs), and where to put corpora, caches and runs.
    scale_sizes: list[int] = field(default_factory=lambda: [100_000, 300_000, 1_000_000])
    scale_dir: str | None = None


@dataclass
class BenchmarkConfig(TrainRunConfig):
    """``scripts/benchmark.py``: a training config plus the benchmark's own settings."""

    bench: BenchConfig = field(default_factory=BenchConfig)
    checkpoint: str | None = None  # translate mode


@dataclass
class TranslateConfig(DecodeConfig):
    """``seq2seq-translate checkpoint=PATH [input=FILE] [output=FILE] ...`` (and the search keys
    of :class:`DecodeConfig`: ``beam_size=5 length_penalty=1.0 ...``)."""

    checkpoint: str = MISSING  # a checkpoint file (engine=ctranslate2: a seq2seq-export directory)
    input: str | None = None  # one sentence a line; default: standard input
    output: str | None = None  # default: standard output
    interactive: bool = False  # a prompt: type a sentence, read its translation
    alignments: str | None = None  # file of alignments, one line per input line (see align_format)
    # jsonl: tokens and attention matrices; pharaoh: "i-j" word links (without alignments=FILE,
    # appended to each output line as "translation ||| i-j ...").
    align_format: AlignFormat = AlignFormat.jsonl
    show_attention: bool = False  # a character heatmap after each translation (stderr unless interactive)
    heatmaps: str | None = None  # directory for PNG heatmaps
    tensorboard: str | None = None  # directory for TensorBoard heatmaps
    max_heatmaps: int = 20  # heatmaps/tensorboard images for the first N non-empty lines
    chunk_lines: int = 5000  # input is read, translated and written this many lines at a time
    # A longer source line (in subword tokens, </s> included) is cut to this length, with a warning
    # naming the lines; it bounds the memory one line can take. null: no limit.
    max_input_tokens: int | None = MAX_INPUT_TOKENS
    # auto: bf16 where the hardware computes it natively (AVX-512 BF16 / AMX CPUs, CUDA), else fp32;
    # int8: CPU only (device=auto then means the CPU)
    precision: Precision = Precision.auto
    device: Device = Device.auto  # auto: cuda when PyTorch sees a GPU, else cpu
    threads: int | None = None  # CPU threads (null: PyTorch's choice, one per core)
    # torch: the checkpoint with PyTorch; ctranslate2: a directory written by seq2seq-export
    # (checkpoint=DIR; precision fp32 or int8, auto: fp32).
    engine: Engine = Engine.torch
    shortlist: str | None = None  # a vocabulary shortlist from seq2seq-export format=shortlist
    # engine=torch on a CPU: batches searched at the same time, the threads shared out among them
    # (null: one batch per thread)
    parallel_batches: int | None = None


@dataclass
class ServeConfig(DecodeConfig):
    """``seq2seq-serve checkpoint=PATH [host=127.0.0.1] [port=8000] ...``: translation over HTTP. The
    search keys of :class:`DecodeConfig` (``beam_size=5 ...``) are the defaults of a request."""

    checkpoint: str = MISSING  # a checkpoint file (engine=ctranslate2: a seq2seq-export directory)
    host: str = "127.0.0.1"  # another address (0.0.0.0: every interface) is an explicit choice
    port: int = 8000  # TCP port
    device: Device = Device.auto  # auto: cuda when PyTorch sees a GPU, else cpu
    # torch: the checkpoint with PyTorch; ctranslate2: a directory written by seq2seq-export
    engine: Engine = Engine.torch
    precision: Precision = Precision.auto
    shortlist: str | None = None  # a vocabulary shortlist from seq2seq-export format=shortlist
    threads: int | None = None  # CPU threads (null: PyTorch's choice, one per core)
    # Dynamic batching: the sentences of concurrent requests are searched together, up to this many
    # source tokens a batch. A batch waits for as many sentences as were in flight when the last one
    # ended, at most max_wait_ms after its first arrived or a search thread became free.
    max_batch_tokens: int = 4096
    max_wait_ms: float = 5.0
    max_queue: int = 1024  # sentences waiting at most; beyond, 503 with Retry-After
    max_sentences: int = 64  # sentences per request at most (413 beyond)
    max_sentence_tokens: int = 256  # subword tokens per sentence at most (413 beyond; never cut)
    max_body_bytes: int = 1_000_000  # request body at most (413 beyond)


@dataclass
class ExportConfig:
    """``seq2seq-export checkpoint=PATH format=ctranslate2 output=DIR`` (or ``format=shortlist
    output=FILE``: a vocabulary shortlist from the checkpoint's training data)."""

    checkpoint: str = MISSING  # the checkpoint to export
    output: str = MISSING  # format=ctranslate2: a directory; format=shortlist: a file
    # ctranslate2 (a model directory) or shortlist (a vocabulary shortlist)
    format: ExportFormat = ExportFormat.ctranslate2
    # Replace an earlier export in output (a directory holding seq2seq-export's files only).
    force: bool = False
    # format=shortlist: target ids kept per source id, and the commonest target ids always kept
    per_source: int = 100
    frequent: int = 100
    data_root: str | None = None  # the training corpus, when no longer at the checkpoint's data.root


@dataclass
class ScoreConfig:
    """``seq2seq-score hyp=FILE ref=FILE`` (or ``ref=[FILE1,FILE2]`` for several references)."""

    hyp: str = MISSING  # hypotheses, one a line
    ref: Any = MISSING  # reference file(s), one a line: ref=FILE or ref=[FILE1,FILE2]
    format: OutputFormat = OutputFormat.text  # text (one line per metric) or json
    tokenize: str = "13a"  # sacreBLEU's BLEU tokenizer (13a, intl, zh, char, none, ...)
    lowercase: bool = False  # case-insensitive scores


def register_configs() -> None:
    """Register the schemas; ``configs/*.yaml`` extend them through their defaults lists."""
    cs = ConfigStore.instance()
    cs.store(name="train_schema", node=TrainRunConfig)
    cs.store(name="translate_schema", node=TranslateConfig)
    cs.store(name="benchmark_schema", node=BenchmarkConfig)
    cs.store(name="score_schema", node=ScoreConfig)
    cs.store(name="export_schema", node=ExportConfig)
    cs.store(name="serve_schema", node=ServeConfig)
