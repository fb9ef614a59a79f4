"""Which process reads what: a rank's place in a multi-process run and its share of the batches.

Training starts the processes (:mod:`seq2seq.training.distributed`); the data side only needs to
know its rank and the world size, so that each rank reads its own share of every epoch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class DistContext:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def shard(batches: Sequence[Any], ctx: DistContext) -> list[Any]:
    """This rank's batches: every world-th, cut so that all ranks get as many (none is seen twice)."""
    if not ctx.enabled:
        return list(batches)
    usable = len(batches) - len(batches) % ctx.world
    return list(batches[ctx.rank : usable : ctx.world])
