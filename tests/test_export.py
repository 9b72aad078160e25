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
