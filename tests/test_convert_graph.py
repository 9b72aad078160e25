"""Conversion of ZeroPadding2D, MaxPooling2D and residual Add: exact ANN function, isolated scaling across
pools and residual joins, clear refusals, and a real-MNIST conv net whose SNN approaches the ANN."""

from __future__ import annotations

import copy
import functools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from anytime_snn.convert import ann_forward, apply_scales, convert_model, network_input, parse_keras, scale_layer
from anytime_snn.convert.scaling import feeds_max_pool
from anytime_snn.data import mnist as mnist_mod
from anytime_snn.errors import ConfigError
from anytime_snn.optimize.params import Layout, hidden_layers
from anytime_snn.train import configure_tensorflow

configure_tensorflow(2)
keras = pytest.importorskip("keras")
L = keras.layers
needs_mnist = pytest.mark.skipif(not mnist_mod.is_cached(), reason="MNIST not cached: run anytime-snn data fetch mnist")


def _resnet(input_shape=(10, 10, 1), seed=0, pool_padding="same"):
    """pad -> conv-BN-ReLU -> overlapping strided max pool -> residual block (conv-BN-ReLU, conv-BN, Add,
    ReLU) -> pad -> conv -> residual dense block -> output: every new conversion case in one model."""
    keras.utils.set_random_seed(seed)
    inp = keras.Input(input_shape)
    h = L.ZeroPadding2D(((1, 0), (2, 1)))(inp)
    h = L.ReLU()(L.BatchNormalization()(L.Conv2D(4, 3)(h)))
    x0 = L.MaxPooling2D(3, strides=2, padding=pool_padding)(h)
    h = L.ReLU()(L.BatchNormalization()(L.Conv2D(4, 3, padding="same")(x0)))
    h = L.BatchNormalization()(L.Conv2D(4, 3, padding="same")(h))
    h = L.ReLU()(L.Add()([h, x0]))
    h = L.ZeroPadding2D(1)(h)
    h = L.Flatten()(L.Conv2D(3, 3, strides=2, activation="relu")(h))
    d = L.Dense(h.shape[-1])(L.Dense(6, activation="relu")(h))
    h = L.ReLU()(L.Add()([h, d]))
    out = L.Dense(3)(h)
    model = keras.Model(inp, out)
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, L.BatchNormalization):
            c = layer.gamma.shape[0]
            layer.set_weights([rng.uniform(0.5, 2, c), rng.normal(0, 0.5, c), rng.normal(0, 0.5, c),
                               rng.uniform(0.5, 2, c)])
        elif getattr(layer, "bias", None) is not None:
            layer.bias.assign(rng.normal(0, 0.3, layer.bias.shape))
    return model


@pytest.mark.parametrize("pool_padding", ["same", "valid"])
def test_padding_pooling_and_residual_convert_exactly(pool_padding):
    model = _resnet(pool_padding=pool_padding)
    parsed = parse_keras(model)
    kinds = [layer.kind for layer in parsed.layers]
    assert kinds.count("zero_pad2d") == 2 and kinds.count("max_pool2d") == 1
    joins = [layer for layer in parsed.layers if layer.skip is not None]
    assert [j.skip for j in joins] == [parsed.layers[kinds.index(k)].name for k in ("max_pool2d", "flatten")]
    x = np.random.default_rng(1).random((6, 10, 10, 1)).astype(np.float32)
    np.testing.assert_allclose(ann_forward(parsed.layers, x), model.predict(x, verbose=0), rtol=1e-4, atol=1e-4)


def test_sequential_max_pooling_and_global_max_pooling_convert_exactly():
    keras.utils.set_random_seed(3)
    model = keras.Sequential([keras.Input((9, 9, 2)), L.ZeroPadding2D(1), L.Conv2D(4, 3, activation="relu"),
                              L.MaxPooling2D(2), L.Conv2D(5, 2, activation="relu", padding="same"),
                              L.GlobalMaxPooling2D(), L.Dense(3)])
    parsed = parse_keras(model)
    assert [l.kind for l in parsed.layers] == ["zero_pad2d", "conv2d", "max_pool2d", "conv2d", "max_pool2d",
                                               "flatten", "dense"]
    x = np.random.default_rng(4).random((5, 9, 9, 2)).astype(np.float32)
    np.testing.assert_allclose(ann_forward(parsed.layers, x), model.predict(x, verbose=0), rtol=1e-5, atol=1e-5)


@functools.lru_cache(maxsize=1)
def _parsed_resnet():
    return parse_keras(_resnet())


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), per_channel=st.booleans())
def test_isolated_scaling_across_pools_and_residual_joins_keeps_the_ann_function(seed, per_channel):
    parsed = copy.deepcopy(_parsed_resnet())
    layers = parsed.layers
    x = np.random.default_rng(seed).random((4, 10, 10, 1)).astype(np.float32)
    ref, ref_acts = ann_forward(layers, x, collect=True)
    rng = np.random.default_rng(seed)
    hidden = [i for i, layer in enumerate(layers) if layer.weighted and not layer.output]
    scales = {i: np.exp(rng.uniform(-3, 3, layers[i].bias.shape[0] if per_channel and not feeds_max_pool(layers, i)
                                    else ())) for i in hidden}
    apply_scales(layers, scales, parsed.input_shape)
    out, acts = ann_forward(layers, x, collect=True)
    np.testing.assert_allclose(out, ref, rtol=1e-4, atol=1e-4)
    for i, a, a_ref in zip(hidden, acts, ref_acts):  # each layer's activations are multiplied by its own scale
        np.testing.assert_allclose(a, a_ref * scales[i], rtol=1e-4, atol=1e-4)


