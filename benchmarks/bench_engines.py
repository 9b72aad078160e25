"""Simulator throughput, measured in one run on real MNIST test images (a script, not a test).

    .venv/bin/python benchmarks/bench_engines.py [--model models/default] [--images 1000] [--steps 100]
        [--json out.json] [--record results/NAME.json]

(a) the batched engines on the dense model ``--model`` (default ``models/default``; a missing model is an error,
    never replaced by another network) and on a small conv net with random weights (synthetic by design, seed 0),
    as image-timesteps/s: the
    event-driven numba engine (the optimizer's default) and the TF/XLA engine;
(b) the streaming engine, one image x T steps, as timesteps/s (chunk sizes 1, 10, T);
(c) the dense roofline: the same matrix products with plain BLAS for T full forward passes;
(d) a plain tf.function + XLA loop over the same network (per step: every layer's product, then the
    IF update; the approach of the paper's simulator) and a plain NumPy matvec loop at batch 1.
Also memory: peak RSS (VmHWM) of the batched engine on 10x the images, and of a node-like process
(bundle + streaming engine), and whether that one imported TensorFlow.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
ROOT = Path(__file__).resolve().parents[1]

from anytime_snn.convert.convert import network_input  # noqa: E402
from anytime_snn.data import load_mnist  # noqa: E402
from anytime_snn.model import Bundle, InputSpec, Layer, load_bundle  # noqa: E402
from anytime_snn.sim import ops  # noqa: E402
from anytime_snn.sim.streaming import StreamingEngine  # noqa: E402
from record import Record, model_identity, require_model  # noqa: E402


def best_of(fn, repeat: int = 3) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def dense_network(model_dir) -> tuple[Bundle, str]:
    """The dense model the benchmark simulates: the bundle at ``model_dir`` (an error if there is none)."""
    path = require_model(model_dir)
    identity = model_identity(path)
    return load_bundle(path), f"{identity['path']} (manifest sha256 {identity['manifest_sha256']})"


def conv_network(seed: int = 0) -> Bundle:
    """A small conv net with random weights scaled for moderate firing rates on MNIST."""
    rng = np.random.default_rng(seed)

    def w(shape, fan_in, gain=2.0):
        return (rng.standard_normal(shape) * gain / np.sqrt(fan_in)).astype(np.float32)

    z = lambda n: np.zeros(n, np.float32)  # noqa: E731
    half = np.asarray(0.5, np.float32)
    layers = [
        Layer("conv0", "conv2d", w((3, 3, 1, 16), 9), z(16), strides=(1, 1), padding="same", v0=half),
        Layer("conv1", "conv2d", w((3, 3, 16, 32), 144), z(32), strides=(2, 2), padding="same", v0=half),
        Layer("pool", "depthwise_conv2d", np.full((2, 2, 32, 1), 0.25, np.float32), z(32), strides=(2, 2), v0=half),
        Layer("flatten", "flatten"),
        Layer("dense0", "dense", w((7 * 7 * 32, 128), 7 * 7 * 32), z(128), v0=half),
        Layer("out", "dense", w((128, 10), 128), z(10), output=True),
    ]
    return Bundle(input=InputSpec(shape=(28, 28, 1)), layers=layers, labels=[str(i) for i in range(10)])


# ----------------------------------------------------------------------------- baselines


def dense_matrices(bundle: Bundle):
    return [(layer.weights, np.broadcast_to(layer.bias, (layer.weights.shape[1],))) for layer in bundle.weighted_layers]


def roofline(bundle: Bundle, x: np.ndarray, steps: int) -> float:
    """T full forward passes of the same products with plain NumPy/BLAS (no dynamics). Seconds."""
    weighted = bundle.weighted_layers
    shapes = [tuple(bundle.input.shape)] + [s for s, layer in zip(bundle.shapes(), bundle.layers) if layer.weighted]

    def run():
        for _ in range(steps):
            h = x
            for layer, in_shape in zip(weighted, shapes):
                h = ops.linear(layer, h.reshape(h.shape[0], *in_shape) if layer.kind != "dense" else h.reshape(h.shape[0], -1))
    return best_of(run, 1)


def plain_xla_loop(bundle: Bundle, x: np.ndarray, steps: int, count_events: bool = False):
    """The straightforward simulator: per step, every layer's product from the previous layer's spikes,
    IF update with reset by subtraction, output accumulation; tf.while_loop under XLA. With
    ``count_events`` it also counts synaptic events per sample and step (spikes x fan-out), as the
    paper's simulator does and our engine always does. Returns the compiled run as a callable."""
    import tensorflow as tf

    from anytime_snn.model import output_shape

    weighted = bundle.weighted_layers
    in_shapes, shape, outs = [], tuple(bundle.input.shape), []
    for layer in bundle.layers:
        out = output_shape(layer, shape)
        if layer.weighted:
            in_shapes.append(shape)
            outs.append(out)
        shape = out
    ws = [tf.constant(layer.weights) for layer in weighted]
    bs = [tf.constant(layer.bias) for layer in weighted]
    fan = [tf.constant(ops.fanout(layer, s).reshape(-1).astype(np.float32)) for layer, s in zip(weighted, in_shapes)]

    def linear(i, h):
        layer = weighted[i]
        if layer.kind == "dense":
            return tf.matmul(tf.reshape(h, (h.shape[0], -1)), ws[i])
        h = tf.reshape(h, (h.shape[0], *in_shapes[i]))
        fn = tf.nn.conv2d if layer.kind == "conv2d" else tf.nn.depthwise_conv2d
        return fn(h, ws[i], (1, *layer.strides, 1), layer.padding.upper())

    @tf.function(jit_compile=True)
    def sim(inp):
        batch = inp.shape[0]
        vs = [tf.zeros((batch, *o)) + 0.5 for o in outs]

        def body(t, vs, events):
            h, new = inp, []
            for i in range(len(weighted)):
                v = vs[i] + tf.reshape(linear(i, h), (batch, *outs[i])) + bs[i]
                if i < len(weighted) - 1:
                    s = tf.cast(v >= 1.0, tf.float32)
                    v = v - s
                    h = s
                    if count_events:
                        events = events.write(t, events.read(t) + tf.linalg.matvec(tf.reshape(s, (batch, -1)), fan[i + 1]))
                new.append(v)
            return t + 1, new, events

        events = tf.TensorArray(tf.float32, size=steps, element_shape=(batch,)).unstack(tf.zeros((steps, batch)))
        _, vs, events = tf.while_loop(lambda t, vs, e: t < steps, body, (tf.constant(0), vs, events))
        return tf.argmax(vs[-1], axis=-1), events.stack()

    xt = tf.constant(x)
    return lambda: [r.numpy() for r in sim(xt)]


