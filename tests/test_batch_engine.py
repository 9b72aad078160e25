"""The event-driven batched CPU engine against the reference, spike for spike, and its invariances."""

from __future__ import annotations


import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from anytime_snn.sim import reference
from anytime_snn.sim.batch_engine import BatchEngine, supports
from anytime_snn.sim.select import resolve
from anytime_snn.sim.streaming import StreamingEngine
from anytime_snn.testing import NetSpec, dense_bundle, random_bundle, random_inputs
from net_strategies import DENSE_SPECS, GRAPH_SPECS, SPECS, draw_bundle


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(spec=st.one_of(SPECS, DENSE_SPECS, GRAPH_SPECS), seed=st.integers(0, 2**16), batch=st.integers(2, 6),
       block=st.integers(1, 4), threads=st.sampled_from([1, 2]), paths=st.sampled_from(["events", "dense"]))
def test_batch_engine_matches_reference(spec, seed, batch, block, threads, paths):
    """Every layer kind (strides, paddings, depthwise, zero padding, max pools, residual inputs) and neuron
    configuration, batch > 1, blocks that split the batch unevenly, event-driven and dense synapse paths."""
    bundle = draw_bundle(spec, seed)
    x, timesteps = random_inputs(spec, batch, seed), 12
    ref = reference.simulate(bundle, x, timesteps)
    res = BatchEngine(bundle, threads=threads, block=block, paths=paths).run(x, timesteps, record_v_out=True,
                                                                            record_spikes=True)
    for raster, want in zip(res.spike_rasters, ref.spikes, strict=True):  # spike for spike, every hidden layer
        np.testing.assert_array_equal(raster, want.transpose(1, 0, 2))
    np.testing.assert_array_equal(res.v_out, ref.v_out.astype(np.float32))
    np.testing.assert_array_equal(res.predictions, ref.predictions)
    np.testing.assert_array_equal(res.events, ref.events)
    np.testing.assert_array_equal(res.input_events, ref.input_events)
    np.testing.assert_array_equal(res.layer_spikes,
                                  np.array([s.sum(axis=(1, 2)) for s in ref.spikes]).reshape(-1, timesteps))


# ----------------------------------------------------------------------------- the bundled model, real data


@pytest.fixture(scope="module")
def mnist_default(default_mnist):
    return default_mnist(9)


def test_bit_identical_to_the_streaming_engine_on_real_weights(mnist_default):
    """Real (non-dyadic) float32 weights: both engines sum the same rows in the same order."""
    bundle, x, _ = mnist_default
    timesteps = 15
    res = BatchEngine(bundle, threads=2, block=4).run(x, timesteps, record_v_out=True)
    stream = StreamingEngine(bundle, max_chunk=timesteps, event_density=2.0)  # always event-driven
    for i, xi in enumerate(x):
        stream.reset(xi)
        block = stream.advance(timesteps)
        np.testing.assert_array_equal(res.v_out[:, i], block.v_out)
        np.testing.assert_array_equal(np.cumsum(res.events[:, i]), block.cumulative_events)


def test_bit_identical_to_the_streaming_engine_on_a_real_conv_net():
    """Gaussian (non-dyadic) weights through padding, strided convolutions, a max pool and a residual input:
    both engines add the same synapses in the same order, so the output potentials (sums of real weights)
    agree bit for bit. (A different order in a hidden layer would rarely flip a spike, so this mainly
    checks the output layer's sums and every spike.)"""
    spec = NetSpec(input_shape=(12, 12, 3), convs=(("zero_pad2d", 1, 0, 1, ""), ("conv2d", 5, 8, 2, "valid"),
                                                   ("residual", 3, 0, 1, "same"), ("max_pool2d", 2, 0, 1, "same"),
                                                   ("conv2d", 3, 6, 1, "same")), dense=(7,), classes=4)
    bundle = random_bundle(spec, 2)
    rng = np.random.default_rng(2)
    for layer in bundle.weighted_layers:
        layer.weights = (rng.standard_normal(layer.weights.shape) * 1.2 / np.sqrt(layer.weights[..., 0].size)
                         ).astype(np.float32)
    x = rng.random((3, 12, 12, 3)).astype(np.float32)
    res = BatchEngine(bundle, block=2).run(x, 20, record_v_out=True)
    assert res.events.sum() > 0
    stream = StreamingEngine(bundle, max_chunk=20, event_density=2.0)  # always event-driven
    for i, xi in enumerate(x):
        stream.reset(xi)
        block = stream.advance(20)
        np.testing.assert_array_equal(res.v_out[:, i], block.v_out)
        np.testing.assert_array_equal(np.cumsum(res.events[:, i]), block.cumulative_events)


