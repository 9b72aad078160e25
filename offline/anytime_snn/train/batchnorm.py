"""BatchNormalization statistics after training and fine-tuning: re-estimate them exactly from the final
weights, and keep them only where the validation split agrees (used by :mod:`.trainer` and :mod:`.finetune`).

The moving averages (momentum 0.99) lag behind weights that change fast: short training runs lost up to
30 points to them, and conv MNIST fine-tuned with the sparsity penalties went to 10 % test accuracy with
them while its batch-statistics accuracy was 97 % (docs/sparsity.md).
"""

from __future__ import annotations

import numpy as np

from ..evaluate.ann import evaluate_accuracy
from ..keras_layers import layer_class


def recalibrate_batchnorm(model, x: np.ndarray, batch_size: int = 500) -> dict[str, float]:
    """Set every BatchNormalization's moving mean and variance to the exact statistics of its input on ``x``.

    Fine-tuning with the penalties shrinks weights and moves betas faster than BN's exponential moving
    averages (momentum 0.99) follow, so the inference-mode statistics describe an older network. This
    re-estimates them from the final weights, layer by layer in order (each BN sees its input computed
    with the already re-estimated BNs before it): mean and biased variance over the batch and spatial
    axes, as BN uses in training. Returns, per BN, the largest relative change of the moving variance.
    """
    import keras

    changes = {}
    for layer in model.layers:
        if layer_class(layer) != "BatchNormalization":
            continue
        probe = keras.Model(model.inputs[0], layer.input)
        s1 = s2 = None
        count = 0
        for start in range(0, len(x), batch_size):
            h = np.asarray(probe(x[start:start + batch_size], training=False), np.float64)
            h = h.reshape(-1, h.shape[-1])
            s1 = h.sum(0) if s1 is None else s1 + h.sum(0)
            s2 = (h * h).sum(0) if s2 is None else s2 + (h * h).sum(0)
            count += h.shape[0]
        mean = s1 / count
        var = np.maximum(s2 / count - mean * mean, 0.0)
        old = np.asarray(layer.moving_variance.numpy(), np.float64)
        changes[layer.name] = float(np.max(np.abs(var - old) / np.maximum(old, 1e-12)))
        layer.moving_mean.assign(mean.astype(np.float32))
        layer.moving_variance.assign(var.astype(np.float32))
    return changes


def re_estimate_batchnorm(model, x: np.ndarray, val_ds=None) -> tuple[dict[str, float], dict]:
    """:func:`recalibrate_batchnorm` on ``x``, kept only if it classifies ``val_ds`` at least as well as the
    moving averages did (the test split is never looked at). Re-estimation rescues nets whose statistics
    moved faster than the averages followed; it can cost a little where training-mode noise (dropout)
    was part of what the averages saw. Returns the variance changes and a record of the choice."""
    stale = bn_statistics(model)
    val_stale = evaluate_accuracy(model, val_ds) if val_ds is not None else None
    changes = recalibrate_batchnorm(model, x)
    val_new = evaluate_accuracy(model, val_ds) if val_ds is not None else None
    choice = {"statistics": "re-estimated", "validation_accuracy_re_estimated": val_new,
              "validation_accuracy_moving_averages": val_stale}
    if val_ds is not None and val_stale > val_new:
        set_bn_statistics(model, stale)
        choice["statistics"] = "moving averages"
    return changes, choice


def bn_statistics(model) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Every BatchNormalization's moving mean and variance (copies), by layer name."""
    return {layer.name: (layer.moving_mean.numpy().copy(), layer.moving_variance.numpy().copy())
            for layer in model.layers if layer_class(layer) == "BatchNormalization"}


def set_bn_statistics(model, stats: dict[str, tuple[np.ndarray, np.ndarray]]) -> None:
    for name, (mean, var) in stats.items():
        layer = model.get_layer(name)
        layer.moving_mean.assign(mean)
        layer.moving_variance.assign(var)