def numpy_matvec_loop(bundle: Bundle, x1: np.ndarray, steps: int) -> float:
    """Batch 1, plain NumPy: every step every layer's matvec (dense networks only). Seconds."""
    mats = dense_matrices(bundle)
    vs = [np.zeros(w.shape[1], np.float32) for w, _ in mats]
    x1 = x1.reshape(-1)

    def run():
        for _ in range(steps):
            h = x1
            for i, (w, b) in enumerate(mats):
                vs[i] += h @ w + b
                if i < len(mats) - 1:
                    s = vs[i] >= 1
                    vs[i] -= s
                    h = s.astype(np.float32)
    return best_of(run, 3)


# ----------------------------------------------------------------------------- ours


def tf_engine(bundle: Bundle, x: np.ndarray, steps: int):
    from anytime_snn.sim.tf_engine import TFEngine

    engine = TFEngine(bundle)
    return (lambda: engine.run(x, steps)), engine.chunk_size(steps)


def numba_engine(bundle: Bundle, x: np.ndarray, steps: int):
    from anytime_snn.sim.batch_engine import BatchEngine

    engine = BatchEngine(bundle)
    return lambda: engine.run(x, steps)


def interleaved_best(fns: dict, rounds: int = 3) -> dict:
    """Warm every callable up, then time them in rotation (so drifts of the machine hit all alike)."""
    for fn in fns.values():
        fn()
    best = {name: float("inf") for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - t0)
    return best


def streaming(bundle: Bundle, x1: np.ndarray, steps: int, chunk: int) -> float:
    engine = StreamingEngine(bundle, max_chunk=max(chunk, 1))

    def run():
        engine.reset(x1)
        done = 0
        while done < steps:
            k = min(chunk, steps - done)
            engine.advance(k)
            done += k
    run()
    return best_of(run, 5)


