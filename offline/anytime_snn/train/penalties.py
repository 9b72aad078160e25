"""Where the sparsity penalties apply and what they are worth (paper section 5.1, eq. 8-10).

* ``L_a`` (eq. 8) = 1/sum_k n_k * sum_k n_k/2 (erf(beta_k/sqrt 2) + 1), over the beta of every
  BatchNormalization that is followed by a ReLU. With gamma = 1 and a normal BN output, the term
  (erf(beta/sqrt 2) + 1)/2 = Phi(beta) is the expected fraction of non-zero ReLU outputs (eq. 6-7).
  ``n_k`` is the number of neurons sharing beta_k: pixels per channel after a convolution, 1 after Dense.
  The erf term assumes the BN output has unit variance, which holds for the batch statistics used
  during training; at inference the moving statistics approximate it.
* ``L_w`` (eq. 9) = 1/sum_k m_k * sum_k m_k |w_k|, over the kernels of every Dense / Conv2D /
  DepthwiseConv2D; ``m_k`` is the number of output pixels per channel of that layer (1 for Dense).
* ``L'_ANN = L_ANN + lambda_a L_a + lambda_w L_w`` (eq. 10): :func:`attach_penalties` puts each layer's
  share of the two sums on its beta / kernel as a Keras regularizer (:mod:`.regularizers`), with the
  global normalizers folded into its factor, so Keras adds exactly ``lambda_a L_a + lambda_w L_w``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ..errors import ConfigError
from ..keras_layers import WEIGHTED, is_plain_relu, layer_class, pixels_per_channel
from .config import check_factor
from .regularizers import BetaActivationPenalty, WeightL1Penalty


@dataclass
class SparsityTerms:
    """Where the penalties apply: (layer, n_k) for each BN before a ReLU, (layer, m_k) for each kernel."""

    bn: list[tuple[object, int]] = field(default_factory=list)
    kernels: list[tuple[object, int]] = field(default_factory=list)

    @property
    def total_n(self) -> int:
        return sum(n * int(layer.beta.shape[0]) for layer, n in self.bn)

    @property
    def total_m(self) -> int:
        return sum(m * int(np.prod(layer.kernel.shape)) for layer, m in self.kernels)


def sparsity_terms(model) -> SparsityTerms:
    """Find the BN->ReLU pairs and the weighted layers of a built Sequential (or single-chain) model.

    Raises ConfigError for a BatchNormalization that is not directly followed by a plain ReLU (L_a's
    erf formula is only meaningful then) or that has no beta (``center=False``), and for axis != -1.
    """
    layers = list(model.layers)
    terms = SparsityTerms()
    for i, layer in enumerate(layers):
        if layer_class(layer) == "BatchNormalization":
            nxt = layers[i + 1] if i + 1 < len(layers) else None
            if nxt is None or not is_plain_relu(nxt):
                raise ConfigError(f"BatchNormalization {layer.name!r} is not followed by a ReLU; the activation "
                                  f"penalty L_a (paper eq. 8) assumes BN -> ReLU")
            if not layer.center:
                raise ConfigError(f"BatchNormalization {layer.name!r} has center=False (no beta to penalize)")
            if layer.axis not in (-1, len(layer.input.shape) - 1):
                raise ConfigError(f"BatchNormalization {layer.name!r} normalizes axis {layer.axis}; only the "
                                  f"channels-last axis is supported")
            terms.bn.append((layer, pixels_per_channel(layer.input.shape)))
        elif layer_class(layer) in WEIGHTED:
            terms.kernels.append((layer, pixels_per_channel(layer.output.shape)))
    if not terms.bn and not terms.kernels:
        raise ConfigError(f"model {model.name!r} has no BatchNormalization or weighted layers to sparsify")
    return terms


def activation_penalty(model) -> float:
    """L_a (eq. 8) of the model's current betas, in NumPy (gamma is assumed to be 1)."""
    terms = sparsity_terms(model)
    total = sum(n * 0.5 * np.sum(_erf(np.asarray(layer.beta.numpy(), np.float64) / math.sqrt(2.0)) + 1.0)
                for layer, n in terms.bn)
    return float(total / terms.total_n) if terms.total_n else 0.0


