"""The three simulators: hand-computed dynamics, then spike-for-spike agreement on random networks."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from anytime_snn.model import Bundle, InputSpec, Layer, NeuronConfig
from anytime_snn.sim import ops, reference
from anytime_snn.sim.streaming import StreamingEngine
from anytime_snn.testing import NetSpec, random_bundle, random_inputs
from net_strategies import DENSE_SPECS, GRAPH_SPECS, SPECS, draw_bundle


def one_neuron(weight: float, v0: float, neuron: NeuronConfig, out_weight: float = 1.0) -> Bundle:
    """input -> 1 hidden NL-IAF neuron -> 2 accumulating outputs (the second always 0)."""
    return Bundle(
        input=InputSpec(shape=(1,)),
        layers=[
            Layer("h", "dense", np.array([[weight]], np.float32), np.zeros(1, np.float32), neuron=neuron,
                  v0=np.asarray(v0, np.float32)),
            Layer("o", "dense", np.array([[out_weight, 0.0]], np.float32), np.zeros(2, np.float32), output=True,
                  neuron=NeuronConfig(delay_steps=neuron.delay_steps)),
        ],
        labels=["a", "b"],
    )


# ----------------------------------------------------------------------------- hand-computed dynamics


def test_nl_iaf_matches_eq12_closed_form():
    """Constant current I in (0, 1) with reset by subtraction: V_t = V0 + I t - floor(V0 + I t) (eq. 12)."""
    current, v0, steps = 0.3, 0.5, 12
    res = reference.simulate(one_neuron(current, v0, NeuronConfig()), np.ones((1, 1)), steps)
    spikes = res.spikes[0][:, 0, 0].astype(int)
    t = np.arange(0, steps + 1)
    total = np.floor(v0 + current * t)  # spikes fired up to step t
    assert spikes.tolist() == np.diff(total).astype(int).tolist()
    # Output accumulates the spikes (weight 1): V_out,t = number of spikes so far.
    assert res.v_out[:, 0, 0].tolist() == np.cumsum(spikes).tolist()
    # Each spike causes one synaptic event (one non-zero outgoing synapse).
    assert res.events[:, 0].tolist() == spikes.tolist()


def test_high_entropy_init_fires_earlier():
    """With I = 0.3: V0 = 0 first spikes at t = 4, V0 = 0.5 at t = 2 (paper section 5.3)."""
    for v0, first in [(0.0, 4), (0.5, 2)]:
        res = reference.simulate(one_neuron(0.3, v0, NeuronConfig()), np.ones((1, 1)), 6)
        assert int(np.argmax(res.spikes[0][:, 0, 0])) + 1 == first


def test_spinnaker_dynamics_by_hand():
    """Reset to zero, one refractory step, one step of synaptic delay, with I = 0.6 and V0 = 0.

    t=1: input still in flight, V=0. t=2: V=0.6. t=3: V=1.2 -> spike, V=0. t=4: refractory.
    t=5: 0.6. t=6: 1.2 -> spike. The output sees each spike one step later (its own delay).
    """
    res = reference.simulate(one_neuron(0.6, 0.0, NeuronConfig.spinnaker()), np.ones((1, 1)), 8)
    assert res.spikes[0][:, 0, 0].astype(int).tolist() == [0, 0, 1, 0, 0, 1, 0, 0]
    assert res.v_out[:, 0, 0].tolist() == [0, 0, 0, 1, 1, 1, 2, 2]


def test_subtract_reset_keeps_the_residue_and_zero_reset_drops_it():
    """I = 0.75: subtract reset fires floor(7.5) = 7 times in 10 steps (rate = I); zero reset every 2nd step: 5."""
    sub = reference.simulate(one_neuron(0.75, 0.0, NeuronConfig()), np.ones((1, 1)), 10)
    zero = reference.simulate(one_neuron(0.75, 0.0, NeuronConfig(reset="zero")), np.ones((1, 1)), 10)
    assert sub.spikes[0].sum() == 7 and zero.spikes[0].sum() == 5


def test_tensorflow_same_padding_is_asymmetric():
    """Our convolution equals tf.nn.conv2d 'SAME' on an even size with stride 2 (extra pad bottom/right)."""
    tf = pytest.importorskip("tensorflow")
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 6, 6, 3)).astype(np.float32)
    for kind, kshape in [("conv2d", (3, 3, 3, 4)), ("depthwise_conv2d", (3, 3, 3, 1))]:
        k = rng.standard_normal(kshape).astype(np.float32)
        layer = Layer("c", kind, k, np.zeros(kshape[-1] if kind == "conv2d" else 3, np.float32),
                      strides=(2, 2), padding="same")
        fn = tf.nn.conv2d if kind == "conv2d" else tf.nn.depthwise_conv2d
        want = fn(x, k, (1, 2, 2, 1), "SAME").numpy()
        np.testing.assert_allclose(ops.linear(layer, x), want, rtol=1e-5, atol=1e-5)
        ref = np.stack([reference.layer_output(layer, xi.astype(np.float64)) for xi in x])
        np.testing.assert_allclose(ref, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kind,padding,stride", [("conv2d", "same", 2), ("conv2d", "valid", 1),
                                                 ("depthwise_conv2d", "same", 1), ("conv2d", "same", 3)])
def test_fanout_equals_nonzeros_of_the_connection_matrix(kind, padding, stride):
    rng = np.random.default_rng(1)
    in_shape = (7, 6, 2)
    kshape = (3, 2, 2, 3) if kind == "conv2d" else (3, 2, 2, 1)
    k = rng.standard_normal(kshape).astype(np.float32)
    k[rng.random(kshape) < 0.4] = 0
    layer = Layer("c", kind, k, None, strides=(stride, stride), padding=padding)
    m = reference.connection_matrix(layer, in_shape)
    assert ops.fanout(layer, in_shape).ravel().tolist() == np.count_nonzero(m, axis=1).tolist()


# ----------------------------------------------------------------------------- agreement


def _streaming_run(bundle, x, timesteps, chunks, options=None):
    """Run every sample through the streaming engine with the given chunk sizes; stack like reference."""
    eng = StreamingEngine(bundle, max_chunk=max(chunks), **(options or {}))
    v_out, events, inputs = [], [], []
    for xi in x:
        eng.reset(xi)
        vs, es, done, i = [], [], 0, 0
        while done < timesteps:
            k = min(chunks[i % len(chunks)], timesteps - done)
            block = eng.advance(k)
            assert block.t.tolist() == list(range(done + 1, done + k + 1))
            vs.append(block.v_out)
            es.append(block.cumulative_events)
            done, i = done + k, i + 1
        v_out.append(np.concatenate(vs))
        events.append(np.concatenate(es))
        inputs.append(eng.input_events)
    return np.stack(v_out, 1), np.stack(events, 1), np.array(inputs)


def test_event_driven_kernels_agree_with_a_matrix_product():
    from anytime_snn.sim import kernels

    rng = np.random.default_rng(0)
    spikes = rng.random((7, 50)) < 0.2
    weights = (rng.integers(-8, 9, (50, 30)) / 16).astype(np.float32)
    fanout = rng.integers(0, 31, 50)
    want = spikes.astype(np.float32) @ weights
    for ks in (kernels.kernel_set(True), kernels.NUMPY):
        out = np.full((7, 30), np.nan, np.float32)
        events = np.full(7, 5, fanout.dtype if ks is not kernels.NUMPY else np.float64)
        assert ks.spike_rows_sum(spikes, weights, out, fanout.astype(events.dtype), events) == spikes.sum()
        np.testing.assert_array_equal(out, want)
        np.testing.assert_array_equal(events, 5 + spikes @ fanout)  # the events of each step, added


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(spec=st.one_of(SPECS, DENSE_SPECS, GRAPH_SPECS), seed=st.integers(0, 2**16),
       chunks=st.lists(st.integers(1, 9), min_size=1, max_size=3),
       density=st.sampled_from([0.0, 0.15, 2.0]), compiled=st.booleans())
def test_streaming_engine_matches_reference(spec, seed, chunks, density, compiled):
    """Every path: GEMM only (density 0), mixed, event-driven only (2.0); numba kernel or NumPy fallback;
    every layer kind."""
    bundle = draw_bundle(spec, seed)
    x, timesteps = random_inputs(spec, 3, seed), 14
    ref = reference.simulate(bundle, x, timesteps)
    v_out, cum_events, input_events = _streaming_run(bundle, x, timesteps, chunks,
                                                     dict(event_density=density, compiled=compiled))
    np.testing.assert_array_equal(v_out, ref.v_out.astype(np.float32))
    np.testing.assert_array_equal(cum_events, np.cumsum(ref.events, axis=0))
    np.testing.assert_array_equal(np.argmax(v_out, -1), ref.predictions)
    np.testing.assert_array_equal(input_events, ref.input_events)


@pytest.mark.parametrize("seed", [0, 1])
def test_event_driven_convolutions_with_wide_inputs(seed):
    """The compiled convolutions read a pixel's spiking channels eight at a time, 64 per mask: input
    widths 13 (a word and five single channels) and 80 (a full mask, then two words) through both
    compiled engines, spike for spike with the reference at batch 3, event-driven paths only."""
    from anytime_snn.sim.batch_engine import BatchEngine

    spec = NetSpec(input_shape=(6, 6, 3), convs=(("conv2d", 3, 13, 1, "same"), ("conv2d", 3, 80, 1, "same"),
                                                 ("conv2d", 3, 9, 2, "same")), dense=(7,), classes=3)
    bundle = random_bundle(spec, seed)
    x, timesteps = random_inputs(spec, 3, seed), 12
    ref = reference.simulate(bundle, x, timesteps)
    assert all(s.mean() > 0.02 for s in ref.spikes[:2])  # the inputs of the wide layers do spike
    engine = BatchEngine(bundle, threads=1, block=2, paths="events")
    res = engine.run(x, timesteps, record_v_out=True, record_spikes=True)
    for raster, want in zip(res.spike_rasters, ref.spikes, strict=True):
        np.testing.assert_array_equal(raster, want.transpose(1, 0, 2))
    np.testing.assert_array_equal(res.v_out, ref.v_out.astype(np.float32))
    v_out, cum_events, _ = _streaming_run(bundle, x, timesteps, [5], dict(event_density=2.0))
    np.testing.assert_array_equal(v_out, ref.v_out.astype(np.float32))
    np.testing.assert_array_equal(cum_events, np.cumsum(ref.events, axis=0))


@settings(max_examples=12)
@given(spec=st.one_of(SPECS, DENSE_SPECS), seed=st.integers(0, 2**16), batch=st.integers(2, 5),
       chunk=st.integers(1, 3))
def test_tf_engine_matches_reference(spec, seed, batch, chunk):
    pytest.importorskip("tensorflow")
    from anytime_snn.sim.tf_engine import TFEngine

    bundle = draw_bundle(spec, seed)
    x, timesteps = random_inputs(spec, batch, seed), 12
    ref = reference.simulate(bundle, x, timesteps)
    # chunk < batch exercises the zero-padded last chunk: its padding rows must not be counted.
    res = TFEngine(bundle, batch_size=chunk).run(x, timesteps, record_v_out=True)
    np.testing.assert_array_equal(res.v_out, ref.v_out.astype(np.float32))
    np.testing.assert_array_equal(res.predictions, ref.predictions)
    np.testing.assert_array_equal(res.events, ref.events)
    np.testing.assert_array_equal(res.input_events, ref.input_events)
    np.testing.assert_array_equal(res.layer_spikes, np.array([s.sum(axis=(1, 2)) for s in ref.spikes]).reshape(-1, timesteps))


def test_all_three_agree_on_each_spike_train():
    """Spike trains of every hidden layer, per neuron: reference vs streaming (via per-layer state)."""
    spec = NetSpec(input_shape=(8, 8, 2), convs=(("conv2d", 3, 4, 2, "same"), ("depthwise_conv2d", 2, 0, 1, "valid")),
                   dense=(9,), neuron=NeuronConfig.spinnaker())
    bundle = random_bundle(spec, 5)
    x = random_inputs(spec, 2, 5)
    ref = reference.simulate(bundle, x, 10)
    eng = StreamingEngine(bundle, max_chunk=10)
    for b in range(2):
        eng.reset(x[b])
        # advance one step at a time and read the spike buffers the engine just wrote
        for t in range(10):
            eng.advance(1)
            for layer_idx, pop in enumerate(eng.pops[:-1]):
                np.testing.assert_array_equal(pop.spikes[0], ref.spikes[layer_idx][t, b])


@pytest.mark.parametrize("neuron", [NeuronConfig(), NeuronConfig.spinnaker(), NeuronConfig(delay_steps=3)],
                         ids=["nl-iaf", "spinnaker", "delay3"])
def test_streaming_blocks_longer_than_a_sub_block(neuron):
    """advance(k) with k above SUB_BLOCK runs in sub-blocks: delay lines, pools and residual inputs cross
    their boundaries, and every step's spikes stay in the buffers (rows 0 .. k-1)."""
    from anytime_snn.sim.streaming import SUB_BLOCK

    spec = NetSpec(input_shape=(8, 8, 2), convs=(("zero_pad2d", 1, 0, 1, ""), ("conv2d", 3, 4, 2, "valid"),
                                                 ("max_pool2d", 2, 0, 1, "same"), ("residual", 3, 0, 1, "same")),
                   dense=(7,), classes=3, neuron=neuron)
    bundle = random_bundle(spec, 6)
    x = random_inputs(spec, 2, 6)
    k = 2 * SUB_BLOCK + 5
    ref = reference.simulate(bundle, x, k + 4)
    assert ref.spikes[0].sum() > 0
    v_out, events, _ = _streaming_run(bundle, x, k + 4, [k, 4])
    np.testing.assert_array_equal(v_out, ref.v_out.astype(np.float32))
    np.testing.assert_array_equal(events, np.cumsum(ref.events, axis=0))
    eng = StreamingEngine(bundle, max_chunk=k)
    eng.reset(x[1])
    eng.advance(k)
    for pop, want in zip(eng.pops[:-1], ref.spikes):
        np.testing.assert_array_equal(pop.spikes[:k], want[:k, 1])
    # numba threads sharing the steps of each sub-block: the same floats
    v_out, events, _ = _streaming_run(bundle, x, k + 4, [k, 4], dict(threads=2, event_density=2.0))
    np.testing.assert_array_equal(v_out, ref.v_out.astype(np.float32))
    np.testing.assert_array_equal(events, np.cumsum(ref.events, axis=0))


