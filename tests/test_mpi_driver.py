"""The one MPI driver (optimize.driver): rank 0 leads, the others serve or wait, rank 0's success is broadcast."""

from __future__ import annotations

import numpy as np
import pytest

from anytime_snn.optimize.driver import FAILED_ON_RANK0, drive, on_rank0
from anytime_snn.optimize.parallel import SingleProcess


class FakeRank:
    """Rank ``rank`` of a two-rank job whose rank 0 broadcasts ``ok`` (a recorded, one-process stand-in)."""

    size = 2

    def __init__(self, rank: int, ok: int = 1):
        self.rank, self.ok, self.sent = rank, ok, []

    def Bcast(self, buf, root=0):  # noqa: N802 - mpi4py's name
        if self.rank == root:
            self.sent.append(buf.copy())
        else:
            buf[...] = self.ok


class FakeObjective:
    def __init__(self):
        self.calls = []

    def serve(self):
        self.calls.append("serve")

    def close(self):
        self.calls.append("close")


def test_rank0_runs_the_work_closes_the_objective_and_broadcasts_success():
    comm, objective = FakeRank(0), FakeObjective()
    assert drive(objective, comm, lambda: "result") == "result"
    assert objective.calls == ["close"] and [int(b[0]) for b in comm.sent] == [1]


def test_a_failure_on_rank0_is_reraised_there_after_closing_and_broadcasting_it():
    comm, objective = FakeRank(0), FakeObjective()

    def fail():
        raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        drive(objective, comm, fail)
    assert objective.calls == ["close"] and [int(b[0]) for b in comm.sent] == [0]


@pytest.mark.parametrize("ok", [1, 0])
def test_other_ranks_serve_then_end_with_rank0(ok):
    comm, objective = FakeRank(1, ok), FakeObjective()
    work = pytest.fail  # never called on rank 1
    if ok:
        assert drive(objective, comm, work) is None
    else:
        with pytest.raises(SystemExit) as e:
            drive(objective, comm, work)
        assert e.value.code == FAILED_ON_RANK0
    assert objective.calls == ["serve"]


def test_on_rank0_without_mpi_just_runs_the_work():
    assert on_rank0(SingleProcess(), lambda: np.int64(3)) == 3
    with pytest.raises(SystemExit):
        on_rank0(FakeRank(1, ok=0), pytest.fail)
