"""Model bundle: round trip, and every kind of bad file is refused with a message naming the problem."""

from __future__ import annotations

import json
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest

from anytime_snn.errors import BundleError
from anytime_snn.model import Calibration, NeuronConfig, load_bundle, save_bundle
from anytime_snn.model.io import MANIFEST, TENSORS
from anytime_snn.sim import reference
from anytime_snn.testing import NetSpec, random_bundle, random_inputs

SPEC = NetSpec(input_shape=(8, 8, 2), convs=(("conv2d", 3, 4, 2, "same"), ("depthwise_conv2d", 2, 0, 1, "valid")),
               dense=(6,), neuron=NeuronConfig.spinnaker())


@pytest.fixture
def saved(tmp_path) -> Path:
    bundle = random_bundle(SPEC, 1)
    bundle.calibration = Calibration(np.linspace(1, 0.1, 20, dtype=np.float32))
    bundle.provenance = {"ann_accuracy": 0.98, "note": "test"}
    return save_bundle(bundle, tmp_path / "b")


def manifest(path: Path) -> dict:
    return json.loads((path / MANIFEST).read_text())


def write_manifest(path: Path, m: dict, resign: bool = True) -> None:
    """Write an edited manifest; re-sign it so that the field's own check is what fires."""
    from anytime_snn.model.io import _manifest_digest

    if resign:
        m["manifest_sha256"] = _manifest_digest(m)
    (path / MANIFEST).write_text(json.dumps(m))


def test_round_trip_preserves_everything_and_the_simulation(saved):
    original = random_bundle(SPEC, 1)
    loaded = load_bundle(saved)
    assert loaded.labels == original.labels and loaded.timesteps == original.timesteps
    assert loaded.input == original.input and loaded.provenance["ann_accuracy"] == 0.98
    for a, b in zip(loaded.layers, original.layers):
        assert (a.name, a.kind, a.strides, a.padding, a.neuron, a.output) == (b.name, b.kind, b.strides, b.padding,
                                                                             b.neuron, b.output)
        for key in ("weights", "bias", "v0"):
            x, y = getattr(a, key), getattr(b, key)
            assert (x is None and y is None) or np.array_equal(x, y)
    np.testing.assert_array_equal(loaded.calibration.inv_temperature, np.linspace(1, 0.1, 20, dtype=np.float32))
    x = random_inputs(SPEC, 2, 1)
    np.testing.assert_array_equal(reference.simulate(loaded, x, 8).v_out, reference.simulate(original, x, 8).v_out)
    # The manifest path itself is accepted too.
    assert load_bundle(saved / MANIFEST).labels == original.labels


def refused(path: Path, *fragments: str) -> BundleError:
    with pytest.raises(BundleError) as info:
        load_bundle(path)
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message, message
    return info.value


def test_missing_directory(tmp_path):
    refused(tmp_path / "nope", "cannot read manifest", MANIFEST)


