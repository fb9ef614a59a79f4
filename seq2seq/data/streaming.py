"""``data.streaming=true``: train on a corpus that is read as it goes, never materialised.

The training split becomes a ``datasets.IterableDataset`` (local files read line by line, or a
hub dataset with ``streaming=True``), shuffled through a buffer, tokenized on the fly, split
between torchrun ranks with ``split_dataset_by_node``, and cut into token batches a buffer of
``data.stream_buffer`` pairs at a time (sorted by length inside the buffer, so padding stays
small). Memory is bounded by the buffers, not the corpus. The data position of a run is the
number of batches consumed in the epoch; resuming reads the stream up to there again.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import datasets
import numpy as np
from datasets.distributed import split_dataset_by_node

from seq2seq.config.schema import DataConfig
from seq2seq.data.batching import Batch, collate, token_batches
from seq2seq.data.corpus import FEATURES, local_generator, surface_data_error
from seq2seq.data.sharding import DistContext
from seq2seq.data.subword_sampling import epoch_seed, sample_pairs
from seq2seq.data.tokenizer import Tokenizers
from seq2seq.utils.errors import DataError

log = logging.getLogger(__name__)


def stream_pairs(cfg: DataConfig, split: str = "train") -> datasets.IterableDataset:
    """The ``src``/``trg`` pairs of ``split`` as an iterable dataset (nothing is read yet)."""
    if cfg.root:
        generator, kwargs, _ = local_generator(cfg, split)
        return datasets.IterableDataset.from_generator(generator, features=FEATURES, gen_kwargs=kwargs)
    if cfg.hub_name:
        src, trg = cfg.src_lang, cfg.trg_lang
        ds = datasets.load_dataset(cfg.hub_name, cfg.hub_config, split=cfg.hub_train_split, streaming=True)

        def to_pair(row: dict) -> dict:
            pair = row.get("translation", row)
            return {"src": pair[src], "trg": pair[trg], "line": 0}

        return ds.map(to_pair).select_columns(["src", "trg", "line"])
    raise DataError("data.streaming=true needs data.root=DIR or data.hub_name=NAME")


def sample_for_tokenizer(cfg: DataConfig) -> datasets.Dataset:
    """The first ``data.spm_max_sentences`` non-empty pairs of the stream, to train sentencepiece on."""
    rows: dict[str, list] = {"src": [], "trg": [], "line": []}
    try:
        for row in stream_pairs(cfg):
            if row["src"] and row["trg"]:
                for key in rows:
                    rows[key].append(row[key])
                if len(rows["src"]) >= cfg.spm_max_sentences:
                    break
    except Exception as exc:
        surface_data_error(exc)
        raise
    if not rows["src"]:
        raise DataError("the streamed training corpus is empty")
    return datasets.Dataset.from_dict(rows, features=FEATURES)


class StreamingBatches:
    """Token batches of one epoch of a streamed corpus (this rank's share)."""

    def __init__(
        self,
        cfg: DataConfig,
        tokenizers: Tokenizers,
        batch_tokens: int,
        seed: int,
        ctx: DistContext | None = None,
    ) -> None:
        self.cfg = cfg
        self.tokenizers = tokenizers
        self.batch_tokens = batch_tokens
        self.seed = seed
        self.ctx = ctx or DistContext()

    def _stream(self, epoch: int) -> datasets.IterableDataset:
        ds = stream_pairs(self.cfg).shuffle(seed=self.seed + epoch, buffer_size=self.cfg.stream_buffer)
        if self.ctx.enabled:
            ds = split_dataset_by_node(ds, rank=self.ctx.rank, world_size=self.ctx.world)
        tokenizers = self.tokenizers
        pair = (tokenizers.src, tokenizers.trg)
        sampling = dict(alpha=self.cfg.subword_alpha, nbest=self.cfg.subword_nbest, max_len=self.cfg.max_len)
        seed, rank = self.seed, self.ctx.rank

        def encode(batch: dict, indices: list[int]) -> dict:
            if not sampling["alpha"]:
                return {
                    "src_ids": tokenizers.encode_source_batch(batch["src"]),
                    "trg_ids": tokenizers.trg.encode_batch(batch["trg"]),
                }
            # data.subword_alpha: sampled segmentations, reproducible from (seed, epoch, rank, chunk)
            seeds = (epoch_seed(seed, epoch, 0, rank, indices[0]), epoch_seed(seed, epoch, 1, rank, indices[0]))
            srcs, trgs = sample_pairs(pair, (batch["src"], batch["trg"]), sampling, seeds)
            return {"src_ids": srcs, "trg_ids": trgs}

        return ds.map(encode, batched=True, batch_size=1000, with_indices=True)

    def batches(self, epoch: int, skip: int = 0) -> Iterator[Batch]:
        """The epoch's batches after the first ``skip`` (already trained on)."""
        rng = np.random.default_rng([self.seed, epoch])
        emitted = dropped = empty = 0
        buffer_src: list[list[int]] = []
        buffer_trg: list[list[int]] = []
        max_len = self.cfg.max_len
        try:
            for row in self._stream(epoch):
                if not row["src"] or not row["trg"]:
                    empty += 1
                    continue
                src, trg = row["src_ids"], row["trg_ids"]
                if len(src) > max_len or len(trg) > max_len:
                    dropped += 1
                    continue
                buffer_src.append(src)
                buffer_trg.append(trg)
                if len(buffer_src) >= self.cfg.stream_buffer:
                    for batch in self._cut(buffer_src, buffer_trg, rng):
                        emitted += 1
                        if emitted > skip:
                            yield batch
                    buffer_src, buffer_trg = [], []
        except Exception as exc:
            surface_data_error(exc)
            raise
        for batch in self._cut(buffer_src, buffer_trg, rng):
            emitted += 1
            if emitted > skip:
                yield batch
        if dropped or empty:
            log.warning(
                "epoch %d of the stream: skipped %d pairs with an empty side, dropped %d longer than data.max_len=%d",
                epoch,
                empty,
                dropped,
                max_len,
            )

    def _cut(self, srcs: list, trgs: list, rng: np.random.Generator) -> list[Batch]:
        if not srcs:
            return []
        src_len = np.array([len(s) for s in srcs])
        trg_len = np.array([len(t) for t in trgs])
        spans = token_batches(src_len, trg_len, self.batch_tokens, rng.random(len(srcs)))
        batches = [collate([srcs[i] for i in rows], [trgs[i] for i in rows], rows) for rows in spans]
        return [batches[i] for i in rng.permutation(len(batches))]
