"""Sparsity fine-tuning (paper section 5.1): activation penalty L_a, weight penalty L_w, pruning.

* ``L_a`` (eq. 8) = 1/sum_k n_k * sum_k n_k/2 (erf(beta_k/sqrt 2) + 1), over the beta of every
  BatchNormalization that is followed by a ReLU. With gamma = 1 and a normal BN output, the term
  (erf(beta/sqrt 2) + 1)/2 = Phi(beta) is the expected fraction of non-zero ReLU outputs (eq. 6-7).
  ``n_k`` is the number of neurons sharing beta_k: pixels per channel after a convolution, 1 after Dense.
* ``L_w`` (eq. 9) = 1/sum_k m_k * sum_k m_k |w_k|, over the kernels of every Dense / Conv2D /
  DepthwiseConv2D; ``m_k`` is the number of output pixels per channel of that layer (1 for Dense).
* ``L'_ANN = L_ANN + lambda_a L_a + lambda_w L_w`` (eq. 10): each layer's share of the two sums is a
  Keras regularizer on its beta / kernel variable (:class:`BetaActivationPenalty`,
  :class:`WeightL1Penalty`), with the global normalizers folded into its factor, so Keras adds
  exactly ``lambda_a L_a + lambda_w L_w`` to the loss; ``model.fit`` needs nothing custom.
* After fine-tuning, kernel weights with |w| < epsilon are set to exactly zero (:func:`prune`).

gamma is fixed to 1 by :func:`fix_gamma`, which keeps the network function: ReLU(g x + b) =
g ReLU(x + b/g) for g > 0, so beta becomes beta/gamma and the next weighted layer's input weights are
multiplied by gamma (channel-wise, through average pooling, dropout and channels-last flatten). A
negative gamma is first made positive by negating the preceding layer's output channel and that
channel's moving mean (x-hat changes sign). BN's moving mean and variance are left as they are:
they describe the pre-BN activations, which this re-parametrisation does not change; fine-tuning
updates them as usual, and afterwards :func:`recalibrate_batchnorm` re-estimates them exactly from the
final weights (the moving averages lag behind fast-shrinking weights: conv MNIST went to 10 % test
accuracy with them while its batch-statistics accuracy was 97 %). The erf term assumes the BN output has unit variance, which holds for the
batch statistics used during training; at inference the moving statistics approximate it.

This module imports Keras at import time (it defines Keras regularizer classes).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import keras
import numpy as np

from ..errors import ConfigError

WEIGHTED = ("Dense", "Conv2D", "DepthwiseConv2D")
_PASS_THROUGH = ("Dropout", "AveragePooling2D", "GlobalAveragePooling2D", "Flatten", "SpatialDropout2D")


def _check_neurons(neurons) -> int:
    if isinstance(neurons, bool) or not isinstance(neurons, int) or neurons < 1:
        raise ConfigError(f"neurons must be a positive integer, got {neurons!r}")
    return neurons


def _check_factor(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise ConfigError(f"{name} must be a finite number >= 0, got {value!r}")
    return float(value)


@keras.saving.register_keras_serializable(package="anytime_snn")
class BetaActivationPenalty(keras.regularizers.Regularizer):
    """``factor * neurons * sum_c (erf(beta_c / sqrt 2) + 1) / 2``: one layer's share of lambda_a L_a.

    ``neurons`` is n_k, the neurons per beta (pixels per channel after a conv, 1 after Dense);
    ``factor`` is lambda_a / sum_k n_k over the whole network.
    """

    def __init__(self, factor: float, neurons: int = 1):
        self.factor = _check_factor("factor", factor)
        self.neurons = _check_neurons(neurons)

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
        self.factor = _check_factor("factor", factor)
        self.neurons = _check_neurons(neurons)

    def __call__(self, w):
        return self.factor * self.neurons * keras.ops.sum(keras.ops.abs(w))

    def get_config(self) -> dict:
        return {"factor": self.factor, "neurons": self.neurons}


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


def _cls(layer) -> str:
    return type(layer).__name__


def _is_plain_relu(layer) -> bool:
    if _cls(layer) == "ReLU":
        return (layer.max_value is None and float(layer.negative_slope) == 0.0 and float(layer.threshold) == 0.0)
    if _cls(layer) == "Activation":
        return getattr(layer.activation, "__name__", "") == "relu"
    return False


def _pixels_per_channel(shape) -> int:
    """Product of the spatial dimensions of a (batch, ..., channels) shape (1 for (batch, units))."""
    return int(np.prod(shape[1:-1])) if len(shape) > 2 else 1


def sparsity_terms(model) -> SparsityTerms:
    """Find the BN->ReLU pairs and the weighted layers of a built Sequential (or single-chain) model.

    Raises ConfigError for a BatchNormalization that is not directly followed by a plain ReLU (L_a's
    erf formula is only meaningful then) or that has no beta (``center=False``), and for axis != -1.
    """
    layers = list(model.layers)
    terms = SparsityTerms()
    for i, layer in enumerate(layers):
        if _cls(layer) == "BatchNormalization":
            nxt = layers[i + 1] if i + 1 < len(layers) else None
            if nxt is None or not _is_plain_relu(nxt):
                raise ConfigError(f"BatchNormalization {layer.name!r} is not followed by a ReLU; the activation "
                                  f"penalty L_a (paper eq. 8) assumes BN -> ReLU")
            if not layer.center:
                raise ConfigError(f"BatchNormalization {layer.name!r} has center=False (no beta to penalize)")
            if layer.axis not in (-1, len(layer.input.shape) - 1):
                raise ConfigError(f"BatchNormalization {layer.name!r} normalizes axis {layer.axis}; only the "
                                  f"channels-last axis is supported")
            terms.bn.append((layer, _pixels_per_channel(layer.input.shape)))
        elif _cls(layer) in WEIGHTED:
            terms.kernels.append((layer, _pixels_per_channel(layer.output.shape)))
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


def _prev_weighted(layers, i):
    j = i - 1
    return layers[j] if j >= 0 and _cls(layers[j]) in WEIGHTED else None


def _next_weighted(layers, i):
    """The next weighted layer after index i (the ReLU), through channel-wise linear layers only."""
    for layer in layers[i + 1:]:
        if _cls(layer) in WEIGHTED:
            return layer
        if _cls(layer) not in _PASS_THROUGH:
            return None
    return None


def _scale_inputs(layer, g: np.ndarray) -> None:
    """Multiply ``layer``'s weights from input channel c by g[c] (channels-last flatten is tiled)."""
    k = layer.kernel.numpy()
    if _cls(layer) == "Dense":
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
            depthwise = prev is not None and _cls(prev) == "DepthwiseConv2D"
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


