"""The objective L_SNN(H, V0) = lambda_e M_e + lambda_l P_l + lambda_p P_p (paper eq. 11).

a_t and e_t come from simulating a fixed training subset for T steps with the batched engine,
sharded over MPI ranks (:mod:`.parallel`); a_max is the ANN accuracy from the bundle's provenance.
M_e is a fraction, P_l is in timesteps, P_p in synaptic events per sample. Default lambdas
(100, 1, 1e-5) make one percentage point of peak accuracy, one timestep of P_l and 1e5 events per
sample of P_p each worth 1.0 (docs/optimize.md explains how to pick them for another model).

Under MPI every rank builds the same :class:`Objective`; rank 0 calls :meth:`Objective.__call__`
(which broadcasts the parameters) and the others sit in :meth:`Objective.serve` until rank 0
calls :meth:`Objective.close`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import metrics
from ..errors import ConfigError
from ..model import Bundle
from .params import FullState, apply_state, hidden_layers
from .parallel import ShardedSimulator, SingleProcess

DEFAULT_LAMBDAS = (100.0, 1.0, 1e-5)


def training_subset(n: int, size: int, seed: int) -> np.ndarray:
    """The sorted indices of the ``size`` training images the objective simulates, chosen by ``seed`` from ``n``."""
    return np.sort(np.random.Generator(np.random.PCG64(seed)).permutation(n)[:size])


def check_lambdas(lambdas) -> tuple[float, float, float]:
    lam = tuple(float(v) for v in lambdas)
    if len(lam) != 3 or not all(np.isfinite(lam)) or any(v < 0 for v in lam) or not any(lam):
        raise ConfigError(f"lambdas must be three finite non-negative numbers (lambda_e, lambda_l, lambda_p), "
                          f"not all zero; got {lambdas!r}")
    return lam


@dataclass
class Measurement:
    """One evaluation of L_SNN: the scalars (JSON-ready) and the curves."""

    loss: float
    M_e: float
    P_l: float
    P_p: float
    peak_accuracy: float
    final_accuracy: float
    events_per_sample: float
    accuracy: np.ndarray  # (T,) a_t
    events: np.ndarray  # (T,) e_t

    def scalars(self) -> dict:
        return {k: getattr(self, k) for k in ("loss", "M_e", "P_l", "P_p", "peak_accuracy", "final_accuracy",
                                              "events_per_sample")}


class Objective:
    """L_SNN of a start bundle under a :class:`FullState` of scales and initial potentials."""

    def __init__(self, base: Bundle, x: np.ndarray, labels: np.ndarray, timesteps: int, *, a_max: float,
                 lambdas=DEFAULT_LAMBDAS, comm=None, max_chunk: int | None = None, engine: str = "auto",
                 threads: int | None = None, incremental: bool = True):
        if timesteps < 1:
            raise ConfigError(f"timesteps must be >= 1, got {timesteps}")
        if not 0 < a_max <= 1:
            raise ConfigError(f"a_max must be an accuracy in (0, 1], got {a_max}")
        self.base, self.a_max, self.lambdas = base, float(a_max), check_lambdas(lambdas)
        self.hidden = hidden_layers(base)
        self.size = 2 * sum(h.channels for h in self.hidden)
        self.comm = comm if comm is not None else SingleProcess()
        self.sim = ShardedSimulator(base, x, labels, timesteps, comm=self.comm, max_chunk=max_chunk, engine=engine,
                                    threads=threads, incremental=incremental)
        self.timesteps = int(timesteps)

    @property
    def samples(self) -> int:
        return self.sim.plan.samples

    def bundle(self, state: FullState) -> Bundle:
        return apply_state(self.base, state, self.hidden)

    def measure_curves(self, accuracy: np.ndarray, events: np.ndarray) -> Measurement:
        a = np.asarray(accuracy, np.float64)
        return Measurement(loss=metrics.snn_loss(a, events, self.a_max, self.lambdas), M_e=metrics.min_error(a),
                           P_l=metrics.pareto_latency(a, self.a_max), P_p=metrics.pareto_power(a, events, self.a_max),
                           peak_accuracy=float(a.max()), final_accuracy=float(a[-1]),
                           events_per_sample=float(np.sum(events)), accuracy=a, events=np.asarray(events, np.float64))

    def _measure(self, state: FullState) -> Measurement:
        tot = self.sim.run(self.bundle(state))
        return self.measure_curves(tot.accuracy, tot.mean_events)

    def __call__(self, state: FullState) -> Measurement:
        """Evaluate on all ranks (call on rank 0 only when running under MPI)."""
        if self.comm.size > 1:
            self.comm.Bcast(np.array([1], np.int64), root=0)
            self.comm.Bcast(np.ascontiguousarray(state.flat(), np.float64), root=0)
        return self._measure(state)

    def serve(self) -> None:
        """Ranks > 0: evaluate what rank 0 broadcasts until it calls :meth:`close`."""
        cmd = np.zeros(1, np.int64)
        flat = np.zeros(self.size, np.float64)
        while True:
            self.comm.Bcast(cmd, root=0)
            if cmd[0] == 0:
                return
            self.comm.Bcast(flat, root=0)
            self._measure(FullState.from_flat(self.hidden, flat))

    def close(self) -> None:
        """Rank 0: release the other ranks from :meth:`serve`."""
        if self.comm.size > 1:
            self.comm.Bcast(np.array([0], np.int64), root=0)
