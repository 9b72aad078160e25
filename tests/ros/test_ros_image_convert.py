"""Image decoding and adaptation to the bundle input (ROS-free)."""

import numpy as np
import pytest

from spike_perception.image_convert import (ImageRejected, InputAdapter, decode_image, resize_matrix,
                                            target_layout)

RNG = np.random.default_rng(3)
IMG = RNG.integers(0, 256, (28, 28, 3), dtype=np.uint8)


def fields(arr: np.ndarray, encoding: str, bigendian: bool = False, pad: int = 0):
    h, w = arr.shape[:2]
    raw = np.ascontiguousarray(arr).view(np.uint8).reshape(h, -1)
    if pad:
        raw = np.concatenate([raw, np.full((h, pad), 7, np.uint8)], axis=1)
    return dict(height=h, width=w, encoding=encoding, is_bigendian=bigendian, step=raw.shape[1], data=raw.tobytes())


def test_mono8_exact_size_is_pixels_over_255():
    mono = IMG[..., 0]
    out = decode_image(**fields(mono, "mono8"))
    assert out.shape == (28, 28, 1) and out.dtype == np.float32
    np.testing.assert_allclose(out[..., 0], mono / 255.0, rtol=1e-6)
    adapter = InputAdapter((784,), mean=0.5, std=0.25)
    np.testing.assert_allclose(adapter(out), ((mono / 255.0 - 0.5) / 0.25).reshape(-1), rtol=1e-5, atol=1e-6)


def test_colour_orders_agree_and_alpha_is_dropped():
    rgb = decode_image(**fields(IMG, "rgb8"))
    bgr = decode_image(**fields(IMG[..., ::-1], "bgr8"))
    alpha = RNG.integers(0, 256, (28, 28, 1), dtype=np.uint8)
    rgba = decode_image(**fields(np.concatenate([IMG, alpha], 2), "rgba8"))
    bgra = decode_image(**fields(np.concatenate([IMG[..., ::-1], alpha], 2), "bgra8"))
    for other in (bgr, rgba, bgra):
        np.testing.assert_array_equal(rgb, other)
    np.testing.assert_allclose(rgb, IMG / 255.0, rtol=1e-6)
    # mono network: BT.601 luma
    x = InputAdapter((28, 28, 1))(rgb)
    np.testing.assert_allclose(x[..., 0], (IMG / 255.0) @ [0.299, 0.587, 0.114], rtol=1e-5, atol=1e-6)
    # rgb network from a mono image: replicated channels
    mono = decode_image(**fields(IMG[..., 0], "mono8"))
    y = InputAdapter((28, 28, 3), color="rgb")(mono)
    assert np.array_equal(y[..., 0], y[..., 2]) and np.allclose(y[..., 1], IMG[..., 0] / 255.0)


@pytest.mark.parametrize("bigendian", [False, True])
def test_mono16_both_byte_orders(bigendian):
    px = RNG.integers(0, 65536, (5, 7), dtype=np.uint16)
    arr = px.astype(">u2" if bigendian else "<u2")
    out = decode_image(**fields(arr, "mono16", bigendian))
    np.testing.assert_allclose(out[..., 0], px / 65535.0, rtol=1e-6)


def test_32fc1_passes_values_and_rejects_non_finite():
    px = RNG.random((6, 6), dtype=np.float32)
    np.testing.assert_array_equal(decode_image(**fields(px, "32FC1"))[..., 0], px)
    px[2, 3] = np.nan
    with pytest.raises(ImageRejected) as e:
        decode_image(**fields(px, "32FC1"))
    assert e.value.reason == "non_finite"


def test_row_padding_is_ignored():
    mono = IMG[..., 1]
    np.testing.assert_array_equal(decode_image(**fields(mono, "mono8", pad=4)), decode_image(**fields(mono, "mono8")))


@pytest.mark.parametrize("change, reason", [
    (dict(encoding="yuv422"), "encoding"),
    (dict(encoding="16UC1"), "encoding"),
    (dict(height=0, data=b""), "size"),
    (dict(width=0), "size"),
    (dict(height=100000, width=100000), "size"),
    (dict(step=27), "step"),
    (dict(step=28 + 10000), "step"),
    (dict(data=b"\0" * 100), "data_size"),
    (dict(data=b"\0" * (28 * 28 + 1)), "data_size"),
])
def test_malformed_images_are_rejected_with_a_reason(change, reason):
    f = fields(IMG[..., 0], "mono8")
    f.update(change)
    with pytest.raises(ImageRejected) as e:
        decode_image(**f)
    assert e.value.reason == reason and str(e.value)


def test_odd_step_for_16_bit_is_rejected():
    f = fields(np.zeros((4, 4), np.uint16), "mono16")
    f.update(step=9, data=b"\0" * 36)
    with pytest.raises(ImageRejected, match="step"):
        decode_image(**f)


def test_area_downscale_inverts_pixel_replication_and_constants_survive():
    small = RNG.random((28, 28, 1), dtype=np.float32)
    big = np.repeat(np.repeat(small, 2, 0), 2, 1)
    np.testing.assert_allclose(InputAdapter((28, 28, 1))(big), small, rtol=1e-5, atol=1e-6)
    for src, dst in [(480, 28), (28, 28), (10, 28), (3, 7), (640, 28)]:
        m = resize_matrix(src, dst)
        assert m.shape == (dst, src) and np.allclose(m.sum(axis=1), 1) and (m >= 0).all()
    # a camera-sized frame: values stay in range, shape matches the dense input
    cam = RNG.random((480, 640, 3), dtype=np.float32)
    x = InputAdapter((784,))(cam)
    assert x.shape == (784,) and 0 <= x.min() and x.max() <= 1


def test_layouts():
    assert target_layout((784,), "mono") == target_layout((784,), "mono", [28, 28])
    assert target_layout((784,), "mono").height == 28
    assert target_layout((96,), "mono", [4, 8, 3]).channels == 3
    assert target_layout((32, 32, 3), "rgb").flat is False
    with pytest.raises(ValueError, match="square"):
        target_layout((700,), "mono")
    with pytest.raises(ValueError, match="image_shape"):
        target_layout((784,), "mono", [27, 28])


@pytest.mark.parametrize("shape", [(480, 640, 3), (13, 9, 1), (28, 28, 1), (100, 30, 3)])
def test_banded_resize_matches_the_dense_matrices(shape):
    img = RNG.integers(0, 256, shape, dtype=np.uint8)
    enc = "rgb8" if shape[2] == 3 else "mono8"
    x = InputAdapter((28, 28, 1)).convert(shape[0], shape[1], enc, False, shape[1] * shape[2], img.tobytes())
    f = img.astype(np.float64) / 255
    ref = np.einsum("ih,hwc,jw->ijc", resize_matrix(shape[0], 28).astype(np.float64), f,
                    resize_matrix(shape[1], 28).astype(np.float64))
    if shape[2] == 3:
        ref = (ref @ [0.299, 0.587, 0.114])[..., None]
    np.testing.assert_allclose(x, ref, atol=1e-5)
