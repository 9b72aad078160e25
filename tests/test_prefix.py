"""Prefix re-simulation against full runs of the batched engine: bit-identical at every replay point and
after every change (random nets of every layer kind, batch > 1, several blocks and threads)."""

from __future__ import annotations

import copy

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from anytime_snn.optimize.params import FullState, apply_state, hidden_layers
from anytime_snn.optimize.parallel import ShardedSimulator
from anytime_snn.sim.batch_engine import BatchEngine
from anytime_snn.sim.prefix import PrefixSimulator
from anytime_snn.testing import NetSpec, random_bundle, random_inputs
from net_strategies import GRAPH_SPECS, NEURONS, SPECS, draw_bundle, fire_in_some_samples, optimizer_step


def _assert_same(a, b):
    np.testing.assert_array_equal(a.predictions, b.predictions)
    np.testing.assert_array_equal(a.events, b.events)
    np.testing.assert_array_equal(a.layer_spikes, b.layer_spikes)
    np.testing.assert_array_equal(a.input_events, b.input_events)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(spec=st.one_of(SPECS, GRAPH_SPECS), seed=st.integers(0, 2**16), batch=st.integers(2, 9))
def test_every_replay_point_reproduces_a_full_run(spec, seed, batch):
    """Keep a prefix at each replay point, then run from it (and from it while keeping a later one):
    the same predictions, events and spike counts as a full run. (A replay point that let a row read a
    buffer nobody fills, e.g. a residual source before the point, would read zeros and differ.)"""
    base = draw_bundle(spec, seed)
    fire_in_some_samples(base, np.random.default_rng(seed))
    x, timesteps = random_inputs(spec, batch, seed), 9
    engine = BatchEngine(base, threads=2, block=2)
    full = BatchEngine(base, threads=1).run(x, timesteps)
    for p in engine.replay_points:
        res = engine.run(x, timesteps, keep=(p,))
        _assert_same(res, full)
        (kept,) = res.prefixes
        assert kept.op == p and kept.raster.shape == (batch, timesteps, engine.source_size(p))
        _assert_same(engine.run(x, timesteps, prefix=kept), full)
        later = [q for q in engine.replay_points if q > p][:2]
        chained = engine.run(x, timesteps, prefix=kept, keep=tuple(later))  # two at once
        _assert_same(chained, full)
        for q in chained.prefixes:
            _assert_same(engine.run(x, timesteps, prefix=q), full)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(spec=st.one_of(SPECS, GRAPH_SPECS), seed=st.integers(0, 2**16), batch=st.integers(2, 9))
def test_prefix_runs_equal_full_runs(spec, seed, batch):
    """Random walks through parameter space on random nets: every call equals a full run."""
    base = draw_bundle(spec, seed)
    rng = np.random.default_rng(seed)
    fire_in_some_samples(base, rng)
    assume(any(l.weighted and not l.output for l in base.layers))
    x, timesteps = random_inputs(spec, batch, seed), 8
    hidden = hidden_layers(base)
    sim = PrefixSimulator(BatchEngine(base, threads=2, block=3), x, timesteps)
    full = BatchEngine(base, threads=1)
    state = FullState.start(hidden, 0.5)
    bundle = apply_state(base, state, hidden)
    for _ in range(12):
        full.set_parameters(bundle)
        _assert_same(sim.run(bundle), full.run(x, timesteps))
        state, bundle = optimizer_step(base, state, hidden, rng)
    assert sim.stats.runs == 12


def _conv_net(neuron=NEURONS[0]):
    spec = NetSpec(input_shape=(8, 8, 2), convs=(("conv2d", 3, 4, 1, "same"), ("conv2d", 3, 4, 1, "same"),
                                                 ("depthwise_conv2d", 2, 0, 2, "valid")),
                   dense=(6,), classes=3, neuron=neuron)
    base = random_bundle(spec, 5)
    fire_in_some_samples(base, np.random.default_rng(5))
    return spec, base


@pytest.mark.parametrize("neuron", NEURONS, ids=lambda n: f"{n.reset}-r{n.refractory_steps}-d{n.delay_steps}")
def test_steps_in_one_layer_run_only_the_layers_from_there(neuron):
    """A sweep like the neuron phase's (channels of one layer after another): the first step in a layer
    keeps caches at its input and output; the next steps simulate their channels again and start after it."""
    spec, base = _conv_net(neuron)
    x, timesteps = random_inputs(spec, 6, 5), 10
    hidden = hidden_layers(base)
    engine = BatchEngine(base, threads=2, block=4)
    sim, full = PrefixSimulator(engine, x, timesteps), BatchEngine(base, threads=1)
    rows = [engine.layer_row(i) for i in range(len(hidden))]
    state = FullState.start(hidden, 0.5)
    starts = []
    for i in range(len(hidden)):
        for j in range(3):
            state.log_eta[i][j] += 0.3
            state.v0[i][j] = 0.2
            bundle = apply_state(base, state, hidden)
            skipped = sim.stats.rows_skipped
            full.set_parameters(bundle)
            _assert_same(sim.run(bundle), full.run(x, timesteps))
            starts.append(sim.stats.rows_skipped - skipped)
    # rows: conv 0, conv 1, depthwise 2, (flatten 3), dense 4, output 5. Layer 0 (analog input): full runs.
    # Layer 1: its first step runs in full and keeps its input (row 1) and output (row 2); the next two
    # simulate their channels again and start at row 2. Layers 2 and 3: the first step starts from the
    # previous layer's output (layer 2's input is that very cache; layer 3 keeps its own input, row 4),
    # the next two start after the layer.
    assert rows == [0, 1, 2, 4]
    assert starts == [0, 0, 0, 0, 2, 2, 2, 3, 3, 3, 5, 5], starts
    assert (sim.stats.recorded, sim.stats.channel_runs) == (3, 8)