def attach_penalties(model, lambda_a: float, lambda_w: float) -> SparsityTerms:
    """Put the L_a / L_w regularizers on the model's betas and kernels (call before ``compile``)."""
    lambda_a, lambda_w = _check_factor("lambda_a", lambda_a), _check_factor("lambda_w", lambda_w)
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


def prune(model, epsilon: float = 1e-4) -> dict[str, int]:
    """Set kernel weights with |w| < epsilon to exactly 0; return the number zeroed per layer."""
    if not (isinstance(epsilon, (int, float)) and math.isfinite(epsilon) and epsilon >= 0):
        raise ConfigError(f"epsilon must be a finite number >= 0, got {epsilon!r}")
    out = {}
    for layer in model.layers:
        if _cls(layer) in WEIGHTED:
            k = layer.kernel.numpy()
            small = (np.abs(k) < epsilon) & (k != 0)
            out[layer.name] = int(small.sum())
            k[np.abs(k) < epsilon] = 0.0
            layer.kernel.assign(k)
    return out


def recalibrate_batchnorm(model, x: np.ndarray, batch_size: int = 500) -> dict[str, float]:
    """Set every BatchNormalization's moving mean and variance to the exact statistics of its input on ``x``.

    Fine-tuning with the penalties shrinks weights and moves betas faster than BN's exponential moving
    averages (momentum 0.99) follow, so the inference-mode statistics describe an older network. This
    re-estimates them from the final weights, layer by layer in order (each BN sees its input computed
    with the already re-estimated BNs before it): mean and biased variance over the batch and spatial
    axes, as BN uses in training. Returns, per BN, the largest relative change of the moving variance.
    """
    changes = {}
    for layer in model.layers:
        if _cls(layer) != "BatchNormalization":
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
    from .trainer import evaluate_accuracy

    stale = _bn_statistics(model)
    val_stale = evaluate_accuracy(model, val_ds) if val_ds is not None else None
    changes = recalibrate_batchnorm(model, x)
    val_new = evaluate_accuracy(model, val_ds) if val_ds is not None else None
    choice = {"statistics": "re-estimated", "validation_accuracy_re_estimated": val_new,
              "validation_accuracy_moving_averages": val_stale}
    if val_ds is not None and val_stale > val_new:
        _set_bn_statistics(model, stale)
        choice["statistics"] = "moving averages"
    return changes, choice


