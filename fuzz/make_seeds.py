"""Write the seed corpora under ``fuzz/corpus/<target>/`` from real inputs (deterministic; commit the output).

- image_convert: MNIST test digits as sensor_msgs/Image fields in every encoding (mono8/16, 32FC1,
  rgb8/bgr8/rgba8/bgra8; padded rows; big-endian), plus a few rejected headers.
- bundle_loader: small valid bundles written by ``save_bundle`` (dense with calibration; conv +
  depthwise + flatten + dense; schema 2 with zero padding, max pooling and a residual input), both
  as computed-header and raw tensor-file inputs.
- core_validation: the node's default parameters and typical / edge requests.

Usage: .venv/bin/python fuzz/make_seeds.py
"""

from __future__ import annotations

import hashlib
import sys
import tempfile
from pathlib import Path

import numpy as np

import _common  # noqa: F401  (import paths)
import fuzz_bundle_loader
import fuzz_core_validation
import fuzz_image_convert

CORPUS = Path(__file__).resolve().parent / "corpus"


def write(target: str, items: list[bytes]) -> None:
    d = CORPUS / target
    d.mkdir(parents=True, exist_ok=True)
    for old in d.iterdir():
        old.unlink()
    for data in items:
        (d / hashlib.sha1(data).hexdigest()).write_bytes(data)
    print(f"{target}: {len(items)} seeds, {sum(map(len, items))} bytes")


def image_seeds() -> list[bytes]:
    from anytime_snn.data import load_dataset

    digits = load_dataset("mnist", "test", limit=3).images  # (3, 28, 28[, 1]) uint8
    digits = np.asarray(digits).reshape(-1, 28, 28)
    pack, out = fuzz_image_convert.pack, []
    for i, img in enumerate(digits):
        small = img[::2, ::2]  # 14x14 keeps multi-channel seeds under libFuzzer's default max_len
        target = i % 8 | (64 if i == 1 else 0)  # one digit's seeds fit their data to the header (flag bit 6)
        out.append(pack(target, "mono8", 28, 28, 28, img.tobytes()))
        out.append(pack(target, "mono8", 28, 28, 32, np.pad(img, ((0, 0), (0, 4))).tobytes()))  # padded rows
        out.append(pack(target | 8, "mono16", 14, 14, 28, (small.astype(">u2") * 257).tobytes()))
        out.append(pack(target, "mono16", 14, 14, 28, (small.astype("<u2") * 257).tobytes()))
        out.append(pack(target, "32FC1", 14, 14, 56, (small.astype("<f4") / 255).tobytes()))
        rgb = np.repeat(small[..., None], 3, axis=2)
        rgb[..., 1] //= 2
        out.append(pack(target | 16, "rgb8", 14, 14, 42, rgb.tobytes()))
        out.append(pack(target | 32, "bgr8", 14, 14, 42, rgb[..., ::-1].tobytes()))
        rgba = np.concatenate([rgb, np.full((14, 14, 1), 255, np.uint8)], axis=2)
        out.append(pack(target | 48, "rgba8", 14, 14, 56, rgba.tobytes()))
        out.append(pack(target, "bgra8", 14, 14, 56, rgba[..., [2, 1, 0, 3]].tobytes()))
    img = digits[0]
    out.append(pack(0, "mono8", 28, 28, 28, img.tobytes()[:-1]))  # data one byte short
    out.append(pack(1, "yuv422", 28, 28, 28, img.tobytes()))  # unsupported encoding
    out.append(pack(2, "32FC1", 1, 2, 8, np.array([np.nan, 1], "<f4").tobytes()))  # NaN
    out.append(pack(3, "mono8", 0, 28, 28, b""))  # empty
    return out


def bundle_seeds() -> list[bytes]:
    from anytime_snn.model import Calibration, NeuronConfig, save_bundle
    from anytime_snn.testing import NetSpec, dense_bundle, random_bundle

    dense = dense_bundle((12, 6, 3), seed=2)
    dense.calibration = Calibration(np.linspace(1, 0.5, 4, dtype=np.float32))
    dense.provenance = {"ann_accuracy": 0.9, "image_shape": [3, 4]}
    conv = random_bundle(NetSpec(input_shape=(5, 5, 1), convs=(("conv2d", 3, 2, 2, "same"),
                                                               ("depthwise_conv2d", 2, 0, 1, "valid")),
                                 dense=(3,), classes=2, neuron=NeuronConfig.spinnaker(), v0_mode="channel"), 3)
    schema2 = random_bundle(NetSpec(input_shape=(6, 6, 1), convs=(("zero_pad2d", 1, 0, 1, ""), ("conv2d", 3, 2, 1, "valid"),
                                                                  ("max_pool2d", 2, 0, 2, "valid"),
                                                                  ("residual", 3, 0, 1, "same")),
                                    dense=(), classes=2), 4)  # zero padding, max pooling, a residual input
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, b in enumerate((dense, conv, schema2)):
            path = save_bundle(b, Path(tmp) / str(i))
            m = (path / "manifest.json").read_bytes()
            t = (path / "tensors.safetensors").read_bytes()
            out += [fuzz_bundle_loader.pack(m, t, structured=True), fuzz_bundle_loader.pack(m, t, structured=False)]
    return out


def core_seeds() -> list[bytes]:
    pack = fuzz_core_validation.pack
    defaults = dict(timesteps=0, publish_every=1, timestep_period=0.0, min_confidence=0.0, max_synaptic_events=0,
                    frame_policy="latest", reset_between_frames=True)
    return [
        pack(0, 20_000_000, 0, 0.0, 0, defaults),  # 20 ms budget, node defaults (timesteps 0 = the model's)
        pack(0, 0, 30, 0.9, 0, dict(defaults, timesteps=30, publish_every=5, frame_policy="finish")),
        pack(0, 5_000_000, 8, 0.0, 2000, dict(defaults, timesteps=8, max_synaptic_events=1000,
                                              reset_between_frames=False)),
        pack(1, 0, 1_000_000, 1.0, 2**63 - 1, dict(defaults, timesteps=1_000_000, timestep_period=0.001)),
        pack(-1, 999_999_999, 1, float("nan"), 2**64 - 1, dict(defaults, timesteps=-1, min_confidence=float("inf"),
                                                               frame_policy="newest", publish_every=0)),
        pack(0, 0, 10, 0.5, 0, dict(defaults, timesteps="10", min_confidence=None, publish_every=[1]), flags=1),
    ]


if __name__ == "__main__":
    write("image_convert", image_seeds())
    write("bundle_loader", bundle_seeds())
    write("core_validation", core_seeds())
    sys.exit(0)
