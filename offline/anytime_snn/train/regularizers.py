"""The Keras regularizers of sparsity fine-tuning (paper eq. 8-10): one layer's share of lambda_a L_a and
lambda_w L_w, put on its beta / kernel variable so that ``model.fit`` adds the penalties with nothing custom.

Registered as Keras serializables (package ``anytime_snn``), so a model saved with them attached loads again.
This module imports Keras at import time (it defines Keras classes).
"""

from __future__ import annotations

import math

import keras

from ..errors import ConfigError
from .config import check_factor


def check_neurons(neurons) -> int:
    if isinstance(neurons, bool) or not isinstance(neurons, int) or neurons < 1:
        raise ConfigError(f"neurons must be a positive integer, got {neurons!r}")
    return neurons


@keras.saving.register_keras_serializable(package="anytime_snn")
class BetaActivationPenalty(keras.regularizers.Regularizer):
    """``factor * neurons * sum_c (erf(beta_c / sqrt 2) + 1) / 2``: one layer's share of lambda_a L_a.

    ``neurons`` is n_k, the neurons per beta (pixels per channel after a conv, 1 after Dense);
    ``factor`` is lambda_a / sum_k n_k over the whole network.
    """

    def __init__(self, factor: float, neurons: int = 1):
        self.factor = check_factor("factor", factor)
        self.neurons = check_neurons(neurons)

    def __call__(self, beta):
        ops = keras.ops
        return self.factor * self.neurons * 0.5 * ops.sum(ops.erf(beta / math.sqrt(2.0)) + 1.0)

    def get_config(self) -> dict:
        return {"factor": self.factor, "neurons": self.neurons}


@keras.saving.register_keras_serializable(package="anytime_snn")
class WeightL1Penalty(keras.regularizers.Regularizer):
    """``factor * neurons * sum |w|``: one layer's share of lambda_w L_w.

    ``neurons`` is m_k, the neurons each weight serves (output pixels per channel of a conv, 1 for
    Dense); ``factor`` is lambda_w / sum_k m_k over the whole network.
    """

    def __init__(self, factor: float, neurons: int = 1):
        self.factor = check_factor("factor", factor)
        self.neurons = check_neurons(neurons)

    def __call__(self, w):
        return self.factor * self.neurons * keras.ops.sum(keras.ops.abs(w))

    def get_config(self) -> dict:
        return {"factor": self.factor, "neurons": self.neurons}
