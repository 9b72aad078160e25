"""Sparsity fine-tuning (paper 5.1): L_a and L_w against hand-computed values, the regularizers,
gamma fixing, pruning and a short real ``anytime-snn sparsify`` run on MNIST."""

from __future__ import annotations

import json

import numpy as np
import pytest

from anytime_snn.train import configure_tensorflow

configure_tensorflow(2)
keras = pytest.importorskip("keras")

from anytime_snn.cli import main  # noqa: E402
from anytime_snn.data import mnist as mnist_mod  # noqa: E402
from anytime_snn.errors import ConfigError  # noqa: E402
from anytime_snn.train import sparsity as sp  # noqa: E402

needs_mnist = pytest.mark.skipif(not mnist_mod.is_cached(), reason="MNIST not cached: run anytime-snn data fetch mnist")

# Standard normal CDF Phi(b) = (erf(b / sqrt 2) + 1) / 2 at the betas used below (tables / erf by hand).
PHI = {0.0: 0.5, 1.0: 0.8413447461, -1.0: 0.1586552539, 2.0: 0.9772498681}


def dense_model():
    """Input(3) -> Dense(2, no bias) -> BN(beta [0, 1]) -> ReLU."""
    L = keras.layers
    m = keras.Sequential([keras.Input((3,)), L.Dense(2, use_bias=False, name="fc"), L.BatchNormalization(name="bn"),
                          L.ReLU(name="relu")])
    m.get_layer("fc").kernel.assign(np.array([[0.1, -0.2], [0.3, 0.0], [0.0, -0.4]], np.float32))
    m.get_layer("bn").beta.assign(np.array([0.0, 1.0], np.float32))
    return m


def conv_model():
    """Input(3,3,1) -> Conv(2 ch, 2x2 valid: 2x2 output) -> BN -> ReLU -> Flatten -> Dense(2) -> BN -> ReLU
    -> Dense(2)."""
    L = keras.layers
    m = keras.Sequential([
        keras.Input((3, 3, 1)), L.Conv2D(2, 2, use_bias=False, name="conv"), L.BatchNormalization(name="conv_bn"),
        L.ReLU(name="conv_relu"), L.Flatten(name="flatten"), L.Dense(2, use_bias=False, name="fc"),
        L.BatchNormalization(name="fc_bn"), L.ReLU(name="fc_relu"), L.Dense(2, name="logits")])
    m.get_layer("conv").kernel.assign(np.full((2, 2, 1, 2), 0.5, np.float32) * np.array([1, -1], np.float32))
    m.get_layer("fc").kernel.assign(np.full((8, 2), -0.25, np.float32))
    m.get_layer("logits").kernel.assign(np.full((2, 2), 0.1, np.float32))
    m.get_layer("conv_bn").beta.assign(np.array([0.0, -1.0], np.float32))
    m.get_layer("fc_bn").beta.assign(np.array([1.0, 2.0], np.float32))
    return m


def test_dense_penalties_by_hand():
    m = dense_model()
    # L_a: two betas, n_k = 1 each: (Phi(0) + Phi(1)) / 2
    assert sp.activation_penalty(m) == pytest.approx((0.5 + 0.8413447461) / 2, abs=1e-7)
    assert sp.activation_penalty(m) == pytest.approx(0.6706723731, abs=1e-7)
    # L_w: six weights, m_k = 1: (0.1 + 0.2 + 0.3 + 0 + 0 + 0.4) / 6
    assert sp.weight_penalty(m) == pytest.approx(1.0 / 6, abs=1e-7)


def test_conv_penalties_use_pixels_per_channel():
    m = conv_model()
    terms = sp.sparsity_terms(m)
    assert [(layer.name, n) for layer, n in terms.bn] == [("conv_bn", 4), ("fc_bn", 1)]
    assert [(layer.name, n) for layer, n in terms.kernels] == [("conv", 4), ("fc", 1), ("logits", 1)]
    # L_a: sum n_k = 2*4 + 2*1 = 10; (4 Phi(0) + 4 Phi(-1) + Phi(1) + Phi(2)) / 10
    expected_a = (4 * 0.5 + 4 * 0.1586552539 + 0.8413447461 + 0.9772498681) / 10
    assert expected_a == pytest.approx(0.4453215, abs=1e-7)
    assert sp.activation_penalty(m) == pytest.approx(expected_a, abs=1e-7)
    # L_w: conv 8 weights |0.5| with m = 4 (2x2 output pixels, not the 9 input pixels), fc 16 x 0.25, logits 4 x 0.1;
    # sum m_k = 8*4 + 16 + 4 = 52; (4*4.0 + 4.0 + 0.4) / 52
    assert sp.weight_penalty(m) == pytest.approx(20.4 / 52, abs=1e-7)
    assert terms.total_n == 10 and terms.total_m == 52