def test_a_change_before_the_cache_runs_in_full_and_a_cache_too_large_is_not_kept():
    spec, base = _conv_net()
    x, timesteps = random_inputs(spec, 5, 1), 7
    hidden = hidden_layers(base)
    full = BatchEngine(base, threads=1)
    sim = PrefixSimulator(BatchEngine(base, threads=1), x, timesteps)
    state = FullState.start(hidden, 0.5)
    for i in (2, 2, 2, 0, 2):  # the step in layer 0 invalidates the cache kept at layer 2's input
        state.v0[i][0] += 0.05
        bundle = apply_state(base, state, hidden)
        full.set_parameters(bundle)
        _assert_same(sim.run(bundle), full.run(x, timesteps))
    # Full: the first call, the second (it keeps a cache at layer 2's input), the layer-0 step (it drops
    # the cache) and the step after it (it keeps a new one).
    assert (sim.stats.full_runs, sim.stats.recorded) == (4, 2)
    tiny = PrefixSimulator(BatchEngine(base, threads=1), x, timesteps, max_cache_bytes=100)
    for _ in range(3):
        full.set_parameters(base)
        _assert_same(tiny.run(copy.deepcopy(base)), full.run(x, timesteps))
    assert tiny.stats.full_runs == 3 and tiny.stats.recorded == 0


def test_the_first_rows_input_is_cached_only_with_its_output():
    """Replaying row 1 skips only the analog first row (as costly as the copy): without room for the
    output cache too, steps in layer 1 run in full; with it they take the channel path."""
    spec, base = _conv_net()
    x, timesteps = random_inputs(spec, 5, 4), 6
    hidden = hidden_layers(base)
    engine = BatchEngine(base, threads=1)
    size_in = len(x) * timesteps * (engine.source_size(1) + 8)
    full = BatchEngine(base, threads=1)
    for room, full_runs in ((size_in, 4), (size_in + len(x) * timesteps * engine.source_size(2), 2)):
        sim = PrefixSimulator(BatchEngine(base, threads=1), x, timesteps, max_cache_bytes=room)
        state = FullState.start(hidden, 0.5)
        for j in range(4):
            state.v0[1][j % 2] += 0.05
            bundle = apply_state(base, state, hidden)
            full.set_parameters(bundle)
            _assert_same(sim.run(bundle), full.run(x, timesteps))
        assert sim.stats.full_runs == full_runs


def test_engine_rejects_a_prefix_it_cannot_use():
    spec, base = _conv_net()
    x, timesteps = random_inputs(spec, 4, 2), 6
    engine = BatchEngine(base, threads=1)
    p = engine.replay_points[0]
    (kept,) = engine.run(x, timesteps, keep=(p,)).prefixes
    with pytest.raises(ValueError, match="another input set"):
        engine.run(x[:3], timesteps, prefix=kept)
    with pytest.raises(ValueError, match="another input set"):
        engine.run(x, timesteps + 1, prefix=kept)
    with pytest.raises(ValueError, match="record_spikes needs a full run"):
        engine.run(x, timesteps, prefix=kept, record_spikes=True)
    for keep in ((p,), (0,), engine.replay_points[1::-1]):
        with pytest.raises(ValueError, match="keep must hold ascending replay points after"):
            engine.run(x, timesteps, prefix=kept if keep == (p,) else None, keep=keep)
    bad = copy.copy(kept)
    bad.op = 0
    with pytest.raises(ValueError, match="not a replay point"):
        engine.run(x, timesteps, prefix=bad)


def test_sharded_simulator_uses_prefixes_on_conv_nets_with_the_same_totals():
    spec, base = _conv_net()
    x, timesteps = random_inputs(spec, 7, 3), 6
    labels = np.arange(7) % 3
    hidden = hidden_layers(base)
    a = ShardedSimulator(base, x, labels, timesteps, incremental=True, max_chunk=3)
    b = ShardedSimulator(base, x, labels, timesteps, incremental=False)
    assert isinstance(a.incremental, PrefixSimulator)
    state = FullState.start(hidden, 0.5)
    for i in (1, 1, 2, 2):
        state.log_eta[i][0] += 0.2
        bundle = apply_state(base, state, hidden)
        ta, tb = a.run(bundle), b.run(bundle)
        for field in ("correct", "events", "layer_spikes"):
            np.testing.assert_array_equal(getattr(ta, field), getattr(tb, field))
    assert a.incremental.stats.rows_skipped > 0
