"""Hypothesis strategies of random networks shared by the simulator agreement tests."""

from __future__ import annotations

from hypothesis import assume
from hypothesis import strategies as st

from anytime_snn.model import NeuronConfig
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
