"""Batched TensorFlow engine for offline evaluation and optimization.

The whole simulation of a batch chunk is one XLA-compiled loop over time whose state is only
(batch x neurons) per layer: the first layer's analog current is computed once (it is constant);
each step runs every layer's synaptic product from the previous layer's (delayed) spikes and the
NL-IAF update, counts synaptic events per sample (each spike x its neuron's non-zero outgoing
synapses) and spikes per layer, and records the prediction. (A layer-by-layer-over-time variant with
one GEMM over all T x batch spike rows was measured slower on the CPU: it streams T x batch x neurons
tensors through memory.) Weights live in variables, so ``set_parameters`` swaps them without
recompiling. Batches are split into equal chunks (bounded memory, one compilation per chunk size);
with a fixed ``batch_size`` the last chunk is zero-padded and its padding rows are dropped before
anything is counted. Shape layers run inside the loop too (zero padding, flatten, and the spiking
max pool, whose per-sample spike counts are loop state); a residual input adds the source layer's
(delayed) output times the per-neuron skip weights. Runs on a GPU when TensorFlow sees one.
"""

from __future__ import annotations

import math
import os

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import tensorflow as tf  # noqa: E402

from ..model.bundle import Bundle  # noqa: E402
from ..model.layers import Layer, output_shape, same_padding, skip_vector  # noqa: E402
from . import ops  # noqa: E402
from .result import EngineResult, checked_inputs  # noqa: E402,F401  (EngineResult re-exported)

DEFAULT_MEMORY_BYTES = 512 << 20


