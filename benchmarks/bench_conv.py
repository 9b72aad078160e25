"""Our engines now against the same engines at an earlier git revision, in one run (a script, not a test).

    .venv/bin/python benchmarks/bench_conv.py [--old e6d2ce7] [--images 50] [--steps 100] [--rounds 3]
        [--model models/default] [--record results/NAME.json]

Workloads (real MNIST test images): the conv net of issue 14 with TF 'same' padding (what the old
BatchEngine could run) and with explicit zero padding 1 (benchmarks/conv_workload.py: synthetic, random weights
by design), and the dense model ``--model`` (default the bundled 784-1200-1200-10 ``models/default``; a missing
model is an error). For each: the batched engine (``--images`` per call) and the streaming engine (one
frame, T steps per ``advance``, and 10 steps per call), old and new, timed in rotation (warm-up, then the
best of ``--rounds``), as image-timesteps/s, synaptic events/s and the ratio new/old. The old revision's
sim/ package is copied to /tmp/anytime_snn_old/<rev>/ (imports rewritten) so both live in one process.
Every engine's predictions and events are checked against the new BatchEngine before timing.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from conv_workload import conv_workload  # noqa: E402
from record import Record, model_identity, require_model  # noqa: E402

from anytime_snn.convert.convert import network_input  # noqa: E402
from anytime_snn.data import load_mnist  # noqa: E402
from anytime_snn.model import load_bundle  # noqa: E402
from anytime_snn.sim.batch_engine import BatchEngine  # noqa: E402
from anytime_snn.sim.streaming import StreamingEngine  # noqa: E402


def old_sim(rev: str):
    """The sim package of git revision ``rev`` as an importable package ``oldsim_<rev>``."""
    name = f"oldsim_{rev}"
    base = Path("/tmp/anytime_snn_old") / rev
    pkg = base / name
    if not pkg.is_dir():
        pkg.mkdir(parents=True)
        files = subprocess.run(["git", "ls-tree", "--name-only", f"{rev}:offline/anytime_snn/sim/"], cwd=ROOT,
                               check=True, capture_output=True, text=True).stdout.split()
        for f in files:
            if f.endswith(".py"):
                src = subprocess.run(["git", "show", f"{rev}:offline/anytime_snn/sim/{f}"], cwd=ROOT, check=True,
                                     capture_output=True, text=True).stdout
                (pkg / f).write_text(src.replace("from ..", "from anytime_snn."))
    sys.path.insert(0, str(base))
    return (importlib.import_module(f"{name}.batch_engine"), importlib.import_module(f"{name}.streaming"))


def rotation(fns: dict, rounds: int) -> dict:
    for fn in fns.values():
        fn()
    best = {k: float("inf") for k in fns}
    for _ in range(rounds):
        for k, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            best[k] = min(best[k], time.perf_counter() - t0)
    return best


def stream_fn(engine, xs, steps, k):
    def run():
        for xi in xs:
            engine.reset(xi)
            for _ in range(steps // k):
                engine.advance(k)
    return run


def loadavg() -> list[float]:
    return [float(v) for v in Path("/proc/loadavg").read_text().split()[:3]]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--old", default="e6d2ce7", help="git revision of the old engines")
    ap.add_argument("--images", type=int, default=50)
    ap.add_argument("--dense-images", type=int, default=250)
    ap.add_argument("--stream-images", type=int, default=3)
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--workloads", default="conv_same,conv_pad1,dense")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--model", default="models/default", help="the dense workload's bundle (default models/default)")
    ap.add_argument("--record", help="write the numbers with their provenance (command, commit, model hash, "
                                     "machine, load) to this JSON file")
    args = ap.parse_args()
    model_dir = require_model(args.model) if "dense" in args.workloads.split(",") else None
    record = Record(model_dir)
    old_batch, old_stream = old_sim(args.old)
    images, _ = load_mnist("test")
    steps = args.steps
    out = {"command": " ".join(["benchmarks/bench_conv.py", *sys.argv[1:]]), "old": args.old,
           "loadavg_before": loadavg(), "cpus": os.cpu_count(), "workloads": {},
           "dense_model": model_identity(model_dir)}
    for name in args.workloads.split(","):
        bundle = {"conv_same": lambda: conv_workload("same"), "conv_pad1": lambda: conv_workload("pad1"),
                  "dense": lambda: load_bundle(model_dir)}[name]()
        n = args.dense_images if name == "dense" else args.images
        x = network_input(bundle, images[:n])
        xs = x[:args.stream_images]
        new = BatchEngine(bundle)
        want = new.run(x, steps)
        fns = {"new_batch": lambda: new.run(x, steps)}
        engines = {"new": StreamingEngine(bundle, max_chunk=steps)}
        if old_batch.supports(bundle):
            old = old_batch.BatchEngine(bundle)
            got = old.run(x, steps)
            assert np.array_equal(got.predictions, want.predictions) and np.array_equal(got.events, want.events)
            fns["old_batch"] = lambda: old.run(x, steps)
        engines["old"] = old_stream.StreamingEngine(bundle, max_chunk=steps)
        for who, eng in list(engines.items()):
            for j, xi in enumerate(xs):
                eng.reset(xi)
                block = eng.advance(steps)
                assert np.array_equal(np.argmax(block.v_out, -1), want.predictions[:, j]), (who, name)
                # (revisions before the rename called the frame's running total ``events``)
                cumulative = getattr(block, "cumulative_events", None)
                cumulative = block.events if cumulative is None else cumulative
                assert cumulative[-1] == want.events[:, j].sum(), (who, name)
            for k in sorted({steps, 10}):
                fns[f"{who}_stream_k{k}"] = stream_fn(eng, xs, steps, k)
        t = rotation(fns, args.rounds)
        ev_batch = float(want.events.sum())
        ev_stream = float(want.events[:, :len(xs)].sum())
        res = {"images": n, "steps": steps, "mean_events_per_step": ev_batch / (n * steps), "seconds": t,
               "image_steps_per_s": {k: (n if "batch" in k else len(xs)) * steps / v for k, v in t.items()},
               "g_events_per_s": {k: (ev_batch if "batch" in k else ev_stream) / v / 1e9 for k, v in t.items()}}
        res["new_over_old"] = {k[4:]: t["old_" + k[4:]] / v for k, v in t.items()
                               if k.startswith("new_") and "old_" + k[4:] in t}
        out["workloads"][name] = res
        print(name, json.dumps(res, indent=1), flush=True)
    out["loadavg_after"] = loadavg()
    print(json.dumps({k: out[k] for k in ("loadavg_before", "loadavg_after")}))
    if args.json:
        args.json.write_text(json.dumps(out, indent=1) + "\n")
    if args.record:
        record.finish(out)
        record.write(args.record)
    return 0


if __name__ == "__main__":
    sys.exit(main())
