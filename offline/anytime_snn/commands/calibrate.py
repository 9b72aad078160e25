"""Fit per-timestep confidence calibration on held-out data and store it in the bundle.

  anytime-snn calibrate models/default --dataset mnist --split train --holdout 0.1 --limit-holdout 2000

Uses the seeded validation part of the split (the same one training holds out), simulates it,
fits one inverse temperature per timestep (minimum NLL), and writes the bundle back (or to --out)
with the expected calibration error per timestep before and after in the provenance.
"""

from __future__ import annotations

import json

import numpy as np

from .evaluate import add_data_arguments

HELP = "fit per-timestep confidence calibration on held-out data (stored in the bundle)"


def add_arguments(parser) -> None:
    parser.add_argument("model", help="bundle directory")
    add_data_arguments(parser, "train")
    parser.add_argument("--holdout", type=float, default=0.1, help="validation fraction of the split (default 0.1)")
    parser.add_argument("--seed", type=int, default=0, help="split seed (default 0, as training uses)")
    parser.add_argument("--limit-holdout", type=int, default=2000, help="held-out images used (default 2000)")
    parser.add_argument("--timesteps", type=int, help="default: the bundle's")
    parser.add_argument("--out", help="write the calibrated bundle here (default: in place)")


def run(args) -> int:
    from ..calibrate import expected_calibration_error, fit_calibration
    from ..convert.convert import network_input
    from ..data import load_dataset, validation_split
    from ..evaluate import evaluate
    from ..model import load_bundle, save_bundle
    from ..sim.readout import class_scores

    bundle = load_bundle(args.model)
    data = load_dataset(args.dataset, args.split, args.data_path, limit=args.limit)
    _, val = validation_split(len(data), args.holdout, args.seed)
    val = val[: args.limit_holdout]
    x, labels = network_input(bundle, data.images[val]), data.labels[val]
    steps = args.timesteps or bundle.timesteps
    ev = evaluate(bundle, x, labels, steps, keep_v_out=True)
    cal = fit_calibration(ev.v_out, labels)
    t = np.arange(1, steps + 1)
    before = [expected_calibration_error(class_scores(ev.v_out[i], t[i], bundle.calibration), labels) for i in range(steps)]
    after = [expected_calibration_error(class_scores(ev.v_out[i], t[i], cal), labels) for i in range(steps)]
    bundle.calibration = cal
    bundle.provenance["calibration"] = {
        "dataset": data.name, "split": data.split, "holdout_fraction": args.holdout, "seed": args.seed,
        "samples": len(labels), "timesteps": steps, "data_hash": data.hash(),
        "ece_before": [round(v, 5) for v in before], "ece_after": [round(v, 5) for v in after],
    }
    out = args.out or args.model
    save_bundle(bundle, out)
    pick = sorted({0, steps // 4, steps // 2, steps - 1})
    print(json.dumps({f"t={i + 1}": {"ece_before": round(before[i], 4), "ece_after": round(after[i], 4),
                                     "accuracy": round(float(ev.accuracy[i]), 4)} for i in pick}, indent=1))
    print(f"mean ECE {np.mean(before):.4f} -> {np.mean(after):.4f}; wrote {out}")
    return 0
