"""Where a layer's dense path beats its event-driven path (only the inputs that spiked): time both on random
spike maps at several input firing rates (a script, not a test). Batched engine: the dense path takes every
input x 0 or 1 without branches (the same sums). Streaming engine: one GEMM / einsum over a k-step block.

    .venv/bin/python benchmarks/bench_paths.py [--block 32] [--repeat 5] [--record results/NAME.json]

Synthetic by design (no model, no ``--model``): layers with the shapes of the benchmark workloads (the dense MNIST
model, the issue-14 conv net) and random weights (seed 0), fed random spike maps (seed 1). Prints the
seconds per block-step of each path and the crossover rate per layer: the input firing rate above which the
dense path is faster. ``batch_engine.dense_path`` and ``streaming.EVENT_DRIVEN_DENSITY`` come from these.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from record import Record  # noqa: E402

from anytime_snn.model import Layer  # noqa: E402
from anytime_snn.model.layers import output_shape  # noqa: E402
from anytime_snn.sim import synapses  # noqa: E402

RATES = (0.02, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.7, 0.9)


def layers():
    rng = np.random.default_rng(0)
    f = lambda *s: rng.standard_normal(s).astype(np.float32)  # noqa: E731
    return {
        "dense 1200->1200": (Layer("d", "dense", f(1200, 1200)), (1200,)),
        "dense 1200->10": (Layer("o", "dense", f(1200, 10)), (1200,)),
        "conv 30x30x32 3x3/32 s2": (Layer("c1", "conv2d", f(3, 3, 32, 32), strides=(2, 2)), (30, 30, 32)),
        "conv 16x16x32 3x3/64 s1": (Layer("c2", "conv2d", f(3, 3, 32, 64)), (16, 16, 32)),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--block", type=int, default=32, help="samples per block (the batched engine's blocks)")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--k", type=int, default=10, help="steps per streaming block (the node's publish_every)")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--record", help="write the numbers with their provenance (command, commit, machine, load) "
                                     "to this JSON file")
    args = ap.parse_args()
    record = Record()
    rng = np.random.default_rng(1)
    out = {"loadavg": Path("/proc/loadavg").read_text().split()[:3], "block": args.block, "k": args.k, "layers": {},
           "workload": "synthetic: random weights (seed 0) and random spike maps (seed 1), no model"}
    # As in the engines: aligned weights; the event-driven sums count events as they go, a dense path takes a
    # counting pass (the streaming engine's ``spike_events``, the same per-sample loop as the batched one's).
    from anytime_snn.sim import compiled, kernels, ops

    ks = kernels.kernel_set(True)
    for name, (layer, in_shape) in layers().items():
        o_shape = output_shape(layer, in_shape)
        g = synapses.geometry(layer, in_shape, o_shape)
        nin, nout = int(g[synapses.G_NIN]), int(g[synapses.G_NOUT])
        fo = ops.fanout(layer, in_shape).ravel().astype(np.int64)
        ev, n = np.zeros(args.block, np.int64), np.zeros(args.block, np.int64)
        if layer.kind == "conv2d":
            w, ytab, xtab = synapses.conv_rows(layer, g)
            w = compiled.aligned(w)
            paths = {"events": lambda s, c: [synapses.conv_spikes(g, w, ytab, xtab, s[b], c[b], fo)
                                             for b in range(len(s))],
                     "dense": lambda s, c: (ks.spike_events(s, fo, ev),
                                            [synapses.conv_all(g, w, ytab, xtab, s[b], c[b]) for b in range(len(s))])}
        else:
            w = compiled.aligned(np.ravel(layer.weights))
            paths = {"events": lambda s, c: synapses.add_dense_rows(s, w, nin, nout, len(s), c, fo, ev, n),
                     "dense": lambda s, c: (ks.spike_events(s, fo, ev),
                                            synapses.add_dense_all(s, w, nin, nout, len(s), c))}
        rows = {}
        for rate in RATES:
            src = rng.random((args.block, nin)) < rate
            cur = {k: compiled.aligned_zeros((args.block, nout)) for k in paths}
            t = {}
            for k, fn in paths.items():
                fn(src, cur[k])
                best = float("inf")
                for _ in range(args.repeat):
                    t0 = time.perf_counter()
                    fn(src, cur[k])
                    best = min(best, time.perf_counter() - t0)
                t[k] = best
            assert np.array_equal(cur["events"], cur["dense"])  # the same sums
            rows[rate] = t
        cross = next((r for r in RATES if rows[r]["dense"] < rows[r]["events"]), None)
        out["layers"][name] = {"seconds": rows, "dense_faster_from_rate": cross}
        print(name, "dense path faster from input rate", cross,
              {r: round(v["events"] / v["dense"], 2) for r, v in rows.items()}, flush=True)
    # The streaming engine: event-driven row sums / conv scatter against one GEMM (BLAS) / einsum over k steps.
    for name, (layer, in_shape) in layers().items():
        o_shape = output_shape(layer, in_shape)
        nin, nout = int(np.prod(in_shape)), int(np.prod(o_shape))
        fo = ops.fanout(layer, in_shape).ravel().astype(np.int64)
        ev = np.zeros(args.k, np.int64)
        if layer.kind == "conv2d":
            syn = synapses.Synapses(layer, in_shape, o_shape)
            paths = {"events": lambda s, c: syn.block_current(s, c, fo, ev),
                     "gemm": lambda s, c: (ks.spike_events(s, fo, ev), c.__setitem__(slice(None), ops.linear(
                         layer, s.astype(np.float32).reshape(len(s), *in_shape)).reshape(len(s), -1)))}
        else:
            w = compiled.aligned(layer.weights)
            paths = {"events": lambda s, c: ks.spike_rows_sum(s, w, c, fo, ev),
                     "gemm": lambda s, c: (ks.spike_events(s, fo, ev), np.matmul(s.astype(np.float32), w, out=c))}
        rows = {}
        for rate in RATES:
            src = rng.random((args.k, nin)) < rate
            t = {}
            for k, fn in paths.items():
                cur = compiled.aligned_zeros((args.k, nout))
                fn(src, cur)
                best = float("inf")
                for _ in range(args.repeat):
                    t0 = time.perf_counter()
                    fn(src, cur)
                    best = min(best, time.perf_counter() - t0)
                t[k] = best
            rows[rate] = t
        cross = next((r for r in RATES if rows[r]["gemm"] < rows[r]["events"]), None)
        out["layers"][f"streaming k={args.k}: {name}"] = {"seconds": rows, "gemm_faster_from_rate": cross}
        print(f"streaming k={args.k}:", name, "GEMM faster from input rate", cross,
              {r: round(v["events"] / v["gemm"], 2) for r, v in rows.items()}, flush=True)
    if args.json:
        args.json.write_text(json.dumps(out, indent=1) + "\n")
    if args.record:
        record.finish(out)
        record.write(args.record)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