def _bn_statistics(model) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Every BatchNormalization's moving mean and variance (copies), by layer name."""
    return {layer.name: (layer.moving_mean.numpy().copy(), layer.moving_variance.numpy().copy())
            for layer in model.layers if _cls(layer) == "BatchNormalization"}


def _set_bn_statistics(model, stats: dict[str, tuple[np.ndarray, np.ndarray]]) -> None:
    for name, (mean, var) in stats.items():
        layer = model.get_layer(name)
        layer.moving_mean.assign(mean)
        layer.moving_variance.assign(var)


def weight_sparsity(model) -> dict:
    """Fraction of exactly-zero kernel weights per weighted layer and in total."""
    layers, zeros, size = {}, 0, 0
    for layer in model.layers:
        if _cls(layer) in WEIGHTED:
            k = layer.kernel.numpy()
            z = int(k.size - np.count_nonzero(k))
            layers[layer.name] = z / k.size
            zeros, size = zeros + z, size + k.size
    return {"layers": layers, "total": zeros / size if size else 0.0, "weights": size}


def activation_sparsity(model, x: np.ndarray, batch_size: int = 500) -> dict:
    """Fraction of zero ReLU outputs on ``x`` (model inputs) per ReLU layer and in total."""
    relus = [layer for layer in model.layers if _is_plain_relu(layer)]
    if not relus:
        return {"layers": {}, "total": 0.0}
    probe = keras.Model(model.inputs[0], [layer.output for layer in relus])
    zeros = np.zeros(len(relus), np.int64)
    sizes = np.zeros(len(relus), np.int64)
    for start in range(0, len(x), batch_size):
        outs = probe(x[start:start + batch_size], training=False)
        outs = outs if isinstance(outs, (list, tuple)) else [outs]
        for j, o in enumerate(outs):
            o = np.asarray(o)
            zeros[j] += o.size - np.count_nonzero(o)
            sizes[j] += o.size
    return {"layers": {layer.name: float(z / s) for layer, z, s in zip(relus, zeros, sizes)},
            "total": float(zeros.sum() / sizes.sum())}