def test_paths_are_chosen_from_measured_rates_and_never_change_a_result():
    """A narrow dense layer fed at a high rate switches to the dense path after the first run (recorded);
    the results stay bit-identical (real weights) to the event-driven path's."""
    from anytime_snn.sim.batch_engine import dense_path

    bundle = dense_bundle((30, 40, 8, 3), seed=4, rate_scale=3.0)
    for layer in bundle.weighted_layers[:-1]:
        layer.bias = np.full(layer.bias.shape, 0.6, np.float32)  # every hidden neuron fires often
    x = np.random.default_rng(4).random((9, 30)).astype(np.float32)
    auto, events = BatchEngine(bundle, block=4), BatchEngine(bundle, block=4, paths="events")
    first = auto.run(x, 15, record_v_out=True)
    chosen = {c["layer"]: c for c in auto.path_choices}
    assert set(chosen) == {"dense_1", "dense_2"}
    for name, n_out in (("dense_1", 8), ("dense_2", 3)):
        c = chosen[name]
        assert c["path"] == ("dense" if dense_path("dense", n_out, c["input_rate"]) else "events")
    assert chosen["dense_1"]["path"] == "dense" and chosen["dense_1"]["input_rate"] >= 0.4
    second = auto.run(x, 15, record_v_out=True)
    want = events.run(x, 15, record_v_out=True)
    for res in (first, second):
        np.testing.assert_array_equal(res.v_out, want.v_out)
        np.testing.assert_array_equal(res.events, want.events)
    with pytest.raises(ValueError, match="paths must be"):
        BatchEngine(bundle, paths="gemm")


def test_results_do_not_depend_on_blocks_threads_or_batch_composition(mnist_default):
    """What makes MPI shards bit-identical to one process: each sample is simulated on its own."""
    bundle, x, _ = mnist_default
    a = BatchEngine(bundle, threads=1, block=1).run(x, 10, record_v_out=True)
    b = BatchEngine(bundle, threads=2, block=4).run(x, 10, record_v_out=True)
    c = BatchEngine(bundle, threads=2, block=3).run(x[3:5], 10, record_v_out=True)
    np.testing.assert_array_equal(a.v_out, b.v_out)
    np.testing.assert_array_equal(a.events, b.events)
    np.testing.assert_array_equal(a.v_out[:, 3:5], c.v_out)


def test_set_parameters_swaps_weights_and_refuses_another_architecture(mnist_default):
    bundle, x, _ = mnist_default
    engine = BatchEngine(bundle)
    before = engine.run(x, 10)
    weak = dense_bundle((784, 1200, 1200, 10), seed=1, rate_scale=0.0)  # all-zero weights: no spikes at all
    weak.input = bundle.input
    engine.set_parameters(weak)
    after = engine.run(x, 10)
    assert before.events.sum() > 0 and after.events.sum() == 0
    engine.set_parameters(bundle)
    np.testing.assert_array_equal(engine.run(x, 10).predictions, before.predictions)
    with pytest.raises(ValueError, match="same architecture"):
        engine.set_parameters(dense_bundle((784, 50, 10)))


