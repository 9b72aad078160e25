"""Explicit synapse lists of weighted layers, with TensorFlow's padding semantics, built sparsely.

A PyNN projection needs (pre index, post index, weight) triples. Neurons are numbered in C order of
their channels-last shape, as in :func:`anytime_snn.sim.reference.connection_matrix` (the test
checks these lists against that matrix entry for entry). Only non-zero weights become synapses, so
the synapse count of a neuron is exactly its fan-out in :func:`anytime_snn.sim.ops.fanout`.
Memory is O(synapses): no dense (n_in x n_out) matrix is formed for convolutions.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..model.layers import Layer, output_shape, same_padding


@dataclass
class Synapses:
    """Synapses of one layer: parallel arrays, sorted by (pre, post)."""

    pre: np.ndarray  # int64
    post: np.ndarray  # int64
    weight: np.ndarray  # float64
    n_pre: int
    n_post: int

    def __len__(self) -> int:
        return int(self.pre.size)

    def split(self) -> tuple["Synapses", "Synapses"]:
        """(excitatory w > 0, inhibitory w < 0); weights keep their sign."""
        pos = self.weight > 0
        neg = self.weight < 0
        return (Synapses(self.pre[pos], self.post[pos], self.weight[pos], self.n_pre, self.n_post),
                Synapses(self.pre[neg], self.post[neg], self.weight[neg], self.n_pre, self.n_post))

    def fan_in(self) -> np.ndarray:
        return np.bincount(self.post, minlength=self.n_post)

    def fan_out(self) -> np.ndarray:
        return np.bincount(self.pre, minlength=self.n_pre)

    def through(self, index: np.ndarray, n_pre: int) -> "Synapses":
        """The synapses seen from the populating layer when shape layers (zero padding, flatten) sit in
        between: ``index[j]`` is the populating neuron behind input position j, or -1 for padding (which
        never spikes, so its synapses are dropped)."""
        src = index[self.pre]
        keep = src >= 0
        pre, post, weight = src[keep], self.post[keep], self.weight[keep]
        order = np.lexsort((post, pre))
        return Synapses(pre[order], post[order], weight[order], n_pre, self.n_post)

    def dense(self) -> np.ndarray:
        """The (n_pre, n_post) matrix (small layers only; for tests)."""
        m = np.zeros((self.n_pre, self.n_post))
        np.add.at(m, (self.pre, self.post), self.weight)
        return m


def position_index(layers: list[Layer], input_shape: tuple[int, ...]) -> list[np.ndarray]:
    """For every weighted layer: the flat index, into the layer feeding it (the previous weighted layer,
    or the network input for the first), of every position of its input; -1 where zero padding
    inserted a zero. Refuses shape layers other than flatten and zero padding."""
    index = np.arange(int(np.prod(input_shape))).reshape(input_shape)
    out = []
    for layer in layers:
        if layer.weighted:
            out.append(index.ravel().copy())
            shape = output_shape(layer, index.shape)
            index = np.arange(int(np.prod(shape))).reshape(shape)
        elif layer.kind == "flatten":
            index = index.reshape(-1)
        elif layer.kind == "zero_pad2d":
            index = np.pad(index, (*layer.pad, (0, 0)), constant_values=-1)
        else:
            raise ValueError(f"layer {layer.name!r} ({layer.kind}) has no synapse mapping")
    return out


def layer_synapses(layer: Layer, in_shape: tuple[int, ...]) -> Synapses:
    """The non-zero synapses of a dense, conv2d or depthwise_conv2d layer fed by ``in_shape``."""
    out_shape = output_shape(layer, in_shape)
    n_pre, n_post = int(np.prod(in_shape)), int(np.prod(out_shape))
    w = np.asarray(layer.weights, np.float64)
    if layer.kind == "dense":
        pre, post = np.nonzero(w)
        return Synapses(pre.astype(np.int64), post.astype(np.int64), w[pre, post], n_pre, n_post)
    h, wd, cin = in_shape
    ho, wo, cout = out_shape
    kh, kw = w.shape[:2]
    sh, sw = layer.strides
    if layer.padding == "same":
        pt, pl = same_padding(h, kh, sh)[0], same_padding(wd, kw, sw)[0]
    else:
        pt = pl = 0
    oi, oj = np.meshgrid(np.arange(ho), np.arange(wo), indexing="ij")  # output positions
    pres, posts, weights = [], [], []
    for a in range(kh):
        for b in range(kw):
            ii, jj = oi * sh + a - pt, oj * sw + b - pl  # input position seen through kernel offset (a, b)
            ok = (ii >= 0) & (ii < h) & (jj >= 0) & (jj < wd)
            ii, jj, oii, ojj = ii[ok], jj[ok], oi[ok], oj[ok]
            if layer.kind == "conv2d":
                ci, co = np.nonzero(w[a, b])  # non-zero (c_in, c_out) pairs of this offset
                val = w[a, b][ci, co]
            else:  # depthwise, multiplier 1: channel c feeds channel c
                ci = np.nonzero(w[a, b, :, 0])[0]
                co, val = ci, w[a, b, ci, 0]
            if ci.size == 0 or ii.size == 0:
                continue
            pre = ((ii[:, None] * wd + jj[:, None]) * cin + ci[None, :]).ravel()
            post = ((oii[:, None] * wo + ojj[:, None]) * cout + co[None, :]).ravel()
            pres.append(pre)
            posts.append(post)
            weights.append(np.broadcast_to(val[None, :], (ii.size, ci.size)).ravel())
    if not pres:
        empty = np.zeros(0, np.int64)
        return Synapses(empty, empty, np.zeros(0), n_pre, n_post)
    pre, post, weight = np.concatenate(pres), np.concatenate(posts), np.concatenate(weights)
    order = np.lexsort((post, pre))
    return Synapses(pre[order], post[order], weight[order], n_pre, n_post)