def ann_synaptic_ops(bundle_layers, x: np.ndarray, batch_size: int = 250) -> dict:
    """ANN-side event estimate per sample: sum over neurons of [activation != 0] x non-zero fan-out.

    ``bundle_layers``: the converted (unnormalized is fine: scales do not change zeros) layers;
    ``x``: network inputs. Returns the mean per sample of the hidden-layer count ("hidden", what one
    timestep of an SNN would cost if every active neuron spiked once) and of the input count ("input").
    Zero padding and max pooling add no synapses of their own (a pooled activation counts at the next
    layer's synapses); a residual join counts its source's non-zero skip weights, as the simulators do.
    """
    from ..convert.normalize import ann_walk
    from ..sim import ops

    hidden = inputs = 0.0
    for start in range(0, len(x), batch_size):
        first = True
        for layer, h, residual, out in ann_walk(list(bundle_layers), x[start:start + batch_size]):
            fan = ops.fanout(layer, tuple(h.shape[1:])).reshape(-1).astype(np.float64)
            count = float(((h.reshape(len(h), -1) != 0) @ fan).sum())
            if residual is not None:
                skip_fan = ops.skip_fanout(layer, tuple(out.shape[1:])).astype(np.float64)
                count += float(((residual.reshape(len(h), -1) != 0) @ skip_fan).sum())
            if first:
                inputs += count
            else:
                hidden += count
            first = False
    return {"hidden": hidden / len(x), "input": inputs / len(x)}


# --------------------------------------------------------------------------------------------------
# Measurements and the fine-tuning driver (used by ``anytime-snn sparsify``)


def snn_measure(model, calibration: np.ndarray, test_images: np.ndarray, test_labels: np.ndarray, *,
                a_max: float, timesteps: int = 50, normalization: str = "layer", v0: float = 0.5,
                ops_samples: int = 500) -> dict:
    """Convert ``model`` (as ``anytime-snn convert`` does) and simulate it on the given test images.

    Returns accuracy, synaptic events per inference (sum over the T steps, mean per sample), P_l,
    P_p, M_e (with ``a_max``, the ANN accuracy) and the ANN-side operation estimate.
    """
    from ..convert import convert_model, network_input
    from ..evaluate import evaluate

    bundle = convert_model(model, calibration, granularity=normalization, timesteps=timesteps, v0=v0,
                           provenance={"ann_accuracy": a_max}).bundle
    x = network_input(bundle, test_images)
    ev = evaluate(bundle, x, test_labels, timesteps, a_max=a_max)
    s = ev.summary
    return {
        "samples": int(len(test_labels)), "timesteps": timesteps, "normalization": normalization, "v0": v0,
        "a_max": a_max, "accuracy_final": s["final_accuracy"], "peak_accuracy": s["peak_accuracy"],
        "accuracy_at": {str(t): float(ev.accuracy[t - 1]) for t in (1, 5, 10, 20, 50, 100) if t <= timesteps},
        "events_per_inference": s["events_per_sample"], "input_events_per_inference": ev.input_events,
        "P_l": s["P_l"], "P_p": s["P_p"], "M_e": s["M_e"], "thresholds": s["thresholds"],
        "ann_synaptic_ops": ann_synaptic_ops(bundle.layers, x[:ops_samples]),
    }


def measure(model, test, calibration: np.ndarray, *, snn_samples: int, timesteps: int,
            normalization: str = "layer", log=print) -> dict:
    """Accuracy, L_a, L_w, activation and weight sparsity on ``test`` (a Dataset); SNN metrics if snn_samples."""
    from .trainer import evaluate_accuracy

    acc = evaluate_accuracy(model, test)
    out = {"test_accuracy": acc, "L_a": activation_penalty(model), "L_w": weight_penalty(model),
           "activation_sparsity": activation_sparsity(model, test.pixels01()),
           "weight_sparsity": weight_sparsity(model)}
    log(f"  test accuracy {acc * 100:.2f} %, L_a {out['L_a']:.4f}, L_w {out['L_w']:.4g}, "
        f"activation sparsity {out['activation_sparsity']['total'] * 100:.1f} %, "
        f"weight sparsity {out['weight_sparsity']['total'] * 100:.1f} %")
    if snn_samples:
        n = min(snn_samples, len(test))
        out["snn"] = snn_measure(model, calibration, test.images[:n], test.labels[:n], a_max=acc,
                                 timesteps=timesteps, normalization=normalization)
        s = out["snn"]
        log(f"  SNN on {n} test images, T={timesteps}: accuracy {s['accuracy_final'] * 100:.2f} % "
            f"(peak {s['peak_accuracy'] * 100:.2f} %), {s['events_per_inference']:.4g} synaptic events/inference, "
            f"P_l {s['P_l']:.3f}, P_p {s['P_p']:.4g}; ANN-side ops {s['ann_synaptic_ops']['hidden']:.4g}")
    return out