def test_events_are_per_sample_not_per_batch():
    """A published simulator summed spikes over the batch; ours must not: a sample's events are its own."""
    pytest.importorskip("tensorflow")
    from anytime_snn.sim.tf_engine import TFEngine

    spec = NetSpec(input_shape=(12,), convs=(), dense=(8,), classes=3)
    bundle = random_bundle(spec, 3)
    x = random_inputs(spec, 4, 3)
    x[1] = 0  # no input: this sample's hidden layer only sees the bias
    alone = [TFEngine(bundle, batch_size=1).run(x[i:i + 1], 10).events[:, 0] for i in range(4)]
    together = TFEngine(bundle, batch_size=4).run(x, 10).events
    for i in range(4):
        np.testing.assert_array_equal(together[:, i], alone[i])


def test_streaming_keep_state_carries_membrane_over():
    spec = NetSpec(input_shape=(12,), convs=(), dense=(8,), classes=3)
    bundle = random_bundle(spec, 11)
    x = random_inputs(spec, 2, 11)
    eng = StreamingEngine(bundle)
    eng.reset(x[0])
    eng.advance(5)
    eng.reset(x[1], keep_state=True)
    carried = eng.advance(5).v_out
    # The same as simulating x[0] for 5 steps then switching the input of the reference by hand:
    eng.reset(x[1])
    fresh = eng.advance(5).v_out
    assert not np.array_equal(carried, fresh)
    eng.reset(x[0])
    eng.advance(5)
    v_after = [p.v.copy() for p in eng.pops]
    eng.reset(x[1], keep_state=True)
    assert all(np.array_equal(p.v, v) for p, v in zip(eng.pops, v_after))


