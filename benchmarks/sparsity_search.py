#!/usr/bin/env python
"""Search for sparsity fine-tuning settings that keep a net's ANN accuracy (issue 18, part 3; docs/sparsity.md).

    .venv/bin/python benchmarks/sparsity_search.py [--net small] [--grid 0,0.25,0.5,1] [--epochs 2]
        [--record results/sparsity_search_small.json]

Trains the net once (deterministic: seeded, TF op determinism), then fine-tunes a copy for every pair
(lambda_a, lambda_w) = (a x default, w x default) of the grid, and reports the ANN test accuracy and
activation sparsity before and after each (the SNN is not simulated: ``snn_samples`` 0).

``--net small``: the test suite's net (conv 8 -> pool -> conv 16 -> pool -> dense 32 -> 10, 3 epochs on
5,000 MNIST training images, 500 test images), which lost 6 points with the default lambdas.
``--net paper``: the default conv layout (32-32-pool-64-64-pool-256), 4 epochs on all of MNIST.
``--net dense``: the dense MNIST net (784-1200-1200-10), 10 epochs at learning rate 0.05 on all of MNIST, as
``anytime-snn reproduce fig5`` trains it (pass that run's ``stages/dense-mnist/train/model.keras`` as ``--model``).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from record import Record  # noqa: E402

NETS = {
    "small": {"yaml": "arch:\n  kind: conv\n  filters: [8, pool, 16, pool]\n  hidden: [32]\n",
              "train": ["--epochs", "3", "--train-limit", "5000", "--learning-rate", "0.1", "--test-limit", "500"]},
    "paper": {"yaml": "arch:\n  kind: conv\n", "train": ["--epochs", "4"]},
    "dense": {"yaml": "arch:\n  kind: dense\n", "train": ["--epochs", "10", "--learning-rate", "0.05"]},
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--net", choices=sorted(NETS), default="small")
    ap.add_argument("--grid", default="0,0.25,0.5,1", help="multiples of the default lambdas (both axes)")
    ap.add_argument("--pairs", help="explicit A:W multiples instead of the full grid, e.g. 0:0,1:0,0:1")
    ap.add_argument("--absolute", action="store_true", help="--pairs are lambda values, not multiples of the defaults")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--learning-rate", type=float, default=0.01)
    ap.add_argument("--bn-samples", type=int, default=2000)
    ap.add_argument("--model", type=Path, help="an already trained .keras (with its .json record) instead of training")
    ap.add_argument("--record", type=Path)
    args = ap.parse_args()

    import keras

    from anytime_snn.cli import main as cli
    from anytime_snn.train.finetune import finetune
    from anytime_snn.train.penalties import default_lambdas

    record = Record()
    work = Path(tempfile.mkdtemp(prefix="sparsity_search_"))
    net = NETS[args.net]
    model = args.model
    if model is None:
        model = work / "net.keras"
        (work / "net.yaml").write_text(net["yaml"])
        if cli(["train", "--config", str(work / "net.yaml"), *net["train"], "--seed", "0", "--out", str(model),
                "--quiet"]) != 0:
            sys.exit("training failed")
    la0, lw0 = default_lambdas(keras.models.load_model(model))
    if args.pairs:
        pairs = [tuple(float(v) for v in p.split(":")) for p in args.pairs.split(",")]
    else:
        grid = [float(v) for v in args.grid.split(",")]
        pairs = [(a, w) for a in grid for w in grid]
    rows = []
    if args.absolute:
        if not args.pairs:
            sys.exit("--absolute needs --pairs")
        pairs = [(a / la0, w / lw0) for a, w in pairs]
    for a, w in pairs:
        t0 = time.perf_counter()
        rec = finetune(model, work / f"sparse_{a:g}_{w:g}.keras", lambda_a=a * la0, lambda_w=w * lw0,
                       epochs=args.epochs, learning_rate=args.learning_rate, snn_samples=0,
                       bn_samples=args.bn_samples, verbose=0, log=lambda *_: None)
        b, f = rec["before"], rec["after"]
        row = {"lambda_a_x": a, "lambda_w_x": w, "lambda_a": a * la0, "lambda_w": w * lw0,
               "ann_before": b["test_accuracy_original_gamma"], "ann_gamma_fixed": b["test_accuracy"],
               "ann_after": f["test_accuracy"], "ann_after_moving_average_bn": f["test_accuracy_moving_average_bn"],
               "activation_sparsity_before": b["activation_sparsity"]["total"],
               "activation_sparsity_after": f["activation_sparsity"]["total"],
               "weight_sparsity_after": f.get("weight_sparsity", {}).get("total"),
               "bn_statistics": rec["sparsity"]["bn_recalibration"].get("statistics"),
               "seconds": round(time.perf_counter() - t0, 1)}
        rows.append(row)
        print(f"lambda x ({a:g}, {w:g}): ANN {row['ann_before']:.4f} -> {row['ann_after']:.4f} "
              f"(gamma fixed {row['ann_gamma_fixed']:.4f}); activation sparsity "
              f"{row['activation_sparsity_before']:.3f} -> {row['activation_sparsity_after']:.3f}; "
              f"{row['seconds']:.0f} s", flush=True)
    trained = Path(model).with_suffix(".json")  # the training record: the data set fine-tuning uses
    dataset = json.loads(trained.read_text()).get("config", {}).get("dataset") if trained.is_file() else None
    numbers = {"net": args.net, "dataset": dataset, "epochs": args.epochs, "learning_rate": args.learning_rate,
               "absolute": args.absolute, "default_lambdas": [la0, lw0], "rows": rows}
    if args.record:
        record.finish(numbers)
        record.write(args.record)
    else:
        print(json.dumps(numbers, indent=1))


if __name__ == "__main__":
    main()
