"""The layer-kind table (model/kinds.py): consistent with the schema, writes files exactly as before, names
every invalid field it describes, and its fan-out counts the synapses the synaptic map really has."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from anytime_snn.errors import BundleError
from anytime_snn.model import SCHEMA_VERSION, Layer, NeuronConfig, load_bundle, save_bundle, validate_bundle
from anytime_snn.model.io import MANIFEST, TENSORS
from anytime_snn.model.kinds import KINDS, SPECS, fanout
from anytime_snn.sim import ops
from anytime_snn.testing import NetSpec, random_bundle

DEFAULT = Path(__file__).resolve().parents[1] / "models" / "default"
GRAPH = NetSpec(input_shape=(8, 8, 2), convs=(("zero_pad2d", 1, 0, 2, ""), ("conv2d", 3, 4, 1, "valid"),
                                              ("max_pool2d", 3, 0, 2, "same"), ("residual", 3, 0, 1, "same"),
                                              ("depthwise_conv2d", 2, 0, 1, "valid")), dense=(6,))


def test_table_is_consistent_with_the_schema():
    assert KINDS == ("dense", "conv2d", "depthwise_conv2d", "flatten", "zero_pad2d", "max_pool2d", "add")
    for name, spec in SPECS.items():
        assert spec.name == name and 1 <= spec.since <= SCHEMA_VERSION
        assert all(1 <= f.since <= SCHEMA_VERSION for f in spec.fields)
        assert spec.weighted == (spec.fanout is not None)  # only weighted layers have synapses
        tensor_names = [t.name for t in spec.tensors]
        assert all(t.given_with is None or spec.field(t.given_with).optional for t in spec.tensors)
        assert not set(tensor_names) & {f.name for f in spec.fields}
    assert SPECS["add"].reserved


def test_bundled_model_loads_and_is_written_back_byte_for_byte(tmp_path):
    """A bundle written by an earlier version (schema 1) round-trips to the same manifest and tensor bytes."""
    path = save_bundle(load_bundle(DEFAULT), tmp_path / "again")
    assert json.loads((path / MANIFEST).read_text()) == json.loads((DEFAULT / MANIFEST).read_text())
    assert (path / TENSORS).read_bytes() == (DEFAULT / TENSORS).read_bytes()


def test_every_kind_and_field_survives_a_round_trip(tmp_path):
    bundle = random_bundle(GRAPH, 3)
    assert {layer.kind for layer in bundle.layers} == set(KINDS) - {"add"}
    loaded = load_bundle(save_bundle(bundle, tmp_path / "g"))
    for a, b in zip(loaded.layers, bundle.layers):
        spec = SPECS[b.kind]
        assert a.kind == b.kind and a.name == b.name
        for f in spec.fields:
            assert getattr(a, f.name) == getattr(b, f.name), (b.name, f.name)
        for t in spec.present_tensors(b):
            np.testing.assert_array_equal(getattr(a, t.name), getattr(b, t.name))


# An invalid in-memory value for each field type the table uses.
BAD = {"strides": (0, 1), "pool_size": (1, 65), "padding": "full", "pad": ((1, 2), (-1, 0)), "skip": 3,
       "neuron": NeuronConfig(threshold=-1.0)}


@pytest.mark.parametrize("kind,field", [(k, f.name) for k, s in SPECS.items() for f in s.fields if f.name in BAD])
def test_each_field_the_table_describes_is_checked_and_named(kind, field):
    bundle = random_bundle(GRAPH, 3)
    i = next(i for i, layer in enumerate(bundle.layers) if layer.kind == kind)
    bad = copy.deepcopy(bundle)
    setattr(bad.layers[i], field, BAD[field])
    with pytest.raises(BundleError) as err:
        validate_bundle(bad)
    assert f"layers[{i}].{field}" in str(err.value)


def test_tensors_outside_the_kind_and_residuals_on_shape_layers_are_refused():
    bundle = random_bundle(GRAPH, 3)
    i = next(i for i, layer in enumerate(bundle.layers) if layer.kind == "flatten")
    for attr, value, fragment in [("weights", np.ones(2, np.float32), "has no weights"),
                                  ("skip", bundle.layers[1].name, "residual input")]:
        bad = copy.deepcopy(bundle)
        setattr(bad.layers[i], attr, value)
        with pytest.raises(BundleError, match=fragment):
            validate_bundle(bad)


def _brute_fanout(layer: Layer, in_shape) -> np.ndarray:
    """Synapses out of each input neuron, counted on the synaptic map itself (one unit input at a time)."""
    n = int(np.prod(in_shape))
    out = ops.linear(layer, np.eye(n, dtype=np.float64).reshape(n, *in_shape))
    return np.count_nonzero(out.reshape(n, -1), axis=1).reshape(in_shape)


@settings(max_examples=25, deadline=None)
@given(kind=st.sampled_from(["conv2d", "depthwise_conv2d", "dense"]), k=st.integers(1, 3), stride=st.integers(1, 2),
       padding=st.sampled_from(["same", "valid"]), seed=st.integers(0, 1000))
def test_fanout_counts_the_synapses_of_the_synaptic_map(kind, k, stride, padding, seed):
    rng = np.random.default_rng(seed)
    in_shape, c_out = (5, 4, 2), 3
    if kind == "dense":
        in_shape, w = (7,), rng.integers(-1, 2, (7, 4)).astype(np.float32)
    elif kind == "conv2d":
        w = rng.integers(-1, 2, (k, k, 2, c_out)).astype(np.float32)
    else:
        w = rng.integers(-1, 2, (k, k, 2, 1)).astype(np.float32)
    layer = Layer("l", kind, w, np.zeros(w.shape[-1] if kind != "depthwise_conv2d" else 2, np.float32),
                  strides=(stride, stride), padding=padding)
    np.testing.assert_array_equal(fanout(layer, in_shape), _brute_fanout(layer, in_shape))
    np.testing.assert_array_equal(ops.fanout(layer, in_shape), fanout(layer, in_shape))


def test_a_field_newer_than_the_file_is_refused_by_name(tmp_path):
    """A residual input (schema 2) in a file that says schema 1 is refused, not dropped."""
    from anytime_snn.model.io import _manifest_digest

    bundle = random_bundle(NetSpec(convs=(("conv2d", 3, 3, 1, "same"), ("residual", 3, 0, 1, "same"))), 0)
    path = save_bundle(bundle, tmp_path / "r")
    m = json.loads((path / MANIFEST).read_text())
    assert m["schema_version"] == 2 and any("skip" in layer for layer in m["layers"])
    m["schema_version"] = 1
    m["manifest_sha256"] = _manifest_digest(m)
    (path / MANIFEST).write_text(json.dumps(m))
    with pytest.raises(BundleError, match=r"'skip' needs schema version 2.*\.skip"):
        load_bundle(path)
