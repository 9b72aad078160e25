"""Seconds per L_SNN evaluation of the optimizer, in one process or across MPI ranks.

  .venv/bin/python benchmarks/bench_optimize.py --subset 1000 --timesteps 50 [--engine numba|tf]
  .venv/bin/mpiexec -n 2 .venv/bin/python benchmarks/bench_optimize.py --subset 1000 --timesteps 50
  .venv/bin/python benchmarks/bench_optimize.py --neuron-steps 200 --model runs/sparsity/dense/snn [--step-layer 1]
  .venv/bin/python benchmarks/bench_optimize.py --compare BASELINE OTHER... --test-images 2000
  ... [--model DIR] [--record results/NAME.json]   (--model: default models/default; a missing bundle is an error)

Evaluates the start point and a few seeded perturbations of it (neuron-level log eta and V0) on the
model ``--model`` (default: the bundled dense MNIST model), after one warm-up evaluation (XLA compilation).
Prints one JSON line:
seconds per evaluation (median) and every loss, so runs at different rank counts can be checked
for bit-identical objective values.

With --neuron-steps N, evaluates N steps like those of the neuron phase's first Subplex sweep instead
(the log eta of a pair of neighbouring neurons of hidden layer --step-layer, default 0, changed per
evaluation, 8 evaluations per pair, pairs in order) twice, interleaved: with the incremental simulator (only the
samples the step reaches are simulated again) and with full runs. It checks that both give the same losses and prints
both medians and their ratio.

With --compare, evaluates bundles on the first N MNIST test images instead and prints, for each,
P_l, P_p, peak accuracy (a_max = the ANN's accuracy on those images, and a_max = 1) and the ratios
baseline / bundle.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))

from record import Record, model_identity, require_model  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default=str(ROOT / "models" / "default"))
    p.add_argument("--subset", type=int, default=1000)
    p.add_argument("--timesteps", type=int, default=50)
    p.add_argument("--evals", type=int, default=4)
    p.add_argument("--threads", type=int)
    p.add_argument("--engine", default="auto", choices=["auto", "numba", "tf"], help="simulator (default auto = numba)")
    p.add_argument("--json", help="append the result line to this file")
    p.add_argument("--neuron-steps", type=int, default=0, help="benchmark N neuron-phase steps, incremental vs full")
    p.add_argument("--step-layer", type=int, default=0, help="the hidden layer whose neurons the steps change")
    p.add_argument("--compare", nargs="+", metavar="BUNDLE", help="baseline bundle, then the bundles to compare")
    p.add_argument("--test-images", type=int, default=2000)
    p.add_argument("--record", help="write the numbers with their provenance (command, commit, model hash, machine, "
                                    "load) to this JSON file (rank 0)")
    args = p.parse_args()
    if args.compare:
        args.compare = [str(require_model(b, "--compare")) for b in args.compare]
    else:
        args.model = str(require_model(args.model))
    args.provenance = Record(None if args.compare else args.model)
    if args.compare:
        return compare(args)

    from anytime_snn.convert.convert import network_input
    from anytime_snn.data import load_dataset
    from anytime_snn.model import load_bundle
    from anytime_snn.optimize import FullState, Objective, world
    from anytime_snn.train import configure_tensorflow

    comm = world()
    configure_tensorflow(args.threads or max(1, (os.cpu_count() or 1) // comm.size))
    bundle = load_bundle(args.model)
    data = load_dataset("mnist", "train")
    idx = np.sort(np.random.Generator(np.random.PCG64(0)).permutation(len(data))[:args.subset])
    obj = Objective(bundle, network_input(bundle, data.images[idx]), data.labels[idx], args.timesteps,
                    a_max=bundle.provenance["ann_accuracy"], comm=comm, engine=args.engine, threads=args.threads)
    if comm.rank:
        obj.serve()
        return 0
    if args.neuron_steps:
        full = None if comm.size > 1 else Objective(bundle, obj.sim.x, obj.sim.labels, args.timesteps, a_max=obj.a_max,
                                                    engine=args.engine, threads=args.threads, incremental=False)
        return neuron_steps(args, obj, full)
    rng = np.random.default_rng(0)
    start = FullState.start(obj.hidden, 0.5)
    states = [start] + [FullState([e + rng.normal(0, 0.1, e.shape) for e in start.log_eta],
                                  [np.clip(v + rng.normal(0, 0.1, v.shape), 0, 1) for v in start.v0])
                        for _ in range(args.evals - 1)]
    t0 = time.perf_counter()
    obj(start)  # warm-up: compilation
    warm = time.perf_counter() - t0
    seconds, losses = [], []
    cpu = time.process_time()
    for s in states:
        t0 = time.perf_counter()
        losses.append(obj(s).loss)
        seconds.append(time.perf_counter() - t0)
    cpu = time.process_time() - cpu
    obj.close()
    out = {"model": model_identity(args.model), "engine": obj.sim.engine_name, "ranks": comm.size,
           "threads_per_rank": threads_per_rank(args, comm),
           "subset": args.subset, "timesteps": args.timesteps, "chunk": obj.sim.plan.chunk,
           "first_eval_s": warm, "seconds_per_eval_median": statistics.median(seconds), "seconds": seconds,
           "losses": [repr(v) for v in losses], "load_avg_1min": os.getloadavg()[0],
           "cpu_seconds_per_eval_rank0": cpu / len(states)}
    print(json.dumps(out))
    if args.json:
        with open(args.json, "a") as f:
            f.write(json.dumps(out) + "\n")
    write_record(args, out)
    return 0


def threads_per_rank(args, comm) -> int:
    """The engine threads of each rank: ``--threads``, or the machine's cores shared among the ranks."""
    return args.threads or max(1, (os.cpu_count() or 1) // comm.size)


def neuron_steps(args, inc, full) -> int:
    """Neuron-phase steps, incremental and full interleaved on the same states (one process), or
    incremental only across MPI ranks (``full`` None; compare its losses with a one-process run's)."""
    from anytime_snn.optimize import FullState

    rng = np.random.default_rng(0)
    state = FullState.start(inc.hidden, 0.5)
    runs = [("incremental", inc)] + ([("full", full)] if full is not None else [])
    for _, obj in runs:  # warm-up: compilation and the incremental simulator's cache
        obj(state)
    seconds = {name: [] for name, _ in runs}
    losses = []
    for step in range(args.neuron_steps):
        state = FullState([v.copy() for v in state.log_eta], [v.copy() for v in state.v0])
        j = 2 * (step // 8)
        state.log_eta[args.step_layer][j:j + 2] += rng.normal(0, 0.25, 2)
        step_losses = []
        for name, obj in runs:
            t0 = time.perf_counter()
            step_losses.append(obj(state).loss)
            seconds[name].append(time.perf_counter() - t0)
        if step_losses.count(step_losses[0]) != len(step_losses):
            raise SystemExit(f"step {step}: incremental loss {step_losses[0]!r} != full loss {step_losses[1]!r}")
        losses.append(step_losses[0])
    inc.close()
    stats = inc.sim.incremental.stats  # rank 0's shard
    med = {k: statistics.median(v) for k, v in seconds.items()}
    out = {"mode": "neuron-steps", "model": model_identity(args.model), "engine": inc.sim.engine_name,
           "ranks": inc.comm.size, "threads_per_rank": threads_per_rank(args, inc.comm), "subset": args.subset,
           "timesteps": args.timesteps, "steps": args.neuron_steps, "step_layer": args.step_layer,
           "seconds_per_eval_median": med, "simulator": type(inc.sim.incremental).__name__,
           "losses": [repr(v) for v in losses], "load_avg_1min": os.getloadavg()[0]}
    if hasattr(stats, "readout_runs"):  # sample-level incremental runs (dense chains)
        out |= {"readout_runs_rank0": stats.readout_runs,
                "samples_simulated_fraction_rank0": (stats.samples_simulated
                                                     - stats.samples_total // (args.neuron_steps + 1))
                / (stats.samples_total - stats.samples_total // (args.neuron_steps + 1))}
    else:  # prefix runs: program rows skipped per step (the warm-up's full run excluded)
        out |= {"rows_skipped_per_step_rank0": stats.rows_skipped / args.neuron_steps,
                "prefixes_kept_rank0": stats.recorded, "program_rows": len(inc.sim.engine.prog),
                "step_layer_name": inc.hidden[args.step_layer].name,
                "channels_per_hidden_layer": [h.channels for h in inc.hidden]}
    if full is not None:
        out |= {"full_over_incremental": med["full"] / med["incremental"], "losses_identical": True}
    print(json.dumps(out))
    if args.json:
        with open(args.json, "a") as f:
            f.write(json.dumps(out) + "\n")
    write_record(args, out)
    return 0


def compare(args) -> int:
    from anytime_snn import metrics
    from anytime_snn.convert.convert import network_input
    from anytime_snn.convert.normalize import ann_forward
    from anytime_snn.data import load_dataset
    from anytime_snn.model import load_bundle
    from anytime_snn.optimize import distributed_evaluate
    from anytime_snn.train import configure_tensorflow

    configure_tensorflow(args.threads or os.cpu_count() or 1)
    test = load_dataset("mnist", "test", limit=args.test_images)
    rows = []
    for path in args.compare:
        b = load_bundle(path)
        x = network_input(b, test.images)
        ann = float((ann_forward(b.layers, x).argmax(1) == test.labels).mean())
        ev = distributed_evaluate(b, x, test.labels, args.timesteps, a_max=ann)
        row = {"bundle": path, "model": model_identity(path), "images": len(test), "timesteps": args.timesteps,
               "ann_accuracy": ann,
               "peak_accuracy": float(ev.accuracy.max()), "peak_timestep": int(ev.accuracy.argmax()) + 1,
               "final_accuracy": float(ev.accuracy[-1]), "events_per_sample": float(ev.events.sum()),
               "P_l": metrics.pareto_latency(ev.accuracy, ann),
               "P_p": metrics.pareto_power(ev.accuracy, ev.events, ann),
               "P_l_amax1": metrics.pareto_latency(ev.accuracy, 1.0),
               "P_p_amax1": metrics.pareto_power(ev.accuracy, ev.events, 1.0),
               "accuracy_at": {t: float(ev.accuracy[t - 1]) for t in (1, 2, 3, 5, 10, 20, 50) if t <= args.timesteps}}
        rows.append(row)
    base = rows[0]
    for row in rows:
        for k in ("P_l", "P_p", "P_l_amax1", "P_p_amax1"):
            row[f"{k}_ratio_baseline_over_this"] = base[k] / row[k] if row[k] else None
        print(json.dumps(row))
    if args.json:
        with open(args.json, "a") as f:
            for row in rows:
                f.write(json.dumps(row) + "\n")
    write_record(args, {"rows": rows})
    return 0


def write_record(args, numbers: dict) -> None:
    if args.record:
        args.provenance.finish(numbers)
        args.provenance.write(args.record)


if __name__ == "__main__":
    sys.exit(main())
