"""Three-phase NLopt Subplex (LN_SBPLX) over H and V0, checkpointed and exactly resumable.

Phases run at increasing granularity (model -> layer -> neuron); each starts from the best point
of the previous one (the start bundle first: eta = 1, V0 = ``v0_init``), and ``maxeval`` (the
phase budget) is the only stopping rule, as in the paper. Each phase vector is z = [log eta, V0].

Exact resume: Subplex is deterministic given its start point and the objective values it sees.
Every objective call is recorded in the history with the sha256 of the full parameter vector
(``key``). ``--resume`` re-runs the interrupted phase from its start and answers the calls already
in the checkpoint from the history (checking that each call asks for the same key, in order)
without simulating; finished phases are skipped. A repeated point is answered from the cache
(``cached: true``) in any run. So a killed and resumed run ends with exactly the parameters and
history of an uninterrupted one (apart from the wall-clock ``seconds`` of each entry).

The result is the best point evaluated, so it is never worse than the start on the objective.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from ..errors import ConfigError
from . import checkpoint
from .objective import Objective
from .params import GRANULARITIES, NEURON_ORDERS, FullState, Layout

PAPER_BUDGETS = (100, 1000, 10000)


@dataclass
class OptimizeConfig:
    phases: tuple[str, ...] = GRANULARITIES
    budgets: tuple[int, ...] = PAPER_BUDGETS
    v0_init: float = 0.5  # initial V0 as a fraction of the threshold (0.5: high-entropy initialization)
    seed: int = 0
    checkpoint_every: int = 10  # simulated evaluations between checkpoints
    # Order of the neuron phase's coordinates, hence of Subplex's first sweep over them: "input-first"
    # (log eta of hidden layer 1, 2, ..., then V0 likewise) or "output-first" (the last hidden layer
    # first). At the paper's budgets the sweep does not get through 1000s of coordinates (docs/optimize.md).
    neuron_order: str = "input-first"

    def __post_init__(self):
        self.phases, self.budgets = tuple(self.phases), tuple(int(b) for b in self.budgets)
        if not self.phases or any(p not in GRANULARITIES for p in self.phases):
            raise ConfigError(f"phases must be a non-empty list of {list(GRANULARITIES)}, got {list(self.phases)}")
        order = [GRANULARITIES.index(p) for p in self.phases]
        if order != sorted(set(order)):
            raise ConfigError(f"phases must run from coarse to fine without repeats (model, layer, neuron); "
                              f"got {list(self.phases)}")
        if len(self.budgets) != len(self.phases) or any(b < 1 for b in self.budgets):
            raise ConfigError(f"give one positive evaluation budget per phase ({len(self.phases)} phases), "
                              f"got {list(self.budgets)}")
        if not 0.0 <= self.v0_init <= 1.0:
            raise ConfigError(f"v0_init must be in [0, 1] (a fraction of the threshold), got {self.v0_init}")
        if self.checkpoint_every < 1:
            raise ConfigError(f"checkpoint_every must be >= 1, got {self.checkpoint_every}")
        if self.neuron_order not in NEURON_ORDERS:
            raise ConfigError(f"neuron_order must be one of {list(NEURON_ORDERS)}, got {self.neuron_order!r}")

    def identity(self) -> dict:
        """What must be equal for a checkpoint to be resumed (not the checkpoint interval)."""
        d = asdict(self)
        d.pop("checkpoint_every")
        if d["neuron_order"] == "input-first":  # the order of checkpoints written before the option existed
            d.pop("neuron_order")
        d["phases"], d["budgets"] = list(self.phases), list(self.budgets)
        return d


@dataclass
class OptimizeResult:
    start: dict  # history entry of the start point
    best: dict  # history entry of the best point
    state: FullState  # the best point's log eta and V0
    history: list[dict]
    phases: list[dict]
    evaluations: int  # objective calls (simulated + cached)
    simulated: int  # simulations this process ran (excludes replayed and cached calls)
    seconds: float = 0.0
    extra: dict = field(default_factory=dict)


def state_key(state: FullState) -> str:
    return hashlib.sha256(np.ascontiguousarray(state.flat(), np.float64).tobytes()).hexdigest()[:32]


class Optimizer:
    """Rank 0's driver. ``progress(info)`` is called after every objective call;
    ``on_evaluation(entry)`` after every *simulated* one (tests use it to crash a run)."""

    def __init__(self, objective: Objective, config: OptimizeConfig, out_dir: str | Path, *, run_info: dict,
                 progress: Callable[[dict], None] | None = None,
                 on_evaluation: Callable[[dict], None] | None = None):
        self.objective, self.config, self.out = objective, config, Path(out_dir)
        self.run_info = run_info
        self.progress, self.on_evaluation = progress, on_evaluation
        self.hidden = objective.hidden

    # ------------------------------------------------------------------ checkpoint

    def _identity(self) -> dict:
        return {"config": self.config.identity(), "run": self.run_info}

    def _save(self) -> None:
        arrays = {f"best_{p['phase']}": self._best_states[p["phase"]] for p in self._phases}
        arrays["start"] = self._start.flat()
        checkpoint.save(self.out, {**self._identity(), "phases": self._phases, "history": self._history}, arrays)
        self._unsaved = 0

    def _load(self, resume: bool) -> None:
        found = checkpoint.load(self.out)
        self._history, self._phases, self._best_states = [], [], {}
        if found is None:
            return
        if not resume:
            raise ConfigError(f"{self.out} already holds an optimizer checkpoint: pass --resume to continue it, "
                              f"or choose another --out")
        state, arrays = found
        mine = self._identity()
        for part in ("config", "run"):
            for k in sorted(set(mine[part]) | set(state.get(part, {}))):
                if mine[part].get(k) != state.get(part, {}).get(k):
                    raise ConfigError(f"cannot resume {self.out}: {part} field {k!r} was "
                                      f"{state.get(part, {}).get(k)!r}, now {mine[part].get(k)!r}")
        self._history = list(state["history"])
        self._phases = list(state["phases"])
        self._best_states = {p["phase"]: arrays[f"best_{p['phase']}"] for p in self._phases}

    # ------------------------------------------------------------------ objective calls

    def _call(self, phase: str, state: FullState) -> dict:
        key = state_key(state)
        replay = self._replay.get(phase, [])
        pos = self._calls[phase]
        self._calls[phase] += 1
        if pos < len(replay):
            entry = replay[pos]
            if entry["key"] != key:
                raise RuntimeError(f"resume diverged in phase {phase!r} at call {pos}: the checkpoint has point "
                                   f"{entry['key']}, the optimizer asked for {key} (non-deterministic objective?)")
        elif key in self._cache:
            entry = {**self._cache[key], "phase": phase, "call": pos, "cached": True, "seconds": 0.0}
            self._append(entry)
        else:
            t0 = time.perf_counter()
            m = self.objective(state)
            entry = {"phase": phase, "call": pos, "key": key, **m.scalars(), "cached": False,
                     "seconds": time.perf_counter() - t0}
            self._cache[key] = entry
            self._simulated += 1
            self._append(entry)
            if self.on_evaluation:
                self.on_evaluation(entry)
        return entry

    def _append(self, entry: dict) -> None:
        self._history.append(entry)
        self._unsaved += not entry["cached"]
        if self._unsaved >= self.config.checkpoint_every:
            self._save()

    def _report(self, phase: str, budget: int, entry: dict, best: dict) -> None:
        if not self.progress:
            return
        timed = [e["seconds"] for e in self._history if not e["cached"]]
        per_eval = float(np.mean(timed[-50:])) if timed else 0.0
        done = {p["phase"] for p in self._phases}
        left = budget - self._calls[phase] + sum(
            b for p, b in zip(self.config.phases, self.config.budgets) if p not in done and p != phase)
        self.progress({"phase": phase, "call": self._calls[phase], "budget": budget, "entry": entry, "best": best,
                       "seconds_per_eval": per_eval, "eta_s": per_eval * max(left, 0)})

    # ------------------------------------------------------------------ run

    def run(self, resume: bool = False) -> OptimizeResult:
        import nlopt

        t_start = time.perf_counter()
        self._load(resume)
        self._cache = {}
        for e in self._history:
            if not e["cached"]:
                self._cache[e["key"]] = e
        self._replay = {}
        for e in self._history:
            self._replay.setdefault(e["phase"], []).append(e)
        self._history_replayed = len(self._history)
        self._calls = {p: 0 for p in ("start", *self.config.phases)}
        self._simulated, self._unsaved = 0, 0
        self._start = FullState.start(self.hidden, self.config.v0_init)
        try:
            start = self._call("start", self._start)
            current, best = self._start, start
            for phase, budget in zip(self.config.phases, self.config.budgets):
                done = {p["phase"]: p for p in self._phases}
                layout = Layout(self.hidden, phase)
                if phase in done:
                    current = FullState.from_flat(self.hidden, self._best_states[phase])
                    best = next(e for e in self._history if e["key"] == done[phase]["best_key"] and not e["cached"])
                    continue
                current, best = self._run_phase(nlopt, phase, budget, layout, current, best)
                self._save()
        finally:
            if self._unsaved:
                self._save()
        seconds = time.perf_counter() - t_start
        return OptimizeResult(start=start, best=best, state=current, history=self._history, phases=self._phases,
                              evaluations=len(self._history), simulated=self._simulated, seconds=seconds)

    def _run_phase(self, nlopt, phase: str, budget: int, layout: Layout, current: FullState, best: dict):
        x0 = layout.project(current)
        start_entry = best
        tracked = {"z": x0.copy(), "entry": best}
        if state_key(layout.expand(x0)) != best["key"]:
            raise RuntimeError(f"phase {phase!r} does not start where the previous phase ended")

        def f(z, grad):
            z = np.array(z, np.float64)
            entry = self._call(phase, layout.expand(z))
            if entry["loss"] < tracked["entry"]["loss"]:
                tracked["z"], tracked["entry"] = z, entry
            self._report(phase, budget, entry, tracked["entry"])
            return float(entry["loss"])

        # Subplex sees y = z[perm]: the order in which it sweeps the coordinates.
        perm = layout.sweep_order(self.config.neuron_order)

        def f_permuted(y, grad):
            z = np.empty(layout.dimension, np.float64)
            z[perm] = y
            return f(z, grad)

        nlopt.srand(self.config.seed)
        opt = nlopt.opt(nlopt.LN_SBPLX, layout.dimension)
        lower, upper = layout.bounds()
        opt.set_lower_bounds(lower[perm])
        opt.set_upper_bounds(upper[perm])
        opt.set_initial_step(layout.initial_step()[perm])
        opt.set_maxeval(budget)
        opt.set_min_objective(f_permuted)
        try:
            opt.optimize(np.clip(x0, lower, upper)[perm])
            result = int(opt.last_optimize_result())
        except nlopt.RoundoffLimited:
            result = int(nlopt.ROUNDOFF_LIMITED)
        best_state = layout.expand(tracked["z"])
        self._best_states[phase] = best_state.flat()
        self._phases.append({"phase": phase, "dimension": layout.dimension, "budget": budget,
                             "calls": self._calls[phase], "nlopt_result": result,
                             "start_loss": start_entry["loss"], "best_loss": tracked["entry"]["loss"],
                             "best_key": tracked["entry"]["key"]})
        return best_state, tracked["entry"]