def test_keras_regularizers_add_lambda_weighted_penalties_to_the_loss():
    m = conv_model()
    sp.attach_penalties(m, lambda_a=2.0, lambda_w=3.0)
    m(np.zeros((1, 3, 3, 1), np.float32))
    total = float(sum(np.asarray(v) for v in m.losses))
    assert total == pytest.approx(2.0 * 0.4453215 + 3.0 * 20.4 / 52, rel=1e-5)
    # the loss is differentiable: beta is pushed down, kernels towards zero
    import tensorflow as tf

    with tf.GradientTape() as tape:
        m(np.zeros((1, 3, 3, 1), np.float32))
        loss = tf.add_n(m.losses)
    grads = tape.gradient(loss, [m.get_layer("fc_bn").beta, m.get_layer("fc").kernel])
    assert np.all(np.asarray(grads[0]) > 0) and np.all(np.asarray(grads[1]) < 0)  # kernel is -0.25 everywhere
    sp.detach_penalties(m)
    assert not m.losses


@pytest.mark.parametrize("cls", [sp.BetaActivationPenalty, sp.WeightL1Penalty])
def test_regularizer_config_json_round_trip(cls):
    reg = cls(0.125, neurons=49)
    blob = json.dumps(keras.saving.serialize_keras_object(reg))
    back = keras.saving.deserialize_keras_object(json.loads(blob))
    assert type(back) is cls and back.get_config() == {"factor": 0.125, "neurons": 49}
    x = keras.ops.convert_to_tensor(np.array([-1.0, 0.5, 2.0], np.float32))
    assert float(back(x)) == pytest.approx(float(reg(x)))


@pytest.mark.parametrize("kwargs, match", [({"factor": -1.0}, "factor must be a finite number >= 0, got -1.0"),
                                           ({"factor": float("nan")}, "factor"),
                                           ({"factor": 1.0, "neurons": 0}, "neurons must be a positive integer, got 0"),
                                           ({"factor": 1.0, "neurons": 2.5}, "got 2.5")])
def test_regularizers_validate_arguments(kwargs, match):
    for cls in (sp.BetaActivationPenalty, sp.WeightL1Penalty):
        with pytest.raises(ConfigError, match=match):
            cls(**kwargs)


def test_bn_without_relu_is_rejected_by_name():
    L = keras.layers
    m = keras.Sequential([keras.Input((3,)), L.Dense(2), L.BatchNormalization(name="lonely_bn"), L.Dense(2)])
    with pytest.raises(ConfigError, match="'lonely_bn' is not followed by a ReLU"):
        sp.sparsity_terms(m)


def test_fix_gamma_keeps_the_function_and_freezes_gamma():
    m = conv_model()
    rng = np.random.default_rng(0)
    for name in ("conv_bn", "fc_bn"):
        bn = m.get_layer(name)
        bn.gamma.assign(np.array([1.7, -0.6], np.float32))  # a negative gamma too
        bn.moving_mean.assign(rng.normal(size=2).astype(np.float32))
        bn.moving_variance.assign(rng.uniform(0.5, 2, size=2).astype(np.float32))
    x = rng.random((16, 3, 3, 1)).astype(np.float32)
    y0 = m.predict(x, verbose=0)
    var0 = m.get_layer("conv_bn").moving_variance.numpy().copy()
    assert sp.fix_gamma(m) == []
    np.testing.assert_allclose(m.predict(x, verbose=0), y0, rtol=1e-5, atol=1e-6)
    for name in ("conv_bn", "fc_bn"):
        bn = m.get_layer(name)
        np.testing.assert_array_equal(bn.gamma.numpy(), [1.0, 1.0])
        ids = {id(v) for v in m.trainable_weights}
        assert not bn.gamma.trainable and id(bn.gamma) not in ids and id(bn.beta) in ids
    np.testing.assert_array_equal(m.get_layer("conv_bn").moving_variance.numpy(), var0)  # left as it is


