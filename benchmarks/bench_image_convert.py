"""Time the node's image conversion (decode + resize + scale, ``InputAdapter.convert``) per frame.

    .venv/bin/python benchmarks/bench_image_convert.py [--model models/default] [--repeat 2000]
        [--record results/NAME.json]

What the node's subscription callback does to each ``sensor_msgs/Image`` before the engine sees it, for a
28x28 mono8 frame (the model's own size) and a 640x480 rgb8 camera frame, as the median of ``--repeat``
calls after a warm-up (the resize matrices are cached per input size). Also the largest message the
converter accepts (4096 x 4096) in three encodings: seconds per call (median of 3) and the peak of the
memory it allocates on top of the message (tracemalloc, which sees NumPy's buffers), the bound
docs/reliability.md gives. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "ros2_ws" / "src" / "spike_perception"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from record import Record, require_model  # noqa: E402

from anytime_snn.model import load_bundle  # noqa: E402
from spike_perception.image_convert import InputAdapter  # noqa: E402

FRAMES = {"mono8 28x28": (28, 28, "mono8", 1), "rgb8 640x480": (480, 640, "rgb8", 3)}
LARGEST = {"rgba8 4096x4096": ("rgba8", np.uint8, 4), "32FC1 4096x4096": ("32FC1", np.float32, 1),
           "mono16 4096x4096": ("mono16", np.uint16, 1)}


def per_call_us(adapter: InputAdapter, frame: tuple, repeat: int) -> float:
    height, width, encoding, channels = frame
    data = np.random.default_rng(0).integers(0, 256, height * width * channels, np.uint8).tobytes()
    args = (height, width, encoding, False, width * channels, data)
    adapter.convert(*args)  # warm-up: the cached resize matrices
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        adapter.convert(*args)
        times.append(time.perf_counter() - t0)
    return 1e6 * statistics.median(times)


def largest(adapter: InputAdapter, encoding: str, dtype, channels: int, side: int = 4096) -> dict:
    """Seconds per call (median of 3) and peak extra allocation (MiB) for a side x side message."""
    rng = np.random.default_rng(0)
    pixels = (rng.random(side * side * channels, np.float32) if dtype == np.float32
              else rng.integers(0, np.iinfo(dtype).max, side * side * channels, dtype))
    data = pixels.tobytes()
    args = (side, side, encoding, False, side * channels * np.dtype(dtype).itemsize, data)
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        adapter.convert(*args)
        times.append(time.perf_counter() - t0)
    tracemalloc.start()
    adapter.convert(*args)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return {"message_mib": len(data) / 2**20, "seconds": statistics.median(times), "peak_extra_mib": peak / 2**20}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="models/default")
    ap.add_argument("--repeat", type=int, default=2000)
    ap.add_argument("--record", help="write the numbers with their provenance to this JSON file")
    args = ap.parse_args()
    model = require_model(args.model)
    record = Record(model)
    bundle = load_bundle(model)
    adapter = InputAdapter.for_bundle(bundle)
    out = {"model_input": list(bundle.input.shape), "repeat": args.repeat,
           "median_us_per_frame": {name: per_call_us(adapter, frame, args.repeat) for name, frame in FRAMES.items()},
           "largest_message": {name: largest(adapter, *spec) for name, spec in LARGEST.items()}}
    print(json.dumps(out, indent=1))
    if args.record:
        record.finish(out)
        record.write(args.record)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
