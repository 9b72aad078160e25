"""Optimize firing-rate scales H and initial potentials V0 with NLopt Subplex (paper 5.2-5.3).

  anytime-snn optimize models/default --out runs/opt --budgets 100,1000,10000 --subset 1000
  .venv/bin/mpiexec -n 2 .venv/bin/anytime-snn optimize models/default --out runs/opt   # 2 MPI ranks
  anytime-snn optimize models/default --out runs/opt --resume                           # after a crash
  anytime-snn optimize runs/dense/model.keras --out runs/opt       # Keras model: convert, then optimize

Minimizes L_SNN = lambda_e M_e + lambda_l P_l + lambda_p P_p on a seeded subset of the training
split, in phases of increasing granularity (model, layer, neuron), each from the previous phase's
best point. The start point is the bundle as converted (eta = 1) with V0 = --v0-init. A checkpoint
is written to DIR every --checkpoint-every simulations; --resume continues exactly.

Writes DIR/bundle (the optimized bundle; its provenance records the optimization), DIR/history.json
(every objective call), DIR/plots/ (accuracy vs time and vs events before/after, loss vs
evaluations). See docs/optimize.md.
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import sys
from pathlib import Path

import numpy as np

HELP = "optimize firing-rate scales and initial potentials (NLopt Subplex, checkpointed, MPI)"


def _floats(text: str, name: str) -> list[float]:
    from ..errors import ConfigError

    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError as e:
        raise ConfigError(f"{name} must be comma-separated numbers, got {text!r}") from e


def add_arguments(parser) -> None:
    parser.add_argument("model", help="bundle directory (the start point, e.g. from `anytime-snn convert`), or a "
                        "trained Keras model (.keras), converted first with `convert`'s defaults into DIR/converted")
    parser.add_argument("--out", required=True, metavar="DIR", help="output and checkpoint directory")
    parser.add_argument("--phases", default="model,layer,neuron", help="granularities in order (default model,layer,neuron)")
    parser.add_argument("--budgets", default="100,1000,10000",
                        help="objective evaluations per phase (default 100,1000,10000 as the paper)")
    parser.add_argument("--subset", type=int, default=1000, help="training images simulated per evaluation (default 1000)")
    parser.add_argument("--timesteps", type=int, help="timesteps per evaluation (default: the bundle's)")
    parser.add_argument("--lambdas", default="100,1,1e-5",
                        help="lambda_e,lambda_l,lambda_p of L_SNN (default 100,1,1e-5; see docs/optimize.md)")
    parser.add_argument("--dynamics", choices=["nl-iaf", "spinnaker"],
                        help="neuron dynamics to optimize under (default: the bundle's own)")
    parser.add_argument("--v0-init", type=float, default=0.5,
                        help="initial V0 as a fraction of the threshold (default 0.5, high-entropy)")
    parser.add_argument("--neuron-order", choices=["input-first", "output-first"], default="input-first",
                        help="order of Subplex's sweep over the neuron phase's coordinates (default input-first: "
                             "hidden layer 1 first). output-first starts at the last hidden layer, whose steps "
                             "need no re-simulation (docs/optimize.md)")
    parser.add_argument("--a-max", default="1", metavar="1|ann|provenance|ACC",
                        help="a_max of P_l and P_p: 1 (default: every step's shortfall from perfect accuracy, so "
                             "extra events never lower the loss), 'ann' the ANN's accuracy on the very images "
                             "simulated, 'provenance' the ANN test accuracy recorded in the bundle, or a number. "
                             "Reports on test images (--test-limit) always use the ANN's accuracy on them")
    parser.add_argument("--seed", type=int, default=0, help="subset selection and NLopt seed (default 0)")
    parser.add_argument("--resume", action="store_true", help="continue the checkpoint in --out")
    parser.add_argument("--checkpoint-every", type=int, default=10, metavar="N",
                        help="simulated evaluations between checkpoints (default 10)")
    parser.add_argument("--dataset", default="mnist", help="training data set (default mnist)")
    parser.add_argument("--data-path", help="location of CIFAR batches, an npz file or an image folder")
    parser.add_argument("--test-limit", type=int, default=0, metavar="N",
                        help="also evaluate before/after on the first N test images (default 0: skip)")
    parser.add_argument("--engine", choices=["auto", "numba", "tf"], default="auto",
                        help="simulator: the event-driven CPU engine (numba; auto picks it when it supports every "
                             "layer) or the TF/XLA engine (tf; use it on a GPU). Default auto")
    parser.add_argument("--batch-size", type=int, help="samples per chunk (TF engine default: fit 512 MB)")
    parser.add_argument("--threads", type=int, help="threads per rank (default: cores / ranks)")
    parser.add_argument("--quiet", action="store_true", help="no progress display")


def _model_digest(bundle) -> str:
    """sha256 of the start model's structure and tensors: a checkpoint resumes only on the same model."""
    h = hashlib.sha256()
    for layer in bundle.layers:
        h.update(repr((layer.name, layer.kind, tuple(layer.strides), layer.padding, getattr(layer, "pool_size", None),
                       getattr(layer, "pad", None), getattr(layer, "skip", None), layer.output)).encode())
        for k in ("weights", "bias", "skip_weights"):
            value = getattr(layer, k, None)
            if value is not None:
                h.update(np.ascontiguousarray(value, np.float32).tobytes())
    return h.hexdigest()


