"""Fix every penalized BatchNormalization's gamma to 1 while keeping the network function (paper 5.1).

L_a (:mod:`.penalties`) reads a beta as the expected fraction of active ReLUs only when gamma = 1.
ReLU(g x + b) = g ReLU(x + b/g) for g > 0, so beta becomes beta/gamma and the next weighted layer's
input weights are multiplied by gamma (channel-wise, through average pooling, dropout and channels-last
flatten). A negative gamma is first made positive by negating the preceding layer's output channel and
that channel's moving mean (x-hat changes sign). BN's moving mean and variance are left as they are:
they describe the pre-BN activations, which this re-parametrisation does not change.
"""

from __future__ import annotations

import numpy as np

from ..keras_layers import PASS_THROUGH, WEIGHTED, layer_class
from .penalties import sparsity_terms


def _prev_weighted(layers, i):
    j = i - 1
    return layers[j] if j >= 0 and layer_class(layers[j]) in WEIGHTED else None


def _next_weighted(layers, i):
    """The next weighted layer after index i (the ReLU), through channel-wise linear layers only."""
    for layer in layers[i + 1:]:
        if layer_class(layer) in WEIGHTED:
            return layer
        if layer_class(layer) not in PASS_THROUGH:
            return None
    return None


def _scale_inputs(layer, g: np.ndarray) -> None:
    """Multiply ``layer``'s weights from input channel c by g[c] (channels-last flatten is tiled)."""
    k = layer.kernel.numpy()
    if layer_class(layer) == "Dense":
        rows = k.shape[0]
        k = k * np.tile(g, rows // g.size)[:, None]
    else:  # Conv2D (kh, kw, cin, cout) / DepthwiseConv2D (kh, kw, cin, mult)
        k = k * g[None, None, :, None]
    layer.kernel.assign(k.astype(k.dtype))


def fix_gamma(model) -> list[str]:
    """Set every penalized BN's gamma to 1 and make it non-trainable, keeping the model's function.

    Returns notes on what was done (e.g. where the function could not be kept exactly).
    """
    layers = list(model.layers)
    notes = []
    for layer, _ in sparsity_terms(model).bn:
        if not layer.scale:
            continue
        i = layers.index(layer)
        g = np.asarray(layer.gamma.numpy(), np.float64)
        beta = np.asarray(layer.beta.numpy(), np.float64)
        neg = g < 0
        prev = _prev_weighted(layers, i)
        if neg.any():
            depthwise = prev is not None and layer_class(prev) == "DepthwiseConv2D"
            if prev is not None and not (depthwise and prev.kernel.shape[-1] != 1):
                sign = np.where(neg, -1.0, 1.0).astype(np.float32)
                k = prev.kernel.numpy()
                if k.ndim == 2:
                    k = k * sign[None, :]
                elif depthwise:
                    k = k * sign[None, None, :, None]
                else:
                    k = k * sign[None, None, None, :]
                prev.kernel.assign(k)
                if getattr(prev, "use_bias", False):
                    prev.bias.assign(prev.bias.numpy() * sign)
                layer.moving_mean.assign(layer.moving_mean.numpy() * sign)
                g = np.abs(g)
            else:
                notes.append(f"{layer.name}: negative gamma with no weighted layer before it; set to 1 "
                             f"(function changed; fine-tuning adapts)")
        g_safe = np.where(g > 0, g, 1.0)
        nxt = _next_weighted(layers, i + 1)
        if nxt is not None and (g > 0).all():
            layer.beta.assign((beta / g_safe).astype(np.float32))
            _scale_inputs(nxt, g_safe.astype(np.float32))
        elif not np.allclose(g, 1.0):
            notes.append(f"{layer.name}: gamma set to 1 without compensation (function changed; fine-tuning adapts)")
        layer.gamma.assign(np.ones_like(layer.gamma.numpy()))
        layer.gamma.trainable = False
    return notes