def test_prune_zeroes_small_weights_and_stays_pruned_on_save(tmp_path):
    m = conv_model()
    k = m.get_layer("fc").kernel.numpy()
    k[0, 0], k[1, 1], k[2, 0] = 5e-5, -9e-5, 2e-4
    m.get_layer("fc").kernel.assign(k)
    assert sp.prune(m, 1e-4) == {"conv": 0, "fc": 2, "logits": 0}
    ws = sp.weight_sparsity(m)
    assert ws["layers"]["fc"] == pytest.approx(2 / 16) and ws["total"] == pytest.approx(2 / 28)
    m.save(tmp_path / "m.keras")
    back = keras.models.load_model(tmp_path / "m.keras")
    kb = back.get_layer("fc").kernel.numpy()
    assert kb[0, 0] == 0 and kb[1, 1] == 0 and kb[2, 0] == np.float32(2e-4)
    with pytest.raises(ConfigError, match="epsilon"):
        sp.prune(m, -1)


def test_activation_sparsity_counts_zero_relu_outputs():
    m = dense_model()
    x = np.array([[1, 0, 0], [0, 0, 1]], np.float32)  # fc: [0.1, -0.2], [0, -0.4]
    bn = m.get_layer("bn")
    bn.moving_mean.assign(np.zeros(2, np.float32))
    bn.moving_variance.assign(np.ones(2, np.float32) - bn.epsilon)
    bn.beta.assign(np.array([-0.05, 0.3], np.float32))
    # relu([0.05, 0.1]) and relu([-0.05, -0.1]): 2 zeros of 4
    s = sp.activation_sparsity(m, x)
    assert s == {"layers": {"relu": 0.5}, "total": 0.5}


@needs_mnist
def test_sparsify_cli_real_mnist(tmp_path, capsys):
    """Train a tiny dense net for one epoch, then sparsify it with strong penalties: sparsity goes up."""
    model = tmp_path / "base.keras"
    (tmp_path / "small.yaml").write_text("arch:\n  kind: dense\n  hidden: [64, 64]\n")
    assert main(["train", "--config", str(tmp_path / "small.yaml"), "--epochs", "1", "--train-limit", "2000",
                 "--test-limit", "300", "--out", str(model), "--quiet"]) == 0
    out = tmp_path / "sparse.keras"
    rc = main(["sparsify", str(model), "--out", str(out), "--lambda-a", "300", "--lambda-w", "5000", "--epochs", "1",
               "--learning-rate", "0.05",
               "--snn-samples", "50", "--timesteps", "8", "--calibration-samples", "200", "--quiet"])
    assert rc == 0
    rec = json.loads(out.with_suffix(".json").read_text())
    b, a = rec["before"], rec["after"]
    assert a["L_a"] < b["L_a"] and a["L_w"] < b["L_w"]
    assert a["activation_sparsity"]["total"] > b["activation_sparsity"]["total"]
    assert a["weight_sparsity"]["total"] > b["weight_sparsity"]["total"] >= 0
    assert sum(rec["sparsity"]["pruned_weights"].values()) > 0
    assert a["snn"]["samples"] == 50 and a["snn"]["timesteps"] == 8
    assert a["snn"]["events_per_inference"] < b["snn"]["events_per_inference"]
    assert b["test_accuracy"] == pytest.approx(b["test_accuracy_original_gamma"], abs=1e-9)
    assert rec["data"]["dataset"] == "mnist" and rec["config"]["epochs"] == 1
    # the saved model loads without custom objects and is as sparse as recorded
    back = keras.models.load_model(out)
    assert sp.weight_sparsity(back)["total"] == pytest.approx(a["weight_sparsity"]["total"])
    assert "after:" in capsys.readouterr().out


