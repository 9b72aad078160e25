"""Cached pipeline stages for the reproduction experiments, built on the toolkit's own stage functions.

Every stage writes into its own directory ``OUT/stages/<name>/`` and finishes by writing
``stage.json`` = {"config": ..., "result": ...}. A stage whose ``stage.json`` holds the same config is
skipped (its result is read back), so an interrupted ``anytime-snn reproduce`` continues where it
stopped and experiments sharing an output directory share their trained models. A stage whose
config changed is redone from scratch, and the work with the other config, finished or not, is kept
beside it (``<name>@<config hash>``, never deleted: it may be hours of optimization) and taken back by a
later run with that config. The optimizer additionally resumes an interrupted run from its own
checkpoint (exactly, see :mod:`anytime_snn.optimize.subplex`).

MPI: training, fine-tuning and conversion run on rank 0 (the others wait); optimization and
evaluation are collective (every rank calls them with the same arguments; rank 0 writes).
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from ..dynamics import with_dynamics
from ..fsutil import atomic_write

STAGE_FILE = "stage.json"
PENDING_FILE = "pending.json"  # the config a stage's work was started with (its leftovers are kept by it)
CODE_FILE = "code.jsonl"  # the code identity of every run that worked on the stage (a resumed one has several)


def _note_code(directory: Path, resumes: bool) -> None:
    """Record the code this run works on the stage with: appended when the stage resumes earlier runs' work
    (the optimizer's checkpoint), else replacing what a killed run left. Work left by a run from before stages
    noted their code counts as unknown code (commit None)."""
    from ..provenance import code_identity

    path = directory / CODE_FILE
    notes = []
    if resumes and not path.exists() and any(p.name != PENDING_FILE for p in directory.iterdir()):
        notes.append({"commit": None, "diff_sha256": None})
    notes.append(code_identity())
    with open(path, "a" if resumes else "w") as f:
        f.write("".join(json.dumps(n) + "\n" for n in notes))


def _codes(directory: Path) -> list[dict]:
    """The distinct code identities of the runs that made the stage's result, oldest first."""
    out: list[dict] = []
    for line in (directory / CODE_FILE).read_text().splitlines():
        code = json.loads(line)
        if code not in out:
            out.append(code)
    return out


def _canonical(config: dict) -> dict:
    return json.loads(json.dumps(config, sort_keys=True, default=str))


def _parked(directory: Path, config: dict) -> Path:
    """Where a stage's work with ``config`` waits while the stage runs with another config."""
    digest = hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:12]
    return directory.with_name(f"{directory.name}@{digest}")


def _work_config(directory: Path) -> tuple[dict | None, dict | None]:
    """(config, result) of the work in a stage directory: stage.json's, else the config it was started with and
    no result (config None: unknown, a run from before stages noted it)."""
    if (directory / STAGE_FILE).is_file():
        saved = json.loads((directory / STAGE_FILE).read_text())
        return saved.get("config"), saved["result"]
    if (directory / PENDING_FILE).is_file():
        return json.loads((directory / PENDING_FILE).read_text()), None
    return None, None


def _finished(directory: Path, config: dict, log) -> dict | None:
    """The result of the stage in ``directory`` for ``config`` if it was finished, else None (then the directory
    holds nothing or this config's unfinished work, e.g. the optimizer's checkpoint). Work with another config,
    finished or not, is moved aside, and this config's work kept aside by an earlier run is moved back."""
    if directory.exists():
        found, result = _work_config(directory)
        if found == config or (found is None and result is None):
            return result
        aside = _parked(directory, found)
        if aside.exists():  # the same config's older copy: this one replaces it
            shutil.rmtree(aside)
        directory.rename(aside)
        log(f"[keep] {directory}: its config changed; the {'unfinished' if result is None else 'finished'} stage "
            f"is kept as {aside.name}")
    back = _parked(directory, config)
    found, result = _work_config(back) if back.exists() else (None, None)
    if found == config:
        back.rename(directory)
        log(f"[reuse] {directory}: {'started' if result is None else 'finished'} earlier with this config "
            f"({back.name})")
        return result
    return None


def _start(directory: Path, config: dict, resumes: bool) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    atomic_write(directory / PENDING_FILE, json.dumps(config).encode())
    _note_code(directory, resumes)


