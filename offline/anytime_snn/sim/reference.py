"""The NumPy reference simulator: short, slow, obviously correct. Every fast engine is tested against it.

Each weighted layer is turned into an explicit connection matrix M (inputs x outputs), built by
applying a loop-based convolution to unit vectors, so the simulation is plain matrix algebra and the
synaptic events of a spike are simply the non-zero entries in its row of M. Paper eq. (1)-(3):

    I_t = s_{t-d} . w + b          (d = synaptic delay; the first layer gets the analog input)
    V_t = V_{t-1} + I_t            (not during a refractory step)
    Theta_t = [V_t >= threshold];  after a spike V -= threshold ("subtract") or V = 0 ("zero")

The output layer only accumulates V (it never spikes); the prediction at t is argmax V_t.
Shape layers act on each step's output of the layer before them: flatten and zero padding copy it,
the spiking max pool keeps every input neuron's spike count of the frame and spikes where the
largest count of its window grows (explicit loops, :func:`max_pool_counts`). A residual input adds
the source layer's output at t-d through a diagonal matrix of skip weights (docs/simulators.md).
Meant for small networks (it builds dense matrices).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..model.bundle import Bundle
from ..model.layers import Layer, output_shape, same_padding


@dataclass
class ReferenceResult:
    spikes: list[np.ndarray]  # per hidden weighted layer: (T, B, n) bool spike trains (C-order flat neurons)
    v_out: np.ndarray  # (T, B, C) accumulated output potential after each step
    events: np.ndarray  # (T, B) int64 synaptic events caused by the spikes of step t
    input_events: np.ndarray  # (B,) int64: non-zero input values x non-zero synapses of the first layer

    @property
    def predictions(self) -> np.ndarray:
        return np.argmax(self.v_out, axis=-1)


def layer_output(layer: Layer, x: np.ndarray) -> np.ndarray:
    """The synaptic map (no bias) of one sample ``x``, by explicit loops over output positions."""
    if layer.kind == "dense":
        return x @ layer.weights.astype(x.dtype)
    k = layer.weights.astype(x.dtype)
    kh, kw = k.shape[:2]
    sh, sw = layer.strides
    h, w, c = x.shape
    if layer.padding == "same":
        (pt, pb), (pl, pr) = same_padding(h, kh, sh), same_padding(w, kw, sw)
    else:
        pt = pb = pl = pr = 0
    xp = np.zeros((h + pt + pb, w + pl + pr, c), x.dtype)
    xp[pt:pt + h, pl:pl + w] = x
    ho, wo = (xp.shape[0] - kh) // sh + 1, (xp.shape[1] - kw) // sw + 1
    out = np.zeros((ho, wo, c if layer.kind == "depthwise_conv2d" else k.shape[3]), x.dtype)
    for i in range(ho):
        for j in range(wo):
            patch = xp[i * sh:i * sh + kh, j * sw:j * sw + kw, :]  # (kh, kw, c)
            if layer.kind == "conv2d":
                out[i, j] = np.tensordot(patch, k, axes=([0, 1, 2], [0, 1, 2]))
            else:
                out[i, j] = (patch * k[..., 0]).sum(axis=(0, 1))
    return out


def connection_matrix(layer: Layer, in_shape: tuple[int, ...], dtype=np.float64) -> np.ndarray:
    """Explicit (n_in, n_out) weight matrix of a weighted layer, column j = response to unit input j."""
    n_in = math.prod(in_shape)
    rows = []
    for j in range(n_in):
        e = np.zeros(n_in, dtype)
        e[j] = 1
        rows.append(layer_output(layer, e.reshape(in_shape)).ravel())
    return np.stack(rows)


def max_pool_counts(layer: Layer, counts: np.ndarray) -> np.ndarray:
    """Largest count in every pooling window of ``counts`` (H, W, C), by explicit loops. TF padding; padded
    positions count 0 (counts are never negative, so this equals TF's -inf padding)."""
    (ph, pw), (sh, sw) = layer.pool_size, layer.strides
    h, w, c = counts.shape
    ho, wo, _ = output_shape(layer, counts.shape)
    pt = same_padding(h, ph, sh)[0] if layer.padding == "same" else 0
    pl = same_padding(w, pw, sw)[0] if layer.padding == "same" else 0
    out = np.zeros((ho, wo, c), counts.dtype)
    for i in range(ho):
        for j in range(wo):
            for a in range(ph):
                for b in range(pw):
                    y, z = i * sh + a - pt, j * sw + b - pl
                    if 0 <= y < h and 0 <= z < w:
                        out[i, j] = np.maximum(out[i, j], counts[y, z])
    return out


def simulate(bundle: Bundle, x: np.ndarray, timesteps: int, dtype=np.float64) -> ReferenceResult:
    """Simulate ``timesteps`` steps for a batch ``x`` of shape (B, *input_shape).

    Every layer's output is kept for every step (``out[k][t]``, flat per sample): spikes of weighted
    hidden layers and of max pools, padded or flattened copies for the other shape layers. Layers
    before the first weighted one only carry the (constant) analog input.
    """
    batch = x.shape[0]
    layers = bundle.layers
    out_shapes = bundle.shapes()
    shapes = [tuple(bundle.input.shape), *out_shapes[:-1]]  # each layer's input
    first = next(k for k, layer in enumerate(layers) if layer.weighted)
    index = {layer.name: k for k, layer in enumerate(layers)}
    mats, biases, v0s, skips, fan_main, fan_skip = {}, {}, {}, {}, {}, {}
    for k, layer in enumerate(layers):
        if not layer.weighted:
            continue
        mats[k] = connection_matrix(layer, shapes[k], dtype)
        biases[k] = np.broadcast_to(layer.bias.astype(dtype), out_shapes[k]).ravel()
        v0s[k] = np.broadcast_to(layer.v0.astype(dtype), out_shapes[k]).ravel()
        fan_main[k] = np.count_nonzero(mats[k], axis=1)  # synapses from each neuron of the main input
        if layer.skip is not None:
            skips[k] = index[layer.skip]
            w = np.broadcast_to(layer.skip_weights.astype(dtype), out_shapes[k]).ravel()
            mats[("skip", k)] = np.diag(w)  # the residual input: one synapse per neuron, same position
            fan_skip[k] = np.count_nonzero(mats[("skip", k)], axis=1)

    # The analog input through the shape layers before the first weighted layer (flatten, zero padding).
    analog = x.reshape(batch, -1).astype(dtype)
    for k in range(first):
        analog = _shape_layer(layers[k], analog, shapes[k], out_shapes[k])
    hidden = [k for k, layer in enumerate(layers) if layer.weighted and not layer.output]
    v = {k: np.tile(v0s[k], (batch, 1)) for k in v0s}
    refractory = {k: np.zeros(v[k].shape, np.int64) for k in v}
    counts = {k: np.zeros((batch, math.prod(shapes[k])), np.int64) for k, l in enumerate(layers) if l.kind == "max_pool2d"}
    best = {k: np.zeros((batch, math.prod(out_shapes[k])), np.int64) for k in counts}
    out: dict[int, list[np.ndarray]] = {k: [] for k in range(first, len(layers))}

    def emitted(k: int, t: int) -> np.ndarray:
        """Layer k's output at step t (zeros before step 1)."""
        if t < 1:
            return np.zeros((batch, math.prod(out_shapes[k])), dtype)
        return out[k][t - 1].astype(dtype)

    v_out, events = [], []
    for t in range(1, timesteps + 1):
        ev = np.zeros(batch, np.int64)
        for k in range(first, len(layers)):
            layer = layers[k]
            if not layer.weighted:
                out[k].append(_shape_layer(layer, out[k - 1][t - 1], shapes[k], out_shapes[k], counts.get(k),
                                           best.get(k)))
                continue
            n = layer.neuron
            src_t = t - n.delay_steps
            if k == first:
                source = analog if src_t >= 1 else np.zeros_like(analog)
            else:
                source = emitted(k - 1, src_t)
                ev += out[k - 1][t - 1].astype(np.int64) @ fan_main[k]  # counted at emission, not arrival
            current = source @ mats[k] + biases[k]
            if k in skips:
                current = current + emitted(skips[k], src_t) @ mats[("skip", k)]
                ev += out[skips[k]][t - 1].astype(np.int64) @ fan_skip[k]
            if layer.output:
                v[k] = v[k] + current
                out[k].append(v[k].copy())
                continue
            active = refractory[k] == 0
            v[k] = np.where(active, v[k] + current, v[k])
            refractory[k] = np.where(active, 0, refractory[k] - 1)
            fired = active & (v[k] >= n.threshold)
            if n.reset == "subtract":
                v[k] = np.where(fired, v[k] - n.threshold, v[k])
            else:
                v[k] = np.where(fired, 0.0, v[k])
            refractory[k] = np.where(fired, n.refractory_steps, refractory[k])
            out[k].append(fired)
        v_out.append(out[len(layers) - 1][t - 1])
        events.append(ev)
    # Analog input values x the first layer's non-zero synapses (zero padding adds no synapse).
    input_events = (analog != 0).astype(np.int64) @ fan_main[first]
    return ReferenceResult(
        spikes=[np.stack(out[k]) for k in hidden],
        v_out=np.stack(v_out),
        events=np.stack(events),
        input_events=input_events,
    )


def _shape_layer(layer: Layer, x: np.ndarray, in_shape, out_shape, counts=None, best=None) -> np.ndarray:
    """One step of a shape layer for a flat batch ``x`` (B, n_in); max pools update their state in place."""
    batch = x.shape[0]
    if layer.kind == "flatten":
        return x.copy()
    if layer.kind == "zero_pad2d":
        (t, b), (l, r) = layer.pad
        h, w, _ = in_shape
        y = np.zeros((batch, *out_shape), x.dtype)
        y[:, t:t + h, l:l + w] = x.reshape(batch, *in_shape)
        return y.reshape(batch, -1)
    if layer.kind == "max_pool2d":
        # Spiking max pool: a unit spikes iff the largest spike count in its window grows at this step.
        counts += x.astype(np.int64)
        new = np.stack([max_pool_counts(layer, c.reshape(in_shape)).ravel() for c in counts])
        fired = new > best
        best[:] = new
        return fired
    raise ValueError(f"layer kind {layer.kind!r} is not simulated")
