"""The MPI protocol of a run that one rank leads: rank 0 drives, the other ranks serve (or wait), and rank 0
broadcasts whether it succeeded, so that a failure on rank 0 ends every rank instead of leaving them blocked.

Used by ``anytime-snn optimize`` and by the reproduction's optimize stage. In one process (:func:`world`'s
``SingleProcess``) both functions simply run ``work``.
"""

from __future__ import annotations

from typing import Callable, TypeVar

import numpy as np

T = TypeVar("T")

FAILED_ON_RANK0 = 2  # exit status of the other ranks when rank 0 failed


def drive(objective, comm, work: Callable[[], T]) -> T | None:
    """Rank 0 runs ``work()`` (whose objective calls every rank simulates), then closes ``objective``;
    the other ranks serve ``objective`` meanwhile (:meth:`~anytime_snn.optimize.Objective.serve`).

    Rank 0 returns what ``work`` returns or re-raises its exception; the other ranks return None, or
    raise ``SystemExit(2)`` when rank 0 failed.
    """
    def lead() -> T:
        try:
            return work()
        finally:
            objective.close()

    return _led_by_rank0(comm, lead, objective.serve)


def on_rank0(comm, work: Callable[[], T]) -> T | None:
    """Rank 0 runs ``work()`` while the other ranks wait; returns and fails as :func:`drive` does."""
    return _led_by_rank0(comm, work, lambda: None)


def _led_by_rank0(comm, work: Callable[[], T], meanwhile: Callable[[], None]) -> T | None:
    ok = np.zeros(1, np.int64)
    if comm.rank == 0:
        try:
            result = work()
            ok[0] = 1
        finally:
            comm.Bcast(ok, root=0)
        return result
    meanwhile()
    comm.Bcast(ok, root=0)
    if not ok[0]:
        raise SystemExit(FAILED_ON_RANK0)
    return None
