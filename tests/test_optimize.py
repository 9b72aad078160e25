"""Optimizer unit tests: isolation of H, layouts, chunk plans, loss lowered (never worse than the start),
checkpoints, resume."""

import json

import numpy as np
import pytest
from hypothesis import given, strategies as st

from anytime_snn.convert.normalize import ann_forward
from anytime_snn.errors import ConfigError
from anytime_snn.model import Layer
from anytime_snn.optimize import (ChunkPlan, FullState, Layout, OptimizeConfig, apply_state, checkpoint,
                                  hidden_layers, state_key)
from anytime_snn.testing import NetSpec, random_bundle, random_inputs

CONV = NetSpec(input_shape=(6, 6, 2), convs=(("conv2d", 3, 4, 1, "same"), ("depthwise_conv2d", 3, 1, 2, "valid")),
               dense=(12, 7), classes=5)


def _random_state(hidden, rng, spread=1.0):
    return FullState([rng.uniform(-spread, spread, h.channels) for h in hidden],
                     [rng.uniform(0, 1, h.channels) for h in hidden])


@given(seed=st.integers(0, 10_000), granularity=st.sampled_from(["model", "layer", "neuron"]))
def test_ann_function_unchanged_for_random_positive_scales(seed, granularity):
    bundle = random_bundle(CONV, seed % 7)
    x = random_inputs(CONV, 9, seed % 5)
    hidden = hidden_layers(bundle)
    rng = np.random.default_rng(seed)
    layout = Layout(hidden, granularity)
    z = np.concatenate([rng.uniform(-3, 3, layout.k), rng.uniform(0, 1, layout.k)])
    scaled = apply_state(bundle, layout.expand(z), hidden)
    ref = ann_forward(bundle.layers, x)
    np.testing.assert_allclose(ann_forward(scaled.layers, x), ref, rtol=2e-4, atol=2e-4 * np.abs(ref).max())


