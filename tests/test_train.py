"""ANN training: configs, architectures, a short real training run with its record."""

from __future__ import annotations

import json

import numpy as np
import pytest

from anytime_snn.cli import main
from anytime_snn.data import mnist as mnist_mod
from anytime_snn.errors import ConfigError
from anytime_snn.train import (ArchConfig, TrainConfig, build_model, config_from_dict, configure_tensorflow,
                               default_arch, load_config)

configure_tensorflow(2)
keras = pytest.importorskip("keras")
needs_mnist = pytest.mark.skipif(not mnist_mod.is_cached(), reason="MNIST not cached: run anytime-snn data fetch mnist")


def test_config_files_yaml_and_json(tmp_path):
    (tmp_path / "c.yaml").write_text("dataset: fashion-mnist\nepochs: 3\narch:\n  kind: conv\n  hidden: [64]\n")
    cfg = load_config(tmp_path / "c.yaml")
    assert cfg.dataset == "fashion-mnist" and cfg.epochs == 3
    assert cfg.arch.kind == "conv" and cfg.arch.hidden == [64]
    assert cfg.arch.filters == default_arch("conv").filters  # unspecified keys come from the arch default
    (tmp_path / "c.json").write_text(json.dumps({"arch": "mobilenet", "learning_rate": 0.1}))
    cfg = load_config(tmp_path / "c.json")
    assert cfg.arch.kind == "mobilenet" and cfg.arch.blocks and cfg.learning_rate == 0.1
    assert config_from_dict(cfg.to_dict()) == cfg  # round trip


@pytest.mark.parametrize("bad, match", [
    ({"epoch": 3}, r"unknown config key\(s\) \['epoch'\]"),
    ({"arch": {"kind": "dense", "width": 3}}, r"unknown arch key\(s\) \['width'\]"),
    ({"arch": "resnet"}, "arch.kind must be one of"),
    ({"learning_rate": -1}, "learning_rate must be positive"),
    ({"validation_fraction": 1.0}, "validation_fraction"),
    ({"arch": {"kind": "conv", "filters": [8, "max"]}}, "'pool'"),
])
def test_config_errors_name_the_key(bad, match):
    with pytest.raises(ConfigError, match=match):
        config_from_dict(bad)


def test_bad_yaml_is_a_config_error(tmp_path):
    (tmp_path / "c.yaml").write_text("epochs: [1\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(tmp_path / "c.yaml")


@pytest.mark.parametrize("kind, shape", [("dense", (28, 28, 1)), ("conv", (28, 28, 1)), ("cifar", (32, 32, 3)),
                                         ("mobilenet", (32, 32, 3))])
def test_architectures_are_conversion_friendly(kind, shape):
    model = build_model(default_arch(kind), shape, 10, mean=0.5, std=0.25)
    x = np.random.default_rng(0).random((2, *shape)).astype(np.float32)
    y = model.predict(x, verbose=0)
    assert y.shape == (2, 10)
    np.testing.assert_allclose(y.sum(-1), 1.0, rtol=1e-5)
    layers = model.layers
    assert isinstance(layers[0], keras.layers.Rescaling)
    assert isinstance(layers[-1], keras.layers.Softmax) and isinstance(layers[-2], keras.layers.Dense)
    names = {type(layer).__name__ for layer in layers}
    assert names <= {"Rescaling", "Flatten", "Dense", "Conv2D", "DepthwiseConv2D", "BatchNormalization", "ReLU",
                     "AveragePooling2D", "Dropout", "Softmax"}
    for i, layer in enumerate(layers[:-2]):  # every hidden weighted layer: -> BN -> ReLU
        if isinstance(layer, (keras.layers.Dense, keras.layers.Conv2D, keras.layers.DepthwiseConv2D)):
            assert isinstance(layers[i + 1], keras.layers.BatchNormalization)
            assert isinstance(layers[i + 2], keras.layers.ReLU)
    if kind == "dense":
        assert [layer.units for layer in layers if isinstance(layer, keras.layers.Dense)] == [1200, 1200, 10]
    if kind == "mobilenet":
        assert any(isinstance(layer, keras.layers.DepthwiseConv2D) for layer in layers)
        pool = [layer for layer in layers if isinstance(layer, keras.layers.AveragePooling2D)][-1]
        assert pool.output.shape[1:3] == (1, 1)  # global average pooling


@needs_mnist
def test_short_training_run_learns_and_writes_a_record(tmp_path):
    """Training is deterministic (op determinism): 5 runs of seed 1 on the 2-core CI machine type all gave test
    accuracy 85.2 % (moving-average BN 83.6 %). Another machine's float rounding can send training elsewhere,
    so the thresholds come from seeds 1-6: 83.0-87.7 %, and re-estimated minus moving-average BN 0 to +4.3
    points. (The threshold was 85 %: 0.2 points under seed 1, failing seed 6.)"""
    out = tmp_path / "m.keras"
    rc = main(["train", "--arch", "dense", "--epochs", "2", "--train-limit", "3000", "--test-limit", "1000",
               "--validation-fraction", "0.1", "--quiet", "--seed", "1", "--out", str(out)])
    assert rc == 0 and out.is_file()
    record = json.loads(out.with_suffix(".json").read_text())
    print(f"test accuracy {record['test_accuracy']}, with moving-average BN {record['test_accuracy_moving_average_bn']}")
    assert record["test_accuracy"] > 0.8  # 2 epochs on 2700 real digits (chance: 0.1)
    # the BN statistics were re-estimated on the training images: not worse than the lagging moving averages
    assert record["bn_recalibration_samples"] == 2700
    assert record["test_accuracy"] >= record["test_accuracy_moving_average_bn"] - 0.02
    choice = record["bn_statistics"]  # whichever statistics did better on the validation split were kept
    assert record["validation_accuracy"] == pytest.approx(max(choice["validation_accuracy_re_estimated"],
                                                              choice["validation_accuracy_moving_averages"]))
    assert record["data"]["n_train"] == 2700 and record["data"]["n_validation"] == 300
    assert record["data"]["train_hash"].startswith("sha256:") and record["train_wall_time_s"] > 0
    assert record["config"]["arch"]["hidden"] == [1200, 1200]
    model = keras.models.load_model(out)
    assert model.count_params() > 2_000_000


def test_cli_rejects_a_bad_output_name(tmp_path, capsys):
    rc = main(["train", "--arch", "dense", "--epochs", "1", "--out", str(tmp_path / "m.h5")])
    assert rc == 2 and ".keras" in capsys.readouterr().err