def cached(directory: Path, config: dict, run: Callable[[Path], dict], comm=None, log=print) -> dict:
    """Run ``run(directory) -> result`` unless ``directory/stage.json`` holds the same config.

    With ``comm`` (size > 1) only rank 0 runs; every rank returns the result.
    """
    directory, config = Path(directory), _canonical(config)
    rank = 0 if comm is None else comm.rank
    result = None
    if rank == 0:
        result = _finished(directory, config, log)
        if result is None:
            _start(directory, config, resumes=False)
            result = {**run(directory), "code": _codes(directory)}
            atomic_write(directory / STAGE_FILE, json.dumps({"config": config, "result": result}, indent=1).encode())
    if comm is not None and comm.size > 1:
        result = comm.bcast(result, root=0)
    return result


def collective_cached(directory: Path, config: dict, run: Callable[[Path], dict], comm, log=print,
                      resumes: bool = False) -> dict:
    """Like :func:`cached` for collective stages: every rank runs ``run`` unless rank 0 finds the result.
    ``resumes``: ``run`` continues the work of a killed run in ``directory`` (whose code then counts too)."""
    directory, config = Path(directory), _canonical(config)
    found = _finished(directory, config, log) if comm.rank == 0 else None
    if comm.size > 1:
        found = comm.bcast(found, root=0)
    if found is not None:
        return found
    if comm.rank == 0:
        _start(directory, config, resumes)
    if comm.size > 1:
        comm.Barrier()
    result = run(directory)
    if comm.rank == 0:
        result = {**result, "code": _codes(directory)}
        atomic_write(directory / STAGE_FILE, json.dumps({"config": config, "result": result}, indent=1).encode())
    return result


def file_digest(path: Path) -> str:
    """sha256 of a file, or of a bundle directory's files (so cache keys follow the content)."""
    path = Path(path)
    h = hashlib.sha256()
    notes = (STAGE_FILE, CODE_FILE, PENDING_FILE)
    files = sorted(p for p in path.rglob("*") if p.is_file() and p.name not in notes) if path.is_dir() else [path]
    for p in files:
        h.update(p.name.encode())
        h.update(p.read_bytes())
    return h.hexdigest()[:32]


# ------------------------------------------------------------------------------------------ stages


def train_stage(directory: Path, cfg, comm=None, log=print) -> dict:
    """Train an ANN (:func:`anytime_snn.train.train`); result: the model path and its test accuracy."""
    def run(d: Path) -> dict:
        from ..train import train

        record = train(cfg, d / "model.keras", verbose=2, command="anytime-snn reproduce (train stage)")
        return {"model": str(d / "model.keras"), "test_accuracy": record["test_accuracy"],
                "wall_time_s": record["train_wall_time_s"]}

    return cached(directory, {"stage": "train", "config": cfg.to_dict()}, run, comm, log)


def sparsify_stage(directory: Path, model: str, *, epochs: int, train_limit: int | None, test_limit: int | None,
                   seed: int,
                   lambda_a: float | None = None, lambda_w: float | None = None, comm=None, log=print) -> dict:
    """Sparsity fine-tuning (:func:`anytime_snn.train.finetune.finetune`) with the architecture's defaults."""
    config = {"stage": "sparsify", "model": file_digest(Path(model)), "epochs": epochs, "train_limit": train_limit,
              "test_limit": test_limit, "seed": seed, "lambda_a": lambda_a, "lambda_w": lambda_w}

    def run(d: Path) -> dict:
        import time

        from ..train.finetune import finetune

        t0 = time.perf_counter()
        rec = finetune(model, d / "sparse.keras", lambda_a=lambda_a, lambda_w=lambda_w, epochs=epochs,
                       train_limit=train_limit, test_limit=test_limit, seed=seed, snn_samples=0, bn_samples=min(10000, train_limit or 10000),
                       command="anytime-snn reproduce (sparsify stage)", log=log)
        b, a = rec["before"], rec["after"]
        return {"model": str(d / "sparse.keras"), "wall_time_s": round(time.perf_counter() - t0, 3),
                "lambda_a": rec["sparsity"]["lambda_a"], "lambda_w": rec["sparsity"]["lambda_w"],
                "before": {"test_accuracy": b["test_accuracy"], "activation_sparsity": b["activation_sparsity"]["total"],
                           "weight_sparsity": b["weight_sparsity"]["total"]},
                "after": {"test_accuracy": a["test_accuracy"], "activation_sparsity": a["activation_sparsity"]["total"],
                          "weight_sparsity": a["weight_sparsity"]["total"]}}

    return cached(directory, config, run, comm, log)


