#!/usr/bin/env python
"""Does a smaller training subset rank parameter sets as a large one does? (issue 18: a cheaper optimizer evaluation)

    .venv/bin/python benchmarks/subset_rank.py --model BUNDLE [--dataset mnist] [--sizes 250,500,1000]
        [--reference 4000] [--states 24] [--timesteps 50] [--record results/NAME.json]

L_SNN (a_max = 1 and the default lambdas, as ``reproduce``'s optimization stage) of ``--states`` parameter sets,
each on the optimizer's own subset of each size (``training_subset(n, size, seed 0)``, as ``reproduce`` draws it)
and on a larger reference set drawn with another seed. The states: the start point (eta = 1, V0 = 0.5 of the
threshold) and seeded random moves of it, a layer-level step of log eta and V0 per hidden layer (what the model
and layer phases move) plus per-channel noise (what the neuron phase adds). For each size: Spearman's rank
correlation of its losses with the reference's, the regret (the reference loss of the state it ranks best,
minus the reference's best) and the seconds per evaluation. Subplex only compares losses, so a subset that
ranks the states as the reference does steers it the same way, at a fraction of the cost.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from record import Record, require_model  # noqa: E402


def ranks(values: np.ndarray) -> np.ndarray:
    """Ranks 0..n-1 (ties broken by position; losses of different states are continuous)."""
    out = np.empty(len(values))
    out[np.argsort(values, kind="stable")] = np.arange(len(values))
    return out


def spearman(a, b) -> float:
    return float(np.corrcoef(ranks(np.asarray(a)), ranks(np.asarray(b)))[0, 1])


def states(hidden, count: int, seed: int = 0) -> list:
    """The start point and ``count - 1`` seeded moves of it (log eta in the optimizer's box, V0 in [0, 0.95 theta])."""
    from anytime_snn.optimize import FullState

    rng = np.random.default_rng(seed)
    start = FullState.start(hidden, 0.5)
    out = [start]
    for _ in range(count - 1):
        log_eta = [np.clip(e + rng.normal(0, 0.3) + rng.normal(0, 0.1, e.shape), -3, 3) for e in start.log_eta]
        v0 = [np.clip(v + (rng.uniform(-0.4, 0.4) + rng.normal(0, 0.05, v.shape)) * h.threshold, 0, 0.95 * h.threshold)
              for v, h in zip(start.v0, hidden)]
        out.append(FullState(log_eta, v0))
    return out


def losses(bundle, data, idx: np.ndarray, timesteps: int, sets: list) -> tuple[list[float], float]:
    """L_SNN of every state on images ``idx``, and the median seconds per evaluation (after a warm-up)."""
    from anytime_snn.convert.convert import network_input
    from anytime_snn.optimize import Objective

    obj = Objective(bundle, network_input(bundle, data.images[idx]), data.labels[idx], timesteps, a_max=1.0,
                    incremental=False)
    obj(sets[0])  # warm-up: compilation
    out, seconds = [], []
    for s in sets:
        t0 = time.perf_counter()
        out.append(obj(s).loss)
        seconds.append(time.perf_counter() - t0)
    obj.close()
    return out, statistics.median(seconds)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True)
    ap.add_argument("--dataset", default="mnist")
    ap.add_argument("--sizes", default="250,500,1000")
    ap.add_argument("--reference", type=int, default=4000, help="images of the reference set (drawn with seed 1)")
    ap.add_argument("--states", type=int, default=24)
    ap.add_argument("--timesteps", type=int, default=50)
    ap.add_argument("--record")
    args = ap.parse_args()
    model = require_model(args.model)
    record = Record(model)

    from anytime_snn.data import load_dataset
    from anytime_snn.model import load_bundle
    from anytime_snn.optimize import hidden_layers, training_subset

    bundle = load_bundle(model)
    data = load_dataset(args.dataset, "train")
    sets = states(hidden_layers(bundle), args.states)
    ref, ref_seconds = losses(bundle, data, training_subset(len(data), args.reference, 1), args.timesteps, sets)
    best = float(np.min(ref))
    rows = []
    for size in (int(v) for v in args.sizes.split(",")):
        got, seconds = losses(bundle, data, training_subset(len(data), size, 0), args.timesteps, sets)
        rows.append({"size": size, "spearman": spearman(got, ref), "regret": float(ref[int(np.argmin(got))]) - best,
                     "seconds_per_eval": seconds, "losses": got})
        print(f"{size} images: Spearman {rows[-1]['spearman']:.3f}, regret {rows[-1]['regret']:.4f}, "
              f"{seconds:.2f} s per evaluation", flush=True)
    out = {"model": str(args.model), "dataset": args.dataset, "timesteps": args.timesteps, "states": args.states,
           "reference": {"size": args.reference, "seed": 1, "seconds_per_eval": ref_seconds, "losses": ref,
                         "loss_range": [best, float(np.max(ref))]}, "subsets": rows}
    print(json.dumps(out))
    if args.record:
        record.finish(out)
        record.write(args.record)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