def test_set_parameters_on_a_graph_net_equals_a_fresh_engine():
    """New conv kernels (stored as window rows), biases, V0 and skip weights all take effect."""
    spec = NetSpec(input_shape=(8, 8, 2), convs=(("conv2d", 3, 4, 2, "same"), ("max_pool2d", 2, 0, 1, "same"),
                                                 ("residual", 3, 0, 1, "same"), ("depthwise_conv2d", 2, 0, 1, "valid")),
                   dense=(6,), classes=3)
    a, b = random_bundle(spec, 1), random_bundle(spec, 2)
    x = random_inputs(spec, 4, 1)
    engine = BatchEngine(a, block=3)
    before = engine.run(x, 12, record_v_out=True)
    engine.set_parameters(b)
    swapped = engine.run(x, 12, record_v_out=True)
    fresh = BatchEngine(b, block=3).run(x, 12, record_v_out=True)
    np.testing.assert_array_equal(swapped.v_out, fresh.v_out)
    np.testing.assert_array_equal(swapped.events, fresh.events)
    np.testing.assert_array_equal(swapped.v_out, reference.simulate(b, x, 12).v_out.astype(np.float32))
    assert not np.array_equal(before.v_out, fresh.v_out)


def test_engine_selection():
    dense = dense_bundle((12, 8, 3))
    assert supports(dense) and resolve(dense, "auto") == "numba" and resolve(dense, "tf") == "tf"
    with pytest.raises(ValueError, match="engine must be one of"):
        resolve(dense, "gpu")
    empty = BatchEngine(dense).run(np.zeros((0, 12), np.float32), 5)
    assert empty.predictions.shape == (5, 0) and empty.events.shape == (5, 0)
    with pytest.raises(ValueError, match="timesteps"):
        BatchEngine(dense).run(np.zeros((1, 12), np.float32), 0)
    with pytest.raises(ValueError, match="input shape"):
        BatchEngine(dense).run(np.zeros((1, 13), np.float32), 3)


@pytest.mark.parametrize("layer", [("zero_pad2d", 1, 0, 1, "valid"), ("max_pool2d", 2, 0, 2, "valid"),
                                   ("residual", 3, 0, 1, "same")])
def test_graph_layers_run_here_not_on_the_tf_engine(layer):
    """Padding, max pooling and residual inputs are simulated here: ``auto`` never needs TF on a CPU."""
    spec = NetSpec(input_shape=(6, 6, 2), convs=(("conv2d", 3, 2, 1, "same"), layer), dense=(5,), classes=3)
    bundle = random_bundle(spec, 0)
    assert supports(bundle) and resolve(bundle, "auto") == "numba" and resolve(bundle, "numba") == "numba"
    x = random_inputs(spec, 3, 0)
    ref = reference.simulate(bundle, x, 9)
    assert ref.events.sum() > 0
    res = BatchEngine(bundle, block=2).run(x, 9, record_v_out=True)
    np.testing.assert_array_equal(res.v_out, ref.v_out.astype(np.float32))
    np.testing.assert_array_equal(res.events, ref.events)


def test_streaming_engine_scatters_sparse_spikes_into_convolutions(monkeypatch):
    """The streaming engine's event-driven convolution (this module's scatter kernel) against the reference."""
    from anytime_snn.sim import synapses

    calls = []
    real = synapses.Synapses.block_current
    monkeypatch.setattr(synapses.Synapses, "block_current", lambda *a: (calls.append(1), real(*a))[1])
    spec = NetSpec(input_shape=(13, 12, 2), convs=(("conv2d", 3, 4, 2, "same"), ("depthwise_conv2d", 3, 0, 1, "same"),
                                                   ("conv2d", 3, 5, 3, "same"), ("conv2d", 2, 3, 1, "valid")),
                   dense=(6,), classes=4)
    bundle = random_bundle(spec, 3)
    x = random_inputs(spec, 3, 3)
    ref = reference.simulate(bundle, x, 12)
    engine = StreamingEngine(bundle, max_chunk=5, event_density=2.0)
    for i, xi in enumerate(x):
        engine.reset(xi)
        v = np.concatenate([engine.advance(k).v_out for k in (5, 4, 3)])
        np.testing.assert_array_equal(v, ref.v_out[:, i].astype(np.float32))
    assert calls, "the event-driven convolution path was not taken"
