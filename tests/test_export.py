"""Export without simulators: synapse lists (TF padding), argument checks, the CLI's missing-back-end error."""

from pathlib import Path

import numpy as np
import pytest

from anytime_snn.errors import ConfigError
from anytime_snn.export import BackendMissing, export, layer_synapses
from anytime_snn.export import backends as backends_mod
from anytime_snn.model import Layer, NeuronConfig
from anytime_snn.sim.ops import fanout
from anytime_snn.sim.reference import connection_matrix
from anytime_snn.testing import NetSpec, random_bundle

CASES = [
    ("conv2d", 3, 2, "same", (8, 8, 2)),  # stride 2 on an even size: TF pads bottom/right only
    ("conv2d", 2, 2, "same", (7, 6, 3)),
    ("conv2d", 3, 1, "valid", (6, 5, 2)),
    ("depthwise_conv2d", 3, 2, "same", (8, 8, 3)),
    ("depthwise_conv2d", 5, 3, "same", (9, 10, 2)),
    ("dense", 0, 1, "valid", (20,)),
]


@pytest.mark.parametrize("kind,k,stride,padding,shape", CASES)
def test_synapse_lists_are_the_reference_connection_matrix(kind, k, stride, padding, shape):
    rng = np.random.default_rng(len(shape) + k + stride)
    w = rng.normal(size=(20, 7) if kind == "dense" else (k, k, shape[2], 4 if kind == "conv2d" else 1))
    w[rng.random(w.shape) < 0.3] = 0
    layer = Layer("l", kind, weights=w.astype(np.float32), strides=(stride, stride), padding=padding)
    syn = layer_synapses(layer, shape)
    m = connection_matrix(layer, shape)
    assert len(syn) == np.count_nonzero(m)  # only non-zero weights, each pair once
    np.testing.assert_array_equal(syn.dense(), m)
    np.testing.assert_array_equal(syn.fan_out(), fanout(layer, shape).ravel())  # = events per spike
    exc, inh = syn.split()
    assert (exc.weight > 0).all() and (inh.weight < 0).all() and len(exc) + len(inh) == len(syn)


def test_export_needs_spinnaker_like_dynamics():
    spec = NetSpec(input_shape=(6, 6, 1), convs=(), dense=(8,), classes=3)
    nl_iaf = random_bundle(spec, 0)  # subtract reset, no delay
    with pytest.raises(ConfigError, match="reset 'zero'.*NeuronConfig.spinnaker"):
        export(nl_iaf, object())
    no_refractory = nl_iaf.with_neuron(NeuronConfig(reset="zero", refractory_steps=0, delay_steps=1))
    with pytest.raises(ConfigError, match="refractory_steps=0"):
        export(no_refractory, object())


def test_missing_backend_names_the_install_command(monkeypatch, capsys, tmp_path):
    import importlib

    real = importlib.import_module

    def fake(name, *a, **k):
        if name.startswith("pyNN."):
            raise ImportError(f"No module named {name!r}")
        return real(name, *a, **k)

    monkeypatch.setattr(backends_mod.importlib, "import_module", fake)
    with pytest.raises(BackendMissing, match="pip install -r scripts/pynn-requirements.txt"):
        backends_mod.import_backend("nest")
    from anytime_snn.cli import main

    model = str(Path(__file__).resolve().parents[1] / "models" / "default")
    assert main(["export", model, "--backend", "brian2", "--images", "1", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "brian2" in err and "pynn-requirements.txt" in err


def _padded_net(size: int = 28):
    """pad -> conv 3x3/2 valid -> pad -> conv 3x3/2 valid -> flatten -> dense (SpiNNaker dynamics, Gaussian weights)."""
    from anytime_snn.model import Bundle, InputSpec, chain_shapes

    rng = np.random.default_rng(1)

    def g(shape, s, shift=0.0):
        return (rng.standard_normal(shape) * s + shift).astype(np.float32)

    half = np.asarray(0.5, np.float32)
    layers = [Layer("pad_in", "zero_pad2d", pad=((1, 0), (2, 1))),
              Layer("c1", "conv2d", weights=g((3, 3, 1, 4), 0.5), bias=g((4,), 0.02), strides=(2, 2), v0=half),
              Layer("pad_mid", "zero_pad2d", pad=((1, 1), (1, 1))),
              Layer("c2", "conv2d", weights=g((3, 3, 4, 5), 0.35, 0.05), bias=g((5,), 0.02), strides=(2, 2), v0=half),
              Layer("flat", "flatten")]
    n = chain_shapes((size, size, 1), layers)[-1][0]
    layers.append(Layer("out", "dense", weights=g((n, 10), 0.3), bias=g((10,), 0.01), output=True))
    return Bundle(input=InputSpec(shape=(size, size, 1)), layers=layers, labels=[str(i) for i in range(10)],
                  timesteps=30).with_neuron(NeuronConfig.spinnaker())


def test_synapses_through_zero_padding_are_the_reference_connections():
    """Padding positions never spike: the exported synapses are the padded layer's connections restricted to
    the real neurons behind them, and their fan-out is the engines' events per spike."""
    from anytime_snn.export.connectivity import position_index
    from anytime_snn.sim import ops

    bundle = _padded_net()
    positions = position_index(bundle.layers, (28, 28, 1))
    c2 = bundle.layers[3]
    syn = layer_synapses(c2, (16, 17, 4)).through(positions[1], 14 * 15 * 4)
    pad_matrix = np.zeros((14 * 15 * 4, 16 * 17 * 4))
    real = positions[1] >= 0
    pad_matrix[positions[1][real], np.flatnonzero(real)] = 1
    m = pad_matrix @ connection_matrix(c2, (16, 17, 4))
    np.testing.assert_array_equal(syn.dense(), m)
    padded_fanout = ops.fanout(c2, (16, 17, 4)).reshape(16, 17, 4)[1:15, 1:16].ravel()
    np.testing.assert_array_equal(syn.fan_out(), padded_fanout)


def test_zero_padded_net_runs_spike_for_spike_on_brian2():
    from anytime_snn.export import BackendMissing, import_backend
    from anytime_snn.sim.reference import simulate

    try:
        sim = import_backend("brian2")[1]
    except BackendMissing as e:
        pytest.skip(str(e))  # a failure in CI (tests/conftest.py)
    bundle = _padded_net(12)
    x = np.random.default_rng(2).random((1, 12, 12, 1)).astype(np.float32)
    x[x < 0.5] = 0  # dark background, like digits
    ref = simulate(bundle, x, bundle.timesteps)
    net = export(bundle, sim)
    try:
        res = net.run(x)
    finally:
        net.end()
    for ours, theirs in zip(ref.spikes, res.spikes):
        assert ours.sum() > 20
        np.testing.assert_array_equal(theirs, ours)
    np.testing.assert_allclose(res.v_out, ref.v_out, rtol=0, atol=1e-9)
    np.testing.assert_array_equal(res.events, ref.events)
    np.testing.assert_array_equal(res.input_events, ref.input_events)
