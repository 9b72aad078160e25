"""Cross-simulator validation: our export running on NEST and Brian2 reproduces our engine in SpiNNaker mode
spike for spike on real MNIST digits; sPyNNaker maps the dense MNIST model on a virtual board.

The back ends are installed by scripts/bootstrap.sh (scripts/pynn-requirements.txt), so in CI these tests
must run: a missing back end skips (with the install command), and tests/conftest.py turns that skip into a
failure in CI.
Networks use real converted (non-dyadic) weights or Gaussian ones: exact ties at the threshold, where float
rounding in different summation orders could decide differently, then have probability ~0.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from anytime_snn.convert.convert import network_input
from anytime_snn.data import load_mnist
from anytime_snn.errors import DataError
from anytime_snn.export import INSTALL, BackendMissing, export, import_backend
from anytime_snn.model import Bundle, InputSpec, Layer, NeuronConfig, load_bundle
from anytime_snn.sim.reference import simulate

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_MODEL = ROOT / "models" / "default"


def backend(name):
    try:
        return import_backend(name)[1]
    except BackendMissing as e:
        pytest.skip(f"{e}")


def mnist_test_images(n):
    try:
        images, labels = load_mnist("test")
    except DataError as e:
        pytest.skip(str(e))
    return images[:n], labels[:n]


def dense_net() -> Bundle:
    """784-48-24-10 carved out of the converted default model (hidden 2 and output scaled up x6 to stay active)."""
    b = load_bundle(DEFAULT_MODEL)
    rng = np.random.default_rng(0)
    l1, l2, l3 = b.weighted_layers
    a, c = rng.choice(1200, 48, replace=False), rng.choice(1200, 24, replace=False)
    layers = [b.layers[0],  # flatten
              Layer("h1", "dense", weights=l1.weights[:, a], bias=l1.bias[a], v0=l1.v0[a]),
              Layer("h2", "dense", weights=l2.weights[a][:, c] * 6, bias=l2.bias[c], v0=l2.v0[c]),
              Layer("out", "dense", weights=l3.weights[c] * 6, bias=l3.bias, v0=l3.v0, output=True)]
    return Bundle(input=b.input, layers=layers, labels=b.labels, timesteps=40).with_neuron(NeuronConfig.spinnaker())


def conv_net() -> Bundle:
    """conv 3x3/2 same -> conv 3x3/2 same (14 -> 7: TF's asymmetric padding) -> depthwise 3x3 same -> dense."""
    rng = np.random.default_rng(1)

    def g(shape, s, shift=0.0):
        return (rng.standard_normal(shape) * s + shift).astype(np.float32)

    half = np.asarray(0.5, np.float32)
    layers = [Layer("c1", "conv2d", weights=g((3, 3, 1, 4), 0.5), bias=g((4,), 0.02), strides=(2, 2),
                    padding="same", v0=half),
              Layer("c2", "conv2d", weights=g((3, 3, 4, 6), 0.35, 0.05), bias=g((6,), 0.02), strides=(2, 2),
                    padding="same", v0=half),
              Layer("dw", "depthwise_conv2d", weights=g((3, 3, 6, 1), 0.5, 0.1), bias=g((6,), 0.02),
                    padding="same", v0=half),
              Layer("flat", "flatten"),
              Layer("out", "dense", weights=g((294, 10), 0.3), bias=g((10,), 0.01), output=True)]
    return Bundle(input=InputSpec(shape=(28, 28, 1)), layers=layers, labels=[str(i) for i in range(10)],
                  timesteps=40).with_neuron(NeuronConfig.spinnaker())


NETS = {"dense": dense_net, "conv": conv_net}


@pytest.mark.parametrize("net_name", ["dense", "conv"])
@pytest.mark.parametrize("backend_name", ["nest", "brian2"])
def test_backend_reproduces_our_engine_spike_for_spike(backend_name, net_name):
    sim = backend(backend_name)
    bundle = NETS[net_name]()
    images, _ = mnist_test_images(6)
    x = network_input(bundle, images)
    T = bundle.timesteps
    ref = simulate(bundle, x, T)  # the oracle, SpiNNaker dynamics
    net = export(bundle, sim)
    try:
        res = net.run(x)
    finally:
        net.end()
    for layer, (ours, theirs) in enumerate(zip(ref.spikes, res.spikes)):
        assert ours.sum() > 100, f"layer {layer} too quiet to test anything"
        np.testing.assert_array_equal(theirs, ours, err_msg=f"{backend_name}: spike trains of hidden layer {layer}")
    # accumulated output after every step (float64 both sides; different summation order only)
    np.testing.assert_allclose(res.v_out, ref.v_out, rtol=0, atol=1e-9)
    np.testing.assert_array_equal(res.predictions, ref.predictions)  # argmax of accumulated output, every step
    np.testing.assert_array_equal(res.events, ref.events)  # spikes x non-zero outgoing synapses
    np.testing.assert_array_equal(res.input_events, ref.input_events)
    summary = net.summary()
    assert summary["exact"] and summary["synapses"] == sum(m["synapses"] for m in summary["layers"])


SPINNAKER_SCRIPT = r"""
import json, sys
from anytime_snn.export import export, import_backend
from anytime_snn.model import NeuronConfig, load_bundle
bundle = load_bundle(sys.argv[1]).with_neuron(NeuronConfig.spinnaker())
_, sim = import_backend("spinnaker")
net = export(bundle, sim, timesteps=100)
mapping = net.map()
net.end()
print("MAPPING " + json.dumps({"mapping": mapping, "summary": net.summary()}))
"""


def test_spinnaker_virtual_board_maps_the_dense_mnist_model(tmp_path):
    backend("spinnaker")
    home = tmp_path / "home"
    home.mkdir()
    (home / ".spynnaker.cfg").write_text("[Machine]\nvirtual_board = True\nversion = 5\n")
    env = {**os.environ, "HOME": str(home)}
    proc = subprocess.run([sys.executable, "-c", SPINNAKER_SCRIPT, str(DEFAULT_MODEL)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    line = next(l for l in proc.stdout.splitlines() if l.startswith("MAPPING "))
    out = json.loads(line[len("MAPPING "):])
    m = out["mapping"]
    print(f"sPyNNaker virtual board: {m['cores']} cores on {m['chips']} chips: {m['cores_per_population']}")
    assert m["virtual_board"]
    for label in ("fc1", "fc2", "logits"):  # every population was partitioned and placed
        assert m["cores_per_population"].get(label, 0) >= 1
    assert m["cores_per_population"]["fc1"] >= 1200 // 255  # sPyNNaker's neurons-per-core ceiling
    assert out["summary"]["synapses"] == 1200 * 1200 + 1200 * 10 - _zero_weights()


def _zero_weights():
    b = load_bundle(DEFAULT_MODEL)
    return sum(int(np.count_nonzero(l.weights == 0)) for l in b.weighted_layers[1:])


def test_install_command_is_the_pinned_requirements():
    assert "scripts/pynn-requirements.txt" in INSTALL and (ROOT / "scripts" / "pynn-requirements.txt").is_file()