def _a_max(choice: str, bundle, x, labels) -> float:
    """The reference accuracy: the ANN on these images, the recorded ANN test accuracy, or a number."""
    from ..errors import ConfigError
    from ..evaluate.ann import bundle_ann_accuracy

    if choice == "ann":
        return bundle_ann_accuracy(bundle, x, labels)
    if choice == "provenance":
        if "ann_accuracy" not in bundle.provenance:
            raise ConfigError("the bundle records no ANN accuracy (provenance.ann_accuracy): use --a-max ann")
        return float(bundle.provenance["ann_accuracy"])
    try:
        value = float(choice)
    except ValueError:
        raise ConfigError(f"--a-max must be 'ann', 'provenance' or an accuracy in (0, 1], got {choice!r}") from None
    if not 0 < value <= 1:
        raise ConfigError(f"--a-max must be an accuracy in (0, 1], got {value}")
    return value


def _converted(args, comm) -> Path:
    """A Keras model is first converted with `anytime-snn convert`'s defaults into DIR/converted (once)."""
    import argparse

    from ..optimize.driver import on_rank0
    from . import convert as convert_command

    target = Path(args.out) / "converted"

    def convert() -> None:
        if (target / "manifest.json").is_file():
            return
        parser = argparse.ArgumentParser()
        convert_command.add_arguments(parser)
        argv = [str(args.model), "--out", str(target), "--dataset", args.dataset]
        argv += ["--data-path", args.data_path] if args.data_path else []
        convert_command.run(parser.parse_args(argv))

    on_rank0(comm, convert)
    return target


def _fmt_time(s: float) -> str:
    s = int(round(s))
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


