"""Hypothesis strategies of random networks shared by the simulator agreement tests."""

from __future__ import annotations

import numpy as np
from hypothesis import assume
from hypothesis import strategies as st

from anytime_snn.model import NeuronConfig
from anytime_snn.optimize.params import FullState, apply_state
from anytime_snn.testing import NetSpec, random_bundle

NEURONS = [NeuronConfig(), NeuronConfig.spinnaker(), NeuronConfig(reset="zero"),
           NeuronConfig(reset="subtract", refractory_steps=2, delay_steps=0),
           NeuronConfig(reset="subtract", refractory_steps=0, delay_steps=3)]
CONV = st.tuples(st.sampled_from(["conv2d", "depthwise_conv2d"]), st.integers(1, 3), st.integers(1, 4),
                 st.integers(1, 2), st.sampled_from(["same", "valid"]))
SPECS = st.builds(
    NetSpec,
    input_shape=st.sampled_from([(6, 6, 1), (7, 5, 2), (8, 8, 3)]),
    convs=st.lists(CONV, max_size=2).map(tuple),
    dense=st.lists(st.integers(3, 10), max_size=2).map(tuple),
    classes=st.integers(2, 5),
    neuron=st.sampled_from(NEURONS),
    v0_mode=st.sampled_from(["scalar", "channel", "neuron"]),
    zero_fraction=st.sampled_from([0.0, 0.4]),
)
DENSE_SPECS = SPECS.map(lambda s: NetSpec(input_shape=(12,), convs=(), dense=s.dense, classes=s.classes,
                                          neuron=s.neuron, v0_mode=s.v0_mode, zero_fraction=s.zero_fraction))
# Every layer kind mixed: convolutions and depthwise convolutions with strides 1-3 and both paddings, zero
# padding, spiking max pools (overlapping, strided, 'same'), residual inputs; the analog first layer may
# itself be zero padded or a depthwise convolution.
ANY_LAYER = st.one_of(
    st.tuples(st.sampled_from(["conv2d", "depthwise_conv2d"]), st.integers(1, 3), st.integers(1, 4),
              st.integers(1, 3), st.sampled_from(["same", "valid"])),
    st.tuples(st.just("max_pool2d"), st.integers(1, 3), st.just(0), st.integers(1, 3), st.sampled_from(["same", "valid"])),
    st.tuples(st.just("zero_pad2d"), st.integers(0, 2), st.just(0), st.integers(0, 2), st.just("")),
    st.tuples(st.just("residual"), st.integers(1, 3), st.just(0), st.just(1), st.just("same")),
)
GRAPH_SPECS = st.builds(
    NetSpec,
    input_shape=st.sampled_from([(6, 6, 1), (7, 5, 2)]),
    convs=st.tuples(st.sampled_from([("conv2d", 3, 3, 1, "same"), ("zero_pad2d", 1, 0, 0, ""),
                                     ("depthwise_conv2d", 2, 0, 1, "same")]),
                    st.lists(ANY_LAYER, min_size=1, max_size=4)).map(lambda c: (c[0],) + tuple(c[1])),
    dense=st.lists(st.integers(3, 8), max_size=1).map(tuple),
    classes=st.integers(2, 4),
    neuron=st.sampled_from(NEURONS),
    v0_mode=st.sampled_from(["scalar", "channel", "neuron"]),
    zero_fraction=st.sampled_from([0.0, 0.4]),
)


def draw_bundle(spec: NetSpec, seed: int):
    """``random_bundle(spec, seed)``; an invalid draw (a kernel larger than the shrunken image, a max
    pool before any spiking layer, no source for a residual input) is rejected with ``assume``."""
    try:
        return random_bundle(spec, seed)
    except ValueError:
        assume(False)


def fire_in_some_samples(base, rng) -> None:
    """Lower every hidden layer's biases by 0, 0.25 or 0.5 (in place), so that neurons fire in some samples
    and steps only (what the re-simulation caches must get right)."""
    for layer in base.layers[:-1]:
        if layer.weighted:
            layer.bias = (layer.bias - rng.integers(0, 3, layer.bias.shape) / 4).astype(np.float32)


def optimizer_step(base, state, hidden, rng):
    """The next point of a random walk like the optimizer's: one to three channels of one layer (eta and/or
    V0), sometimes a whole layer, sometimes nothing; and sometimes a raw edit the optimizer never makes (a
    weight zeroed, so a fan-out changes; an output bias), to exercise every rule. Returns (state, bundle)."""
    state = FullState([v.copy() for v in state.log_eta], [v.copy() for v in state.v0])
    i = int(rng.integers(len(hidden)))
    u = rng.random()
    if u < 0.15:
        state.log_eta[i] += rng.normal(0, 0.3)
    elif u >= 0.22:
        j = rng.integers(0, hidden[i].channels, size=int(rng.integers(1, 4)))
        if rng.random() < 0.6:
            state.log_eta[i][j] += rng.normal(0, 0.4, len(j))
        if rng.random() < 0.6:
            state.v0[i][j] = rng.uniform(0, hidden[i].threshold, len(j))
    bundle = apply_state(base, state, hidden)
    edit = rng.random()
    if edit < 0.1:
        layer = bundle.weighted_layers[int(rng.integers(len(bundle.weighted_layers)))]
        w = layer.weights.copy()
        w.flat[int(rng.integers(w.size))] = 0.0
        layer.weights = w
    elif edit < 0.15:
        out = bundle.weighted_layers[-1]
        out.bias = out.bias + np.float32(0.25)
    return state, bundle
