"""Evaluate an SNN bundle: accuracy and synaptic events at every timestep, the Pareto metrics, plots.

  anytime-snn evaluate models/default --dataset mnist --split test --out runs/eval

Writes evaluation.json (every curve and metric: P_l, P_p, M_e, peak accuracy, time and events to
90/95/99 % of the ANN accuracy) and accuracy_vs_time.png / accuracy_vs_events.png. a_max is the
ANN accuracy stored in the bundle's provenance unless --a-max is given. With --backend nest|brian2|
spinnaker the network is exported through PyNN and run there (SpiNNaker dynamics; see docs/spinnaker.md).
Under MPI (`.venv/bin/mpiexec -n K anytime-snn evaluate ...`) the ranks simulate shards of the data and
rank 0 writes the outputs; the numbers are identical to a single-process run.
"""

from __future__ import annotations

import json
import shlex
import time
from pathlib import Path

HELP = "simulate a bundle on a data set: per-timestep accuracy, events, P_l, P_p, plots"


def add_data_arguments(parser, split: str) -> None:
    parser.add_argument("--dataset", default="mnist", help="mnist, fashion-mnist, cifar10, cifar100, npz, folder")
    parser.add_argument("--data-path", help="location of CIFAR batches, an npz file or an image folder")
    parser.add_argument("--split", default=split, choices=["train", "test"], help=f"default {split}")
    parser.add_argument("--limit", type=int, help="use only the first N examples")


def add_arguments(parser) -> None:
    parser.add_argument("model", help="bundle directory")
    add_data_arguments(parser, "test")
    parser.add_argument("--timesteps", type=int, help="default: the bundle's")
    parser.add_argument("--a-max", type=float, help="reference accuracy for P_l and P_p (default: the ANN's)")
    parser.add_argument("--batch-size", type=int, help="samples per compiled chunk (default: fit 512 MB)")
    parser.add_argument("--backend", default="tf", choices=["tf", "nest", "brian2", "spinnaker"],
                        help="simulator: our own batched engine (default 'tf'; --engine picks which of ours) or a "
                             "PyNN back end via the export")
    parser.add_argument("--engine", choices=["auto", "numba", "tf"], default="auto",
                        help="our engine: event-driven numba on the CPU (auto picks it when it supports every "
                             "layer) or TF/XLA (use it on a GPU). Default auto")
    parser.add_argument("--out", default="runs/evaluate", help="output directory (default runs/evaluate)")
    parser.add_argument("--record", help="also write a provenance record (command, commit, model hash, machine, "
                                         "load; the metrics and the accuracy curve) to this JSON file, e.g. "
                                         "results/NAME.json, for docs rendered from records")


def load_inputs(bundle, args):
    from ..convert.convert import network_input
    from ..data import load_dataset

    data = load_dataset(args.dataset, args.split, args.data_path, limit=args.limit)
    return network_input(bundle, data.images), data.labels, data


def run(args) -> int:
    from ..errors import ConfigError
    from ..evaluate import evaluate, evaluate_on_backend
    from ..optimize import distributed_evaluate, world
    from ..model import load_bundle
    from ..provenance import Record
    from ..report import plot_curves

    bundle = load_bundle(args.model)
    if args.timesteps is not None and args.timesteps < 1:
        raise ConfigError(f"--timesteps must be >= 1, got {args.timesteps}")
    x, labels, data = load_inputs(bundle, args)
    command = "anytime-snn " + shlex.join(getattr(args, "argv", []))
    provenance = Record(args.model, command=command) if args.record else None
    t0 = time.perf_counter()
    note = None
    comm = world()
    if args.backend == "tf" and comm.size > 1:
        ev = distributed_evaluate(bundle, x, labels, args.timesteps, a_max=args.a_max, comm=comm,
                                  max_chunk=args.batch_size, engine=args.engine)
        if comm.rank != 0:
            return 0
    elif args.backend == "tf":
        ev = evaluate(bundle, x, labels, args.timesteps, a_max=args.a_max, batch_size=args.batch_size,
                      engine=args.engine)
    else:
        ev, note = evaluate_on_backend(bundle, x, labels, args.backend, args.timesteps, a_max=args.a_max)
    seconds = time.perf_counter() - t0
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    record = {"model": str(args.model), "backend": args.backend, "dataset": data.name, "split": data.split,
              "data_hash": data.hash(), "seconds": seconds, **ev.to_json()}
    if note:
        record["note"] = note
        print(f"note: {note}")
    (out / "evaluation.json").write_text(json.dumps(record, indent=1))
    if provenance is not None:
        provenance.finish({k: v for k, v in record.items() if k not in ("events_per_step", "layer_firing_rates")})
        provenance.write(args.record)
    plot_curves({Path(args.model).name: (ev.accuracy, ev.events)}, out, a_max=ev.a_max,
                title=f"{Path(args.model).name} on {data.name} {data.split} ({len(labels)} images)")
    s = ev.summary
    print(f"{len(labels)} images x {s['timesteps']} steps in {seconds:.1f} s")
    print(f"peak accuracy {s['peak_accuracy'] * 100:.2f} % at t={s['peak_timestep']}, final {s['final_accuracy'] * 100:.2f} %,"
          f" a_max {s['a_max'] * 100:.2f} %")
    print(f"P_l {s['P_l']:.3f}  P_p {s['P_p']:.4g}  M_e {s['M_e']:.4f}  events/sample {s['events_per_sample']:.4g}")
    for frac, th in s["thresholds"].items():
        print(f"  {float(frac) * 100:.0f} % of a_max: t={th['timesteps']}, events={th['events']}")
    print(f"wrote {out}/evaluation.json and plots")
    return 0