def node_process_memory(model_dir: Path) -> dict:
    code = (
        "import resource, sys, numpy as np\n"
        "from anytime_snn.model import load_bundle\n"
        "from anytime_snn.sim.streaming import StreamingEngine\n"
        f"b = load_bundle({str(model_dir)!r})\n"
        "e = StreamingEngine(b); e.reset(np.zeros(b.input.shape, np.float32)); e.advance(50)\n"
        "hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM')][0].split()[1]\n"
        "print(hwm, 'tensorflow' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    return {"max_rss_mb": int(out[0]) / 1024, "imports_tensorflow": out[1] == "True"}


def engine_memory(model_dir: Path, images: int, steps: int, engine: str = "TFEngine") -> dict:
    module = {"TFEngine": "tf_engine", "BatchEngine": "batch_engine"}[engine]
    code = (
        "import os, resource, numpy as np; os.environ['TF_CPP_MIN_LOG_LEVEL']='3'\n"
        "import sys; sys.path.insert(0, %r)\n"
        "from bench_engines import dense_network\n"
        "from anytime_snn.sim.%s import %s as Engine\n"
        "b, _ = dense_network(%r); x = np.random.default_rng(0).random((%d, *b.input.shape), dtype=np.float32)\n"
        "Engine(b).run(x, %d)\n"
        "print([l for l in open('/proc/self/status') if l.startswith('VmHWM')][0].split()[1])\n"
    ) % (str(Path(__file__).parent), module, engine, str(model_dir), images, steps)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    return {"images": images, "steps": steps, "max_rss_mb": int(out[-1]) / 1024}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="models/default", help="the dense model bundle (default models/default)")
    ap.add_argument("--images", type=int, default=1000)
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--json", type=Path, help="write all numbers here")
    ap.add_argument("--skip-memory", action="store_true")
    ap.add_argument("--record", help="write the numbers with their provenance (command, commit, model hash, "
                                     "machine, load) to this JSON file, e.g. results/engines.json")
    args = ap.parse_args()
    model_dir = require_model(args.model)
    record = Record(model_dir)

    images, _ = load_mnist("test")
    images = images[: args.images]
    n, steps = len(images), args.steps
    results: dict = {"machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
                     "images": n, "steps": steps}
    dense, dense_name = dense_network(model_dir)
    conv = conv_network()
    results["dense_model"] = dense_name
    results["conv_model"] = "synthetic: conv_network(seed=0), random weights scaled for moderate firing rates"

    for name, bundle in [("dense", dense), ("conv", conv)]:
        xin = network_input(bundle, images)
        r: dict = {}
        engine_fn, chunk = tf_engine(bundle, xin, steps)
        t = interleaved_best({"numba_engine": numba_engine(bundle, xin, steps), "tf_engine": engine_fn,
                              "plain_xla_loop": plain_xla_loop(bundle, xin, steps),
                              "plain_xla_loop_with_events": plain_xla_loop(bundle, xin, steps, True)})
        for key, seconds in t.items():
            r[f"{key}_image_steps_per_s"] = n * steps / seconds
        r["tf_engine_chunk"] = chunk
        r["dense_roofline_image_steps_per_s"] = n * steps / roofline(bundle, xin, steps)
        for chunk_k in (1, 10, steps):
            r[f"streaming_chunk{chunk_k}_steps_per_s"] = steps / streaming(bundle, xin[0], steps, chunk_k)
        if name == "dense":
            r["numpy_matvec_loop_steps_per_s"] = steps / numpy_matvec_loop(bundle, xin[0], steps)
            r["ratio_streaming_vs_numpy_loop"] = r["streaming_chunk10_steps_per_s"] / r["numpy_matvec_loop_steps_per_s"]
        r["ratio_tf_engine_vs_plain_xla"] = r["tf_engine_image_steps_per_s"] / r["plain_xla_loop_image_steps_per_s"]
        r["ratio_tf_engine_vs_plain_xla_with_events"] = (r["tf_engine_image_steps_per_s"]
                                                         / r["plain_xla_loop_with_events_image_steps_per_s"])
        r["ratio_tf_engine_vs_roofline"] = r["tf_engine_image_steps_per_s"] / r["dense_roofline_image_steps_per_s"]
        for other in ("tf_engine", "plain_xla_loop", "plain_xla_loop_with_events", "dense_roofline"):
            r[f"ratio_numba_engine_vs_{other}"] = (r["numba_engine_image_steps_per_s"]
                                                   / r[f"{other}_image_steps_per_s"])
        results[name] = r
        print(json.dumps({name: r}, indent=1), flush=True)
    if not args.skip_memory:
        results["memory_tf_engine"] = engine_memory(model_dir, 10 * n, steps)
        results["memory_numba_engine"] = engine_memory(model_dir, 10 * n, steps, "BatchEngine")
        results["memory_node_process"] = node_process_memory(model_dir)
        print(json.dumps({k: results[k] for k in ("memory_tf_engine", "memory_numba_engine", "memory_node_process")},
                         indent=1))
    results["max_rss_this_process_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=1))
    if args.record:
        record.finish(results)
        record.write(args.record)
    return 0


if __name__ == "__main__":
    sys.exit(main())
