"""Zero padding, the spiking max pool and residual inputs: hand-checked semantics, bundle round trip and
validation, and spike-for-spike agreement of the streaming and TF engines with the reference."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from anytime_snn.errors import BundleError
from anytime_snn.model import Bundle, InputSpec, Layer, NeuronConfig, load_bundle, save_bundle
from anytime_snn.model.io import MANIFEST
from anytime_snn.sim import ops, reference
from anytime_snn.sim.streaming import StreamingEngine
from anytime_snn.testing import NetSpec, random_bundle, random_inputs

GRAPH = NetSpec(input_shape=(8, 8, 2), convs=(("zero_pad2d", 1, 0, 2, ""), ("conv2d", 3, 4, 1, "valid"),
                                              ("max_pool2d", 3, 0, 2, "same"), ("residual", 3, 0, 1, "same"),
                                              ("zero_pad2d", 0, 0, 1, ""), ("conv2d", 2, 3, 2, "valid")),
                dense=(6,), neuron=NeuronConfig.spinnaker())


def _pool_net() -> Bundle:
    """Two hidden neurons (input weight 1, threshold 1, V0 0, so a constant input I fires at rate I) -> 2x1
    max pool -> output weight 1: the output potential is the pool's cumulative spike count."""
    return Bundle(
        input=InputSpec(shape=(2, 1, 1), color="mono"),
        layers=[Layer("h", "conv2d", np.ones((1, 1, 1, 1), np.float32), np.zeros(1, np.float32)),
                Layer("pool", "max_pool2d", pool_size=(2, 1), strides=(2, 1)),
                Layer("flat", "flatten"),
                Layer("o", "dense", np.array([[1.0, 0.0]], np.float32), np.zeros(2, np.float32), output=True)],
        labels=["a", "b"])


def test_max_pool_spikes_when_the_largest_count_grows():
    """Inputs fire at rates 1/2 (in anti-phase) and 1/3: the pool's count is the larger count at every step."""
    bundle = _pool_net()
    x = np.array([[[[0.5]], [[1 / 3]]]], np.float32)  # neuron 0: I = 0.5, neuron 1: I = 1/3
    res = reference.simulate(bundle, x, 12)
    hidden = res.spikes[0][:, 0, :].astype(int)  # (T, 2)
    counts = np.cumsum(hidden, axis=0)
    assert res.v_out[:, 0, 0].tolist() == counts.max(axis=1).tolist()
    # Two inputs at rate 1/2 in anti-phase take turns at holding the lead, counts (1,0), (1,1), (2,1), ...:
    # a gate forwarding whichever neuron leads would pass every spike (rate 1); ours passes rate 1/2.
    anti = _pool_net()
    anti.layers[0].v0 = np.array([0.5, 0.0], np.float32).reshape(2, 1, 1)  # neuron 0 fires at odd, 1 at even t
    res2 = reference.simulate(anti, np.array([[[[0.5]], [[0.5]]]], np.float32), 10)
    trains = res2.spikes[0][:, 0, :]
    assert trains[0::2, 0].all() and trains[1::2, 1].all() and trains.sum() == 10
    assert res2.v_out[-1, 0, 0] == 5


def test_zero_padding_adds_no_events_and_matches_same_padding():
    """ZeroPadding2D(1) + 'valid' 3x3 conv == 'same' 3x3 conv: same spikes; padding never spikes or counts."""
    spec_same = NetSpec(input_shape=(6, 6, 1), convs=(("conv2d", 3, 3, 1, "same"), ("conv2d", 3, 2, 1, "same")),
                        dense=(5,), classes=3)
    same = random_bundle(spec_same, 4)
    padded = random_bundle(spec_same, 4)
    layers = []
    for layer in padded.layers:
        if layer.kind == "conv2d":
            layers.append(Layer(f"pad_{layer.name}", "zero_pad2d", pad=((1, 1), (1, 1))))
            layer.padding = "valid"
        layers.append(layer)
    padded.layers = layers
    x = random_inputs(spec_same, 3, 4)
    a, b = reference.simulate(same, x, 10), reference.simulate(padded, x, 10)
    np.testing.assert_array_equal(a.v_out, b.v_out)
    np.testing.assert_array_equal(a.events, b.events)
    np.testing.assert_array_equal(a.input_events, b.input_events)


