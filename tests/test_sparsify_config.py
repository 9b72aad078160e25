"""Sparsify's settings as a typed config (train.config.SparsifyConfig): unknown keys and bad values are named."""

from __future__ import annotations

import pytest

from anytime_snn.errors import ConfigError
from anytime_snn.train.config import SparsifyConfig, sparsify_config_from_dict


def test_defaults_are_the_commands():
    c = SparsifyConfig()
    assert (c.epochs, c.epsilon, c.learning_rate, c.snn_samples, c.timesteps, c.bn_samples) == (3, 1e-4, 0.01, 1000,
                                                                                                 50, 10000)
    assert sparsify_config_from_dict(c.to_dict()) == c


def test_unknown_keys_are_rejected_by_name():
    with pytest.raises(ConfigError, match=r"unknown sparsify key\(s\) \['lamda_a'\]; valid keys: .*lambda_a"):
        sparsify_config_from_dict({"lamda_a": 1.0})


@pytest.mark.parametrize("key, value, match", [
    ("epochs", -1, "epochs must be an integer >= 0"), ("learning_rate", 0.0, "learning rate must be positive"),
    ("timesteps", 0, "need timesteps >= 1"), ("lambda_a", -1.0, "lambda_a must be a finite number >= 0"),
    ("lambda_w", float("nan"), "lambda_w must be a finite number"), ("bn_samples", 1.5, "bn samples must be an integer"),
    ("epsilon", -1e-4, "epsilon must be a finite number >= 0"),
])
def test_bad_values_name_the_setting(key, value, match):
    with pytest.raises(ConfigError, match=match):
        sparsify_config_from_dict({key: value})


def test_finetune_rejects_an_unknown_setting_before_any_work(tmp_path):
    pytest.importorskip("keras")
    from anytime_snn.train.finetune import finetune

    model = tmp_path / "m.keras"
    model.write_bytes(b"not read")
    with pytest.raises(ConfigError, match="unknown sparsify key"):
        finetune(model, tmp_path / "out.keras", epoch=3)
