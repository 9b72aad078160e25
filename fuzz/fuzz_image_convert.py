"""Fuzz the node's image converter (``spike_perception.image_convert``): every encoding, any header, any data.

Input layout (the seed corpus holds real MNIST digits in it; see ``make_seeds.py``)::

    u8 flags        bits 0-2: target network input (TARGETS), bit 3: is_bigendian,
                    bits 4-5: container of ``data`` (bytes, bytearray, memoryview, array('B')),
                    bit 6: cut or zero-pad the data to step * height (when that is 0..4 MiB), so that
                    mutated headers get past the size check
    u8 n, n bytes   encoding (latin-1)
    i32 height, i32 width, i32 step (little-endian; negative values are fuzzed too)
    rest            data

Property: ``InputAdapter.convert`` and ``decode_image`` either return a float32 array of the bundle's
input shape (finite for integer encodings and bounded 32FC1 values, no larger than 4x the data) or
raise ``ImageRejected`` with a known reason and a message; nothing else, for any input.
"""

from __future__ import annotations

import array
import struct
import sys

import numpy as np

import _common

with _common.instrumented(__name__ == "__main__", "spike_perception"):
    from spike_perception.image_convert import ENCODINGS, ImageRejected, InputAdapter, decode_image

REASONS = {"encoding", "size", "step", "data_size", "non_finite"}
# (input shape, colour, provenance image_shape): the bundle inputs the node supports.
TARGETS = [((784,), "mono", None), ((28, 28, 1), "mono", None), ((32, 32, 3), "rgb", None),
           ((3072,), "rgb", (32, 32, 3)), ((12,), "mono", (3, 4)), ((1, 1, 1), "mono", None),
           ((64, 48, 1), "mono", None), ((5, 7, 3), "rgb", None)]
ADAPTERS = [InputAdapter(shape, mean=0.1307, std=0.3081, color=color, image_shape=ims) for shape, color, ims in TARGETS]
HEADER = struct.Struct("<iii")
FIT_LIMIT = 4 << 20


def pack(flags: int, encoding: str, height: int, width: int, step: int, data: bytes) -> bytes:
    """The fuzz input for one sensor_msgs/Image (used to write the seed corpus)."""
    enc = encoding.encode("latin-1")
    return bytes([flags, len(enc)]) + enc + HEADER.pack(height, width, step) + data


def unpack(buf: bytes):
    if len(buf) < 2:
        buf = buf + b"\0" * (2 - len(buf))
    flags, n = buf[0], buf[1]
    encoding = buf[2:2 + n].decode("latin-1")
    rest = buf[2 + n:]
    rest = rest + b"\0" * max(0, HEADER.size - len(rest))
    height, width, step = HEADER.unpack_from(rest)
    raw = rest[HEADER.size:]
    if flags & 64 and 0 <= step * height <= FIT_LIMIT:
        raw = raw[:step * height].ljust(step * height, b"\0")
    container = (flags >> 4) & 3
    data = (bytes(raw), bytearray(raw), memoryview(raw), array.array("B", raw))[container]
    return flags & 7, bool(flags & 8), encoding, height, width, step, data, raw


def test_one_input(buf: bytes) -> None:
    target, big, encoding, height, width, step, data, raw = unpack(buf)
    adapter = ADAPTERS[target % len(ADAPTERS)]
    try:
        x = adapter.convert(height, width, encoding, big, step, data)
    except ImageRejected as e:
        assert e.reason in REASONS and str(e), (e.reason, str(e))
        try:
            decode_image(height, width, encoding, big, step, data)
        except ImageRejected as e2:
            assert e2.reason == e.reason
        else:
            raise AssertionError("decode_image accepted what convert rejected")
        return
    assert x.dtype == np.float32 and x.shape == adapter.input_shape, (x.dtype, x.shape)
    img = decode_image(height, width, encoding, big, step, data)
    assert img.shape == (height, width, 1 if ENCODINGS[encoding][0] == 1 else 3)
    assert img.nbytes <= 4 * len(raw), "decoded image larger than 4x its data"
    kind = ENCODINGS[encoding][1]
    if kind != "f4" or float(np.abs(img).max()) <= 1e30:
        assert np.isfinite(x).all(), "finite image gave a non-finite network input"
    if kind != "f4":
        assert 0.0 <= img.min() and img.max() <= 1.0
        lo, hi = (0 - adapter.mean) * adapter.inv_std, (1 - adapter.mean) * adapter.inv_std
        assert lo - 1e-3 <= x.min() and x.max() <= hi + 1e-3, (x.min(), x.max())


if __name__ == "__main__":
    _common.fuzz(test_one_input)
    sys.exit(0)
