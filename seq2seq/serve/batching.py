"""Dynamic batching: the sentences of concurrent requests searched together.

A request's sentences join a queue of their search settings (:class:`Search`: beam size,
n-best, length penalty, minimum length, attention); requests whose settings differ never share
a batch. The oldest waiting request opens a batch: it waits at most ``max_wait_ms`` for others
to join, or less once ``max_batch_tokens`` source tokens are waiting, then the batch is searched
in one worker thread (off the event loop) and every request gets exactly its own translations,
in its own order. While a batch is searched the next one fills, so under load batches grow by
themselves. At most ``max_queue`` sentences wait; beyond that :class:`QueueFull` (503).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace

from seq2seq.decode.ctranslate2 import CT2Translator
from seq2seq.decode.translation import Translation
from seq2seq.decode.translator import Translator

log = logging.getLogger(__name__)


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
        self.queues: dict[Search, deque[_Job]] = {}
        self.waiting = 0  # sentences queued, not yet in a batch
        self._wake = asyncio.Event()
        self._worker = ThreadPoolExecutor(1, thread_name_prefix="seq2seq-serve-search")
        self._task: asyncio.Task | None = None
        self._closing = False

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def close(self) -> None:
        """Search what is queued, then stop (a server shutting down finishes its requests)."""
        self._closing = True
        self._wake.set()
        if self._task is not None:
            await self._task
        self._worker.shutdown(wait=True)

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
            if not any(self.queues.values()):
                if self._closing:
                    return
                self._wake.clear()
                await self._wake.wait()
                continue
            search, queue = min(((s, q) for s, q in self.queues.items() if q), key=lambda sq: sq[1][0].arrived)
            await self._fill(queue)
            jobs = self._take(queue)
            await self._search(search, jobs)

    async def _fill(self, queue: deque[_Job]) -> None:
        """Wait until the oldest job has waited ``max_wait_ms`` or the budget's tokens are waiting."""
        while not self._closing:
            left = queue[0].arrived + self.max_wait - time.monotonic()
            if left <= 0 or sum(job.tokens for job in queue) >= self.max_batch_tokens:
                return
            self._wake.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), left)

    def _take(self, queue: deque[_Job]) -> list[_Job]:
        """The oldest jobs, in order, up to the token budget (at least one, however long)."""
        jobs, tokens = [queue.popleft()], 0
        tokens = jobs[0].tokens
        while queue and tokens + queue[0].tokens <= self.max_batch_tokens:
            tokens += queue[0].tokens
            jobs.append(queue.popleft())
        self.waiting -= sum(len(job.sentences) for job in jobs)
        return jobs

    async def _search(self, search: Search, jobs: list[_Job]) -> None:
        jobs = [job for job in jobs if not job.future.done()]  # a client that left is not searched for
        sentences = [s for job in jobs for s in job.sentences]
        if not sentences:
            return
        loop = asyncio.get_running_loop()
        start = time.perf_counter()
        try:
            results = await loop.run_in_executor(self._worker, self._translate, search, sentences)
        except Exception as err:  # noqa: BLE001 (a failed batch fails its requests, never the server)
            log.exception("a search batch of %d sentences failed", len(sentences))
            for job in jobs:
                if not job.future.done():
                    job.future.set_exception(err)
            return
        if self.on_batch is not None:
            self.on_batch(len(sentences), time.perf_counter() - start)
        at = 0
        for job in jobs:
            if not job.future.done():
                job.future.set_result(results[at : at + len(job.sentences)])
            at += len(job.sentences)

    def _translate(self, search: Search, sentences: list[str]) -> list[Translation]:
        """One batch, in the worker thread: the translator's options with this batch's settings.

        The batch is cut into ``parallel_batches`` sub-batches (PyTorch on a CPU: one per thread),
        searched at the same time as offline translation searches its batches (see
        :func:`seq2seq.decode.translator.map_batches`), instead of one batch sharing every thread.
        """
        parallel = max(1, self.base.parallel_batches)
        self.translator.options = replace(
            self.base,
            beam_size=search.beam_size,
            n_best=search.n_best,
            length_penalty=search.length_penalty,
            min_length=search.min_length,
            return_attention=search.attention,
            batch_size=min(self.base.batch_size, -(-len(sentences) // parallel)),
        )
        return self.translator.translate(sentences)
