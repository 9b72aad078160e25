"""Incremental re-simulation against full runs of the batched engine: bit-identical after every change."""

from __future__ import annotations

import copy

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from anytime_snn.optimize.params import FullState, apply_state, hidden_layers
from anytime_snn.optimize.parallel import ShardedSimulator
from anytime_snn.sim.batch_engine import BatchEngine
from anytime_snn.sim.incremental import IncrementalSimulator
from anytime_snn.testing import NetSpec, random_bundle, random_inputs
from net_strategies import (DENSE_SPECS, GRAPH_SPECS, NEURONS, SPECS, draw_bundle, fire_in_some_samples,
                             optimizer_step)


def _assert_same(inc, full):
    np.testing.assert_array_equal(inc.predictions, full.predictions)
    np.testing.assert_array_equal(inc.events, full.events)
    np.testing.assert_array_equal(inc.layer_spikes, full.layer_spikes)
    np.testing.assert_array_equal(inc.input_events, full.input_events)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(spec=st.one_of(DENSE_SPECS, DENSE_SPECS, SPECS, GRAPH_SPECS), seed=st.integers(0, 2**16),
       batch=st.integers(2, 16))
def test_incremental_runs_equal_full_runs(spec, seed, batch):
    """Random nets (every neuron configuration: reset modes, refractory periods, delays), random
    sequences of changes; convolutional nets and nets with padding, pools or residual inputs take the
    full path and must agree too."""
    base = draw_bundle(spec, seed)
    rng = np.random.default_rng(seed)
    fire_in_some_samples(base, rng)
    x, timesteps = random_inputs(spec, batch, seed), 10
    assume(any(l.weighted and not l.output for l in base.layers))
    hidden = hidden_layers(base)
    inc = IncrementalSimulator(BatchEngine(base, threads=2, block=3), x, timesteps)
    full = BatchEngine(base, threads=1)
    state = FullState.start(hidden, 0.5)
    bundle = apply_state(base, state, hidden)
    for _ in range(10):
        full.set_parameters(bundle)
        _assert_same(inc.run(bundle), full.run(x, timesteps))
        state, bundle = optimizer_step(base, state, hidden, rng)


@pytest.mark.parametrize("neuron", NEURONS, ids=lambda n: f"{n.reset}-r{n.refractory_steps}-d{n.delay_steps}")
@pytest.mark.parametrize("dense", [(9,), (10, 7)], ids=["analog-input", "spiking-input"])
def test_last_hidden_layer_steps_read_out_without_simulating(neuron, dense):
    """Steps that change only last-hidden-layer neurons (eta, V0, several at once) take the readout
    path, which must equal full runs under every neuron dynamics, and leave a cache that later
    first-layer steps and full runs still agree with."""
    spec = NetSpec(input_shape=(12,), convs=(), dense=dense, classes=4, neuron=neuron, zero_fraction=0.3)
    base = random_bundle(spec, 11)
    rng = np.random.default_rng(11)
    fire_in_some_samples(base, rng)
    x, timesteps = random_inputs(spec, 24, 11), 16
    hidden = hidden_layers(base)
    inc = IncrementalSimulator(BatchEngine(base, threads=2, block=5), x, timesteps)
    full = BatchEngine(base, threads=1)
    state = FullState.start(hidden, 0.5)
    last = len(hidden) - 1
    for step in range(12):
        if step:
            i = 0 if step % 4 == 3 else last
            j = rng.integers(0, hidden[i].channels, size=int(rng.integers(1, 4)))
            state.log_eta[i][j] += rng.normal(0, 0.5, len(j))
            state.v0[i][j] = rng.uniform(0, hidden[i].threshold, len(j))
        bundle = apply_state(base, state, hidden)
        full.set_parameters(bundle)
        _assert_same(inc.run(bundle), full.run(x, timesteps))
    assert inc.stats.readout_runs == (11 if last == 0 else 8)  # (a first-layer step may reach every sample)


@pytest.fixture(scope="module")
def mnist_default(default_mnist):
    return default_mnist(48)


def test_single_neuron_steps_on_the_bundled_model_simulate_few_samples(mnist_default):
    """The optimizer's neuron-phase step (one neuron's eta and V0) on real weights and digits: the
    result equals a full run; a first-layer step simulates again only the samples where that neuron
    fires, a last-hidden-layer step none (the output layer is read out again)."""
    base, x, _ = mnist_default
    hidden = hidden_layers(base)
    inc = IncrementalSimulator(BatchEngine(base, threads=2), x, 12)
    full = BatchEngine(base, threads=2)
    state = FullState.start(hidden, 0.5)
    rng = np.random.default_rng(3)
    for step in range(10):
        if step:
            i, j = step % 2, int(rng.integers(hidden[step % 2].channels))
            state.log_eta[i][j] += rng.normal(0, 0.5)
            state.v0[i][j] = rng.uniform(0, 1)
        bundle = apply_state(base, state, hidden)
        full.set_parameters(bundle)
        _assert_same(inc.run(bundle), full.run(x, 12))
    assert inc.stats.runs == 10 and inc.stats.full_runs == 1
    assert inc.stats.readout_runs == 5  # steps 1, 3, 5, 7, 9 change the last hidden layer
    assert inc.stats.samples_simulated < len(x) + 0.7 * 4 * len(x)  # the full run + steps 2, 4, 6, 8


def test_unchanged_parameters_reach_nothing_and_huge_caches_take_the_full_path(mnist_default):
    base, x, _ = mnist_default
    full = BatchEngine(base, threads=1)
    small = IncrementalSimulator(BatchEngine(base, threads=1), x[:4], 5, max_cache_bytes=1000)
    assert not small.cacheable
    _assert_same(small.run(base), full.run(x[:4], 5))
    _assert_same(small.run(base), full.run(x[:4], 5))
    assert small.stats.full_runs == 2
    inc = IncrementalSimulator(BatchEngine(base, threads=1), x[:6], 5)
    inc.run(base)
    _assert_same(inc.run(copy.deepcopy(base)), full.run(x[:6], 5))
    assert inc.stats.full_runs == 1 and inc.stats.samples_simulated == 6
    other = copy.copy(base)
    other.layers = [copy.copy(layer) for layer in base.layers]
    other.layers[1].neuron = type(base.layers[1].neuron)(threshold=0.5)
    with pytest.raises(ValueError, match="same architecture and neuron dynamics"):
        inc.run(other)


def test_sharded_simulator_totals_do_not_depend_on_the_incremental_path(mnist_default):
    base, x, labels = mnist_default
    hidden = hidden_layers(base)
    a = ShardedSimulator(base, x, labels, 8, incremental=True)
    b = ShardedSimulator(base, x, labels, 8, incremental=False)
    assert a.incremental is not None and b.incremental is None
    state = FullState.start(hidden, 0.5)
    for j in range(4):
        state.log_eta[0][j * 7] = 0.3 * (j + 1)
        bundle = apply_state(base, state, hidden)
        ta, tb = a.run(bundle), b.run(bundle)
        for field in ("correct", "events", "layer_spikes"):
            np.testing.assert_array_equal(getattr(ta, field), getattr(tb, field))
        assert ta.input_events == tb.input_events
