"""Our simulators against independent SNN simulators on the same network and dynamics (a script, not a test).

    benchmarks/peers/setup.sh                      # once: the peers' own venv (optional, needs network)
    .venv/bin/python benchmarks/peers/bench_peers.py --workload dense
    .venv/bin/python benchmarks/peers/bench_peers.py --workload conv
        [--model models/default] [--record results/NAME.json]   (--model: the dense workload's bundle)

Runs in the project's venv; the peers (SpikingJelly, sinabs, a plain-PyTorch roofline) run in a worker
process in ``benchmarks/peers/.venv`` (see ``peer_worker.py``), fed the bundle's weights as an .npz.
Workloads: ``dense``, the model ``--model`` (default ``models/default``; a missing bundle is an error, never
replaced by another network); ``conv``, ``bench_engines.conv_network(seed=0)`` (synthetic: random weights by design).
One run per workload:
1. equivalence first: per-neuron spike counts of every hidden layer and the prediction at every step
   on a few MNIST test images, for our engines and each peer, against the float64 NumPy reference
   (the oracle) and against our float32 streaming engine; a peer is timed only if it agrees;
2. throughput, timed in rotation (warm-up, then best of ``--rounds``) so that all ratios share the
   machine's conditions: batched image-timesteps/s and batch-1 streaming timesteps/s.
Results are merged into ``--json`` (default ``benchmarks/results/peers.json``) under the workload name.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_engines import conv_network, dense_network  # noqa: E402
from record import Record, model_identity, require_model  # noqa: E402

from anytime_snn.convert.convert import network_input  # noqa: E402
from anytime_snn.data import load_mnist  # noqa: E402
from anytime_snn.model import Bundle, output_shape, same_padding  # noqa: E402
from anytime_snn.sim import ops, reference  # noqa: E402
from anytime_snn.sim.streaming import StreamingEngine  # noqa: E402

# A peer is timed only if it agrees with the reference at least this well (float32 vs float64 sums
# can flip a potential that lies within rounding of the threshold; everything else must match).
MIN_COUNT_MATCH = 0.99
MIN_PREDICTION_MATCH = 0.99


# ----------------------------------------------------------------------------- export


def _chw(a: np.ndarray) -> np.ndarray:
    """A per-neuron tensor in our (H, W, C) order -> flat (C, H, W) order (PyTorch's)."""
    return a.transpose(2, 0, 1).ravel() if a.ndim == 3 else a.ravel()


def export_network(bundle: Bundle, path: Path) -> None:
    """The bundle's weighted layers as PyTorch-layout tensors (.npz) plus a JSON layer list inside it."""
    arrays, meta = {}, []
    shape = tuple(bundle.input.shape)
    flattened_from = None  # the (H, W, C) shape a flatten layer flattened, to re-order dense rows to CHW
    zero_pad = None  # a zero_pad2d layer's ((top, bottom), (left, right)), folded into the next convolution's pads
    for layer in bundle.layers:
        out = output_shape(layer, shape)
        if layer.kind == "zero_pad2d":
            if zero_pad is not None:
                raise ValueError("two zero_pad2d layers in a row are not exported")
            zero_pad, shape = layer.pad, out
            continue
        if layer.kind not in ("flatten", "dense", "conv2d", "depthwise_conv2d") or layer.skip is not None:
            residual = " with a residual input" if layer.skip else ""
            raise ValueError(f"the peers' export has no {layer.kind} layer{residual}")
        if layer.kind == "flatten" and len(shape) == 3:
            flattened_from = shape
        if layer.weighted:
            n = layer.neuron
            if (n.reset, n.refractory_steps, n.delay_steps) != ("subtract", 0, 0):
                raise ValueError("the peers express NL-IAF only: reset by subtraction, no refractory period, no delay")
            i = len(meta)
            pads = [0, 0, 0, 0]
            if layer.kind == "dense":
                w = layer.weights
                if flattened_from is not None:
                    h, wd, c = flattened_from
                    w = w.reshape(h, wd, c, -1).transpose(2, 0, 1, 3).reshape(h * wd * c, -1)
                    flattened_from = None
                wt = w.T
                bias = np.broadcast_to(layer.bias, out).astype(np.float32)
            else:
                k = layer.weights
                wt = k.transpose(3, 2, 0, 1) if layer.kind == "conv2d" else k[..., 0].transpose(2, 0, 1)[:, None]
                if layer.padding == "same":
                    (pt, pb), (pl, pr) = (same_padding(shape[0], k.shape[0], layer.strides[0]),
                                          same_padding(shape[1], k.shape[1], layer.strides[1]))
                    pads = [pt, pb, pl, pr]
                if zero_pad is not None:  # padding the input of a 'valid' convolution (the layer's shape is padded)
                    if layer.padding != "valid":
                        raise ValueError("zero_pad2d before a 'same' convolution is not exported")
                    (pt, pb), (pl, pr) = zero_pad
                    pads, zero_pad = [pt, pb, pl, pr], None
                b = np.broadcast_to(layer.bias, out)
                if not np.all(b == b[:1, :1]):
                    raise ValueError("PyTorch convolutions take one bias per channel")
                bias = b[0, 0].astype(np.float32)
            arrays[f"{i}/weight"] = np.ascontiguousarray(wt, np.float32)
            arrays[f"{i}/bias"] = np.ascontiguousarray(bias, np.float32)
            arrays[f"{i}/v0"] = _chw(np.broadcast_to(layer.v0, out).astype(np.float32))
            out_chw = [out[2], out[0], out[1]] if len(out) == 3 else list(out)
            meta.append({"name": layer.name, "kind": layer.kind, "stride": list(layer.strides), "pads": pads,
                         "threshold": float(n.threshold), "output": bool(layer.output), "out_shape_chw": out_chw})
        shape = out
    np.savez(path, meta=np.array(json.dumps(meta)), **arrays)


# ----------------------------------------------------------------------------- worker


class Worker:
    """The peers' process: one JSON request per line, one JSON answer per line."""

    def __init__(self, python: Path):
        self.proc = subprocess.Popen([str(python), str(HERE / "peer_worker.py")], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True, bufsize=1)

    def __call__(self, **req) -> dict:
        self.proc.stdin.write(json.dumps(req) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"peer worker died on {req}")
        answer = json.loads(line)
        if not answer.get("ok"):
            raise RuntimeError(f"peer worker failed on {req}: {answer.get('error')}")
        return answer

    def close(self) -> None:
        try:
            self(cmd="quit")
        except Exception:
            pass
        self.proc.wait(timeout=30)


# ----------------------------------------------------------------------------- equivalence


def first_argmax(v_out: np.ndarray) -> np.ndarray:
    return np.argmax(v_out, axis=-1)


def ours_per_neuron(bundle: Bundle, x: np.ndarray, steps: int) -> tuple[list[np.ndarray], np.ndarray]:
    """Per-neuron spike counts (B, n) per hidden layer and (T, B) predictions from the streaming engine."""
    engine = StreamingEngine(bundle, max_chunk=steps)
    counts = [[] for _ in engine.pops[:-1]]
    preds = []
    for xi in x:
        engine.reset(xi)
        block = engine.advance(steps)
        for c, pop in zip(counts, engine.pops[:-1]):
            c.append(pop.spikes[:steps].sum(axis=0))
        preds.append(first_argmax(block.v_out))
    return [np.stack(c) for c in counts], np.stack(preds, axis=1)


def compare(counts: list[np.ndarray], preds: np.ndarray, ref_counts: list[np.ndarray], ref_preds: np.ndarray) -> dict:
    return {
        "count_match_per_layer": [float(np.mean(a == b)) for a, b in zip(counts, ref_counts)],
        "count_max_abs_diff_per_layer": [int(np.abs(a.astype(np.int64) - b).max()) for a, b in zip(counts, ref_counts)],
        "prediction_match_all_steps": float(np.mean(preds == ref_preds)),
        "prediction_match_last_step": float(np.mean(preds[-1] == ref_preds[-1])),
    }


def agrees(c: dict) -> bool:
    return (min(c["count_match_per_layer"]) >= MIN_COUNT_MATCH
            and c["prediction_match_all_steps"] >= MIN_PREDICTION_MATCH
            and c["prediction_match_last_step"] == 1.0)


def equivalence(bundle: Bundle, xin: np.ndarray, steps: int, n: int, worker: Worker, tchunk: int,
                tmp: Path) -> dict:
    t0 = time.perf_counter()
    ref = reference.simulate(bundle, xin[:n], steps, dtype=np.float64)
    ref_counts = [s.sum(axis=0).astype(np.int64) for s in ref.spikes]
    ref_preds = ref.predictions
    result: dict = {"images": n, "steps": steps, "reference_seconds": time.perf_counter() - t0,
                    "reference_spikes_per_layer": [int(c.sum()) for c in ref_counts]}
    s_counts, s_preds = ours_per_neuron(bundle, xin[:n], steps)
    result["ours_streaming_vs_reference"] = compare(s_counts, s_preds, ref_counts, ref_preds)

    from anytime_snn.sim.tf_engine import TFEngine

    tf_res = TFEngine(bundle).run(xin[:n], steps)
    tf_totals = tf_res.layer_spikes.sum(axis=1)
    result["ours_tf_engine_vs_reference"] = {
        "total_spikes_per_layer": [int(v) for v in tf_totals],
        "prediction_match_all_steps": float(np.mean(tf_res.predictions == ref_preds)),
        "prediction_match_last_step": float(np.mean(tf_res.predictions[-1] == ref_preds[-1])),
    }
    from anytime_snn.sim.batch_engine import BatchEngine

    nb_res = BatchEngine(bundle).run(xin[:n], steps)
    result["ours_numba_engine_vs_reference"] = {
        "total_spikes_per_layer_match": [int(v) for v in nb_res.layer_spikes.sum(axis=1)]
        == [int(c.sum()) for c in ref_counts],
        "prediction_match_all_steps": float(np.mean(nb_res.predictions == ref_preds)),
    }
    for peer in ("spikingjelly", "sinabs"):
        out = tmp / f"{peer}_counts.npz"
        worker(cmd="check", peer=peer, n=n, steps=steps, tchunk=tchunk, out=str(out))
        d = np.load(out)
        counts = [d[f"counts{i}"].astype(np.int64) for i in range(len(ref_counts))]
        preds, preds_stream = first_argmax(d["v_out"]), first_argmax(d["v_out_stream"])
        entry = {
            "batched_vs_reference": compare(counts, preds, ref_counts, ref_preds),
            "batched_vs_ours_streaming": compare(counts, preds, s_counts, s_preds),
            "streaming_prediction_match_vs_reference": float(np.mean(preds_stream == ref_preds)),
            "total_spikes_per_layer": [int(c.sum()) for c in counts],
        }
        entry["agrees"] = (agrees(entry["batched_vs_reference"])
                           and entry["streaming_prediction_match_vs_reference"] >= MIN_PREDICTION_MATCH)
        result[peer] = entry
    return result


# ----------------------------------------------------------------------------- timing


def numpy_roofline(bundle: Bundle, x: np.ndarray, steps: int, batch: int):
    """T full forward passes of every layer's product with NumPy/BLAS, in batches (no dynamics)."""
    weighted = bundle.weighted_layers
    in_shapes, shape = [], tuple(bundle.input.shape)
    for layer in bundle.layers:
        if layer.weighted:
            in_shapes.append(shape)
        shape = output_shape(layer, shape)

    def run():
        for start in range(0, len(x), batch):
            xb = x[start:start + batch]
            for _ in range(steps):
                h = xb
                for layer, s in zip(weighted, in_shapes):
                    h = ops.linear(layer, h.reshape(h.shape[0], *s))
    return run


def rotation(fns: dict, rounds: int, log) -> dict:
    """Warm every candidate up, then time them in rotation; best of ``rounds`` seconds each."""
    for name, fn in fns.items():
        log(f"warm-up {name}")
        fn()
    best = {name: float("inf") for name in fns}
    for r in range(rounds):
        for name, fn in fns.items():
            best[name] = min(best[name], fn())
        log(f"round {r + 1}: " + ", ".join(f"{k} {v:.2f}s" for k, v in best.items()))
    return best


def timed(fn):
    def run() -> float:
        t0 = time.perf_counter()
        fn()
        return time.perf_counter() - t0
    return run


def loadavg() -> list[float]:
    return [round(v, 2) for v in os.getloadavg()]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workload", choices=("dense", "conv"), required=True)
    ap.add_argument("--images", type=int, default=1000, help="batched: images (MNIST test set, first N)")
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--batch", type=int, default=100,
                    help="batch of the peers, the rooflines and our engine's second run")
    ap.add_argument("--tchunk", type=int, default=25, help="peers' multi-step time chunk (bounds T x batch memory)")
    ap.add_argument("--stream-images", type=int, default=5, help="batch 1: images simulated one after the other")
    ap.add_argument("--check-images", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2, help="PyTorch threads in the peers' process (batched)")
    ap.add_argument("--stream-threads", type=int, default=1,
                    help="PyTorch threads for the batch-1 runs (our streaming engine is single-threaded)")
    ap.add_argument("--peer-python", type=Path, default=HERE / ".venv" / "bin" / "python")
    ap.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "results" / "peers.json")
    ap.add_argument("--name", help="key of this run in --json (default: the workload)")
    ap.add_argument("--model", default="models/default", help="the dense workload's bundle (default models/default)")
    ap.add_argument("--record", help="write this run's numbers with their provenance (command, commit, model hash, "
                                     "machine, load) to this JSON file")
    args = ap.parse_args()
    model_dir = require_model(args.model) if args.workload == "dense" else None
    record = Record(model_dir)
    log = lambda msg: print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)  # noqa: E731
    if not args.peer_python.exists():
        sys.exit(f"{args.peer_python} missing: run benchmarks/peers/setup.sh first")

    started = time.time()
    if args.workload == "dense":
        bundle, name = dense_network(model_dir)
    else:
        bundle, name = conv_network(), "conv_network(seed=0) from benchmarks/bench_engines.py"
    images, _ = load_mnist("test")
    xin = network_input(bundle, images[: max(args.images, args.check_images, args.stream_images)])
    steps = args.steps
    res: dict = {
        "workload": args.workload, "model": name, "model_identity": model_identity(model_dir),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join([".venv/bin/python", "benchmarks/peers/bench_peers.py", *sys.argv[1:]]),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "loadavg_before": loadavg(), "images": args.images, "steps": steps, "batch": args.batch,
        "tchunk": args.tchunk, "stream_images": args.stream_images, "rounds": args.rounds,
        "stream_torch_threads": args.stream_threads,
    }
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        export_network(bundle, tmp / "net.npz")
        x_nchw = np.ascontiguousarray(xin.transpose(0, 3, 1, 2), np.float32)
        np.save(tmp / "x.npy", x_nchw)
        worker = Worker(args.peer_python)
        try:
            info = worker(cmd="load", network=str(tmp / "net.npz"), inputs=str(tmp / "x.npy"), threads=args.threads)
            res["peer_versions"], res["torch_threads"] = info["versions"], info["threads"]
            log("equivalence check")
            eq = equivalence(bundle, xin, steps, args.check_images, worker, args.tchunk, tmp)
            res["equivalence"] = eq
            print(json.dumps({"equivalence": eq}, indent=1), flush=True)
            peers = [p for p in ("spikingjelly", "sinabs") if eq[p]["agrees"]]
            res["timed_peers"] = peers

            from anytime_snn.sim.batch_engine import BatchEngine
            from anytime_snn.sim.tf_engine import TFEngine

            n, x = args.images, xin[: args.images]
            engine, engine_b = TFEngine(bundle), TFEngine(bundle, batch_size=args.batch)
            numba_engine = BatchEngine(bundle)

            def remote(peer, threads=args.threads, **kw):
                return lambda: worker(cmd="time", peer=peer, steps=steps, threads=threads, **kw)["seconds"]

            batched = {
                "ours_numba_engine": timed(lambda: numba_engine.run(x, steps)),
                "ours_tf_engine": timed(lambda: engine.run(x, steps)),
                f"ours_tf_engine_batch{args.batch}": timed(lambda: engine_b.run(x, steps)),
                "numpy_roofline": timed(numpy_roofline(bundle, x, steps, args.batch)),
                "torch_roofline": remote("torch_roofline", mode="batched", n=n, batch=args.batch, tchunk=args.tchunk),
                # the same with one thread: shows what thread oversubscription on a loaded machine costs
                "torch_roofline_1thread": remote("torch_roofline", 1, mode="batched", n=n, batch=args.batch,
                                                 tchunk=args.tchunk),
            }
            for p in peers:
                batched[p] = remote(p, mode="batched", n=n, batch=args.batch, tchunk=args.tchunk)
            log("batched timing")
            t_b = rotation(batched, args.rounds, log)
            res["tf_engine_chunk"] = engine.chunk_size(steps)
            res["batched_image_steps_per_s"] = {k: n * steps / v for k, v in t_b.items()}

            m = args.stream_images
            xs = xin[:m]

            def streaming(k):
                eng = StreamingEngine(bundle, max_chunk=k)

                def run():
                    for xi in xs:
                        eng.reset(xi)
                        for _ in range(steps // k):
                            eng.advance(k)
                return run

            stream = {
                "ours_streaming_k1": timed(streaming(1)),
                f"ours_streaming_k{steps}": timed(streaming(steps)),
                "numpy_roofline_batch1": timed(lambda: [numpy_roofline(bundle, xs[j:j + 1], steps, 1)()
                                                        for j in range(m)]),
                "torch_roofline_batch1": remote("torch_roofline", args.stream_threads, mode="stream", n=m),
            }
            for p in peers:
                stream[f"{p}_per_step"] = remote(p, args.stream_threads, mode="stream", n=m)
                stream[f"{p}_whole_frame"] = remote(p, args.stream_threads, mode="batched", n=m, batch=1, tchunk=steps)
            log("batch-1 timing")
            t_s = rotation(stream, args.rounds, log)
            res["stream_steps_per_s"] = {k: m * steps / v for k, v in t_s.items()}
        finally:
            worker.close()
    b, s = res["batched_image_steps_per_s"], res["stream_steps_per_s"]
    ours_b = max(b["ours_numba_engine"], b["ours_tf_engine"], b[f"ours_tf_engine_batch{args.batch}"])
    res["ratios_batched_ours_best_vs"] = {k: ours_b / v for k, v in b.items() if not k.startswith("ours")}
    res["ratios_stream_ours_k1_vs"] = {k: s["ours_streaming_k1"] / v for k, v in s.items() if not k.startswith("ours")}
    res["ratios_stream_ours_kT_vs"] = {k: s[f"ours_streaming_k{steps}"] / v for k, v in s.items()
                                       if not k.startswith("ours")}
    res["loadavg_after"] = loadavg()
    res["wall_s"] = round(time.time() - started, 1)
    print(json.dumps({k: res[k] for k in res if k != "equivalence"}, indent=1))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    all_res = json.loads(args.json.read_text()) if args.json.is_file() else {}
    all_res[args.name or args.workload] = res
    args.json.write_text(json.dumps(all_res, indent=1) + "\n")
    if args.record:
        record.finish(res)
        record.write(args.record)
    return 0


if __name__ == "__main__":
    sys.exit(main())