def convert_stage(directory: Path, model: str, *, dataset: str, data_path: str | None, calibration_samples: int,
                  timesteps: int, comm=None, log=print) -> dict:
    """``anytime-snn convert`` (layer-wise 99.9th percentile, V0 0.5) through the command's own parser."""
    config = {"stage": "convert", "model": file_digest(Path(model)), "dataset": dataset,
              "calibration_samples": calibration_samples, "timesteps": timesteps}

    def run(d: Path) -> dict:
        import argparse
        import time

        from ..commands import convert as convert_command

        t0 = time.perf_counter()
        parser = argparse.ArgumentParser()
        convert_command.add_arguments(parser)
        argv = [str(model), "--out", str(d / "bundle"), "--dataset", dataset,
                "--calibration-samples", str(calibration_samples), "--timesteps", str(timesteps)]
        argv += ["--data-path", data_path] if data_path else []
        convert_command.run(parser.parse_args(argv))
        return {"bundle": str(d / "bundle"), "wall_time_s": round(time.perf_counter() - t0, 3)}

    return cached(directory, config, run, comm, log)


@dataclass(frozen=True)
class Pin:
    """Which part of the search space an ablation keeps fixed: the scales H (eta = 1) and/or V0 (a value)."""

    eta: bool = False
    v0: float | None = None

    def label(self) -> str:
        return ("H fixed" if self.eta else "") + (f" V0={self.v0:g} fixed" if self.v0 is not None else "")


class PinnedObjective:
    """An :class:`~anytime_snn.optimize.Objective` that ignores the pinned coordinates of every state.

    Used for the ablations of paper Figure 6 (optimize only H, or only V0) through the unchanged
    optimizer: the pinned coordinates have no effect on the loss, and a pinned state already simulated
    is answered from a cache, so Subplex only spends budget, not simulations, on them.
    """

    def __init__(self, objective, pin: Pin):
        self.inner, self.pin = objective, pin
        self.hidden, self.size, self.a_max = objective.hidden, objective.size, objective.a_max
        self._cache: dict[bytes, object] = {}

    @property
    def samples(self) -> int:
        return self.inner.samples

    def pinned(self, state):
        from ..optimize import FullState

        log_eta = [np.zeros_like(v) for v in state.log_eta] if self.pin.eta else state.log_eta
        v0 = ([np.full_like(v, self.pin.v0 * h.threshold) for v, h in zip(state.v0, self.hidden)]
              if self.pin.v0 is not None else state.v0)
        return FullState(list(log_eta), list(v0))

    def bundle(self, state):
        return self.inner.bundle(self.pinned(state))

    def __call__(self, state):
        p = self.pinned(state)
        key = np.ascontiguousarray(p.flat(), np.float64).tobytes()
        if key not in self._cache:
            self._cache[key] = self.inner(p)
        return self._cache[key]

    def serve(self) -> None:
        self.inner.serve()

    def close(self) -> None:
        self.inner.close()