def test_streaming_rejects_bad_input():
    bundle = random_bundle(NetSpec(input_shape=(12,), convs=()), 0)
    eng = StreamingEngine(bundle, max_chunk=4)
    with pytest.raises(ValueError, match="input shape"):
        eng.reset(np.zeros(11, np.float32))
    eng.reset(np.zeros(12, np.float32))
    with pytest.raises(ValueError, match="k must be"):
        eng.advance(5)
    assert math.isfinite(float(eng.advance(4).v_out.sum()))


def test_tf_engine_set_parameters_swaps_weights_without_recompiling():
    pytest.importorskip("tensorflow")
    from anytime_snn.sim.tf_engine import TFEngine

    spec = NetSpec(input_shape=(6, 6, 1), convs=(("conv2d", 3, 3, 1, "same"),), dense=(7,), classes=3)
    a, b = random_bundle(spec, 1), random_bundle(spec, 2)
    x = random_inputs(spec, 4, 1)
    engine = TFEngine(a, batch_size=4)
    first = engine.run(x, 9)
    engine.set_parameters(b)
    swapped = engine.run(x, 9, record_v_out=False)
    fresh = TFEngine(b, batch_size=4).run(x, 9)
    np.testing.assert_array_equal(swapped.predictions, fresh.predictions)
    np.testing.assert_array_equal(swapped.events, fresh.events)
    assert not np.array_equal(first.events, fresh.events)
    assert engine._function(4, 9, False).experimental_get_tracing_count() == 1
    with pytest.raises(ValueError, match="same architecture"):
        engine.set_parameters(random_bundle(NetSpec(input_shape=(6, 6, 1), convs=(), dense=(5,), classes=3), 0))
