"""Hypothesis strategies of random networks shared by the simulator agreement tests."""

from __future__ import annotations

from hypothesis import strategies as st

from anytime_snn.model import NeuronConfig
from anytime_snn.testing import NetSpec

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