def optimize_stage(directory: Path, bundle_dir: str, *, dataset: str, data_path: str | None, subset: int,
                   timesteps: int, phases, budgets, v0_init: float, pin: Pin | None, seed: int, comm,
                   dynamics: str | None = None, lambdas=None, neuron_order: str = "input-first",
                   log=print) -> dict:
    """Three-phase Subplex over H and V0 (:class:`anytime_snn.optimize.Optimizer`) on a training subset.

    ``pin`` keeps H and/or V0 fixed (ablations). Resumes the optimizer's checkpoint in ``directory``.
    ``neuron_order`` enters the stage's config only when it is not the default, so stages cached before
    the option existed stay valid (as the optimizer's checkpoints do).
    Result: the optimized bundle's path and the start/best loss entries.
    """
    from ..optimize import DEFAULT_LAMBDAS

    lambdas = list(lambdas or DEFAULT_LAMBDAS)
    config = {"stage": "optimize", "bundle": file_digest(Path(bundle_dir)), "dataset": dataset, "subset": subset,
              "timesteps": timesteps, "phases": list(phases), "budgets": list(budgets), "v0_init": v0_init,
              "pin": None if pin is None else {"eta": pin.eta, "v0": pin.v0}, "seed": seed,
              "dynamics": dynamics, "lambdas": lambdas}
    if neuron_order != "input-first":
        config["neuron_order"] = neuron_order

    def run(d: Path) -> dict:
        import time

        from ..convert.convert import network_input
        from ..data import load_dataset
        from ..model import load_bundle, save_bundle
        from ..optimize import FullState, Objective, OptimizeConfig, Optimizer, training_subset
        from ..optimize.checkpoint import load_state
        from ..optimize.driver import drive

        bundle = with_dynamics(load_bundle(bundle_dir), dynamics)
        data = load_dataset(dataset, "train", data_path)
        idx = training_subset(len(data), subset, seed)
        x, labels = network_input(bundle, data.images[idx]), data.labels[idx]
        objective = Objective(bundle, x, labels, timesteps, a_max=1.0, lambdas=lambdas, comm=comm)
        if pin is not None:
            objective = PinnedObjective(objective, pin)
        cfg = OptimizeConfig(phases=tuple(phases), budgets=tuple(budgets), v0_init=v0_init, seed=seed,
                             neuron_order=neuron_order)
        t0 = time.perf_counter()
        earlier = 0.0  # evaluation time of the interrupted runs this one resumes

        def optimize():
            nonlocal earlier
            state = load_state(d)
            resume = state is not None
            if resume:
                earlier = sum(e["seconds"] for e in state["history"])
                log(f"[resume] optimizer checkpoint in {d} ({len(state['history'])} calls, "
                    f"{earlier / 60:.1f} min of evaluations)")
            run_info = {"bundle": config["bundle"], "subset": subset, "timesteps": timesteps,
                        "pin": config["pin"], "dynamics": dynamics}
            return Optimizer(objective, cfg, d, run_info=run_info).run(resume=resume)

        result = drive(objective, comm, optimize)
        if comm.rank != 0:
            return {}
        best = result.state
        if pin is not None:
            best = objective.pinned(best)
        optimized = objective.bundle(best)
        save_bundle(optimized, d / "bundle")
        keep = ("loss", "M_e", "P_l", "P_p", "peak_accuracy", "events_per_sample")
        return {"bundle": str(d / "bundle"), "start": {k: result.start[k] for k in keep},
                "best": {k: result.best[k] for k in keep}, "evaluations": result.evaluations,
                # over every run it took: this one's wall time plus the checkpointed evaluation time of the
                # runs it resumed (their lost, uncheckpointed calls were redone in this one)
                "wall_time_s": round(time.perf_counter() - t0 + earlier, 3),
                "wall_time_s_earlier_runs": round(earlier, 3),
                "start_state_v0": FullState.start(objective.hidden, v0_init).v0[0][:1].tolist()}

    out = collective_cached(directory, config, run, comm, log, resumes=True)
    if comm.size > 1:
        out = comm.bcast(out, root=0)
    return out


def evaluate_stage(directory: Path, bundle_dir: str, *, dataset: str, data_path: str | None, test_limit: int,
                   timesteps: int, v0: float | None, comm, dynamics: str | None = None,
                   a_max_bundle: str | None = None, log=print) -> dict:
    """Simulate a bundle on the first ``test_limit`` test images (:func:`distributed_evaluate`).

    ``v0`` (a fraction of the threshold) replaces every hidden layer's V0 (None: the bundle's own).
    a_max is the ANN accuracy on the same images of ``a_max_bundle`` (default: this bundle), so the
    variants of one model share one reference. Result: the evaluation JSON (curves and metrics).
    """
    config = {"stage": "evaluate", "bundle": file_digest(Path(bundle_dir)), "dataset": dataset,
              "test_limit": test_limit, "timesteps": timesteps, "v0": v0, "dynamics": dynamics,
              "a_max_bundle": None if a_max_bundle is None else file_digest(Path(a_max_bundle))}

    def run(d: Path) -> dict:
        import time

        from ..convert.convert import network_input
        from ..data import load_dataset
        from ..evaluate.ann import bundle_ann_accuracy
        from ..model import load_bundle
        from ..optimize import FullState, apply_state, distributed_evaluate, hidden_layers

        bundle = with_dynamics(load_bundle(bundle_dir), dynamics)
        if v0 is not None:
            hidden = hidden_layers(bundle)
            bundle = apply_state(bundle, FullState.start(hidden, v0), hidden)
        test = load_dataset(dataset, "test", data_path, limit=test_limit)
        x = network_input(bundle, test.images)
        ref = bundle if a_max_bundle is None else load_bundle(a_max_bundle)
        a_max = bundle_ann_accuracy(ref, network_input(ref, test.images), test.labels)
        t0 = time.perf_counter()
        ev = distributed_evaluate(bundle, x, test.labels, timesteps, a_max=a_max, comm=comm)
        return {**ev.to_json(), "seconds": round(time.perf_counter() - t0, 3), "a_max_source": "ANN on these images"}

    return collective_cached(directory, config, run, comm, log)