def test_pool_index_and_ann_max_pool_match_tensorflow():
    tf = pytest.importorskip("tensorflow")
    x = np.random.default_rng(0).random((2, 7, 6, 3)).astype(np.float32)
    for pool, stride, padding in [((2, 2), (2, 2), "valid"), ((3, 3), (2, 2), "same"), ((3, 2), (1, 2), "same")]:
        layer = Layer("p", "max_pool2d", pool_size=pool, strides=stride, padding=padding)
        want = tf.nn.max_pool2d(x, pool, stride, padding.upper()).numpy()
        np.testing.assert_array_equal(ops.max_pool(layer, x), want)
        ref = np.stack([reference.max_pool_counts(layer, xi) for xi in x])
        np.testing.assert_array_equal(ref, want)


# ----------------------------------------------------------------------------- bundle


def test_graph_bundle_round_trip_and_versions(tmp_path):
    bundle = random_bundle(GRAPH, 2)
    path = save_bundle(bundle, tmp_path / "g")
    m = json.loads((path / MANIFEST).read_text())
    assert m["schema_version"] == 2
    loaded = load_bundle(path)
    for a, b in zip(loaded.layers, bundle.layers):
        assert (a.kind, a.pad, a.pool_size, a.strides, a.padding, a.skip) == (b.kind, b.pad, b.pool_size, b.strides,
                                                                             b.padding, b.skip)
        assert (a.skip_weights is None) == (b.skip_weights is None)
        if a.skip_weights is not None:
            np.testing.assert_array_equal(a.skip_weights, b.skip_weights)
    x = random_inputs(GRAPH, 2, 2)
    np.testing.assert_array_equal(reference.simulate(loaded, x, 6).v_out, reference.simulate(bundle, x, 6).v_out)
    # A plain chain is still written as version 1, which older readers load.
    plain = save_bundle(random_bundle(NetSpec(), 0), tmp_path / "p")
    assert json.loads((plain / MANIFEST).read_text())["schema_version"] == 1


def _resave(path, edit):
    from anytime_snn.model.io import _manifest_digest

    m = json.loads((path / MANIFEST).read_text())
    edit(m)
    m["manifest_sha256"] = _manifest_digest(m)
    (path / MANIFEST).write_text(json.dumps(m))


def _layer(m, kind_or_name):
    return next(l for l in m["layers"] if kind_or_name in (l["kind"], l["name"]))


@pytest.mark.parametrize("edit,fragments", [
    (lambda m: _layer(m, "residual_3").update(skip="nonexistent"), ("not an earlier layer", "skip")),
    (lambda m: _layer(m, "residual_3").update(skip="residual_3"), ("not an earlier layer",)),  # a cycle
    (lambda m: _layer(m, "residual_3").update(skip="conv2d_5"), ("not an earlier layer",)),  # later: a cycle
    (lambda m: _layer(m, "residual_3").update(skip="conv2d_1"), ("shape (9, 9, 4)", "(5, 5, 4)")),
    (lambda m: _layer(m, "residual_3").update(skip="pad_0"), ("analog input", "spiking")),
    (lambda m: _layer(m, "pool_2").update(pool_size=[2, 0]), ("[1, 64]", "pool_size")),
    (lambda m: _layer(m, "pad_0").update(pad=[[1, 2]]), ("top, bottom",)),
    (lambda m: _layer(m, "pad_0").update(pad=[[1, 2], [-1, 0]]), ("[0, 1024]",)),
    (lambda m: m["layers"].insert(0, {"name": "early_pool", "kind": "max_pool2d", "pool_size": [1, 1],
                                      "strides": [1, 1], "padding": "valid"}), ("before the first weighted",)),
    (lambda m: m.update(schema_version=1), ("needs schema version 2",)),
    (lambda m: m["layers"][0].update(kind="add"), ("reserved",)),
])
def test_invalid_graph_fields_are_named(tmp_path, edit, fragments):
    path = save_bundle(random_bundle(GRAPH, 2), tmp_path / "g")
    _resave(path, edit)
    with pytest.raises(BundleError) as err:
        load_bundle(path)
    for fragment in fragments:
        assert fragment in str(err.value)


