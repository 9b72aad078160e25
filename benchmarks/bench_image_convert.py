"""Time the node's image conversion (decode + resize + scale, ``InputAdapter.convert``) per frame.

    .venv/bin/python benchmarks/bench_image_convert.py [--model models/default] [--repeat 2000]
        [--record results/NAME.json]

What the node's subscription callback does to each ``sensor_msgs/Image`` before the engine sees it, for a
28x28 mono8 frame (the model's own size) and a 640x480 rgb8 camera frame, as the median of ``--repeat``
calls after a warm-up (the resize matrices are cached per input size). Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "ros2_ws" / "src" / "spike_perception"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from record import Record, require_model  # noqa: E402

from anytime_snn.model import load_bundle  # noqa: E402
from spike_perception.image_convert import InputAdapter  # noqa: E402

FRAMES = {"mono8 28x28": (28, 28, "mono8", 1), "rgb8 640x480": (480, 640, "rgb8", 3)}


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
           "median_us_per_frame": {name: per_call_us(adapter, frame, args.repeat) for name, frame in FRAMES.items()}}
    print(json.dumps(out, indent=1))
    if args.record:
        record.finish(out)
        record.write(args.record)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
