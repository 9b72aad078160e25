"""Data-parallel simulation over MPI ranks (mpi4py), and the same code path in one process.

The data set is cut into fixed-size *chunks* whose size depends only on the data and the model
(never on the number of ranks); each rank simulates a contiguous block of chunks with the same
compiled engine shape. Per-timestep correct counts, synaptic-event sums and spike counts are int64
and summed across ranks, so every rank count gives bit-for-bit the same totals as one process.

Without mpi4py, or when not launched by ``mpiexec``, :func:`world` returns a one-rank stand-in and
nothing changes. Launch with the virtual environment's own launcher::

    .venv/bin/mpiexec -n 2 .venv/bin/anytime-snn optimize ...
"""

from __future__ import annotations

import math
import os
import sys
import time
from dataclasses import dataclass

import numpy as np

from .. import metrics
from ..errors import ConfigError
from ..model import Bundle


class SingleProcess:
    """The subset of an mpi4py communicator this package uses, for one process."""

    rank = 0
    size = 1

    def Allreduce(self, send, recv, op=None):  # noqa: N802 - mpi4py's name
        recv[...] = send

    def Bcast(self, buf, root=0):  # noqa: N802
        pass

    def Barrier(self):  # noqa: N802
        pass


def world():
    """MPI.COMM_WORLD when running under mpiexec with more than one rank, else a :class:`SingleProcess`."""
    if not any(k in os.environ for k in ("PMI_RANK", "PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "PMIX_RANK")):
        return SingleProcess()  # not launched by mpiexec: don't even load the MPI library
    try:
        from mpi4py import MPI
    except Exception:  # mpi4py missing or its MPI library unloadable: one process
        return SingleProcess()
    comm = MPI.COMM_WORLD
    return comm if comm.Get_size() > 1 else SingleProcess()


RANK_TIMEOUT_ENV = "ANYTIME_SNN_RANK_TIMEOUT"
DEFAULT_RANK_TIMEOUT_S = 600.0
# mpiexec (Hydra) drops output still in flight when a rank aborts: measured, a line written just before
# MPI_Abort was lost in 4 of 30 runs and one written 0.5 s before it in none. Wait this long between them.
ABORT_GRACE_S = 1.0


def rank_timeout() -> float | None:
    """Seconds a rank waits in the all-reduce for the others before aborting the job (None: forever).

    From ``$ANYTIME_SNN_RANK_TIMEOUT`` (0 or negative: wait forever), default 600 s. The wait starts when
    this rank has finished its own shard, so the timeout bounds how far the slowest rank may lag behind,
    not the length of an evaluation."""
    raw = os.environ.get(RANK_TIMEOUT_ENV, "").strip()
    try:
        value = float(raw) if raw else DEFAULT_RANK_TIMEOUT_S
    except ValueError:
        raise ConfigError(f"{RANK_TIMEOUT_ENV} must be a number of seconds, got {raw!r}") from None
    return value if value > 0 and math.isfinite(value) else None


def abort_job_on_failure(code: int) -> None:
    """End the whole MPI job when this rank fails with exit status ``code`` (no-op in one process).

    The other ranks may be waiting in a collective (a stage result broadcast from rank 0, an all-reduce)
    that this rank will never join; MPI has no timeouts, so they would wait forever. Aborting makes
    mpiexec end every rank with this status."""
    mpi = sys.modules.get("mpi4py.MPI")  # loaded only by :func:`world` under mpiexec
    if not code or mpi is None or not mpi.Is_initialized() or mpi.Is_finalized():
        return
    comm = mpi.COMM_WORLD
    if comm.Get_size() < 2:
        return
    sys.stderr.write(f"anytime-snn: rank {comm.Get_rank()} failed (exit status {code}); aborting all ranks\n")
    sys.stderr.flush()
    time.sleep(ABORT_GRACE_S)  # let mpiexec forward the messages before the abort tears it down
    comm.Abort(code)


def allreduce_sum(comm, values: np.ndarray) -> np.ndarray:
    """Sum int64 ``values`` over all ranks. MPI has no timeouts, so a rank that hangs (stopped,
    deadlocked) would block the others forever: the sum is non-blocking and polled, and after
    :func:`rank_timeout` seconds this rank aborts the whole job (checkpoints stay intact: ``--resume``)."""
    values = np.ascontiguousarray(values, np.int64)
    out = np.empty_like(values)
    if isinstance(comm, SingleProcess):
        out[...] = values
        return out
    from mpi4py import MPI

    timeout = rank_timeout()
    request = comm.Iallreduce(values, out, op=MPI.SUM)
    start, pause = time.monotonic(), 1e-5
    while not request.Test():
        if timeout is not None and time.monotonic() - start > timeout:
            sys.stderr.write(f"anytime-snn: rank {comm.rank}: the other ranks did not answer within {timeout:g} s "
                             f"(a rank hangs?); aborting all ranks. Checkpoints are intact: rerun with --resume "
                             f"(${RANK_TIMEOUT_ENV} sets the timeout)\n")
            sys.stderr.flush()
            time.sleep(ABORT_GRACE_S)  # let mpiexec forward the message before the abort tears it down
            comm.Abort(3)
        time.sleep(pause)  # lighter than MPICH's busy-waiting blocking collectives
        pause = min(2 * pause, 1e-3)
    return out


@dataclass(frozen=True)
class ChunkPlan:
    """How N samples are cut into equal chunks and which chunks each rank simulates."""

    samples: int
    chunk: int
    ranks: int

    @classmethod
    def make(cls, samples: int, max_chunk: int, ranks: int) -> "ChunkPlan":
        """Chunks of at most ``max_chunk``, as equal as possible (little padding), independent of ``ranks``."""
        if samples < 1:
            raise ValueError("need at least one sample")
        n_chunks = math.ceil(samples / max(1, max_chunk))
        return cls(samples, math.ceil(samples / n_chunks), ranks)

    @property
    def n_chunks(self) -> int:
        return math.ceil(self.samples / self.chunk)

    def shard(self, rank: int) -> slice:
        """The contiguous range of samples rank ``rank`` simulates (empty when there are more ranks than chunks)."""
        blocks = [list(b) for b in np.array_split(np.arange(self.n_chunks), self.ranks)]
        # The engine compiles a smaller shape for a run shorter than one chunk, which could round
        # differently: a partial last chunk is never simulated alone, it joins the previous block.
        partial = self.samples % self.chunk != 0
        last = max(r for r, b in enumerate(blocks) if b)
        if partial and last > 0 and blocks[last] == [self.n_chunks - 1]:
            blocks[last - 1] += blocks[last]
            blocks[last] = []
        mine = blocks[rank]
        if not mine:
            return slice(0, 0)
        return slice(mine[0] * self.chunk, min(self.samples, (mine[-1] + 1) * self.chunk))


@dataclass
class Totals:
    """Integer sums over all samples of all ranks."""

    samples: int
    correct: np.ndarray  # (T,) correct predictions at step t
    events: np.ndarray  # (T,) synaptic events caused at step t
    layer_spikes: np.ndarray  # (L_hidden, T) spikes of each hidden layer at step t
    input_events: int  # analog input MACs

    @property
    def accuracy(self) -> np.ndarray:
        return self.correct / self.samples

    @property
    def mean_events(self) -> np.ndarray:
        return self.events / self.samples


class ShardedSimulator:
    """One engine per process; simulates this rank's shard of a fixed data set and sums over ranks.

    Every rank must construct it with the same bundle architecture, data, labels and timesteps, and
    call :meth:`run` collectively (same order, same number of calls).
    """

    def __init__(self, bundle: Bundle, x: np.ndarray, labels: np.ndarray, timesteps: int, *, comm=None,
                 max_chunk: int | None = None, engine: str = "auto", threads: int | None = None,
                 incremental: bool = True):
        from ..sim.select import batched_engine, resolve

        self.comm = comm if comm is not None else SingleProcess()
        self.timesteps = int(timesteps)
        self.engine_name = resolve(bundle, engine)
        if self.engine_name == "tf":
            from ..sim.tf_engine import TFEngine

            chunk = max_chunk or TFEngine(bundle).chunk_size(self.timesteps)
        else:  # every sample is simulated on its own: the chunking only cuts the shards
            chunk = max_chunk or 64
        self.plan = ChunkPlan.make(len(labels), chunk, self.comm.size)
        if threads is None and self.comm.size > 1:  # ranks share the machine's cores
            threads = max(1, (os.cpu_count() or 1) // self.comm.size)
        self.engine = batched_engine(bundle, self.engine_name, batch_size=self.plan.chunk, threads=threads)
        part = self.plan.shard(self.comm.rank)
        self.x, self.labels = np.asarray(x, np.float32)[part], np.asarray(labels)[part]
        self.n_hidden = sum(1 for layer in bundle.layers if layer.weighted and not layer.output)
        # Re-simulates only what a parameter change reaches (numba engine): the samples, on chains of dense
        # layers whose spikes fit in the cache; otherwise the layers from the first one that changed.
        self.incremental = None
        if incremental and self.engine_name == "numba" and len(self.labels):
            from ..sim.incremental import IncrementalSimulator
            from ..sim.prefix import PrefixSimulator

            self.incremental = IncrementalSimulator(self.engine, self.x, self.timesteps)
            if not (self.incremental.cacheable and all(l.kind == "dense" for l in bundle.weighted_layers)):
                self.incremental = PrefixSimulator(self.engine, self.x, self.timesteps)

    def run(self, bundle: Bundle) -> Totals:
        t = self.timesteps
        if len(self.labels):
            if self.incremental is not None:
                res = self.incremental.run(bundle)
            else:
                self.engine.set_parameters(bundle)
                res = self.engine.run(self.x, t)
            local = np.concatenate([res.correct(self.labels).astype(np.int64), res.events.sum(axis=1),
                                    res.layer_spikes.reshape(-1), [res.input_events.sum(), len(self.labels)]])
        else:
            local = np.zeros(2 * t + self.n_hidden * t + 2, np.int64)
        tot = allreduce_sum(self.comm, local)
        return Totals(samples=int(tot[-1]), correct=tot[:t], events=tot[t:2 * t],
                      layer_spikes=tot[2 * t:2 * t + self.n_hidden * t].reshape(self.n_hidden, t),
                      input_events=int(tot[-2]))


def distributed_evaluate(bundle: Bundle, x: np.ndarray, labels: np.ndarray, timesteps: int | None = None, *,
                         a_max: float | None = None, comm=None, max_chunk: int | None = None, engine: str = "auto"):
    """:func:`anytime_snn.evaluate.evaluate` across MPI ranks; every rank gets the same Evaluation.

    Call it on every rank with the same arguments (each rank may load the whole data set; it only
    simulates its shard). Without MPI it runs in one process. ``v_out`` is not gathered.
    """
    comm = comm if comm is not None else world()
    timesteps = timesteps or bundle.timesteps
    tot = ShardedSimulator(bundle, x, labels, timesteps, comm=comm, max_chunk=max_chunk, engine=engine,
                           incremental=False).run(bundle)
    return evaluation(tot, bundle, a_max)


def evaluation(tot: Totals, bundle: Bundle, a_max: float | None = None):
    """The :class:`~anytime_snn.evaluate.Evaluation` of summed totals (a_max: the bundle's ANN accuracy)."""
    from ..evaluate import Evaluation

    acc = tot.accuracy
    if a_max is None:
        a_max = float(bundle.provenance.get("ann_accuracy", acc.max()))
    sizes = [int(np.prod(s)) for s, layer in zip(bundle.shapes(), bundle.layers) if layer.weighted and not layer.output]
    rates = tot.layer_spikes / (tot.samples * np.asarray(sizes, np.float64)[:, None]) if sizes else \
        np.zeros((0, acc.size))
    return Evaluation(accuracy=acc, events=tot.mean_events, layer_rates=rates,
                      input_events=tot.input_events / tot.samples, a_max=float(a_max), samples=tot.samples)


def summary(tot: Totals, a_max: float) -> dict:
    return metrics.summarize(tot.accuracy, tot.mean_events, a_max)