class _PenaltyLogger(keras.callbacks.Callback):
    def __init__(self, log):
        super().__init__()
        self.log_fn = log
        self.values: list[dict] = []

    def on_epoch_end(self, epoch, logs=None):
        v = {"epoch": epoch + 1, "L_a": activation_penalty(self.model), "L_w": weight_penalty(self.model),
             "loss": float((logs or {}).get("loss", float("nan"))),
             "accuracy": float((logs or {}).get("accuracy", float("nan")))}
        self.values.append(v)
        self.log_fn(f"  epoch {v['epoch']}: loss {v['loss']:.4f} (with penalties), train accuracy "
                    f"{v['accuracy'] * 100:.2f} %, L_a {v['L_a']:.4f}, L_w {v['L_w']:.4g}")


DEFAULT_LAMBDA_A = 50.0  # for a net whose every beta and weight serves one neuron (dense MNIST)
DEFAULT_LAMBDA_W = 1000.0


def default_lambdas(model) -> tuple[float, float]:
    """(lambda_a, lambda_w) for ``model``: the dense-MNIST values scaled by sqrt(parameters / neurons).

    L_a and L_w are means over neurons, so the gradient on one beta (weight) is lambda n_k / sum n
    (lambda m_k / sum m). In a dense net n_k = m_k = 1 and that is lambda / (number of parameters); in
    a conv net a beta serves n_k = H x W neurons and the same lambda pushes each beta (weight) about
    sum n / #betas (sum m / #weights) times harder: 170x (22x) on conv MNIST, which collapsed it.
    Equal pressure per parameter (ratio 1) barely moved it (L_a 0.492 -> 0.490 in one epoch); the
    geometric middle, ``ratio = sqrt(#betas / sum n)`` for lambda_a and ``sqrt(#weights / sum m)``
    for lambda_w, is the measured default (docs/sparsity.md). A dense net keeps 50 and 1000 exactly.
    """
    terms = sparsity_terms(model)
    betas = sum(int(layer.beta.shape[0]) for layer, _ in terms.bn)
    weights = sum(int(np.prod(layer.kernel.shape)) for layer, _ in terms.kernels)
    ra = math.sqrt(betas / terms.total_n) if terms.total_n else 1.0
    rw = math.sqrt(weights / terms.total_m) if terms.total_m else 1.0
    return DEFAULT_LAMBDA_A * ra, DEFAULT_LAMBDA_W * rw