def test_truncated_tensor_file(saved):
    data = (saved / TENSORS).read_bytes()
    (saved / TENSORS).write_bytes(data[: len(data) // 2])
    refused(saved, "truncated", TENSORS)


def test_tensor_file_that_is_a_pickle_is_never_unpickled(saved, tmp_path):
    marker = tmp_path / "executed"

    class Evil:
        def __reduce__(self):
            return (Path.touch, (marker,))

    (saved / TENSORS).write_bytes(pickle.dumps(Evil()))
    refused(saved, TENSORS)
    assert not marker.exists()


def test_manifest_pointing_outside_the_directory(saved):
    m = manifest(saved)
    for bad in ["../tensors.safetensors", "/etc/passwd", "sub/x.safetensors", "x.npy"]:
        m["tensor_file"] = bad
        write_manifest(saved, m)
        refused(saved, "tensor_file")


def test_shapes_claiming_gigabytes_are_refused_before_allocation(saved):
    header = json.dumps({"big": {"dtype": "F32", "shape": [1 << 20, 1 << 20], "data_offsets": [0, 4 << 40]}}).encode()
    (saved / TENSORS).write_bytes(struct.pack("<Q", len(header)) + header + b"\0" * 64)
    refused(saved, "limit")


def test_header_length_larger_than_file(saved):
    (saved / TENSORS).write_bytes(struct.pack("<Q", 1 << 40) + b"{}")
    refused(saved, "header claims")


def test_header_offsets_inconsistent_with_shape(saved):
    header = json.dumps({"x": {"dtype": "F32", "shape": [4], "data_offsets": [0, 8]}}).encode()
    (saved / TENSORS).write_bytes(struct.pack("<Q", len(header)) + header + b"\0" * 8)
    refused(saved, "needs 16 bytes")


def test_wrong_dtype(saved):
    header = json.dumps({"x": {"dtype": "F64", "shape": [1], "data_offsets": [0, 8]}}).encode()
    (saved / TENSORS).write_bytes(struct.pack("<Q", len(header)) + header + b"\0" * 8)
    refused(saved, "float32")


def test_nan_and_inf_values(saved):
    bundle = load_bundle(saved)
    bundle.layers[0].weights[0, 0, 0, 0] = np.nan
    with pytest.raises(BundleError, match="NaN"):
        save_bundle(bundle, saved)
    # Write the NaN past validation, as a hostile file would.
    from safetensors.numpy import load_file, save_file

    tensors = load_file(str(saved / TENSORS))
    tensors["dense_1/bias"] = np.full_like(tensors["dense_1/bias"], np.inf)
    save_file(tensors, str(saved / TENSORS))
    refused(saved, "NaN or infinite", "dense_1/bias")


@pytest.mark.parametrize(
    "edit,fragments",
    [
        (lambda m: m.update(schema_version=99), ("schema version 99", "newer")),
        (lambda m: m.update(format="something-else"), ("not an anytime-snn bundle",)),
        (lambda m: m["layers"][0].update(kind="lstm"), ("'lstm' is not one of", "layers[0].kind")),
        (lambda m: m["layers"][0].update(kind="add"), ("reserved",)),
        (lambda m: m["layers"][0].pop("weights"), ("missing", "layers[0].weights")),
        (lambda m: m["layers"][0].update(strides=[1, "2"]), ("expected int", "layers[0].strides")),
        (lambda m: m["layers"][0]["neuron"].update(reset="modulo"), ("'modulo'", "neuron.reset")),
        (lambda m: m["layers"][0]["neuron"].update(threshold=-1), ("positive", "threshold")),
        (lambda m: m["layers"][0]["neuron"].update(refractory_steps=True), ("expected int",)),
        (lambda m: m["layers"][0]["neuron"].update(delay_steps=10**9), ("[0, 1000]",)),
        (lambda m: m["layers"][0].update(padding="full"), ("'full'",)),
        (lambda m: m.update(labels=["a"]), ("labels",)),
        (lambda m: m["input"].update(shape=[8, 8, 3]), ("layers[0]",)),
        (lambda m: m["input"].update(shape=[8, -8, 2]), ("input.shape",)),
        (lambda m: m.update(timesteps=0), ("timesteps",)),
        (lambda m: m["layers"][-1].update(output=False), ("accumulate-only output",)),
        (lambda m: m["layers"][1].update(weights="nonexistent"), ("'nonexistent' is not in",)),
        (lambda m: m["layers"].pop(1), ("not referenced",)),
        (lambda m: m.update(provenance=[1, 2]), ("provenance",)),
        (lambda m: m.pop("input"), ("missing", "input")),
    ],
)
def test_invalid_manifest_fields_are_named(saved, edit, fragments):
    m = manifest(saved)
    edit(m)
    write_manifest(saved, m)
    refused(saved, *fragments)


def test_wrong_tensor_shapes_are_caught(saved):
    from safetensors.numpy import load_file, save_file

    tensors = load_file(str(saved / TENSORS))
    tensors["dense_0/v0"] = np.zeros(7, np.float32)  # layer has 6 neurons
    save_file(tensors, str(saved / TENSORS))
    refused(saved, "v0 shape")
    tensors["dense_0/v0"] = np.zeros(6, np.float32)
    tensors["dense_0/weights"] = tensors["dense_0/weights"][:, :5]
    save_file(tensors, str(saved / TENSORS))
    refused(saved, "layers[")


@pytest.mark.parametrize("text", ["", "[]", "{", '{"a": NaN}', "\xff\xfe", "[" * 100000 + "]" * 100000])
def test_garbage_manifest(saved, text):
    (saved / MANIFEST).write_bytes(text.encode("utf-8", "surrogateescape") if text != "\xff\xfe" else b"\xff\xfe")
    refused(saved, MANIFEST)


def test_random_byte_flips_never_load_silently_wrong(saved):
    """Flip any byte of either file: a clear BundleError every time (checksums), never a wrong model."""
    rng = np.random.default_rng(0)
    for name in (TENSORS, MANIFEST):
        original = (saved / name).read_bytes()
        for _ in range(100):
            data = bytearray(original)
            pos = int(rng.integers(0, len(data)))
            data[pos] = (data[pos] + int(rng.integers(1, 256))) % 256
            (saved / name).write_bytes(bytes(data))
            with pytest.raises(BundleError):
                load_bundle(saved)
        (saved / name).write_bytes(original)
    load_bundle(saved)


def test_unsigned_edits_are_detected(saved):
    m = manifest(saved)
    m["layers"][0]["neuron"]["threshold"] = 2.0  # valid value, but not what was saved
    write_manifest(saved, m, resign=False)
    refused(saved, "checksum", "manifest_sha256")
    from safetensors.numpy import load_file, save_file

    write_manifest(saved, manifest(saved))  # re-signed: now only the tensor edit below is unsigned
    tensors = load_file(str(saved / TENSORS))
    tensors["dense_0/bias"] = tensors["dense_0/bias"] + 1
    save_file(tensors, str(saved / TENSORS))
    refused(saved, "tensor_sha256")


def test_scalar_and_per_channel_v0_keep_their_shape(tmp_path):
    from anytime_snn.testing import dense_bundle

    bundle = dense_bundle((6, 4, 3), seed=0)
    bundle.layers[1].v0 = np.array([0.1, 0.2, 0.3], np.float32)
    loaded = load_bundle(save_bundle(bundle, tmp_path / "v0"))
    assert loaded.layers[0].v0.shape == () and loaded.layers[0].v0 == np.float32(0.5)
    assert loaded.layers[1].v0.tolist() == pytest.approx([0.1, 0.2, 0.3])