def test_scaling_is_applied_to_the_start_bundle_each_time_and_sets_v0():
    bundle = random_bundle(CONV, 1)
    before = [None if l.weights is None else l.weights.copy() for l in bundle.layers]
    hidden = hidden_layers(bundle)
    state = _random_state(hidden, np.random.default_rng(0))
    a, b = apply_state(bundle, state, hidden), apply_state(bundle, state, hidden)
    for la, lb, l0, w0 in zip(a.layers, b.layers, bundle.layers, before):
        if l0.weighted:
            assert np.array_equal(la.weights, lb.weights) and np.array_equal(l0.weights, w0)  # base untouched
    for h, v in zip(hidden, state.v0):
        assert np.array_equal(a.layers[h.index].v0, v.astype(np.float32))
    # hidden layer activations are scaled by eta (per channel), nothing else
    eta = np.exp(state.log_eta[0])
    one = apply_state(bundle, FullState([state.log_eta[0]] + [np.zeros(h.channels) for h in hidden[1:]],
                                        state.v0), hidden)
    x = random_inputs(CONV, 3, 0)
    _, acts0 = ann_forward(bundle.layers, x, collect=True)
    _, acts1 = ann_forward(one.layers, x, collect=True)
    np.testing.assert_allclose(acts1[0], acts0[0] * eta, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(acts1[1], acts0[1], rtol=1e-4, atol=1e-5)


def test_layouts_double_the_dimension_and_refine_exactly():
    bundle = random_bundle(CONV, 2)
    hidden = hidden_layers(bundle)
    assert [h.channels for h in hidden] == [4, 4, 12, 7]  # the output layer is not searched
    dims = {g: Layout(hidden, g).dimension for g in ("model", "layer", "neuron")}
    assert dims == {"model": 2, "layer": 8, "neuron": 2 * 27}
    rng = np.random.default_rng(1)
    coarse = Layout(hidden, "model").expand(np.array([0.1, 0.3]))
    for g in ("layer", "neuron"):  # a finer phase starts exactly (bit for bit) at the coarser result
        lay = Layout(hidden, g)
        assert state_key(lay.expand(lay.project(coarse))) == state_key(coarse)
    lay = Layout(hidden, "layer")
    z = rng.uniform(-1, 1, lay.dimension)
    neuron = Layout(hidden, "neuron")
    assert state_key(neuron.expand(neuron.project(lay.expand(z)))) == state_key(lay.expand(z))
    lower, upper = neuron.bounds()
    assert np.all(lower[:27] == -3) and np.all(upper[:27] == 3) and np.all(lower[27:] == 0) and np.all(upper[27:] == 1)


def test_output_first_sweep_order_starts_at_the_last_hidden_layer():
    bundle = random_bundle(CONV, 3)
    bundle.layers.insert(1, Layer(name="pool", kind="max_pool2d"))  # layer 1 is searched at layer level
    hidden = hidden_layers(bundle)
    lay = Layout(hidden, "neuron")  # k = 1 + 4 + 12 + 7: layer 1's one group, then 4, 12 and 7 neurons
    perm = lay.sweep_order("output-first")
    k = lay.k
    eta = [*range(17, 24), *range(5, 17), *range(1, 5), 0]
    assert perm.tolist() == eta + [k + i for i in eta]
    assert np.array_equal(lay.sweep_order("input-first"), np.arange(2 * k))
    for g in ("model", "layer"):  # only the neuron phase is reordered
        assert np.array_equal(Layout(hidden, g).sweep_order("output-first"), np.arange(Layout(hidden, g).dimension))


def test_layer_level_scale_before_max_pooling():
    bundle = random_bundle(CONV, 3)
    bundle.layers.insert(1, Layer(name="pool", kind="max_pool2d"))  # schema-only kind: the rule is structural
    hidden = hidden_layers(bundle)
    assert hidden[0].layer_level and not hidden[1].layer_level
    lay = Layout(hidden, "neuron")
    assert lay.k == 1 + 4 + 12 + 7
    assert len(set(lay.groups[0].tolist())) == 1


@pytest.mark.parametrize("samples,max_chunk", [(1000, 559), (37, 10), (7, 4), (5, 16), (12, 4)])
@pytest.mark.parametrize("ranks", [1, 2, 3, 8])
def test_chunk_plan_covers_the_data_with_rank_independent_chunks(samples, max_chunk, ranks):
    plan = ChunkPlan.make(samples, max_chunk, ranks)
    assert plan.chunk == ChunkPlan.make(samples, max_chunk, 1).chunk <= max(max_chunk, 1)
    covered = []
    for r in range(ranks):
        s = plan.shard(r)
        covered.extend(range(s.start, s.stop))
        n = s.stop - s.start
        assert n == 0 or s.start % plan.chunk == 0
        assert n == 0 or n >= plan.chunk or plan.n_chunks == 1  # a partial chunk never runs alone
    assert covered == list(range(samples))


def test_config_is_validated():
    with pytest.raises(ConfigError, match="coarse to fine"):
        OptimizeConfig(phases=("layer", "model"), budgets=(1, 1))
    with pytest.raises(ConfigError, match="one positive evaluation budget per phase"):
        OptimizeConfig(phases=("model",), budgets=(1, 2))
    with pytest.raises(ConfigError, match="v0_init"):
        OptimizeConfig(v0_init=1.5)
    with pytest.raises(ConfigError, match="neuron_order"):
        OptimizeConfig(neuron_order="random")
    assert "neuron_order" not in OptimizeConfig().identity()  # checkpoints from before the option resume
    assert OptimizeConfig(neuron_order="output-first").identity()["neuron_order"] == "output-first"


def test_checkpoint_files_are_atomic_generations_without_pickles(tmp_path):
    checkpoint.save(tmp_path, {"history": [1]}, {"a": np.arange(3.0)})
    checkpoint.save(tmp_path, {"history": [1, 2]}, {"a": np.arange(4.0)})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint-000002.npz", "checkpoint.json"]
    state, arrays = checkpoint.load(tmp_path)
    assert state["history"] == [1, 2] and np.array_equal(arrays["a"], np.arange(4.0))
    np.load(tmp_path / "checkpoint-000002.npz", allow_pickle=False).close()
    (tmp_path / "checkpoint-000002.npz").write_bytes(b"garbage")
    with pytest.raises(ConfigError, match="digest"):
        checkpoint.load(tmp_path)


# ---------------------------------------------------------------------------- the driver on a small SNN

@pytest.fixture(scope="module")
def objective():
    pytest.importorskip("tensorflow")
    pytest.importorskip("nlopt")
    from anytime_snn.optimize import Objective

    spec = NetSpec(input_shape=(6, 6, 2), convs=(("conv2d", 3, 4, 1, "same"),), dense=(12,), classes=5)
    bundle = random_bundle(spec, 1)
    x = random_inputs(spec, 37, 1)
    labels = ann_forward(bundle.layers, x).argmax(1)
    return Objective(bundle, x, labels, 12, a_max=1.0, max_chunk=10)


CFG = dict(phases=("model", "layer", "neuron"), budgets=(8, 12, 15), checkpoint_every=4)


def _run(objective, out, resume=False, on_evaluation=None, **kw):
    from anytime_snn.optimize import Optimizer

    return Optimizer(objective, OptimizeConfig(**{**CFG, **kw}), out, run_info={"test": 1},
                     on_evaluation=on_evaluation).run(resume)


def _strip(history):
    return [{k: v for k, v in e.items() if k != "seconds"} for e in history]


def test_result_is_the_best_evaluated_point_and_lowers_the_loss(objective, tmp_path):
    """The best point is the minimum of the history, and on this net (whose start is far from its optimum:
    loss 29.19 at the start, 9.76 after the model phase, 9.62 at the end) the search lowers the loss."""
    r = _run(objective, tmp_path)
    losses = [e["loss"] for e in r.history]
    assert r.history[0]["phase"] == "start" and r.start is r.history[0]
    assert len(r.history) == 1 + sum(CFG["budgets"])
    assert r.best["loss"] == min(losses) < 0.5 * r.start["loss"]
    assert r.phases[0]["best_loss"] < 0.5 * r.phases[0]["start_loss"]  # the model phase alone finds most of it
    assert [p["phase"] for p in r.phases] == list(CFG["phases"])
    for prev, nxt in zip(r.phases, r.phases[1:]):  # each phase starts where the previous ended
        assert nxt["start_loss"] == prev["best_loss"] >= nxt["best_loss"]
    assert objective(r.state).loss == r.best["loss"]  # the reported state reproduces the reported loss
    on_disk = json.loads((tmp_path / "checkpoint.json").read_text())
    assert _strip(on_disk["history"]) == _strip(r.history)


def test_interrupted_run_resumes_to_the_same_result(objective, tmp_path):
    ref = _run(objective, tmp_path / "ref")

    class Crash(Exception):
        pass

    def crash(entry):
        if entry["phase"] == "layer" and entry["call"] >= 6:
            raise Crash

    with pytest.raises(Crash):
        _run(objective, tmp_path / "run", on_evaluation=crash)
    with pytest.raises(ConfigError, match="--resume"):
        _run(objective, tmp_path / "run")
    with pytest.raises(ConfigError, match="budgets"):
        _run(objective, tmp_path / "run", resume=True, budgets=(8, 12, 16))
    r = _run(objective, tmp_path / "run", resume=True)
    assert _strip(r.history) == _strip(ref.history)
    assert np.array_equal(r.state.flat(), ref.state.flat())
    assert r.simulated < ref.simulated  # the checkpointed part was replayed, not simulated


def test_output_first_changes_only_the_neuron_phase(objective, tmp_path):
    """The option changes only the neuron phase's path, the search lowers the loss (29.19 at the start, 9.70
    before the neuron phase, 0.0 after it here; 9.62 input-first), and a resume must use the same order."""
    ref = _run(objective, tmp_path / "in")
    r = _run(objective, tmp_path / "out", neuron_order="output-first")
    n_before = 1 + CFG["budgets"][0] + CFG["budgets"][1]
    assert _strip(r.history[:n_before]) == _strip(ref.history[:n_before])
    assert _strip(r.history[n_before:]) != _strip(ref.history[n_before:])
    assert r.best["loss"] < r.phases[-1]["start_loss"] < r.start["loss"]
    with pytest.raises(ConfigError, match="neuron_order"):
        _run(objective, tmp_path / "out", resume=True)


def test_distributed_evaluate_in_one_process_equals_evaluate():
    pytest.importorskip("tensorflow")
    from anytime_snn.evaluate import evaluate
    from anytime_snn.optimize import SingleProcess, distributed_evaluate

    spec = NetSpec(input_shape=(6, 6, 2), convs=(("conv2d", 3, 4, 1, "same"),), dense=(12,), classes=5)
    bundle = random_bundle(spec, 4)
    x = random_inputs(spec, 23, 4)
    labels = ann_forward(bundle.layers, x).argmax(1)
    a = evaluate(bundle, x, labels, 9, a_max=0.9)
    b = distributed_evaluate(bundle, x, labels, 9, a_max=0.9, comm=SingleProcess(), max_chunk=7)
    assert np.array_equal(a.accuracy, b.accuracy) and np.array_equal(a.events, b.events)
    assert np.array_equal(a.layer_rates, b.layer_rates) and a.input_events == b.input_events
    assert a.summary == b.summary


def test_spinnaker_dynamics_optimize_and_lower_the_loss(tmp_path):
    """Under SpiNNaker dynamics the layer phase lowers the loss from 2.20 to 1.00 on this net."""
    pytest.importorskip("nlopt")
    from anytime_snn.model import NeuronConfig
    from anytime_snn.optimize import Objective, Optimizer

    spec = NetSpec(input_shape=(16,), convs=(), dense=(12, 8), classes=4)
    bundle = random_bundle(spec, 5).with_neuron(NeuronConfig.spinnaker())
    x = random_inputs(spec, 20, 5)
    obj = Objective(bundle, x, ann_forward(bundle.layers, x).argmax(1), 10, a_max=1.0)
    r = Optimizer(obj, OptimizeConfig(phases=("layer",), budgets=(10,)), tmp_path, run_info={}).run()
    assert r.best["loss"] < 0.6 * r.start["loss"] and len(r.history) == 11
