"""benchmarks/layer_rates.py on a hand-checkable conv net: the rates it reports and the blank receptive fields."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import layer_rates  # noqa: E402
from anytime_snn.testing import NetSpec, random_bundle  # noqa: E402


def test_first_layer_background_and_rates_by_hand():
    spec = NetSpec(input_shape=(6, 6, 1), convs=(("conv2d", 3, 2, 1, "same"),), dense=(4,), classes=3)
    bundle = random_bundle(spec, seed=0)
    conv = bundle.layers[0]
    theta = conv.neuron.threshold
    conv.bias = np.array([0.25 * theta, -0.5 * theta], np.float32)
    x = np.zeros((1, 6, 6, 1), np.float32)
    x[0, 0, 0, 0] = 1.0  # one lit pixel in a corner: the 2 x 2 positions whose 3 x 3 field holds it are not blank
    rates = layer_rates.ann_activations(bundle, x)
    r = rates[conv.name].reshape(6, 6, 2)
    lit = np.zeros((6, 6), bool)
    lit[:2, :2] = True
    assert np.allclose(r[~lit, 0], 0.25) and np.all(r[~lit, 1] == 0)  # a blank field: the bias alone, ReLU'd
    got = layer_rates.first_layer_background(bundle, x, rates[conv.name])
    assert got["channels_positive_bias"] == 1 and got["positive_bias_over_threshold"] == [0.25]
    assert got["first_spike_step_of_bias_only_neurons"] == [4]  # V0 = 0, 0.25 of a threshold per step
    assert got["blank_receptive_field_share"] == 32 / 36
    assert np.isclose(got["activation_share_at_blank_fields"], 32 * 0.25 / r.sum())