class Progress:
    """One status line per call on a terminal, else a line every ~5 % of a phase and at phase ends."""

    def __init__(self, quiet: bool):
        self.quiet, self.tty = quiet, sys.stderr.isatty()

    def __call__(self, info: dict) -> None:
        if self.quiet:
            return
        e, b = info["entry"], info["best"]
        line = (f"[{info['phase']} {info['call']}/{info['budget']}] loss {e['loss']:.4g} best {b['loss']:.4g} "
                f"(P_l {b['P_l']:.3f}, P_p {b['P_p']:.4g}, peak acc {b['peak_accuracy'] * 100:.2f} %) "
                f"| {info['seconds_per_eval']:.2f} s/eval, ETA {_fmt_time(info['eta_s'])}")
        if self.tty:
            print("\r" + line[:160].ljust(160), end="", file=sys.stderr, flush=True)
            if info["call"] == info["budget"]:
                print(file=sys.stderr)
        elif info["call"] % max(1, info["budget"] // 20) == 0 or info["call"] == info["budget"]:
            print(line, file=sys.stderr, flush=True)


def run(args) -> int:
    from ..convert.convert import network_input
    from ..data import load_dataset
    from ..dynamics import with_dynamics
    from ..errors import ConfigError
    from ..model import load_bundle
    from ..optimize import FullState, Objective, OptimizeConfig, Optimizer, ShardedSimulator, training_subset, world
    from ..optimize.driver import drive
    from ..optimize.parallel import evaluation
    from ..train import configure_tensorflow

    comm = world()
    configure_tensorflow(args.threads or max(1, (os.cpu_count() or 1) // comm.size))
    if args.subset < 1:
        raise ConfigError(f"--subset must be >= 1, got {args.subset}")
    phases = [p.strip() for p in args.phases.split(",") if p.strip()]
    budgets = _floats(args.budgets, "--budgets")
    if any(b != int(b) for b in budgets):
        raise ConfigError(f"--budgets must be whole numbers, got {args.budgets!r}")
    config = OptimizeConfig(phases=phases, budgets=[int(b) for b in budgets], v0_init=args.v0_init, seed=args.seed,
                            checkpoint_every=args.checkpoint_every, neuron_order=args.neuron_order)
    lambdas = _floats(args.lambdas, "--lambdas")

    bundle = load_bundle(_converted(args, comm) if str(args.model).endswith(".keras") else args.model)
    bundle = with_dynamics(bundle, args.dynamics)
    timesteps = args.timesteps or bundle.timesteps
    if timesteps < 1:
        raise ConfigError(f"--timesteps must be >= 1, got {timesteps}")
    data = load_dataset(args.dataset, "train", args.data_path)
    if args.subset > len(data):
        raise ConfigError(f"--subset {args.subset} is larger than the training split ({len(data)} images)")
    idx = training_subset(len(data), args.subset, args.seed)
    x, labels = network_input(bundle, data.images[idx]), data.labels[idx]
    a_max = _a_max(args.a_max, bundle, x, labels)
    objective = Objective(bundle, x, labels, timesteps, a_max=a_max, lambdas=lambdas, comm=comm,
                          max_chunk=args.batch_size, engine=args.engine, threads=args.threads)
    weights_digest = _model_digest(bundle)
    run_info = {"model_weights_sha256": weights_digest, "dataset": data.name, "data_hash": data.hash(),
                "subset": args.subset, "timesteps": timesteps, "lambdas": list(objective.lambdas), "a_max": a_max,
                "dynamics": args.dynamics or "bundle", "a_max_rule": args.a_max,
                "engine": objective.sim.engine_name}  # engines round differently: resume only on the same one
    out = Path(args.out)

    curves = {}

    def optimize():
        if not args.quiet:
            print(f"optimizing {args.model}: {objective.samples} training images x {timesteps} steps, "
                  f"{comm.size} rank(s), phases {','.join(phases)} budgets {args.budgets}", file=sys.stderr)
        result = Optimizer(objective, config, out, run_info=run_info, progress=Progress(args.quiet)).run(args.resume)
        for label, state in (("before", FullState.start(objective.hidden, config.v0_init)), ("after", result.state)):
            m = objective(state)
            curves[label] = (m.accuracy, m.events)
        return result

    result = drive(objective, comm, optimize)
    # Every rank: the final state, then the optional test evaluation (collective).
    best_flat = result.state.flat() if comm.rank == 0 else np.zeros(objective.size)
    comm.Bcast(best_flat, root=0)
    best = FullState.from_flat(objective.hidden, best_flat)
    start = FullState.start(objective.hidden, config.v0_init)
    tests = {}
    if args.test_limit:
        test = load_dataset(args.dataset, "test", args.data_path, limit=args.test_limit)
        xt = network_input(bundle, test.images)
        a_max_test = _a_max("ann", bundle, xt, test.labels)
        sim = ShardedSimulator(bundle, xt, test.labels, timesteps, comm=comm, max_chunk=args.batch_size,
                               engine=args.engine, threads=args.threads, incremental=False)
        for label, state in (("before", start), ("after", best)):
            optimized = objective.bundle(state)
            tests[label] = evaluation(sim.run(optimized), optimized, a_max_test)
    if comm.rank != 0:
        return 0
    return _write_outputs(args, out, objective, bundle, config, run_info, result, best, curves, tests)


def _write_outputs(args, out, objective, bundle, config, run_info, result, best, curves, tests) -> int:
    import copy

    from ..model import save_bundle
    from ..optimize.plots import plot_loss
    from ..report import plot_curves

    optimized = objective.bundle(best)
    optimized.provenance = copy.deepcopy(bundle.provenance)
    summary = {
        "method": "NLopt LN_SBPLX, phases of increasing granularity over log eta and V0 (paper 5.2-5.3)",
        "command": "anytime-snn optimize " + " ".join(shlex.quote(a) for a in sys.argv[2:]),
        "start_model": str(args.model), "config": config.identity(), "run": run_info,
        "phases": result.phases, "evaluations": result.evaluations,
        "start": {k: v for k, v in result.start.items() if k not in ("call", "cached", "seconds")},
        "best": {k: v for k, v in result.best.items() if k not in ("call", "cached", "seconds")},
        "test": {k: ev.summary for k, ev in tests.items()},
    }
    optimized.provenance["optimization"] = summary
    save_bundle(optimized, out / "bundle")
    record = {**summary, "seconds_this_run": result.seconds, "simulated_this_run": result.simulated,
              "history": result.history,
              "curves": {k: {"accuracy": a.tolist(), "events_per_step": e.tolist()} for k, (a, e) in curves.items()},
              "test_curves": {k: ev.to_json() for k, ev in tests.items()}}
    (out / "history.json").write_text(json.dumps(record, indent=1))
    plots = out / "plots"
    plot_curves(curves, plots, a_max=objective.a_max,
                title=f"before/after on {objective.samples} training images (optimization subset)")
    if tests:
        plot_curves({k: (ev.accuracy, ev.events) for k, ev in tests.items()}, plots / "test", a_max=tests["after"].a_max,
                    title=f"before/after on {tests['after'].samples} test images")
    plot_loss(result.history, plots / "loss_vs_evaluations.png")
    s, b = result.start, result.best
    print(f"start: loss {s['loss']:.4g}  P_l {s['P_l']:.3f}  P_p {s['P_p']:.4g}  peak {s['peak_accuracy'] * 100:.2f} %")
    print(f"best:  loss {b['loss']:.4g}  P_l {b['P_l']:.3f}  P_p {b['P_p']:.4g}  peak {b['peak_accuracy'] * 100:.2f} %"
          f"  ({result.evaluations} calls, {result.simulated} simulated in this run, {result.seconds:.0f} s)")
    for k, ev in tests.items():
        t = ev.summary
        print(f"test {k}: P_l {t['P_l']:.3f}  P_p {t['P_p']:.4g}  peak {t['peak_accuracy'] * 100:.2f} %")
    print(f"wrote {out}/bundle, {out}/history.json and {plots}/")
    return 0
