"""Dynamic batching: the sentences of concurrent requests searched together.

A request's sentences join a queue of their search settings (:class:`Search`: beam size,
n-best, length penalty, minimum length, attention); requests whose settings differ never share
a batch. The oldest waiting request opens a batch. It waits for others to join until
``max_batch_tokens`` source tokens wait, or as many sentences as were in flight when the last
batch ended (that batch's and those then waiting: under steady load the clients it answered send
again, so batches keep their size instead of splitting into a large and a small one that take
turns), or ``max_wait_ms`` have passed since it arrived or a search thread last became free,
whichever is later. A lone request on an idle server is searched at once. Every request gets
exactly its own translations, in its own order, and while a batch is searched the next one
fills. At most ``max_queue`` sentences wait; beyond that :class:`QueueFull` (503).

A batch is searched off the event loop, in long-lived worker threads (the translator's
``parallel_batches``: on a CPU one per thread, for PyTorch and CTranslate2 alike; one on a GPU),
with PyTorch on one intra-op thread each: on a small CPU a decoding step is many small
operations, which two batches on one thread each get through faster than one batch on two
threads (see :func:`seq2seq.decode.translator.searching_threads`). Batches overlap: a batch
starts as soon as a thread is free, while others are still searched. Under steady load a batch takes its
threads' share of the sentences in flight (with 32 clients and two threads, 16), so the threads
take turns instead of waiting for one another at the end of every batch, and the sentences a
thread answered fill its next batch while the other thread searches. A batch that leaves nothing
waiting is dealt by length to every free thread (a long request on an idle server uses them all),
so that its parts take about as long.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import itertools
import logging
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace

from seq2seq.decode.ctranslate2 import CT2Translator
from seq2seq.decode.translation import Translation
from seq2seq.decode.translator import Translator, searching_threads
from seq2seq.utils.devices import autocast

log = logging.getLogger(__name__)
# Once the sentences a batch expects are waiting, it still takes those arriving this close behind
# one another (a burst: the load grew); steady load pays this once a batch.
BURST_GAP = 0.0005


class QueueFull(Exception):
    """More sentences would wait than ``max_queue`` allows."""


@dataclass(frozen=True)
class Search:
    """The settings a batch shares: requests that differ in any of them are searched apart."""

    beam_size: int
    n_best: int
    length_penalty: float
    min_length: int
    attention: bool


@dataclass
class _Job:
    sentences: list[str]
    tokens: int  # source tokens in all (for the batch budget)
    future: asyncio.Future
    arrived: float = field(default_factory=time.monotonic)


# Called after every batch with (sentences, seconds searching), e.g. for metrics.
BatchHook = Callable[[int, float], None]


class Batcher:
    """Merges concurrent requests into search batches for one translator (see the module docstring)."""

    def __init__(
        self,
        translator: Translator | CT2Translator,
        max_batch_tokens: int,
        max_wait_ms: float,
        max_queue: int,
        on_batch: BatchHook | None = None,
    ) -> None:
        self.translator = translator
        self.base = translator.options
        self.max_batch_tokens = max_batch_tokens
        self.max_wait = max_wait_ms / 1000.0
        self.max_queue = max_queue
        self.on_batch = on_batch
        self.queues: dict[Search, deque[_Job]] = {}  # only settings with waiting jobs
        self.waiting = 0  # sentences queued, not yet in a batch
        self.search_threads = max(1, self.base.parallel_batches)
        self.idle = self.search_threads  # search threads free
        self.searching = 0  # sentences being searched
        self._wake = asyncio.Event()
        self._workers = ThreadPoolExecutor(
            self.search_threads, thread_name_prefix="seq2seq-serve-search", initializer=self._stay_in_autocast
        )
        self._task: asyncio.Task | None = None
        self._running: set[asyncio.Task] = set()  # batches being searched
        self._closing = False
        self._threads = contextlib.ExitStack()  # the process's intra-op threads, shared out until close()
        self._free_since = 0.0  # when the last batch ended (time.monotonic)
        self._expected = 1  # sentences in flight when it ended: its own and those then waiting

    def start(self) -> None:
        """Start batching; with several search threads for PyTorch on a CPU, each gets an equal
        share of the process's intra-op threads (:func:`~seq2seq.decode.translator.searching_threads`,
        until :meth:`close`)."""
        if isinstance(self.translator, Translator) and self.translator.device.type == "cpu":
            self._threads.enter_context(searching_threads(self.search_threads))
        self._task = asyncio.get_running_loop().create_task(self._run())

    def _stay_in_autocast(self) -> None:
        """Run in each search thread once: enter the translator's autocast (bf16/fp16) and stay in
        it for the thread's life. PyTorch keeps the low-precision copies of the weights it casts
        until the outermost autocast is left, so the searches nested inside reuse them instead of
        casting every weight again for every batch (on 2 CPU cores, 16-sentence batches: about
        10 % more sentences/s in-process, 3-10 % more served). The threads search and do nothing else."""
        if isinstance(self.translator, Translator):
            autocast(self.translator.device, self.base.precision)().__enter__()  # never left: ends with the thread

    async def close(self) -> None:
        """Search what is queued, then stop (a server shutting down finishes its requests)."""
        self._closing = True
        self._wake.set()
        if self._task is not None:
            await self._task
        self._workers.shutdown(wait=True)
        self._threads.close()

    async def translate(self, sentences: list[str], tokens: int, search: Search) -> list[Translation]:
        """The translations of ``sentences`` (``tokens`` source tokens in all), searched with others."""
        if self.waiting + len(sentences) > self.max_queue:
            raise QueueFull(f"{self.waiting} sentences are waiting (max_queue={self.max_queue})")
        job = _Job(sentences, tokens, asyncio.get_running_loop().create_future())
        self.queues.setdefault(search, deque()).append(job)
        self.waiting += len(sentences)
        self._wake.set()
        return await job.future

    async def _run(self) -> None:
        while True:
            if not self.queues or self.idle == 0:
                if self._closing and not self.queues:
                    break
                self._wake.clear()
                await self._wake.wait()
                continue
            search, queue = min(self.queues.items(), key=lambda sq: sq[1][0].arrived)
            await self._fill(queue)
            jobs = [job for job in self._take(queue) if not job.future.done()]  # a client that left is not searched for
            if not queue:  # settings come from clients (any length penalty): keep no queue for each
                del self.queues[search]
            sentences = [s for job in jobs for s in job.sentences]
            if not sentences:
                continue
            # Nothing left waiting: the batch takes every free thread; else one, the rest are for the others.
            parts = deal_by_length(sentences, self.idle if not self.queues else 1)
            self.idle -= len(parts)
            self.searching += len(sentences)
            task = asyncio.get_running_loop().create_task(self._search(search, jobs, sentences, parts))
            self._running.add(task)
            task.add_done_callback(self._running.discard)
        await asyncio.gather(*self._running)

    async def _fill(self, queue: deque[_Job]) -> None:
        """Wait until the budget's tokens are waiting, or as many sentences as were in flight when
        the last batch ended (its own and those then waiting: under steady load, the clients it
        answered send again) and no more arrived in the last ``BURST_GAP`` seconds (load that grew
        arrives in a burst: take all of it), or ``max_wait_ms`` have passed since the oldest job
        arrived or a search thread last became free, whichever is later."""
        while not self._closing:
            left = max(queue[0].arrived, self._free_since) + self.max_wait - time.monotonic()
            if left <= 0 or sum(job.tokens for job in queue) >= self.max_batch_tokens:
                return
            if sum(len(job.sentences) for job in queue) >= self._expected:
                if not await self._woken(min(left, BURST_GAP)):
                    return
            else:
                await self._woken(left)

    async def _woken(self, seconds: float) -> bool:
        """Whether a request arrived within ``seconds``."""
        self._wake.clear()
        try:
            await asyncio.wait_for(self._wake.wait(), seconds)
        except asyncio.TimeoutError:
            return False
        return True

    def _take(self, queue: deque[_Job]) -> list[_Job]:
        """The oldest jobs, in order, up to the token budget and to one thread's share of the
        sentences in flight (at least one job, however long)."""
        share = -(-(self.waiting + self.searching) // self.search_threads)
        jobs = [queue.popleft()]
        tokens, sentences = jobs[0].tokens, len(jobs[0].sentences)
        while queue and tokens + queue[0].tokens <= self.max_batch_tokens and sentences < share:
            tokens += queue[0].tokens
            sentences += len(queue[0].sentences)
            jobs.append(queue.popleft())
        self.waiting -= sentences
        return jobs

    async def _search(self, search: Search, jobs: list[_Job], sentences: list[str], parts: list[list[int]]) -> None:
        """Search ``jobs``' ``sentences`` as ``parts`` (on threads taken for them) and answer the jobs."""
        start = time.perf_counter()
        try:
            results = await self._translate(search, sentences, parts)
        except Exception as err:  # noqa: BLE001 (a failed batch fails its requests, never the server)
            log.exception("a search batch of %d sentences failed", len(sentences))
            for job in jobs:
                if not job.future.done():
                    job.future.set_exception(err)
            return
        finally:
            self.idle += len(parts)
            self.searching -= len(sentences)
            self._wake.set()
        self._free_since, self._expected = time.monotonic(), len(sentences) + self.waiting
        if self.on_batch is not None:
            self.on_batch(len(sentences), time.perf_counter() - start)
        at = 0
        for job in jobs:
            if not job.future.done():
                job.future.set_result(results[at : at + len(job.sentences)])
            at += len(job.sentences)

    async def _translate(self, search: Search, sentences: list[str], parts: list[list[int]]) -> list[Translation]:
        """One batch with its settings: its ``parts`` (positions in ``sentences``) searched at
        once, one per worker thread (each with ``parallel_batches=1``); results in order."""
        translator = self._translator(search)
        loop = asyncio.get_running_loop()
        searched = await asyncio.gather(
            *(loop.run_in_executor(self._workers, translator.translate, [sentences[i] for i in part]) for part in parts)
        )
        results: list[Translation | None] = [None] * len(sentences)
        for part, translations in zip(parts, searched):
            for i, translation in zip(part, translations):
                results[i] = translation
        return results  # type: ignore[return-value]

    def _translator(self, search: Search) -> Translator | CT2Translator:
        """The translator with ``search``'s settings: a shallow copy sharing the model and the
        tokenizers (batches with different settings may be searched at the same time)."""
        translator = copy.copy(self.translator)
        translator.options = replace(
            self.base,
            beam_size=search.beam_size,
            n_best=search.n_best,
            length_penalty=search.length_penalty,
            min_length=search.min_length,
            return_attention=search.attention,
            parallel_batches=1,
        )
        return translator


def deal_by_length(sentences: list[str], parts: int) -> list[list[int]]:
    """The positions of ``sentences`` dealt to at most ``parts`` non-empty parts of nearly equal
    work: longest first, in snake order (0, 1, ..., p-1, p-1, ..., 0, 0, ...)."""
    order = sorted(range(len(sentences)), key=lambda i: -len(sentences[i]))
    parts = max(1, min(parts, len(sentences)))
    snake = itertools.cycle([*range(parts), *reversed(range(parts))])
    dealt: list[list[int]] = [[] for _ in range(parts)]
    for i, part in zip(order, snake):
        dealt[part].append(i)
    return dealt