def test_sparsify_user_mistakes_are_one_line_errors(tmp_path, capsys):
    assert main(["sparsify", str(tmp_path / "missing.keras"), "--out", str(tmp_path / "o.keras")]) == 2
    assert main(["sparsify", str(tmp_path / "missing.keras"), "--out", str(tmp_path / "o.h5")]) == 2
    err = capsys.readouterr().err
    assert "does not exist" in err and ".keras" in err and "Traceback" not in err


def test_default_lambdas_scale_with_neurons_per_parameter():
    """Dense: every beta and weight serves one neuron, so the dense-MNIST values hold exactly; conv: scaled
    by sqrt(#betas / sum n_k) and sqrt(#weights / sum m_k), then by the conv factors 2 and 0.1."""
    assert sp.default_lambdas(dense_model()) == (sp.DEFAULT_LAMBDA_A, sp.DEFAULT_LAMBDA_W)
    la, lw = sp.default_lambdas(conv_model())
    # betas: conv 2 (n = 4), fc 2 (n = 1): 4 betas, sum n = 10; weights: conv 8 (m = 4), fc 16, logits 4: 28, sum m 52
    assert la == pytest.approx(50.0 * np.sqrt(4 / 10) * 2.0)
    assert lw == pytest.approx(1000.0 * np.sqrt(28 / 52) * 0.1)