def finetune(model_path, out, *, lambda_a: float | None = None, lambda_w: float | None = None,
             epochs: int = 3, epsilon: float = 1e-4, learning_rate: float = 0.01, batch_size: int | None = None,
             seed: int = 0, threads: int = 2, dataset: str | None = None, data_path: str | None = None,
             train_limit: int | None = None, test_limit: int | None = None, snn_samples: int = 1000,
             timesteps: int = 50, calibration_samples: int = 10000, normalization: str = "layer",
             bn_samples: int = 10000, verbose: int = 2, command: str | None = None, log=print) -> dict:
    """Sparsity fine-tuning of a trained ``.keras`` model (paper 5.1); saves ``out`` + its JSON record.

    The data, split and augmentation come from the model's training record (``MODEL.json``) unless
    ``dataset`` is given. Fine-tuning is SGD (the record's momentum and Nesterov setting, cosine decay
    from ``learning_rate``, no weight decay: L_w replaces it), then pruning of |w| < ``epsilon``.
    ``lambda_a`` / ``lambda_w`` default to :func:`default_lambdas` of the model. After fine-tuning the
    BN moving statistics are re-estimated on ``bn_samples`` training images (:func:`recalibrate_batchnorm`;
    0 skips it). Measures everything of :func:`measure` before and after.
    """
    import json
    import time
    from pathlib import Path

    from .config import TrainConfig, config_from_dict
    from .trainer import (compile_model, configure_tensorflow, evaluate_accuracy, load_split_data, make_datasets,
                          record_path, run_environment)

    model_path, out = Path(model_path), Path(out)
    if out.suffix != ".keras":
        raise ConfigError(f"the output model file must end in .keras, got {out}")
    if not model_path.is_file():
        raise ConfigError(f"model file {model_path} does not exist")
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 0:
        raise ConfigError(f"epochs must be an integer >= 0, got {epochs!r}")
    if not learning_rate > 0:
        raise ConfigError(f"learning rate must be positive, got {learning_rate}")
    if timesteps < 1 or snn_samples < 0 or calibration_samples < 1:
        raise ConfigError(f"need timesteps >= 1, snn samples >= 0, calibration samples >= 1; got {timesteps}, "
                          f"{snn_samples}, {calibration_samples}")
    if lambda_a is not None:
        _check_factor("lambda_a", lambda_a)
    if lambda_w is not None:
        _check_factor("lambda_w", lambda_w)
    if isinstance(bn_samples, bool) or not isinstance(bn_samples, int) or bn_samples < 0:
        raise ConfigError(f"bn samples must be an integer >= 0, got {bn_samples!r}")
    base = json.loads(record_path(model_path).read_text()) if record_path(model_path).is_file() else {}
    if base.get("config"):
        cfg = config_from_dict(base["config"]).to_dict()
    elif dataset:
        cfg = TrainConfig(dataset=dataset).to_dict()
    else:
        raise ConfigError(f"no training record {record_path(model_path)} next to the model: pass --dataset")
    cfg.update(epochs=max(epochs, 1), learning_rate=learning_rate, weight_decay=0.0, seed=seed, threads=threads,
               schedule="cosine")
    for key, value in (("dataset", dataset), ("data_path", data_path), ("batch_size", batch_size),
                       ("train_limit", train_limit), ("test_limit", test_limit)):
        if value is not None:
            cfg[key] = value
    cfg = config_from_dict(cfg)

    configure_tensorflow(threads)
    keras.utils.set_random_seed(seed)
    try:
        model = keras.models.load_model(model_path, safe_mode=True, compile=False)
    except Exception as e:  # Keras raises many types for unreadable files
        raise ConfigError(f"cannot load Keras model {model_path}: {e}") from None
    train_ds, val_ds, test_ds, info = load_split_data(cfg)
    calibration = train_ds.images[:calibration_samples]

    sparsity_terms(model)  # fails early, by name, on unsupported structure
    defaults = default_lambdas(model)
    lambda_a = defaults[0] if lambda_a is None else float(lambda_a)
    lambda_w = defaults[1] if lambda_w is None else float(lambda_w)
    log(f"loaded {model_path} ({model.count_params()} parameters); {len(train_ds)} training, "
        f"{len(test_ds)} test images")
    acc0 = evaluate_accuracy(model, test_ds)
    notes = fix_gamma(model)
    for note in notes:
        log(f"  note: {note}")
    log(f"before (gamma fixed to 1; ANN test accuracy before that {acc0 * 100:.2f} %):")
    before = measure(model, test_ds, calibration, snn_samples=snn_samples, timesteps=timesteps,
                     normalization=normalization, log=log)
    before["test_accuracy_original_gamma"] = acc0

    terms = attach_penalties(model, lambda_a, lambda_w)
    steps = int(np.ceil(len(train_ds) / cfg.batch_size))
    compile_model(model, cfg, steps)
    logger = _PenaltyLogger(log)
    log(f"fine-tuning {epochs} epochs: lambda_a {lambda_a:g}, lambda_w {lambda_w:g} "
        f"(sum n_k {terms.total_n}, sum m_k {terms.total_m}), learning rate {learning_rate:g} (cosine)")
    t0 = time.perf_counter()
    history = {}
    if epochs:
        val = (val_ds.pixels01(), val_ds.labels) if val_ds is not None else None
        hist = model.fit(make_datasets(cfg, train_ds), epochs=epochs, validation_data=val, validation_batch_size=500,
                         verbose=verbose, shuffle=False, callbacks=[logger])
        history = {k: [float(v) for v in vs] for k, vs in hist.history.items()}
    wall = time.perf_counter() - t0
    detach_penalties(model)
    acc_stale_bn = evaluate_accuracy(model, test_ds)
    bn_changes, bn_choice = {}, None
    if bn_samples and epochs:
        x_bn = train_ds.pixels01()[:bn_samples] if len(train_ds) > bn_samples else train_ds.pixels01()
        bn_changes, bn_choice = re_estimate_batchnorm(model, x_bn, val_ds)
        log(f"re-estimated the BN moving statistics on {len(x_bn)} training images "
            f"(test accuracy with the moving averages of fine-tuning: {acc_stale_bn * 100:.2f} %)")
        if bn_choice["validation_accuracy_re_estimated"] is not None:
            log(f"BN statistics kept: {bn_choice['statistics']} (validation accuracy "
                f"{bn_choice['validation_accuracy_re_estimated'] * 100:.2f} % re-estimated, "
                f"{bn_choice['validation_accuracy_moving_averages'] * 100:.2f} % moving averages)")
    acc_unpruned = evaluate_accuracy(model, test_ds)
    pruned = prune(model, epsilon)
    log(f"pruned {sum(pruned.values())} weights with |w| < {epsilon:g} "
        f"(test accuracy before pruning {acc_unpruned * 100:.2f} %)")
    log("after:")
    after = measure(model, test_ds, calibration, snn_samples=snn_samples, timesteps=timesteps,
                    normalization=normalization, log=log)
    after["test_accuracy_before_pruning"] = acc_unpruned
    after["test_accuracy_moving_average_bn"] = acc_stale_bn
    val_acc = evaluate_accuracy(model, val_ds) if val_ds is not None else None

    out.parent.mkdir(parents=True, exist_ok=True)
    # Saved without the fine-tuning optimizer (whose state excludes the frozen gammas and would not
    # match a fresh build): a plain copy with the same weights, BN statistics and exact zeros.
    plain = keras.models.clone_model(model)
    plain.set_weights(model.get_weights())
    plain.save(out)

    cfg_dict = cfg.to_dict()
    cfg_dict["epochs"] = epochs
    record = {
        "model": out.name,
        "test_accuracy": after["test_accuracy"],
        "validation_accuracy": val_acc,
        "train_wall_time_s": round(wall, 1),
        "epochs": epochs,
        "history": history,
        "data": info,
        "input": base.get("input"),
        "config": cfg_dict,
        "sparsity": {
            "source_model": str(model_path), "lambda_a": lambda_a, "lambda_w": lambda_w, "epsilon": epsilon,
            "learning_rate": learning_rate, "epochs": epochs, "seed": seed, "sum_n_k": terms.total_n,
            "sum_m_k": terms.total_m, "pruned_weights": pruned, "gamma_notes": notes,
            "penalties_per_epoch": logger.values, "lambda_defaults": list(defaults),
            "bn_recalibration": {"samples": min(bn_samples, len(train_ds)) if bn_changes else 0,
                                 "max_relative_variance_change": bn_changes, **(bn_choice or {})},
        },
        "before": before,
        "after": after,
        "base_record": {k: base.get(k) for k in ("model", "test_accuracy", "epochs", "train_wall_time_s", "command")},
        "command": command,
        **run_environment(threads),
    }
    record_path(out).write_text(json.dumps(record, indent=1))
    return record
