"""How far training will go: the total of the progress bar, so that it can show an ETA."""

from __future__ import annotations


def expected_steps(
    step: int,
    *,
    max_steps: int | None,
    max_epochs: int | None,
    steps_per_epoch: int | None,
    max_minutes: float | None,
    elapsed: float,
    steps_done: int,
) -> int | None:
    """The step at which training will stop, as far as it can be told now (None: unknown).

    The smallest of ``max_steps``; ``max_epochs * steps_per_epoch`` (unknown when streaming);
    and for ``max_minutes``, ``step`` plus the steps the current rate (``steps_done`` in
    ``elapsed`` seconds) fits into the minutes left. Early stopping cannot be foreseen.
    """
    limits = []
    if max_steps:
        limits.append(max_steps)
    if max_epochs and steps_per_epoch:
        limits.append(max_epochs * steps_per_epoch)
    if max_minutes and steps_done > 0 and elapsed > 0:
        left = max(60.0 * max_minutes - elapsed, 0.0)
        limits.append(step + round(steps_done / elapsed * left))
    return max(min(limits), step) if limits else None