class TFEngine:
    """Batched simulator of a bundle. ``run(x, T)`` returns an :class:`EngineResult`."""

    def __init__(self, bundle: Bundle, batch_size: int | None = None, memory_bytes: int = DEFAULT_MEMORY_BYTES,
                 jit_compile: bool = True):
        self.bundle = bundle
        self.layers: list[Layer] = []
        self.in_shapes, self.out_shapes, fanouts = [], [], []
        self.node_in, self.node_out = [], []  # input and output shape of every bundle layer
        shape = tuple(bundle.input.shape)
        for layer in bundle.layers:
            out = output_shape(layer, shape)
            self.node_in.append(shape)
            self.node_out.append(out)
            if layer.weighted:
                self.layers.append(layer)
                self.in_shapes.append(shape)
                self.out_shapes.append(out)
                fanouts.append(ops.fanout(layer, shape).ravel())
            shape = out
        self.fanouts = fanouts
        # Spikes x fan-out summed in float32 is exact while the largest possible sum is below 2**24.
        self._count_dtype = [tf.float32 if f.sum() + f.size < 2**24 else tf.float64 for f in fanouts]
        # Dense layers fed by spikes count events and spikes inside their GEMM: two extra weight columns
        # (the source neurons' fan-out, and ones) give events and spike counts per step for free.
        self._fused = [i > 0 and l.kind == "dense" and l.neuron.delay_steps == 0 and self._count_dtype[i] == tf.float32
                       for i, l in enumerate(self.layers)]
        # Parameters live in variables: set_parameters() swaps them without recompiling (the optimizer
        # evaluates thousands of scalings of the same network).
        values = self._parameter_values(bundle)
        self._vars = {key: [None if v is None else tf.Variable(v, trainable=False) for v in vals]
                      for key, vals in values.items()}
        self.memory_bytes = memory_bytes
        self.batch_size = batch_size
        self._fns: dict[tuple[int, int, bool], tf.types.experimental.GenericFunction] = {}
        self.jit_compile = jit_compile

    def _parameter_values(self, bundle: Bundle) -> dict[str, list]:
        layers = [layer for layer in bundle.layers if layer.weighted]
        fanouts = [ops.fanout(layer, s).ravel() for layer, s in zip(layers, self.in_shapes)]
        return {
            "weights": [layer.weights.astype(np.float32) for layer in layers],
            "weights_aug": [np.concatenate([l.weights, fanouts[i][:, None], np.ones((l.weights.shape[0], 1))], 1)
                            .astype(np.float32) if self._fused[i] else None for i, l in enumerate(layers)],
            "fanout": [f.astype(dt.as_numpy_dtype) for f, dt in zip(fanouts, self._count_dtype)],
            "bias": [np.broadcast_to(l.bias, s).reshape(-1).astype(np.float32) for l, s in zip(layers, self.out_shapes)],
            "v0": [np.broadcast_to(l.v0, s).reshape(-1).astype(np.float32) for l, s in zip(layers, self.out_shapes)],
            "skip": [None if l.skip is None else skip_vector(l, s).astype(np.float32)
                     for l, s in zip(layers, self.out_shapes)],
            "skip_fanout": [None if l.skip is None else ops.skip_fanout(l, s).astype(np.float32)
                            for l, s in zip(layers, self.out_shapes)],
        }

    def set_parameters(self, bundle: Bundle) -> None:
        """Use the weights, biases and V0 of ``bundle`` (same architecture and neuron dynamics) from now on."""
        layers = [layer for layer in bundle.layers if layer.weighted]
        same = len(layers) == len(self.layers) and all(
            a.kind == b.kind and a.weights.shape == b.weights.shape and a.neuron == b.neuron and a.strides == b.strides
            and a.padding == b.padding and a.skip == b.skip for a, b in zip(layers, self.layers))
        same = same and [(l.kind, l.pad, l.pool_size, l.strides, l.padding) for l in bundle.layers if not l.weighted] \
            == [(l.kind, l.pad, l.pool_size, l.strides, l.padding) for l in self.bundle.layers if not l.weighted]
        if not same:
            raise ValueError("set_parameters needs the same architecture and neuron dynamics; build a new TFEngine")
        for key, vals in self._parameter_values(bundle).items():
            for var, val in zip(self._vars[key], vals):
                if var is not None:
                    var.assign(val)
        self.bundle = bundle
        self.layers = layers
        self.fanouts = [ops.fanout(layer, s).ravel() for layer, s in zip(layers, self.in_shapes)]

    # ------------------------------------------------------------------ public

    def chunk_size(self, timesteps: int) -> int:
        """Samples per compiled chunk: the user's choice, else what keeps the big tensors in budget."""
        if self.batch_size:
            return self.batch_size
        # The loop keeps only per-layer state; the big temporaries are one layer's input and output
        # (a convolution's im2col buffer can be kernel-area times the input).
        widest = max(math.prod(s) * (math.prod(l.weights.shape[:2]) if l.kind != "dense" else 1)
                     for l, s in zip(self.layers, self.in_shapes))
        per_sample = (widest + sum(math.prod(s) for s in self.out_shapes) * 3) * 4 + timesteps * 16
        return int(max(1, min(512, self.memory_bytes // per_sample)))

    def run(self, x: np.ndarray, timesteps: int, record_v_out: bool = False) -> EngineResult:
        x = checked_inputs(x, self.bundle.input.shape, timesteps)
        n, chunk = x.shape[0], self.chunk_size(timesteps)
        if not self.batch_size:  # equal chunks: no compute wasted on a padded last chunk
            chunk = math.ceil(n / math.ceil(max(n, 1) / chunk)) if n else 1
        fn = self._function(chunk, timesteps, record_v_out)
        preds, events, spikes, vouts = [], [], [], []
        for start in range(0, n, chunk):
            part = x[start:start + chunk]
            valid = part.shape[0]
            if valid < chunk:
                part = np.concatenate([part, np.zeros((chunk - valid, *part.shape[1:]), np.float32)])
            p, e, s, v = fn(tf.constant(part))
            preds.append(p.numpy()[:, :valid])
            events.append(e.numpy()[:, :valid])
            spikes.append(s.numpy()[:, :, :valid].sum(axis=2))
            if record_v_out:
                vouts.append(v.numpy()[:, :valid])
        fan0 = self.fanouts[0]
        analog = x
        for layer in self.bundle.layers:  # the shape layers before the first weighted layer
            if layer.weighted:
                break
            analog = ops.zero_pad(analog, layer) if layer.kind == "zero_pad2d" else analog.reshape(n, -1)
        return EngineResult(
            predictions=np.concatenate(preds, axis=1).astype(np.int32),
            events=np.rint(np.concatenate(events, axis=1)).astype(np.int64),
            layer_spikes=np.sum(spikes, axis=0).astype(np.int64) if spikes else np.zeros((0, timesteps), np.int64),
            input_events=(analog.reshape(n, -1) != 0).astype(np.int64) @ fan0.astype(np.int64),
            v_out=np.concatenate(vouts, axis=1) if record_v_out else None,
        )

    # ------------------------------------------------------------------ graph

    def _function(self, chunk: int, timesteps: int, record_v_out: bool):
        key = (chunk, timesteps, record_v_out)
        if key not in self._fns:
            sig = [tf.TensorSpec((chunk, *self.bundle.input.shape), tf.float32)]
            self._fns[key] = tf.function(lambda x: self._simulate(x, timesteps, record_v_out),
                                         input_signature=sig, jit_compile=self.jit_compile)
        return self._fns[key]

    def _linear(self, i: int, x: tf.Tensor) -> tf.Tensor:
        """Synaptic map of weighted layer i for a batch x of shape (M, *in_shape); returns (M, n_out)."""
        layer, w = self.layers[i], self._vars['weights'][i]
        m = tf.shape(x)[0]
        if layer.kind == "dense":
            return tf.matmul(tf.reshape(x, (m, -1)), w)
        x = tf.reshape(x, (m, *self.in_shapes[i]))
        if layer.padding == "same":  # explicit TF-style padding (same as TF's own 'SAME')
            kh, kw = layer.weights.shape[:2]
            pads = [same_padding(self.in_shapes[i][0], kh, layer.strides[0]),
                    same_padding(self.in_shapes[i][1], kw, layer.strides[1])]
            x = tf.pad(x, [[0, 0], list(pads[0]), list(pads[1]), [0, 0]])
        strides = (1, *layer.strides, 1)
        if layer.kind == "conv2d":
            y = tf.nn.conv2d(x, w, strides, "VALID")
        else:
            y = tf.nn.depthwise_conv2d(x, w, strides, "VALID")
        return tf.reshape(y, (m, -1))

    def _shape_input(self, k: int, x: tf.Tensor) -> tf.Tensor:
        """Zero padding or flatten (bundle layer k) of a flat batch x (M, n_in); returns (M, n_out)."""
        layer, m = self.bundle.layers[k], tf.shape(x)[0]
        if layer.kind == "zero_pad2d":
            x = tf.pad(tf.reshape(x, (m, *self.node_in[k])), [[0, 0], list(layer.pad[0]), list(layer.pad[1]), [0, 0]])
        return tf.reshape(x, (m, -1))

    def _pool_max(self, k: int, counts: tf.Tensor) -> tf.Tensor:
        """Largest spike count in every window of max pool k, for counts (M, H, W, C); returns (M, n_out)."""
        layer, (h, w, _) = self.bundle.layers[k], self.node_in[k]
        if layer.padding == "same":  # zeros: counts are never negative, so this equals TF's -inf padding
            pads = [same_padding(h, layer.pool_size[0], layer.strides[0]),
                    same_padding(w, layer.pool_size[1], layer.strides[1])]
            counts = tf.pad(counts, [[0, 0], list(pads[0]), list(pads[1]), [0, 0]])
        y = tf.nn.max_pool2d(counts, layer.pool_size, layer.strides, "VALID")
        return tf.reshape(y, (tf.shape(counts)[0], -1))

    def _simulate(self, x: tf.Tensor, timesteps: int, record_v_out: bool):
        """One compiled loop over time; the state is only (batch x neurons) per layer (and max pool)."""
        batch, layers, blayers = x.shape[0], self.layers, self.bundle.layers
        n_hidden = len(layers) - 1
        first = next(k for k, layer in enumerate(blayers) if layer.weighted)
        windex = {}  # bundle index -> weighted index
        for k, layer in enumerate(blayers):
            if layer.weighted:
                windex[k] = len(windex)
        names = {layer.name: k for k, layer in enumerate(blayers)}
        skips = {k: names[layer.skip] for k, layer in enumerate(blayers) if layer.weighted and layer.skip is not None}
        pools = [k for k, layer in enumerate(blayers) if layer.kind == "max_pool2d"]
        h = tf.reshape(x, (batch, -1))
        for k in range(first):  # shape layers on the analog input
            h = self._shape_input(k, h)
        analog = self._linear(0, h)  # the analog input current, computed once

        def zeros(i, dtype=tf.float32):
            return tf.zeros((batch, math.prod(self.out_shapes[i])), dtype)

        # State: V and refractory counters per layer, for each layer with synaptic delay d the last d
        # source outputs (oldest first, main and residual input), and per max pool its inputs' spike
        # counts and the largest count of each window so far.
        v = [tf.broadcast_to(self._vars["v0"][i], (batch, math.prod(s))) for i, s in enumerate(self.out_shapes)]
        ref = [zeros(i, tf.int32) if l.neuron.refractory_steps else tf.zeros((0,), tf.int32)
               for i, l in enumerate(layers)]
        lines = [tf.zeros((l.neuron.delay_steps, batch, math.prod(self.in_shapes[i])))
                 if (i > 0 and l.neuron.delay_steps) else tf.zeros((0,)) for i, l in enumerate(layers)]
        skip_lines = [tf.zeros((l.neuron.delay_steps, batch, math.prod(self.out_shapes[i])))
                      if (l.skip is not None and l.neuron.delay_steps) else tf.zeros((0,)) for i, l in enumerate(layers)]
        pool_state = [(tf.zeros((batch, *self.node_in[k])), tf.zeros((batch, math.prod(self.node_out[k]))))
                      for k in pools]
        ta = lambda dt: tf.TensorArray(dt, size=timesteps)  # noqa: E731
        outs = (ta(tf.int32), ta(tf.float64), ta(tf.float32), ta(tf.float32) if record_v_out else ta(tf.float32))

        def delayed(line, value):
            """Push ``value`` into a delay line; returns (new line, the value that arrives now)."""
            return tf.concat([line[1:], value[None]], axis=0), line[0]

        def body(t, v, ref, lines, skip_lines, pool_state, outs):
            preds_ta, events_ta, spikes_ta, vout_ta = outs
            v, ref, lines, skip_lines, pool_state = list(v), list(ref), list(lines), list(skip_lines), list(pool_state)
            events = tf.zeros((batch,), tf.float64)
            counts = []
            node = {}  # bundle index -> this step's output (batch, n), float32 0/1 for spikes
            for k in range(first, len(blayers)):
                layer = blayers[k]
                if not layer.weighted:
                    if layer.kind == "max_pool2d":
                        p = pools.index(k)
                        total = pool_state[p][0] + tf.reshape(node[k - 1], (batch, *self.node_in[k]))
                        best = self._pool_max(k, total)
                        node[k] = tf.cast(best > pool_state[p][1], tf.float32)
                        pool_state[p] = (total, best)
                    else:
                        node[k] = self._shape_input(k, node[k - 1])
                    continue
                i = windex[k]
                d = layer.neuron.delay_steps
                if i == 0:
                    arrived = tf.cast(t >= d, tf.float32)  # t is 0-based: step t+1 sees input iff t+1 > d
                    current = arrived * analog + self._vars["bias"][0]
                else:
                    # each spike x its neuron's non-zero outgoing synapses, counted per sample at emission
                    source = node[k - 1]
                    events += tf.cast(tf.linalg.matvec(tf.cast(source, self._count_dtype[i]),
                                                       self._vars["fanout"][i]), tf.float64)
                    if d:  # the spikes arriving now were emitted d steps ago
                        lines[i], source = delayed(lines[i], source)
                    current = self._linear(i, source) + self._vars["bias"][i]
                    if layer.skip is not None:
                        extra = node[skips[k]]
                        events += tf.cast(tf.linalg.matvec(extra, self._vars["skip_fanout"][i]), tf.float64)
                        if d:
                            skip_lines[i], extra = delayed(skip_lines[i], extra)
                        current = current + extra * self._vars["skip"][i]
                if layer.output:
                    v[i] = v[i] + current
                    break
                spikes, v[i], ref[i] = self._update(layer, v[i], ref[i], current)
                counts.append(tf.reduce_sum(spikes, axis=1))
                node[k] = spikes
            vmax = tf.reduce_max(v[-1], axis=-1, keepdims=True)
            classes = tf.range(v[-1].shape[-1], dtype=tf.int32)
            preds = tf.reduce_min(tf.where(v[-1] == vmax, classes, v[-1].shape[-1]), axis=-1)  # first argmax
            outs = (preds_ta.write(t, preds), events_ta.write(t, events),
                    spikes_ta.write(t, tf.stack(counts) if counts else tf.zeros((0, batch))),
                    vout_ta.write(t, v[-1]) if record_v_out else vout_ta)
            return t + 1, v, ref, lines, skip_lines, pool_state, outs

        _, v, _, _, _, _, outs = tf.while_loop(lambda t, *_: t < timesteps, body,
                                               (tf.constant(0), v, ref, lines, skip_lines, pool_state, outs))
        preds, events, spikes, vout = outs
        layer_spikes = tf.transpose(spikes.stack(), (1, 0, 2)) if n_hidden else tf.zeros((0, timesteps, batch))
        return preds.stack(), events.stack(), layer_spikes, (vout.stack() if record_v_out else tf.zeros(()))

    @staticmethod
    def _update(layer: Layer, v: tf.Tensor, ref: tf.Tensor, current: tf.Tensor):
        """One NL-IAF step (paper eq. 1-2, with reset mode and refractory period): (spikes, V, counters)."""
        n = layer.neuron
        theta = tf.constant(n.threshold, tf.float32)
        if n.refractory_steps == 0:
            v = v + current
            s = v >= theta
        else:
            active = ref == 0
            v = tf.where(active, v + current, v)
            ref = tf.where(active, ref, ref - 1)
            s = tf.logical_and(active, v >= theta)
            ref = tf.where(s, tf.fill(tf.shape(ref), n.refractory_steps), ref)
        v = tf.where(s, v - theta if n.reset == "subtract" else tf.zeros_like(v), v)
        return tf.cast(s, tf.float32), v, ref
