"""The NumPy reference simulator: short, slow, obviously correct. Every fast engine is tested against it.

Each weighted layer is turned into an explicit connection matrix M (inputs x outputs), built by
applying a loop-based convolution to unit vectors, so the simulation is plain matrix algebra and the
synaptic events of a spike are simply the non-zero entries in its row of M. Paper eq. (1)-(3):

    I_t = s_{t-d} . w + b          (d = synaptic delay; the first layer gets the analog input)
    V_t = V_{t-1} + I_t            (not during a refractory step)
    Theta_t = [V_t >= threshold];  after a spike V -= threshold ("subtract") or V = 0 ("zero")

The output layer only accumulates V (it never spikes); the prediction at t is argmax V_t.
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


def simulate(bundle: Bundle, x: np.ndarray, timesteps: int, dtype=np.float64) -> ReferenceResult:
    """Simulate ``timesteps`` steps for a batch ``x`` of shape (B, *input_shape)."""
    batch = x.shape[0]
    shape = tuple(bundle.input.shape)
    mats, biases, v0s, layers = [], [], [], []
    for layer in bundle.layers:
        if layer.weighted:
            m = connection_matrix(layer, shape, dtype)
            mats.append(m)
            out_shape = output_shape(layer, shape)
            biases.append(np.broadcast_to(layer.bias.astype(dtype), out_shape).ravel())
            v0s.append(np.broadcast_to(layer.v0.astype(dtype), out_shape).ravel())
            layers.append(layer)
            shape = out_shape
        else:  # flatten: the matrices already work on flat vectors
            shape = (math.prod(shape),)
    fanouts = [np.count_nonzero(m, axis=1) for m in mats]  # fanouts[l]: synapses from layer l-1 into l

    x_flat = x.reshape(batch, -1).astype(dtype)
    v = [np.tile(v0, (batch, 1)) for v0 in v0s]
    refractory = [np.zeros(vv.shape, np.int64) for vv in v]
    spikes = [[] for _ in layers[:-1]]
    v_out, events = [], []
    for t in range(1, timesteps + 1):
        ev = np.zeros(batch, np.int64)
        for l, layer in enumerate(layers):
            n = layer.neuron
            src_t = t - n.delay_steps
            if src_t < 1:
                source = np.zeros((batch, mats[l].shape[0]), dtype)
            elif l == 0:
                source = x_flat
            else:
                source = spikes[l - 1][src_t - 1].astype(dtype)
            current = source @ mats[l] + biases[l]
            if layer.output:
                v[l] = v[l] + current
                continue
            active = refractory[l] == 0
            v[l] = np.where(active, v[l] + current, v[l])
            refractory[l] = np.where(active, 0, refractory[l] - 1)
            fired = active & (v[l] >= n.threshold)
            if n.reset == "subtract":
                v[l] = np.where(fired, v[l] - n.threshold, v[l])
            else:
                v[l] = np.where(fired, 0.0, v[l])
            refractory[l] = np.where(fired, n.refractory_steps, refractory[l])
            spikes[l].append(fired)
            ev += fired.astype(np.int64) @ fanouts[l + 1]
        v_out.append(v[-1].copy())
        events.append(ev)
    input_events = (x_flat != 0).astype(np.int64) @ fanouts[0]
    return ReferenceResult(
        spikes=[np.stack(s) for s in spikes],
        v_out=np.stack(v_out),
        events=np.stack(events),
        input_events=input_events,
    )