# ----------------------------------------------------------------------------- agreement

LAYER = st.one_of(
    st.tuples(st.just("conv2d"), st.integers(1, 3), st.integers(1, 4), st.integers(1, 2), st.sampled_from(["same", "valid"])),
    st.tuples(st.just("max_pool2d"), st.integers(1, 3), st.just(0), st.integers(1, 3), st.sampled_from(["same", "valid"])),
    st.tuples(st.just("zero_pad2d"), st.integers(0, 2), st.just(0), st.integers(0, 2), st.just("")),
    st.tuples(st.just("residual"), st.integers(1, 3), st.just(0), st.just(1), st.just("same")),
)
GRAPH_SPECS = st.builds(
    NetSpec,
    input_shape=st.sampled_from([(6, 6, 1), (7, 5, 2)]),
    convs=st.lists(LAYER, min_size=2, max_size=4).map(lambda c: (("conv2d", 3, 3, 1, "same"),) + tuple(c)),
    dense=st.lists(st.integers(3, 8), max_size=1).map(tuple),
    classes=st.integers(2, 4),
    neuron=st.sampled_from([NeuronConfig(), NeuronConfig.spinnaker(), NeuronConfig(delay_steps=2, refractory_steps=1)]),
    v0_mode=st.sampled_from(["scalar", "neuron"]),
    zero_fraction=st.sampled_from([0.0, 0.4]),
)


def _draw(spec, seed):
    try:
        return random_bundle(spec, seed)
    except ValueError:  # kernel larger than the shrunken image, or no source for a residual
        return None


def _stream(bundle, x, timesteps, chunks, compiled):
    eng = StreamingEngine(bundle, max_chunk=max(chunks), compiled=compiled)
    v_out, events = [], []
    for xi in x:
        eng.reset(xi)
        vs, es, done, i = [], [], 0, 0
        while done < timesteps:
            block = eng.advance(min(chunks[i % len(chunks)], timesteps - done))
            vs.append(block.v_out)
            es.append(block.cumulative_events)
            done, i = done + block.t.size, i + 1
        v_out.append(np.concatenate(vs))
        events.append(np.concatenate(es))
    return np.stack(v_out, 1), np.stack(events, 1), eng


@settings(max_examples=20)
@given(spec=GRAPH_SPECS, seed=st.integers(0, 2**16), chunks=st.lists(st.integers(1, 7), min_size=1, max_size=3),
       compiled=st.booleans())
def test_streaming_engine_matches_reference_on_graph_layers(spec, seed, chunks, compiled):
    bundle = _draw(spec, seed)
    assume(bundle is not None)  # an invalid draw is discarded, not a pass
    x, timesteps = random_inputs(spec, 3, seed), 12
    ref = reference.simulate(bundle, x, timesteps)
    v_out, events, _ = _stream(bundle, x, timesteps, chunks, compiled)
    np.testing.assert_array_equal(v_out, ref.v_out.astype(np.float32))
    np.testing.assert_array_equal(events, np.cumsum(ref.events, axis=0))


@settings(max_examples=2)
@given(spec=GRAPH_SPECS, seed=st.integers(0, 2**16), chunk=st.integers(2, 3))
def test_tf_engine_matches_reference_on_graph_layers(spec, seed, chunk):
    pytest.importorskip("tensorflow")
    from anytime_snn.sim.tf_engine import TFEngine

    bundle = _draw(spec, seed)
    assume(bundle is not None)  # an invalid draw is discarded, not a pass
    x, timesteps = random_inputs(spec, 4, seed), 10
    ref = reference.simulate(bundle, x, timesteps)
    res = TFEngine(bundle, batch_size=chunk, jit_compile=False).run(x, timesteps, record_v_out=True)  # the fixed net runs XLA
    np.testing.assert_array_equal(res.v_out, ref.v_out.astype(np.float32))
    np.testing.assert_array_equal(res.events, ref.events)
    np.testing.assert_array_equal(res.input_events, ref.input_events)
    np.testing.assert_array_equal(res.layer_spikes, np.array([s.sum(axis=(1, 2)) for s in ref.spikes]).reshape(-1, timesteps))


