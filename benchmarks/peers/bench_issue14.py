"""Issue 14's table in one run: our engines, a plain TF+XLA ``while_loop``, sinabs and SpikingJelly, as ratios to a
plain NumPy time-stepped loop (a script, not a test).

    benchmarks/peers/setup.sh        # once: the peers' venv (optional; without it the peers are skipped)
    .venv/bin/python benchmarks/peers/bench_issue14.py [--workloads conv,dense] [--rounds 3]
        [--model models/default] [--record results/NAME.json]

Workloads (real MNIST test images, T = 100, V0 = 0.5, reset by subtraction): ``conv``, the net of issue 14
(28x28x1 -> 3x3/32 s1 -> 3x3/32 s2 -> 3x3/64 s1 -> 3x3/64 s2 -> dense 10, zero padding 1, gains fitted for
~10 % firing; benchmarks/conv_workload.py: synthetic, random weights by design) and ``dense``, the model ``--model``
(default the bundled 784-1200-1200-10 ``models/default``; a missing bundle is an error) with V0 = 0.5. Modes: a
batch (``--batch`` images per call: 50 conv, 250 dense) and one frame per call (T steps of one image).

Before anything is timed, every simulator's per-neuron spike counts of every hidden layer and its
predictions at every step are compared on ``--check-images`` images with a float64 run of the same
semantics: ``sim/reference.py`` for the dense net; for the conv net (whose explicit connection matrices would
take 1.4 GB) the plain NumPy loop in float64, which is checked against ``sim/reference.py`` on a small net
first. Float32 sums in another order can flip a potential within rounding of the threshold, so a simulator
is timed if >= 99 % of the counts and predictions match (ours must also match each other exactly).
Everything is timed in rotation (warm-up, then best of ``--rounds``), so the ratios share the machine's
conditions; the load average is recorded before and after.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_peers import Worker, agrees, compare, export_network, loadavg, timed  # noqa: E402
from conv_workload import conv_workload  # noqa: E402
from record import Record, model_identity, require_model  # noqa: E402

from anytime_snn.convert.convert import network_input  # noqa: E402
from anytime_snn.data import load_mnist  # noqa: E402
from anytime_snn.model import Bundle, load_bundle, output_shape  # noqa: E402
from anytime_snn.sim import ops, reference  # noqa: E402
from anytime_snn.sim.batch_engine import BatchEngine  # noqa: E402
from anytime_snn.sim.streaming import StreamingEngine  # noqa: E402
from anytime_snn.testing import NetSpec, random_bundle, random_inputs  # noqa: E402


def _plan(bundle: Bundle):
    """(layer, in_shape, out_shape) of every layer."""
    out, shape = [], tuple(bundle.input.shape)
    for layer in bundle.layers:
        o = output_shape(layer, shape)
        out.append((layer, shape, o))
        shape = o
    return out


def numpy_loop(bundle: Bundle, steps: int, dtype=np.float32):
    """The plain time-stepped NumPy simulator: every step, every layer's product of the previous layer's
    spikes (the analog first layer's once per frame, as every simulator here does), IF update with reset
    by subtraction. Returns run(x) -> (per-layer spike counts (B, n), predictions (T, B))."""
    plan = _plan(bundle)
    first = next(i for i, (layer, _, _) in enumerate(plan) if layer.weighted)

    def shape_op(layer, h):
        return ops.zero_pad(h, layer) if layer.kind == "zero_pad2d" else h.reshape(len(h), -1)

    def linear(layer, in_shape, h):
        return ops.linear(layer, h.reshape(len(h), *in_shape).astype(dtype)).reshape(len(h), -1)

    def run(x):
        h = x.astype(dtype)
        for layer, _, _ in plan[:first]:
            h = shape_op(layer, h)
        layer0, in0, _ = plan[first]
        analog = linear(layer0, in0, h)
        v = {i: np.broadcast_to(layer.v0, o).astype(dtype).reshape(1, -1).repeat(len(x), 0)
             for i, (layer, _, o) in enumerate(plan) if layer.weighted}
        counts = {i: np.zeros_like(v[i], np.int64) for i in v if not plan[i][0].output}
        preds = np.zeros((steps, len(x)), np.int64)
        for t in range(steps):
            for i in range(first, len(plan)):
                layer, in_shape, out_shape = plan[i]
                if not layer.weighted:
                    h = shape_op(layer, h.reshape(len(x), *in_shape))
                    continue
                cur = analog if i == first else linear(layer, in_shape, h)
                v[i] += cur + np.broadcast_to(layer.bias, out_shape).reshape(-1).astype(dtype)
                if layer.output:
                    preds[t] = np.argmax(v[i], axis=1)
                    continue
                s = v[i] >= layer.neuron.threshold
                v[i] -= s * dtype(layer.neuron.threshold)
                counts[i] += s
                h = s.astype(dtype)
        return [counts[i] for i in sorted(counts)], preds
    return run


def xla_loop(bundle: Bundle, steps: int, batch: int):
    """The plain TF+XLA simulator: the same loop as ``numpy_loop`` as one ``tf.while_loop`` under XLA
    (per-layer spike counts and the prediction at every step kept inside the loop)."""
    import tensorflow as tf

    plan = _plan(bundle)
    first = next(i for i, (layer, _, _) in enumerate(plan) if layer.weighted)
    consts = {i: (tf.constant(layer.weights), tf.constant(np.broadcast_to(layer.bias, o).astype(np.float32)),
                  tf.constant(np.broadcast_to(layer.v0, o).astype(np.float32)))
              for i, (layer, _, o) in enumerate(plan) if layer.weighted}
    hidden = [i for i in consts if not plan[i][0].output]
    last = max(consts)
    weighted = sorted(consts)
    between = {i: [plan[j][0] for j in range(a + 1, i)] for a, i in zip(weighted, weighted[1:])}  # shape layers

    def shape_op(layer, h):
        if layer.kind == "zero_pad2d":
            (t, b), (l, r) = layer.pad
            return tf.pad(h, [[0, 0], [t, b], [l, r], [0, 0]])
        return tf.reshape(h, (batch, -1))

    def linear(i, h):
        layer, in_shape, _ = plan[i]
        w = consts[i][0]
        if layer.kind == "dense":
            return tf.matmul(tf.reshape(h, (batch, -1)), w)
        fn = tf.nn.conv2d if layer.kind == "conv2d" else tf.nn.depthwise_conv2d
        return fn(tf.reshape(h, (batch, *in_shape)), w, (1, *layer.strides, 1), layer.padding.upper())

    @tf.function(jit_compile=True)
    def sim(x):
        h = x
        for layer, _, _ in plan[:first]:
            h = shape_op(layer, h)
        analog = linear(first, h)
        vs = [consts[i][2] + tf.zeros((batch, *plan[i][2])) for i in sorted(consts)]
        counts = [tf.zeros((batch, *plan[i][2])) for i in hidden]
        preds = tf.TensorArray(tf.int64, size=steps)

        def body(t, vs, counts, preds):
            vs, counts = list(vs), list(counts)
            h = None
            for k, i in enumerate(weighted):
                for layer in between.get(i, ()):
                    h = shape_op(layer, h)
                cur = analog if i == first else linear(i, h)
                v = vs[k] + tf.reshape(cur, vs[k].shape) + consts[i][1]
                if i == last:
                    vs[k] = v
                    preds = preds.write(t, tf.argmax(tf.reshape(v, (batch, -1)), axis=-1))
                    continue
                s = tf.cast(v >= plan[i][0].neuron.threshold, tf.float32)
                vs[k] = v - s * plan[i][0].neuron.threshold
                counts[k] += s
                h = s
            return t + 1, vs, counts, preds

        _, _, counts, preds = tf.while_loop(lambda t, *_: t < steps, body, (tf.constant(0), vs, counts, preds))
        return counts, preds.stack()

    def run(x):
        counts, preds = sim(tf.constant(x))
        return [c.numpy().reshape(batch, -1).astype(np.int64) for c in counts], preds.numpy()
    return run


def ours(bundle: Bundle, steps: int):
    """Per-layer counts and predictions from the batched engine (rasters) and the streaming engine."""
    def batch(x):
        res = BatchEngine(bundle).run(x, steps, record_spikes=True)
        return [r.sum(axis=1).astype(np.int64) for r in res.spike_rasters], res.predictions

    def stream(x):
        eng = StreamingEngine(bundle, max_chunk=steps)
        counts, preds = [[] for _ in eng.pops[:-1]], []
        for xi in x:
            eng.reset(xi)
            block = eng.advance(steps)
            for c, pop in zip(counts, eng.pops[:-1]):
                c.append(pop.spikes[:steps].sum(axis=0))
            preds.append(np.argmax(block.v_out, -1))
        return [np.stack(c).astype(np.int64) for c in counts], np.stack(preds, 1)
    return batch, stream


def loop_matches_reference() -> bool:
    """The float64 NumPy loop against sim/reference.py spike for spike on a small padded conv net."""
    spec = NetSpec(input_shape=(8, 8, 1), convs=(("zero_pad2d", 1, 0, 1, ""), ("conv2d", 3, 4, 1, "valid"),
                                                 ("zero_pad2d", 1, 0, 1, ""), ("conv2d", 3, 4, 2, "valid")),
                   dense=(), classes=3, v0_mode="scalar")
    bundle = random_bundle(spec, 0)
    x = random_inputs(spec, 3, 0)
    ref = reference.simulate(bundle, x, 20)
    counts, preds = numpy_loop(bundle, 20, np.float64)(x)
    return all(np.array_equal(c, s.sum(axis=0)) for c, s in zip(counts, ref.spikes)) and np.array_equal(
        preds, ref.predictions)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workloads", default="conv,dense")
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--batch", type=int, help="images per batched call (default: 50 conv, 250 dense)")
    ap.add_argument("--frames", type=int, default=2, help="one-frame mode: images simulated one after the other")
    ap.add_argument("--check-images", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--tchunk", type=int, default=25, help="the peers' multi-step time chunk")
    ap.add_argument("--peer-python", type=Path, default=HERE / ".venv" / "bin" / "python")
    ap.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "results" / "issue14.json")
    ap.add_argument("--model", default="models/default", help="the dense workload's bundle (default models/default)")
    ap.add_argument("--record", help="write the numbers with their provenance (command, commit, model hash, "
                                     "machine, load) to this JSON file")
    args = ap.parse_args()
    model_dir = require_model(args.model) if "dense" in args.workloads.split(",") else None
    record = Record(model_dir)
    log = lambda msg: print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)  # noqa: E731
    steps = args.steps
    images, _ = load_mnist("test")
    out = {"command": " ".join([".venv/bin/python", "benchmarks/peers/bench_issue14.py", *sys.argv[1:]]),
           "loadavg_before": loadavg(), "cpus": os.cpu_count(), "steps": steps,
           "numpy_loop_float64_matches_reference": loop_matches_reference(), "workloads": {},
           "dense_model": model_identity(model_dir), "conv_model": "synthetic: conv_workload('pad1')"}
    assert out["numpy_loop_float64_matches_reference"]
    peers_available = args.peer_python.exists()
    if not peers_available:
        log(f"{args.peer_python} missing: sinabs and SpikingJelly are skipped (benchmarks/peers/setup.sh)")
    for name in args.workloads.split(","):
        # V0 = 0.5 everywhere: SpikingJelly's half-threshold IF neuron has no per-neuron V0 (the bundled
        # model's optimized V0 is per neuron)
        bundle = conv_workload("pad1") if name == "conv" else load_bundle(model_dir).with_v0(0.5)
        batch = args.batch or (50 if name == "conv" else 250)
        x = network_input(bundle, images[:batch])
        xc, xf = x[:args.check_images], x[:args.frames]
        res: dict = {"batch": batch, "frames": args.frames}
        log(f"{name}: checks")
        if name == "dense":
            r = reference.simulate(bundle, xc, steps)
            want = [s.sum(axis=0).astype(np.int64) for s in r.spikes], r.predictions
        else:
            want = numpy_loop(bundle, steps, np.float64)(xc)
        ours_batch, ours_stream = ours(bundle, steps)
        candidates = {"ours_batch": ours_batch, "ours_stream": ours_stream,
                      "numpy_loop": numpy_loop(bundle, steps), "xla_loop": xla_loop(bundle, steps, len(xc))}
        checks = {k: compare(*fn(xc), *want) for k, fn in candidates.items()}
        ob, os_ = ours_batch(xc), ours_stream(xc)
        assert all(np.array_equal(a, b) for a, b in zip(ob[0], os_[0])) and np.array_equal(ob[1], os_[1])
        worker = None
        tmp = tempfile.TemporaryDirectory()
        peers = []
        if peers_available:
            export_network(bundle, Path(tmp.name) / "net.npz")
            x_peer = np.ascontiguousarray(x.transpose(0, 3, 1, 2) if x.ndim == 4 else x, np.float32)
            np.save(Path(tmp.name) / "x.npy", x_peer)
            worker = Worker(args.peer_python)
            info = worker(cmd="load", network=str(Path(tmp.name) / "net.npz"), inputs=str(Path(tmp.name) / "x.npy"),
                          threads=2)
            res["peer_versions"] = info["versions"]
            for peer in ("sinabs", "spikingjelly"):
                f = Path(tmp.name) / f"{peer}.npz"
                worker(cmd="check", peer=peer, n=len(xc), steps=steps, tchunk=args.tchunk, out=str(f))
                d = np.load(f)
                counts = [d[f"counts{i}"].astype(np.int64) for i in range(len(want[0]))]
                checks[peer] = compare(counts, np.argmax(d["v_out"], -1), *want)
                checks[peer + "_one_frame_prediction_match"] = float(np.mean(np.argmax(d["v_out_stream"], -1)
                                                                             == want[1]))
                if agrees(checks[peer]) and checks[peer + "_one_frame_prediction_match"] >= 0.99:
                    peers.append(peer)
        res["checks"] = checks
        ok = {k for k in candidates if agrees(checks[k])}
        res["timed"] = sorted(ok) + peers
        log(f"{name}: agree {res['timed']}")
        # batched: one call of `batch` images
        engine = BatchEngine(bundle)
        xla_b = xla_loop(bundle, steps, batch)
        loop = numpy_loop(bundle, steps)
        fns = {"ours_batch": timed(lambda: engine.run(x, steps)), "numpy_loop": timed(lambda: loop(x)),
               "xla_loop": timed(lambda: xla_b(x))}
        for p in peers:
            fns[p] = lambda p=p: worker(cmd="time", peer=p, mode="batched", n=batch, steps=steps, batch=batch,
                                        tchunk=args.tchunk, threads=2)["seconds"]
        fns = {k: v for k, v in fns.items() if k in ok or k in peers or k == "ours_batch"}
        log(f"{name}: batched timing")
        t_b = _rotation(fns, args.rounds)
        # one frame per call
        stream_eng = {k: StreamingEngine(bundle, max_chunk=k) for k in (10, steps)}
        stream_eng["10x2"] = StreamingEngine(bundle, max_chunk=10, threads=2)
        xla_1 = xla_loop(bundle, steps, 1)

        def frames(key):
            eng = stream_eng[key]
            k = eng.max_chunk

            def run():
                for xi in xf:
                    eng.reset(xi)
                    for _ in range(steps // k):
                        eng.advance(k)
            return timed(run)

        fns = {f"ours_stream_k{steps}": frames(steps), "ours_stream_k10": frames(10),
               "ours_stream_k10_2threads": frames("10x2"),
               "numpy_loop": timed(lambda: [loop(xf[j:j + 1]) for j in range(len(xf))]),
               "xla_loop": timed(lambda: [xla_1(xf[j:j + 1]) for j in range(len(xf))])}
        for p in peers:
            fns[p + "_per_step"] = lambda p=p: worker(cmd="time", peer=p, mode="stream", n=len(xf), steps=steps,
                                                      threads=1)["seconds"]
            fns[p + "_whole_frame"] = lambda p=p: worker(cmd="time", peer=p, mode="batched", n=len(xf), steps=steps,
                                                         batch=1, tchunk=steps, threads=1)["seconds"]
        fns = {k: v for k, v in fns.items() if "ours" in k or k.split("_per")[0].split("_whole")[0] in ok | set(peers)}
        log(f"{name}: one-frame timing")
        t_s = _rotation(fns, args.rounds)
        if worker is not None:
            worker.close()
        tmp.cleanup()
        res["batched_image_steps_per_s"] = {k: batch * steps / v for k, v in t_b.items()}
        res["one_frame_steps_per_s"] = {k: len(xf) * steps / v for k, v in t_s.items()}
        for key in ("batched_image_steps_per_s", "one_frame_steps_per_s"):
            base = res[key]["numpy_loop"]
            res[key.replace("_per_s", "_vs_numpy_loop")] = {k: v / base for k, v in res[key].items()}
        out["workloads"][name] = res
        print(name, json.dumps({k: res[k] for k in res if k != "checks"}, indent=1), flush=True)
    out["loadavg_after"] = loadavg()
    print(json.dumps({k: out[k] for k in ("loadavg_before", "loadavg_after")}))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(out, indent=1) + "\n")
    if args.record:
        record.finish(out)
        record.write(args.record)
    return 0


def _rotation(fns: dict, rounds: int) -> dict:
    for fn in fns.values():
        fn()
    best = {k: float("inf") for k in fns}
    for _ in range(rounds):
        for k, fn in fns.items():
            best[k] = min(best[k], fn())
    return best


if __name__ == "__main__":
    sys.exit(main())