def test_recalibrate_batchnorm_sets_exact_input_statistics():
    m = conv_model()
    rng = np.random.default_rng(0)
    x = rng.normal(size=(37, 3, 3, 1)).astype(np.float32)
    changes = sp.recalibrate_batchnorm(m, x, batch_size=10)  # uneven batches: statistics are still exact
    assert set(changes) == {"conv_bn", "fc_bn"}
    conv_in = np.asarray(keras.Model(m.inputs[0], m.get_layer("conv").output)(x)).reshape(-1, 2)
    np.testing.assert_allclose(m.get_layer("conv_bn").moving_mean.numpy(), conv_in.mean(0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(m.get_layer("conv_bn").moving_variance.numpy(), conv_in.var(0), rtol=1e-4)
    # the second BN sees its input through the first BN with its *new* statistics
    fc_in = np.asarray(keras.Model(m.inputs[0], m.get_layer("fc").output)(x, training=False))
    np.testing.assert_allclose(m.get_layer("fc_bn").moving_mean.numpy(), fc_in.mean(0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(m.get_layer("fc_bn").moving_variance.numpy(), fc_in.var(0), rtol=1e-4)


def test_re_estimated_bn_statistics_are_kept_only_if_the_validation_split_agrees():
    """Labels are the model's own predictions under statistics measured on the validation images, so those
    statistics score 100 %. Re-estimating on very different images must then be undone (restored exactly);
    re-estimating on the validation images themselves, from stale averages, must be kept."""
    from anytime_snn.data._common import Dataset

    m = conv_model()
    m.get_layer("logits").kernel.assign(np.array([[1.0, -1.0], [-1.0, 1.0]], np.float32))
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, (64, 3, 3, 1), dtype=np.uint8)
    sp.recalibrate_batchnorm(m, images / 255.0)
    labels = np.argmax(m.predict(images / 255.0, verbose=0), -1)
    assert 0 < labels.sum() < len(labels)  # both classes occur
    val = Dataset("toy", "validation", images, labels, ["a", "b"])
    good = {name: (mean.copy(), var.copy()) for name, (mean, var) in sp._bn_statistics(m).items()}

    _, choice = sp.re_estimate_batchnorm(m, 1.0 - 3.0 * images / 255.0, val)  # other images: worse on val
    assert choice["validation_accuracy_moving_averages"] == 1.0
    assert choice["validation_accuracy_re_estimated"] < 1.0 and choice["statistics"] == "moving averages"
    for name, (mean, var) in sp._bn_statistics(m).items():
        np.testing.assert_array_equal(mean, good[name][0])
        np.testing.assert_array_equal(var, good[name][1])

    m.get_layer("fc_bn").moving_variance.assign(np.full(2, 1e4, np.float32))  # stale: squashes fc to beta
    _, choice = sp.re_estimate_batchnorm(m, images / 255.0, val)
    assert choice["validation_accuracy_moving_averages"] < 1.0
    assert choice["statistics"] == "re-estimated" and choice["validation_accuracy_re_estimated"] == 1.0
    np.testing.assert_allclose(m.get_layer("fc_bn").moving_variance.numpy(), good["fc_bn"][1], rtol=1e-5)
    _, choice = sp.re_estimate_batchnorm(m, 1.0 - 3.0 * images / 255.0)  # no validation split: re-estimated
    assert choice["statistics"] == "re-estimated" and choice["validation_accuracy_re_estimated"] is None


@needs_mnist
def test_sparsify_conv_net_keeps_accuracy(tmp_path):
    """A small conv MNIST net (8-pool-16-pool-32) with the default lambdas keeps its accuracy within 1 point
    (issue 18's target) while the activation sparsity rises. The conv defaults (lambda_a x 2, lambda_w x 0.1
    over the scaled dense values) come from benchmarks/sparsity_search.py: the previous defaults cost 6.2
    points here, nearly all of it from L_w (results/sparsity_search_small_conv.json). Training is
    deterministic (``configure_tensorflow`` enables TF op determinism): the search and this test give
    96.2 % -> 96.0 % (sparsity 53.5 % -> 80.0 %) on every run. The BN moving averages of fine-tuning still
    fail (13.4 %): the re-estimated statistics are what keeps the accuracy."""
    model = tmp_path / "conv.keras"
    (tmp_path / "conv.yaml").write_text("arch:\n  kind: conv\n  filters: [8, pool, 16, pool]\n  hidden: [32]\n")
    assert main(["train", "--config", str(tmp_path / "conv.yaml"), "--epochs", "3", "--train-limit", "5000",
                 "--learning-rate", "0.1", "--test-limit", "500", "--out", str(model), "--quiet"]) == 0
    la, lw = sp.default_lambdas(keras.models.load_model(model))
    rec = sp.finetune(model, tmp_path / "sparse.keras", epochs=2, snn_samples=0, bn_samples=2000,
                      log=lambda *_: None)
    b, a = rec["before"], rec["after"]
    assert rec["sparsity"]["lambda_a"] == pytest.approx(la) and rec["sparsity"]["lambda_w"] == pytest.approx(lw)
    assert b["test_accuracy"] > 0.9
    assert a["activation_sparsity"]["total"] > b["activation_sparsity"]["total"] + 0.1
    assert a["test_accuracy"] >= b["test_accuracy"] - 0.01
    assert rec["sparsity"]["bn_recalibration"]["samples"] == 2000
    assert rec["sparsity"]["bn_recalibration"]["statistics"] == "re-estimated"  # chosen on the validation split
    # what inference would have used without the re-estimation: the stale moving averages
    assert a["test_accuracy_moving_average_bn"] < a["test_accuracy"] - 0.2


def test_ann_synaptic_ops_counts_active_inputs_times_fanout_also_through_graph_layers():
    """Hand check on a dense chain; padding, max pooling and residual joins are walked, not refused."""
    from anytime_snn.testing import NetSpec, dense_bundle, random_bundle, random_inputs
    from anytime_snn.train.sparsity import ann_synaptic_ops

    b = dense_bundle((4, 3, 2), seed=0)
    b.layers[0].weights[:] = [[1, 0, 1], [1, 1, 0], [0, 0, 1], [1, 1, 1]]  # fan-outs 2, 2, 1, 3
    b.layers[1].weights[:] = [[1, 0], [1, 1], [0, 1]]  # fan-outs 1, 2, 1
    x = np.array([[1, 0, 2, 0], [0, 0, 0, 0]], np.float32)  # inputs: 2 + 1 = 3, then 0
    got = ann_synaptic_ops(b.layers, x)
    # hidden activations of sample 0: relu([1, 0, 3]) -> active 0 and 2 -> fan-out 1 + 1 = 2
    assert got == {"input": 3 / 2, "hidden": 2 / 2}
    spec = NetSpec(input_shape=(6, 6, 2), convs=(("zero_pad2d", 1, 0, 1, "valid"), ("conv2d", 3, 2, 1, "same"),
                                                 ("max_pool2d", 2, 0, 2, "valid"), ("residual", 3, 0, 1, "same")),
                   dense=(5,), classes=3)
    g = ann_synaptic_ops(random_bundle(spec, 1).layers, random_inputs(spec, 4, 1))
    assert g["input"] > 0 and g["hidden"] > 0