def test_fixed_graph_net_agrees_in_all_three_engines():
    """A fixed net with every new layer (padding, strided overlapping 'same' pool, residual from the pool), batch 3."""
    pytest.importorskip("tensorflow")
    from anytime_snn.sim.tf_engine import TFEngine

    bundle = random_bundle(GRAPH, 3)
    x = random_inputs(GRAPH, 3, 3)
    ref = reference.simulate(bundle, x, 14)
    assert all(s.any() for s in ref.spikes) and ref.events.sum() > 0
    for compiled in (True, False):
        v_out, events, _ = _stream(bundle, x, 14, [5, 2], compiled)
        np.testing.assert_array_equal(v_out, ref.v_out.astype(np.float32))
        np.testing.assert_array_equal(events, np.cumsum(ref.events, axis=0))
    res = TFEngine(bundle, batch_size=2).run(x, 14, record_v_out=True)
    np.testing.assert_array_equal(res.v_out, ref.v_out.astype(np.float32))
    np.testing.assert_array_equal(res.events, ref.events)


def test_streaming_max_pool_state_resets_per_frame_and_carries_with_keep_state():
    bundle = random_bundle(GRAPH, 5)
    x = random_inputs(GRAPH, 2, 5)
    eng = StreamingEngine(bundle, max_chunk=6)
    pool = next(s for s in eng.stages if s.__class__.__name__ == "_MaxPool")
    eng.reset(x[0])
    eng.advance(6)
    counts = pool.counts.copy()
    assert counts.sum() > 0
    eng.reset(x[1], keep_state=True)
    np.testing.assert_array_equal(pool.counts, counts)
    eng.reset(x[1])
    assert pool.counts.sum() == 0 and pool.best.sum() == 0
    # A fresh frame equals a fresh engine.
    fresh = StreamingEngine(bundle, max_chunk=6)
    fresh.reset(x[1])
    np.testing.assert_array_equal(eng.advance(6).v_out, fresh.advance(6).v_out)


def test_pynn_export_refuses_graph_layers_by_name():
    from anytime_snn.errors import ConfigError
    from anytime_snn.export import export

    bundle = random_bundle(GRAPH, 1)
    for kind, fragment in [("max_pool2d", "pool_2")]:
        with pytest.raises(ConfigError, match=fragment):
            export(bundle, object())
        bundle.layers = [l for l in bundle.layers if l.kind != kind]
        for l in bundle.layers:
            l.skip = None if l.skip == fragment else l.skip
    with pytest.raises(ConfigError, match="residual"):
        export(random_bundle(NetSpec(input_shape=(6, 6, 1), convs=(("conv2d", 3, 2, 1, "same"), ("residual", 3, 0, 1, "same"))), 0), object())


def test_tf_engine_set_parameters_carries_the_residual_weights():
    """The optimizer rescales a residual net (skip weights change) and swaps it into a built engine."""
    pytest.importorskip("tensorflow")
    from anytime_snn.optimize.params import FullState, apply_state, hidden_layers
    from anytime_snn.sim.tf_engine import TFEngine

    bundle = random_bundle(GRAPH, 6)
    hidden = hidden_layers(bundle)
    assert [h.layer_level for h in hidden] == [True, False, False, False]  # conv_1 feeds the max pool
    rng = np.random.default_rng(0)
    state = FullState([rng.uniform(-0.5, 0.5, h.channels) for h in hidden], [np.full(h.channels, 0.25) for h in hidden])
    scaled = apply_state(bundle, state, hidden)
    join = next(l for l in scaled.layers if l.skip is not None)
    assert not np.array_equal(join.skip_weights, next(l for l in bundle.layers if l.skip is not None).skip_weights)
    x = random_inputs(GRAPH, 3, 6)
    engine = TFEngine(bundle, batch_size=3, jit_compile=False)
    engine.run(x, 8)
    engine.set_parameters(scaled)
    swapped = engine.run(x, 8, record_v_out=True)
    fresh = TFEngine(scaled, batch_size=3, jit_compile=False).run(x, 8, record_v_out=True)
    np.testing.assert_array_equal(swapped.v_out, fresh.v_out)
    np.testing.assert_array_equal(swapped.events, fresh.events)