def test_a_layer_feeding_a_max_pool_keeps_one_scale():
    parsed = parse_keras(_resnet())
    conv = next(i for i, layer in enumerate(parsed.layers) if layer.weighted)
    assert feeds_max_pool(parsed.layers, conv)
    with pytest.raises(ConfigError, match="max pool.*one scale"):
        scale_layer(parsed.layers, conv, np.array([1.0, 2.0, 1.0, 1.0]), parsed.input_shape)
    bundle = convert_model(_resnet(), np.random.default_rng(0).random((20, 10, 10, 1)), granularity="channel").bundle
    hidden = hidden_layers(bundle)
    assert [h.layer_level for h in hidden] == [feeds_max_pool(bundle.layers, h.index) for h in hidden]
    assert hidden[0].layer_level and not hidden[1].layer_level
    layout = Layout(hidden, "neuron")
    assert len(set(layout.groups[0].tolist())) == 1


def _fn(*build):
    inp = keras.Input((8, 8, 1))
    return keras.Model(inp, build[0](inp))


@pytest.mark.parametrize("build, match", [
    # a projection (1x1 conv) shortcut
    (lambda i: L.Dense(3)(L.Flatten()(L.ReLU()(L.Add()([L.Conv2D(4, 3, padding="same")(L.ReLU()(L.Conv2D(2, 1)(i))),
                                                         L.Conv2D(4, 1)(L.ReLU()(L.Conv2D(2, 1)(i)))])))),
     "branch"),
    # the shortcut taken before the ReLU
    (lambda i: (lambda c: L.Dense(3)(L.Flatten()(L.ReLU()(L.Add(name="j")([L.Conv2D(4, 3, padding="same")(L.ReLU()(c)), c])))))(
        L.Conv2D(4, 3, padding="same")(i)), "before its BatchNormalization or ReLU"),
    # the shortcut from the analog input
    (lambda i: L.Dense(3)(L.Flatten()(L.ReLU()(L.Add()([L.Conv2D(1, 3, padding="same")(i), i])))), "network input"),
    # shapes differ
    (lambda i: (lambda r: L.Dense(3)(L.Flatten()(L.ReLU()(L.Add()([L.Conv2D(4, 3, padding="same")(r),
                                                                     L.ZeroPadding2D(0)(r)]))))
                )(L.Conv2D(4, 3, padding="same", activation="relu")(i)), "branch"),
    (lambda i: L.Dense(3)(L.Flatten()(L.Concatenate()([L.Conv2D(2, 3, activation="relu")(i),
                                                        L.Conv2D(2, 3, activation="relu")(i)]))), "branch"),
])
def test_unsupported_graphs_fail_with_a_clear_message(build, match):
    with pytest.raises(ConfigError, match=match):
        parse_keras(_fn(build))


# ----------------------------------------------------------------------------- real MNIST, real SNN


@needs_mnist
def test_mnist_conv_net_with_max_pooling_and_residual_converts_close_to_the_ann():
    """A small conv net (padding, max pool, residual block) trained for one epoch on 4000 real digits; its SNN
    after T = 80 steps agrees with the ANN on a 300-digit test subset.

    Training is deterministic (op determinism, seed 0): 5 runs on the 2-core CI machine type all gave ANN 93.7 %,
    SNN 93.7 % at T = 80 (78.3 % at T = 1), agreement 100 %. Another machine's float rounding can send training
    elsewhere, so the margins come from seeds 0-5: ANN 79.7-93.7 %, |SNN - ANN| 0-0.33 points, agreement
    99.0-100 %, SNN at T = 80 minus T = 1: 11-27 points (at T = 5 it was below T = 80 by -1.0 to +1.7 points,
    too thin to assert)."""
    from anytime_snn.data import load_dataset
    from anytime_snn.sim.tf_engine import TFEngine

    keras.utils.set_random_seed(0)
    inp = keras.Input((28, 28, 1))
    h = L.ReLU()(L.BatchNormalization()(L.Conv2D(8, 3, strides=2)(L.ZeroPadding2D(1)(inp))))  # 14 x 14
    p = L.MaxPooling2D(2)(h)  # 7 x 7
    r = L.BatchNormalization()(L.Conv2D(8, 3, padding="same")(p))
    h = L.ReLU()(L.Add()([r, p]))
    out = L.Dense(10)(L.Flatten()(h))
    model = keras.Model(inp, out)
    train = load_dataset("mnist", "train", limit=4000)
    test = load_dataset("mnist", "test", limit=300)
    model.compile(optimizer=keras.optimizers.SGD(0.05, momentum=0.9),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(train.pixels01(), train.labels, epochs=1, batch_size=32, verbose=0)
    ann_pred = np.argmax(model.predict(test.pixels01(), verbose=0), axis=-1)
    ann_acc = float(np.mean(ann_pred == test.labels))
    assert ann_acc > 0.75  # a precondition: the ANN has learned (chance 0.1)
    bundle = convert_model(model, train.images[:1000], v0=0.5, timesteps=80).bundle
    assert [l.kind for l in bundle.layers].count("max_pool2d") == 1 and any(l.skip for l in bundle.layers)
    res = TFEngine(bundle, jit_compile=False).run(network_input(bundle, test.images), 80)  # XLA compile: slow here
    acc = res.accuracy(test.labels)
    agree = float(np.mean(res.predictions[-1] == ann_pred))
    print(f"ANN {ann_acc:.3f}  SNN(T=80) {acc[-1]:.3f}  SNN(T=25) {acc[24]:.3f}  agreement {agree:.3f}")
    assert abs(acc[-1] - ann_acc) <= 0.02, (acc[-1], ann_acc)
    assert agree > 0.95
    assert acc[0] < acc[-1] - 0.05  # an anytime curve: it improves with time
