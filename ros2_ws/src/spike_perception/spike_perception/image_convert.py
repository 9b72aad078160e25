"""sensor_msgs/Image fields -> network input, with NumPy only (no cv_bridge, no rclpy).

Two steps, both plain functions/classes that tests drive without ROS:

1. :func:`decode_image` checks the message fields (encoding, size, step, data length, finiteness) and
   returns intensities in [0, 1] as float32 (H, W, C), C = 1 (mono) or 3 (RGB order).
   uint8 / 255, uint16 / 65535; 32FC1 is taken as is (already an intensity; out-of-range values pass).
2. :class:`InputAdapter` converts colour (luma or replication), resizes (area average when shrinking,
   bilinear when enlarging, as precomputed matrices cached per input size) and normalises
   ``(x - mean) / std`` into the bundle's input shape.

Anything malformed raises :class:`ImageRejected` with a short ``reason`` code (used for counting) and
a message that says what was received and what is valid.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

# encoding -> (channels in the message, dtype, channel order to RGB or None for mono)
ENCODINGS: dict[str, tuple[int, str, tuple[int, ...] | None]] = {
    "mono8": (1, "u1", None),
    "mono16": (1, "u2", None),
    "32FC1": (1, "f4", None),
    "rgb8": (3, "u1", (0, 1, 2)),
    "bgr8": (3, "u1", (2, 1, 0)),
    "rgba8": (4, "u1", (0, 1, 2)),
    "bgra8": (4, "u1", (2, 1, 0)),
}
MAX_SIDE = 8192
MAX_PIXELS = 4096 * 4096
_LUMA = np.array([0.299, 0.587, 0.114], np.float32)  # ITU-R BT.601, as OpenCV's RGB2GRAY


class ImageRejected(ValueError):
    """An image that cannot be classified. ``reason`` is a short code for counters and diagnostics."""

    def __init__(self, reason: str, message: str):
        self.reason = reason
        super().__init__(message)


def decode_raw(height: int, width: int, encoding: str, is_bigendian: bool, step: int, data):
    """Validate the fields of a sensor_msgs/Image; return (pixels (H, W, C) in RGB order, scale to [0, 1]).

    ``pixels`` keeps the message's sample type (a view of ``data`` where possible); alpha is dropped.
    """
    if encoding not in ENCODINGS:
        raise ImageRejected("encoding", f"unsupported encoding {encoding!r}; supported: {', '.join(ENCODINGS)}")
    channels, kind, order = ENCODINGS[encoding]
    if height <= 0 or width <= 0:
        raise ImageRejected("size", f"empty image ({height}x{width})")
    if height > MAX_SIDE or width > MAX_SIDE or height * width > MAX_PIXELS:
        raise ImageRejected("size", f"image {height}x{width} is too large (at most {MAX_SIDE} per side and "
                                    f"{MAX_PIXELS} pixels)")
    itemsize = int(kind[1])
    row_bytes = width * channels * itemsize
    if step < row_bytes or step > row_bytes + 4096:
        raise ImageRejected("step", f"step {step} does not fit a row of {width} {encoding} pixels "
                                    f"({row_bytes} bytes, padding up to 4096)")
    buf = data if isinstance(data, (bytes, bytearray, memoryview)) else memoryview(data)
    nbytes = len(buf) * (buf.itemsize if isinstance(buf, memoryview) else 1)
    if nbytes != step * height:
        raise ImageRejected("data_size", f"data has {nbytes} bytes, expected step*height = {step * height}")
    if step % itemsize:
        raise ImageRejected("step", f"step {step} is not a multiple of the {itemsize}-byte sample size")
    dtype = np.dtype(kind).newbyteorder(">" if is_bigendian else "<") if itemsize > 1 else np.dtype(kind)
    rows = np.frombuffer(buf, np.uint8).reshape(height, step)
    if step != row_bytes:
        rows = np.ascontiguousarray(rows[:, :row_bytes])
    pixels = rows.view(dtype).reshape(height, width, channels)
    if kind == "f4" and not np.isfinite(pixels).all():
        raise ImageRejected("non_finite", "32FC1 image contains NaN or infinite values")
    if order is not None and (order != (0, 1, 2) or channels != 3):
        pixels = pixels[..., list(order)]  # to RGB, dropping alpha
    scale = {"u1": 1 / 255, "u2": 1 / 65535, "f4": 1.0}[kind]
    return pixels, scale


def decode_image(height: int, width: int, encoding: str, is_bigendian: bool, step: int, data) -> np.ndarray:
    """Validate the fields of a sensor_msgs/Image and return float32 (H, W, C) intensities, RGB order."""
    pixels, scale = decode_raw(height, width, encoding, is_bigendian, step, data)
    out = pixels.astype(np.float32)
    if scale != 1.0:
        out *= np.float32(scale)
    return out


def resize_matrix(src: int, dst: int) -> np.ndarray:
    """(dst, src) linear map along one axis: area average when shrinking, bilinear when enlarging."""
    m = np.zeros((dst, src), np.float32)
    if dst == src:
        np.fill_diagonal(m, 1)
    elif dst < src:
        scale = src / dst
        for i in range(dst):
            lo, hi = i * scale, (i + 1) * scale
            for j in range(int(math.floor(lo)), min(int(math.ceil(hi)), src)):
                m[i, j] = min(hi, j + 1) - max(lo, j)
        m /= m.sum(axis=1, keepdims=True)
    else:
        scale = src / dst
        for i in range(dst):
            c = min(max((i + 0.5) * scale - 0.5, 0.0), src - 1)
            j0 = int(math.floor(c))
            j1 = min(j0 + 1, src - 1)
            w = c - j0
            m[i, j0] += 1 - w
            m[i, j1] += w
    return m


def _bands(m: np.ndarray) -> list[tuple[int, int, np.ndarray]]:
    """Each row of a banded (dst, src) matrix as (first column, end column, weights)."""
    out = []
    for row in m:
        nz = np.flatnonzero(row)
        lo, hi = int(nz[0]), int(nz[-1]) + 1
        out.append((lo, hi, np.ascontiguousarray(row[lo:hi], np.float32)))
    return out


@dataclass(frozen=True)
class TargetLayout:
    """Where the adapter puts the image: (height, width, channels) and how the network sees it."""

    height: int
    width: int
    channels: int
    flat: bool  # the network input is the C-order flattening, shape (height*width*channels,)


def target_layout(input_shape: tuple[int, ...], color: str, image_shape=None) -> TargetLayout:
    """Image layout for a bundle input of ``input_shape``.

    (H, W, C) inputs are used as is. A dense net's (N,) input is an image flattened in C order: its
    (H, W[, C]) comes from the bundle's ``provenance["image_shape"]`` when present, else a square
    sqrt(N) x sqrt(N) mono image.
    """
    shape = tuple(int(d) for d in input_shape)
    if len(shape) == 3:
        return TargetLayout(shape[0], shape[1], shape[2], flat=False)
    if len(shape) != 1:
        raise ValueError(f"unsupported network input shape {shape}")
    n = shape[0]
    if image_shape is not None:
        dims = [int(d) for d in image_shape]
        if len(dims) == 2:
            dims.append(1)
        if len(dims) != 3 or math.prod(dims) != n or min(dims) <= 0:
            raise ValueError(f"provenance image_shape {image_shape} does not flatten to the input size {n}")
        return TargetLayout(dims[0], dims[1], dims[2], flat=True)
    side = math.isqrt(n)
    channels = 3 if color == "rgb" else 1
    if channels == 3 and side * side * 3 == n:
        return TargetLayout(side, side, 3, flat=True)
    if side * side != n:
        raise ValueError(f"dense input of {n} values is not a square image; set provenance['image_shape']")
    return TargetLayout(side, side, 1, flat=True)


class InputAdapter:
    """Decoded image (H, W, C in [0, 1]) -> network input (float32, ``input_shape``), for one bundle."""

    def __init__(self, input_shape, *, mean: float = 0.0, std: float = 1.0, color: str = "mono", image_shape=None):
        self.input_shape = tuple(int(d) for d in input_shape)
        self.layout = target_layout(self.input_shape, color, image_shape)
        self.mean, self.inv_std = np.float32(mean), np.float32(1.0 / std)
        self._matrices: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}

    @classmethod
    def for_bundle(cls, bundle) -> "InputAdapter":
        spec = bundle.input
        return cls(spec.shape, mean=spec.mean, std=spec.std, color=spec.color,
                   image_shape=bundle.provenance.get("image_shape"))

    def _resize(self, img: np.ndarray) -> np.ndarray:
        """(H, W, C) -> (height, width, C) float32 with the cached separable resize matrices.

        The row pass only touches the rows each output row needs (the matrices are banded), so a
        camera-sized frame costs a few small products instead of a full GEMM.
        """
        h, w, c = img.shape
        lay = self.layout
        if (h, w) == (lay.height, lay.width):
            return img.astype(np.float32, copy=False)
        mats = self._matrices.get((h, w))
        if mats is None:
            if len(self._matrices) > 16:  # a camera changing size every frame must not grow memory
                self._matrices.clear()
            mats = self._matrices[(h, w)] = (_bands(resize_matrix(h, lay.height)),
                                             resize_matrix(w, lay.width).T.copy())
        bands, rwt = mats
        flat = img.reshape(h, w * c)
        rows = np.empty((lay.height, w * c), np.float32)
        for i, (lo, hi, weights) in enumerate(bands):
            np.matmul(weights, flat[lo:hi], out=rows[i])
        cols = np.matmul(rows.reshape(lay.height, w, c).transpose(0, 2, 1), rwt)  # (th, c, tw)
        return np.ascontiguousarray(cols.transpose(0, 2, 1))

    def __call__(self, img: np.ndarray, scale: float = 1.0) -> np.ndarray:
        """Intensities (H, W, C) (times ``scale``) -> network input. Resizing, colour and scaling are
        linear, so the image is resized first (cheap for camera-sized frames)."""
        lay = self.layout
        img = self._resize(img)
        c = img.shape[2]
        if lay.channels == 1 and c == 3:
            img = (img @ _LUMA)[..., None]
        elif lay.channels == 3 and c == 1:
            img = np.repeat(img, 3, axis=2)
        x = (img * np.float32(scale) - self.mean) * self.inv_std
        return np.ascontiguousarray(x, np.float32).reshape(self.input_shape)

    def convert(self, height, width, encoding, is_bigendian, step, data) -> np.ndarray:
        """Decode and adapt in one call; raises :class:`ImageRejected`."""
        pixels, scale = decode_raw(height, width, encoding, is_bigendian, step, data)
        return self(pixels, scale)
