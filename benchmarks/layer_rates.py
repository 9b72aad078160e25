#!/usr/bin/env python
"""How fast a converted net's neurons should fire, layer by layer, and how much of the first layer's activity
is the blank background (issue 18: why sparsity fine-tuning alone lowers latency on the paper's conv net).

    .venv/bin/python benchmarks/layer_rates.py --model BUNDLE [--model BUNDLE ...] [--dataset mnist]
        [--images 200] [--record results/NAME.json]

For each bundle, from its ANN (the bundle's own weights, ReLU, on the first ``--images`` test images): per
hidden layer, the share of active neurons, the mean rate (activation / threshold, the rate the SNN converges
to), and the share of active neurons slower than 1/20 and 1/10 of a spike per step (with V0 = 0 such a
neuron first fires after step 20 or 10). For the first weighted layer, whose input is constant: the channels
with a positive bias (bias / threshold: a neuron driven by its bias alone fires at that rate, first at step
ceil(threshold / bias)), the share of positions whose receptive field is all zero (the background of an MNIST
digit) and the share of the layer's activation that comes from them.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from record import Record, model_identity, require_model  # noqa: E402


def ann_activations(bundle, x: np.ndarray, batch: int = 250) -> dict[str, np.ndarray]:
    """Every hidden layer's ReLU activation / threshold (images x neurons): the rate its SNN neurons converge to."""
    from anytime_snn.convert.normalize import ann_forward

    hidden = [layer for layer in bundle.layers if layer.weighted and not layer.output]
    parts = [ann_forward(bundle.layers, x[i:i + batch], collect=True)[1] for i in range(0, len(x), batch)]
    return {layer.name: np.concatenate([np.asarray(p[k], np.float64).reshape(len(p[k]), -1) for p in parts])
            / layer.neuron.threshold for k, layer in enumerate(hidden)}


def first_layer_background(bundle, x: np.ndarray, rates: np.ndarray) -> dict:
    """Bias-driven activity of the first weighted layer and the share of it at all-zero receptive fields."""
    from anytime_snn.sim.reference import layer_output

    layer = next(layer for layer in bundle.layers if layer.weighted)
    rel = np.asarray(layer.bias, np.float64) / layer.neuron.threshold
    ones = dataclasses.replace(layer, weights=np.ones_like(layer.weights))
    field = np.stack([layer_output(ones, np.abs(xi).astype(np.float64)).ravel() for xi in x])  # sum over the field
    blank = field == 0
    positive = sorted(float(v) for v in rel.ravel() if v > 0)
    return {"layer": layer.name, "channels": int(rel.size), "channels_positive_bias": len(positive),
            "positive_bias_over_threshold": [round(v, 4) for v in positive],
            "first_spike_step_of_bias_only_neurons": [math.ceil(1 / v) for v in positive],
            "blank_receptive_field_share": float(blank.mean()),
            "activation_share_at_blank_fields": float(rates[blank].sum() / max(rates.sum(), 1e-300))}


def describe(model: Path, dataset: str, images: int) -> dict:
    from anytime_snn.convert.convert import network_input
    from anytime_snn.data import load_dataset
    from anytime_snn.evaluate.ann import bundle_ann_accuracy
    from anytime_snn.model import load_bundle

    bundle = load_bundle(model)
    test = load_dataset(dataset, "test", limit=images)
    x = network_input(bundle, test.images)
    acts = ann_activations(bundle, x)
    accuracy = bundle_ann_accuracy(bundle, x, test.labels)
    layers = {}
    for name, r in acts.items():
        active = r[r > 0]
        layers[name] = {"neurons": int(r.shape[1]), "active_share": float(np.mean(r > 0)),
                        "mean_rate": float(np.minimum(r, 1).mean()),
                        "active_slower_than_1_20": float(np.mean(active < 1 / 20)) if active.size else None,
                        "active_slower_than_1_10": float(np.mean(active < 1 / 10)) if active.size else None}
    first = next(iter(acts))
    return {"model": model_identity(model), "images": images, "ann_accuracy": accuracy, "layers": layers,
            "first_layer": first_layer_background(bundle, x, acts[first])}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", action="append", required=True, help="a bundle; repeat to compare several")
    ap.add_argument("--dataset", default="mnist")
    ap.add_argument("--images", type=int, default=200)
    ap.add_argument("--record")
    args = ap.parse_args()
    models = [require_model(m) for m in args.model]
    record = Record(models[0])
    out = {"dataset": args.dataset, "images": args.images,
           "models": [describe(m, args.dataset, args.images) for m in models]}
    for m in out["models"]:
        f = m["first_layer"]
        print(f"{m['model']['path']}: ANN {m['ann_accuracy']:.3f}; {f['layer']}: {f['channels_positive_bias']} of "
              f"{f['channels']} channels with a positive bias, {f['activation_share_at_blank_fields']:.2f} of its "
              f"activation at blank receptive fields ({f['blank_receptive_field_share']:.2f} of positions)")
        for name, r in m["layers"].items():
            print(f"  {name}: active {r['active_share']:.3f}, mean rate {r['mean_rate']:.4f}, active slower than "
                  f"1/20: {r['active_slower_than_1_20']:.3f}, 1/10: {r['active_slower_than_1_10']:.3f}")
    if args.record:
        record.finish(out)
        record.write(args.record)
    else:
        print(json.dumps(out)[:2000])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