def weight_penalty(model) -> float:
    """L_w (eq. 9) of the model's current kernels, in NumPy."""
    terms = sparsity_terms(model)
    total = sum(m * np.sum(np.abs(np.asarray(layer.kernel.numpy(), np.float64))) for layer, m in terms.kernels)
    return float(total / terms.total_m) if terms.total_m else 0.0


def _erf(x: np.ndarray) -> np.ndarray:
    return np.vectorize(math.erf, otypes=[np.float64])(x)


def attach_penalties(model, lambda_a: float, lambda_w: float) -> SparsityTerms:
    """Put the L_a / L_w regularizers on the model's betas and kernels (call before ``compile``)."""
    lambda_a, lambda_w = check_factor("lambda_a", lambda_a), check_factor("lambda_w", lambda_w)
    terms = sparsity_terms(model)
    for layer, n in terms.bn:
        layer.beta.regularizer = BetaActivationPenalty(lambda_a / terms.total_n, n) if lambda_a else None
    for layer, m in terms.kernels:
        layer.kernel.regularizer = WeightL1Penalty(lambda_w / terms.total_m, m) if lambda_w else None
    return terms


def detach_penalties(model) -> None:
    """Remove every regularizer (the saved model then needs no custom objects to load)."""
    for layer in model.layers:
        for v in layer.weights:
            v.regularizer = None
        for attr in ("kernel_regularizer", "beta_regularizer", "gamma_regularizer", "bias_regularizer"):
            if hasattr(layer, attr):
                setattr(layer, attr, None)


DEFAULT_LAMBDA_A = 50.0  # for a net whose every beta and weight serves one neuron (dense MNIST)
DEFAULT_LAMBDA_W = 1000.0
# On nets with weight-shared kernels (convolutions), on top of the scaling below: measured by
# benchmarks/sparsity_search.py on two conv MNIST nets (results/sparsity_search_*_conv.json, docs/sparsity.md).
CONV_LAMBDA_A_FACTOR = 2.0
CONV_LAMBDA_W_FACTOR = 0.1


def default_lambdas(model) -> tuple[float, float]:
    """(lambda_a, lambda_w) for ``model``: the dense-MNIST values scaled by sqrt(parameters / neurons).

    L_a and L_w are means over neurons, so the gradient on one beta (weight) is lambda n_k / sum n
    (lambda m_k / sum m). In a dense net n_k = m_k = 1 and that is lambda / (number of parameters); in
    a conv net a beta serves n_k = H x W neurons and the same lambda pushes each beta (weight) about
    sum n / #betas (sum m / #weights) times harder: 170x (22x) on conv MNIST, which collapsed it.
    Equal pressure per parameter (ratio 1) barely moved it (L_a 0.492 -> 0.490 in one epoch); the
    geometric middle, ``ratio = sqrt(#betas / sum n)`` for lambda_a and ``sqrt(#weights / sum m)``
    for lambda_w, is the scaling. On a net with weight-shared kernels the L1 weight penalty then still
    cost 5-6 points of accuracy on a small conv net for little weight sparsity, while L_a alone cost
    nothing: there lambda_a is doubled and lambda_w cut tenfold (:data:`CONV_LAMBDA_A_FACTOR`,
    :data:`CONV_LAMBDA_W_FACTOR`; docs/sparsity.md). A dense net keeps 50 and 1000 exactly.
    """
    terms = sparsity_terms(model)
    betas = sum(int(layer.beta.shape[0]) for layer, _ in terms.bn)
    weights = sum(int(np.prod(layer.kernel.shape)) for layer, _ in terms.kernels)
    ra = math.sqrt(betas / terms.total_n) if terms.total_n else 1.0
    rw = math.sqrt(weights / terms.total_m) if terms.total_m else 1.0
    if terms.total_m > weights:  # some weight serves several neurons: a convolution
        ra, rw = ra * CONV_LAMBDA_A_FACTOR, rw * CONV_LAMBDA_W_FACTOR
    return DEFAULT_LAMBDA_A * ra, DEFAULT_LAMBDA_W * rw
