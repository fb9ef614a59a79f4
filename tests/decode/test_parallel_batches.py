"""Several batches searched at the same time on a CPU (``parallel_batches``): same results, in order."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import torch

from seq2seq.checkpoint.store import load_model
from seq2seq.cli.translate import build_translator
from seq2seq.config.schema import TranslateConfig
from seq2seq.data.batching import TokenizedCorpus
from seq2seq.data.corpus import encode_split, load_split
from seq2seq.decode.translator import (
    DecodeOptions,
    auto_parallel_batches,
    decode_corpus,
    map_batches,
    searching_threads,
)
from seq2seq.utils.errors import ConfigError


def test_map_batches_keeps_the_order_uses_threads_and_restores_the_thread_count():
    before = torch.get_num_threads()
    seen = []

    def run(batch: np.ndarray) -> tuple[int, int, str]:
        seen.append(torch.get_num_threads())
        return int(batch[0]), int(batch.sum()), threading.current_thread().name

    batches = [np.arange(i, i + 3) for i in range(0, 30, 3)]
    results = map_batches(run, batches, parallel=2)
    assert [r[:2] for r in results] == [(int(b[0]), int(b.sum())) for b in batches]
    assert all(name.startswith("seq2seq-decode") for _, _, name in results)
    assert set(seen) == {1}  # one intra-op thread per batch meanwhile
    assert torch.get_num_threads() == before
    assert [r[:2] for r in map_batches(run, batches, parallel=1)] == [r[:2] for r in results]


def test_fewer_batches_than_threads_share_the_threads_out():
    before, seen = torch.get_num_threads(), []
    torch.set_num_threads(4)
    try:
        map_batches(lambda batch: seen.append(torch.get_num_threads()), [np.arange(2), np.arange(3)], parallel=4)
        assert seen == [2, 2] and torch.get_num_threads() == 4
    finally:
        torch.set_num_threads(before)


def test_an_error_in_one_batch_stops_the_rest_and_restores_the_thread_count():
    before, started = torch.get_num_threads(), []

    def run(batch: np.ndarray) -> int:
        started.append(int(batch[0]))
        if batch[0] == 1:
            raise ValueError("bad batch")
        time.sleep(0.05)
        return int(batch[0])

    with pytest.raises(ValueError, match="bad batch"):
        map_batches(run, [np.array([i]) for i in range(40)], parallel=2)
    assert len(started) < 40 and torch.get_num_threads() == before


def test_searching_threads_shares_the_threads_out_for_several_and_restores_them():
    before = torch.get_num_threads()
    torch.set_num_threads(4)
    try:
        with searching_threads(1):
            assert torch.get_num_threads() == 4  # one searching thread: nothing changes
        with searching_threads(2):
            assert torch.get_num_threads() == 2
        with pytest.raises(RuntimeError), searching_threads(8):
            assert torch.get_num_threads() == 1  # never below one thread each
            raise RuntimeError
        assert torch.get_num_threads() == 4  # restored after an error too
    finally:
        torch.set_num_threads(before)


def test_parallel_batches_defaults_to_one_per_cpu_thread_and_rejects_zero():
    assert auto_parallel_batches(None, torch.device("cpu")) == torch.get_num_threads()
    assert auto_parallel_batches(None, torch.device("cuda")) == 1
    assert auto_parallel_batches(3, torch.device("cpu")) == 3
    with pytest.raises(ConfigError, match="parallel_batches"):
        auto_parallel_batches(0, torch.device("cpu"))


@pytest.mark.parametrize("beam_size", [1, 3])
def test_parallel_batches_translate_the_corpus_as_one_at_a_time_does(toy_checkpoint, beam_size):
    model, tokenizers, cfg, _ = load_model(toy_checkpoint)
    corpus = TokenizedCorpus(encode_split(load_split(cfg.data, "test"), tokenizers))
    results = {}
    for parallel in (1, 2):
        options = DecodeOptions(beam_size=beam_size, batch_size=16, parallel_batches=parallel, n_best=beam_size)
        results[parallel] = decode_corpus(model, corpus, options)
    assert len(results[2]) == len(corpus) > 3 * 16
    for one, two in zip(results[1], results[2]):
        assert [h.tokens for h in one] == [h.tokens for h in two]
        assert [h.score for h in one] == pytest.approx([h.score for h in two], abs=1e-4)


def test_the_translate_command_decodes_batches_in_parallel(toy_checkpoint):
    _, _, cfg, _ = load_model(toy_checkpoint)
    sources = list(load_split(cfg.data, "test")["src"])[:50]
    texts = {}
    for parallel in (1, 2):
        settings = TranslateConfig(
            checkpoint=str(toy_checkpoint), device="cpu", batch_size=8, parallel_batches=parallel, alignments=None
        )
        translator = build_translator(settings)
        assert translator.options.parallel_batches == parallel
        texts[parallel] = [t.text for t in translator.translate(sources)]
    assert texts[2] == texts[1] and len(texts[1]) == 50
