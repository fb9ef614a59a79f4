"""Dynamic batching's policy: when a batch starts, how it is cut into parts, and where they run."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest
import torch

from seq2seq.config.schema import DecodeConfig
from seq2seq.decode.loading import build_translator
from seq2seq.decode.translator import DecodeOptions
from seq2seq.serve.batching import Batcher, Search, deal_by_length

SEARCH = Search(beam_size=1, n_best=1, length_penalty=1.0, min_length=1, attention=False)


class Echo:
    """A translator that takes ``seconds`` per batch and records the batches it searched."""

    options = DecodeOptions()
    tokenizers = None

    def __init__(self, seconds: float = 0.05) -> None:
        self.seconds, self.batches = seconds, []

    def translate(self, sentences):
        self.batches.append(len(sentences))
        time.sleep(self.seconds)
        return [type("T", (), {"text": s})() for s in sentences]


def test_sentences_are_dealt_by_length_to_balanced_parts():
    sentences = ["x" * n for n in (9, 1, 7, 3, 5, 2, 8, 4, 6)]
    parts = deal_by_length(sentences, 2)
    assert sorted(i for part in parts for i in part) == list(range(9))  # every sentence once
    lengths = [sum(len(sentences[i]) for i in part) for part in parts]
    assert abs(lengths[0] - lengths[1]) <= 9 and {len(p) for p in parts} == {4, 5}
    assert deal_by_length(["a", "b"], 4) == [[0], [1]]  # never an empty part
    assert deal_by_length(["a", "bb", "ccc"], 1) == [[2, 1, 0]]


def test_a_lone_request_on_an_idle_server_is_searched_at_once():
    async def run() -> float:
        batcher = Batcher(Echo(0), max_batch_tokens=4096, max_wait_ms=10_000, max_queue=10)
        batcher.start()
        start = time.monotonic()
        await batcher.translate(["a"], 2, SEARCH)
        seconds = time.monotonic() - start
        await batcher.close()
        return seconds

    assert asyncio.run(run()) < 1  # not the 10 s of max_wait_ms


def test_a_batch_waits_for_as_many_sentences_as_were_in_flight_then_max_wait():
    """Closed-loop clients: after a batch of 4, the next waits for the 4 to come back (sent 30 ms
    apart), instead of starting with the first; with only 2 back it waits max_wait_ms."""
    echo = Echo()

    async def run() -> float:
        batcher = Batcher(echo, max_batch_tokens=4096, max_wait_ms=300, max_queue=10)
        batcher.start()
        await asyncio.gather(*(batcher.translate([s], 2, SEARCH) for s in "abcd"))

        async def later(sentence: str, delay: float) -> None:
            await asyncio.sleep(delay)
            await batcher.translate([sentence], 2, SEARCH)

        await asyncio.gather(*(later(s, 0.03 * i) for i, s in enumerate("efgh")))
        start = time.monotonic()
        await asyncio.gather(*(later(s, 0) for s in "ij"))
        seconds = time.monotonic() - start
        await batcher.close()
        return seconds

    waited = asyncio.run(run())
    assert echo.batches == [4, 4, 2]
    assert waited >= 0.25  # the last two waited for max_wait_ms: two more were expected


def test_a_burst_of_requests_is_taken_whole_when_the_load_grows():
    """One sentence was in flight last time, then six arrive microseconds apart (a few event-loop
    turns each): the batch takes all six instead of starting with the first."""
    echo = Echo()

    async def run() -> None:
        batcher = Batcher(echo, max_batch_tokens=4096, max_wait_ms=1000, max_queue=10)
        batcher.start()

        async def arrive(sentence: str, turns: int) -> None:
            for _ in range(turns):
                await asyncio.sleep(0)
            await batcher.translate([sentence], 2, SEARCH)

        await asyncio.gather(*(arrive(s, 3 * i) for i, s in enumerate("abcdef")))
        await batcher.close()

    asyncio.run(run())
    assert echo.batches == [6]


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_parts_are_searched_on_their_own_threads_and_translate_as_offline(toy_checkpoint, precision):
    """A batch of 8 on 2 parts: two worker threads, each on 1 intra-op thread; with bf16 each
    thread stays inside autocast between batches (PyTorch keeps its casts of the weights)."""
    sentences = [" ".join("abcdefgh"[j] for j in range(i % 5 + 2)) for i in range(8)]
    offline = build_translator(toy_checkpoint, DecodeConfig(beam_size=3), device="cpu", precision=precision)
    expected = [t.text for t in offline.translate(sentences)]
    translator = build_translator(
        toy_checkpoint, DecodeConfig(beam_size=3), device="cpu", precision=precision, parallel_batches=2
    )
    seen: list[tuple[int, int, bool]] = []
    search = translator.translate

    def recorded(part):
        seen.append((threading.get_ident(), torch.get_num_threads(), torch.is_autocast_enabled("cpu")))
        return search(part)

    translator.translate = recorded
    threads = torch.get_num_threads()

    async def run():
        batcher = Batcher(translator, max_batch_tokens=4096, max_wait_ms=50, max_queue=100)
        batcher.start()
        beam3 = Search(beam_size=3, n_best=1, length_penalty=1.0, min_length=0, attention=False)
        results = [await batcher.translate(sentences, 40, beam3) for _ in range(2)]  # two batches
        await batcher.close()
        return results

    results = asyncio.run(run())
    assert [[t.text for t in r] for r in results] == [expected, expected]
    assert torch.get_num_threads() == threads  # the process's threads are restored on close
    assert len(seen) == 4 and len({ident for ident, _, _ in seen}) == 2  # 2 parts a batch, 2 threads
    assert all(n == max(1, threads // 2) for _, n, _ in seen)
    assert all(inside == (precision == "bf16") for _, _, inside in seen)


class TwoThreadEcho(Echo):
    """An :class:`Echo` with two search threads that records when each batch ran and with which
    beam size (the setting the batch was searched with)."""

    options = DecodeOptions(parallel_batches=2)

    def __init__(self, seconds: float = 0.05) -> None:
        super().__init__(seconds)
        self.spans: list[tuple[float, float, int]] = []  # (start, end, sentences)

    def translate(self, sentences):
        start = time.monotonic()
        translations = super().translate([f"{s}/{self.options.beam_size}" for s in sentences])
        self.spans.append((start, time.monotonic(), len(sentences)))
        return translations


def test_batches_overlap_and_take_their_share_under_steady_load():
    """Four closed-loop clients, two search threads: after the first burst, each batch takes its
    thread's share (2 of the 4 in flight) and starts while the other thread's batch is searched,
    instead of both threads searching halves of one batch and waiting for each other."""
    echo = TwoThreadEcho()
    batches: list[int] = []

    async def run() -> list[list[str]]:
        batcher = Batcher(
            echo, max_batch_tokens=4096, max_wait_ms=20, max_queue=100, on_batch=lambda n, _: batches.append(n)
        )
        batcher.start()

        async def client(name: str) -> list[str]:
            return [(await batcher.translate([f"{name}{i}"], 2, SEARCH))[0].text for i in range(6)]

        answers = await asyncio.gather(*(client(name) for name in "abcd"))
        await batcher.close()
        return answers

    answers = asyncio.run(run())
    assert answers == [[f"{name}{i}/1" for i in range(6)] for name in "abcd"]  # each gets its own, in order
    assert sum(batches) == 24 and max(batches) == 2  # a thread's share of the 4 in flight
    assert echo.batches == batches  # each batch searched whole on one thread, not as two parts
    spans = sorted(echo.spans)
    overlapping = sum(later[0] < earlier[1] for earlier, later in zip(spans, spans[1:]))
    assert overlapping >= len(spans) // 2  # batches start while the other thread's is searched
    running = [sum(s <= start < e for s, e, _ in spans) for start, _, _ in spans]
    assert max(running) <= 2  # never more batches at once than threads


def test_batches_with_different_settings_searched_at_once_keep_their_own():
    """Two requests with different beam sizes are two batches on the two threads at the same
    time; each is searched with its own settings."""
    echo = TwoThreadEcho()
    beam4 = Search(beam_size=4, n_best=1, length_penalty=1.0, min_length=1, attention=False)

    async def run() -> list[list[str]]:
        batcher = Batcher(echo, max_batch_tokens=4096, max_wait_ms=1, max_queue=100)
        batcher.start()
        answers = await asyncio.gather(batcher.translate(["x", "y"], 4, SEARCH), batcher.translate(["z"], 2, beam4))
        await batcher.close()
        return [[t.text for t in answer] for answer in answers]

    assert asyncio.run(run()) == [["x/1", "y/1"], ["z/4"]]
    (s1, e1, _), (s2, e2, _) = sorted(echo.spans)
    assert s2 < e1  # at the same time
    assert echo.options.beam_size == DecodeOptions().beam_size  # the translator's own options are untouched


def test_settings_from_clients_leave_no_queue_behind():
    """Every request with its own length penalty (a client's choice): each is answered with its
    own settings, and once all are answered the batcher keeps nothing per setting."""
    echo = TwoThreadEcho(0.001)

    async def run() -> list[str]:
        batcher = Batcher(echo, max_batch_tokens=4096, max_wait_ms=1, max_queue=100)
        batcher.start()
        searches = [
            Search(beam_size=1 + i % 3, n_best=1, length_penalty=i / 7, min_length=0, attention=False)
            for i in range(40)
        ]
        answers = await asyncio.gather(*(batcher.translate([f"s{i}"], 2, s) for i, s in enumerate(searches)))
        assert batcher.queues == {} and batcher.waiting == 0 and batcher.idle == 2
        await batcher.close()
        return [answer[0].text for answer in answers]

    assert asyncio.run(run()) == [f"s{i}/{1 + i % 3}" for i in range(40)]
