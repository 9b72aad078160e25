"""Streaming NumPy engine for the ROS node: one frame at a time, every timestep's output.

Design (what makes it fast at batch 1):
- The first layer's analog current W x is computed once per frame (``reset``), not every step.
- ``advance(k)`` simulates k steps *layer by layer*: a layer's currents for all k steps come from one
  product of the previous layer's k-step spike block (GEMM instead of k matrix-vector products), and
  for sparse spike blocks from summing only the weight rows of the neurons that spiked (event-driven).
  Only the elementwise membrane update loops over time. Every step's output is still returned.
- Buffers are preallocated for ``max_chunk`` steps; the per-step loop allocates nothing.
- Shape layers work on the same k-step blocks: zero padding copies a block into a preallocated,
  zero-bordered buffer; the spiking max pool (:func:`kernels.pool_step`) keeps per-frame spike counts;
  a residual input adds the source layer's (delayed) block times the per-neuron skip weights.
Imports only NumPy: the node never loads TensorFlow.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..model.bundle import Bundle
from ..model.layers import Layer, output_shape, skip_vector
from . import compiled, kernels, ops, synapses
from .kernels import NUMPY as NUMPY_KERNELS

# Below this fraction of active inputs a layer adds the synapses of the inputs that spiked instead of
# running one GEMM (convolutions: einsum) over the block; the NumPy kernels use it for every layer.
EVENT_DRIVEN_DENSITY = 0.3
# Steps per internal sub-block of advance(k): blocks of 50-100 steps of a conv layer's currents leave
# the L2 cache and ran 2.4x slower per step than blocks of 4-25 (docs/performance.md).
SUB_BLOCK = 16


def measured_density(layer: Layer, n_out: int, k: int) -> float:
    """The input firing rate above which one GEMM over a k-step block beats the compiled event-driven
    path, as measured by ``benchmarks/bench_paths.py`` (docs/performance.md): a GEMM's cost does not
    grow with the rate and amortizes over longer blocks; narrow dense layers gain from it early,
    convolutions (an einsum over windows) at 0.9 in blocks of 10 steps and never (1.0) in blocks of 100.
    Depthwise convolutions were not measured and use the conv2d values."""
    short = k <= 16
    if layer.kind == "dense":
        if n_out <= 64:
            return 0.05
        return 0.4 if short else 0.1
    return 0.9 if short else 1.0


@dataclass
class StepBlock:
    """Outputs of ``advance(k)``: one row per simulated step."""

    t: np.ndarray  # (k,) int64, 1-based timesteps within the frame
    v_out: np.ndarray  # (k, C) float32 accumulated output potential after each step
    cumulative_events: np.ndarray  # (k,) int64: the frame's synaptic events so far, after each step


class _Population:
    """One weighted layer: its synapses (from the previous layer) and, unless output, NL-IAF state."""

    def __init__(self, layer: Layer, in_shape: tuple[int, ...], max_chunk: int, event_density: float | None,
                 kernels, threads: int = 1):
        self.layer, self.threads = layer, threads
        self.kernels = kernels
        self.in_shape = in_shape
        self.out_shape = output_shape(layer, in_shape)
        self.n_in, self.n = math.prod(in_shape), math.prod(self.out_shape)
        if event_density is None and kernels is NUMPY_KERNELS:
            event_density = EVENT_DRIVEN_DENSITY
        # per block length k: the largest spike count that still takes the event-driven path
        self.event_limit = [(event_density if event_density is not None else measured_density(layer, self.n, k))
                            * k * self.n_in for k in range(max_chunk + 1)]
        self.path_blocks = {"events": 0, "gemm": 0}  # which path each block of steps took
        self.weights = compiled.aligned(layer.weights)  # aligned: every buffer a kernel adds vectors to
        # Convolutions fed by sparse spikes scatter each spike through the kernel (compiled only).
        self.conv = None
        if layer.kind != "dense" and kernels is not NUMPY_KERNELS and compiled.numba is not None:
            self.conv = synapses.Synapses(layer, in_shape, self.out_shape)
        self.bias = compiled.aligned(np.broadcast_to(layer.bias, self.out_shape).ravel())
        self.v0 = compiled.aligned(np.broadcast_to(layer.v0, self.out_shape).ravel())
        # Events per input spike: integers for the compiled kernels (a vectorized integer sum), floats for
        # NumPy's BLAS product.
        count = np.float64 if kernels is NUMPY_KERNELS else np.int64
        self.fanout_in = ops.fanout(layer, in_shape).ravel().astype(count)
        n = layer.neuron
        self.threshold = np.float32(n.threshold)
        self.subtract = bool(n.reset == "subtract")
        self.refractory_steps = n.refractory_steps
        self.delay = n.delay_steps
        self.current = compiled.aligned_empty((max_chunk, self.n))
        self.spikes = np.zeros((max_chunk, self.n), bool)
        self.v = compiled.aligned(self.v0)
        self.refractory = np.zeros(self.n, np.int32)
        self.history = np.zeros((self.delay, self.n_in), bool)  # in-flight spikes (delay line)
        self._discard = np.zeros(max_chunk, count)
        skip = skip_vector(layer, self.out_shape)
        self.skip = None if skip is None else compiled.aligned(skip)
        if self.skip is not None:
            self.fanout_skip = ops.skip_fanout(layer, self.out_shape).astype(count)
            self.skip_current = compiled.aligned_empty((max_chunk, self.n))
            self.skip_history = np.zeros((self.delay, self.n), bool)

    def reset_state(self) -> None:
        self.v[:] = self.v0
        self.refractory[:] = 0
        self.history[:] = 0
        if self.skip is not None:
            self.skip_history[:] = 0

    def add_skip(self, source: np.ndarray, current: np.ndarray) -> None:
        """Add the residual input: the (delayed) source block (k, n) times the per-neuron skip weights."""
        k = current.shape[0]
        if self.delay:
            stacked = np.concatenate([self.skip_history, source])
            source, self.skip_history = stacked[:k], stacked[k:].copy()
        extra = self.skip_current[:k]
        np.multiply(source, self.skip, out=extra)
        current += extra

    def synaptic_current(self, source: np.ndarray, k: int, events: np.ndarray, at: int = 0) -> np.ndarray:
        """Currents (k, n) = delayed ``source`` (k, n_in) through the synapses, plus bias, into rows
        ``at`` .. ``at + k`` of the current buffer; adds the synaptic events of ``source`` per step to
        ``events`` (k,).

        The block's input rate chooses between event-driven sums, which count the events as they add
        synapses, and a GEMM after a counting pass. BLAS sums in its own order, so the choice depends on
        this block alone (a frame's result never depends on the frames before it), estimated from its last
        step: counting every step costs as much as the event count the sums now do on the side. Events are
        counted when a spike is emitted: with a synaptic delay the sums see older spikes, so a counting
        pass counts ``source``.
        """
        emitted = source
        if self.delay:
            stacked = np.concatenate([self.history, source])
            source, self.history = stacked[:k], stacked[k:].copy()
            self.kernels.spike_events(emitted, self.fanout_in, events)
            events = self._discard[:k]  # the sums below would count the delayed spikes again
        out = self.current[at:at + k]
        event_driven = np.count_nonzero(source[-1]) * k < self.event_limit[k]
        if self.layer.kind == "dense" and event_driven:
            # Event-driven: each step's current is the sum of the weight rows of the inputs that spiked.
            self.kernels.spike_rows_sum(source, self.weights, out, self.fanout_in, events)
        elif self.conv is not None and event_driven:
            self.conv.block_current(source.reshape(k, self.n_in), out, self.fanout_in, events, self.threads)
        else:
            self.kernels.spike_events(source, self.fanout_in, events)
            if self.layer.kind == "dense":
                np.matmul(source.astype(np.float32, copy=False), self.weights, out=out)
            else:
                event_driven = False
                out[:] = ops.linear(self.layer, source.astype(np.float32, copy=False).reshape(k, *self.in_shape)
                                    ).reshape(k, -1)
        self.path_blocks["events" if event_driven else "gemm"] += 1
        out += self.bias
        return out

    def integrate(self, current: np.ndarray, at: int = 0) -> np.ndarray:
        """NL-IAF update for each of the k steps; returns the (k, n) bool spike block (rows ``at`` ..)."""
        spikes = self.spikes[at:at + current.shape[0]]
        self.kernels.integrate(current, self.v, self.refractory, self.threshold, self.subtract,
                               self.refractory_steps, spikes)
        return spikes


class _ZeroPad:
    """zero_pad2d on spike blocks: the interior of a zero-bordered buffer (padding never spikes)."""

    def __init__(self, layer: Layer, in_shape: tuple[int, ...], max_chunk: int):
        self.in_shape, self.out_shape = in_shape, output_shape(layer, in_shape)
        (self.top, _), (self.left, _) = layer.pad
        self.out = np.zeros((max_chunk, *self.out_shape), bool)

    def reset_state(self) -> None:
        pass

    def forward(self, block: np.ndarray, at: int = 0) -> np.ndarray:
        k, (h, w, _) = block.shape[0], self.in_shape
        out = self.out[at:at + k]
        out[:, self.top:self.top + h, self.left:self.left + w] = block.reshape(k, *self.in_shape)
        return out.reshape(k, -1)


class _MaxPool:
    """The spiking max pool: per-frame spike counts of its inputs, the largest count of every window."""

    def __init__(self, layer: Layer, in_shape: tuple[int, ...], max_chunk: int, kernels):
        self.kernels = kernels
        n_in = math.prod(in_shape)
        index = ops.pool_index(layer, in_shape)
        self.index = np.ascontiguousarray(np.where(index < 0, n_in, index))  # padding reads a count that stays 0
        self.counts = np.zeros(n_in + 1, np.int32)
        self.best = np.zeros(self.index.shape[0], np.int32)
        self.out = np.zeros((max_chunk, self.index.shape[0]), bool)

    def reset_state(self) -> None:
        self.counts[:] = 0
        self.best[:] = 0

    def forward(self, block: np.ndarray, at: int = 0) -> np.ndarray:
        out = self.out[at:at + block.shape[0]]
        self.kernels.pool_step(block, self.counts, self.best, self.index, out)
        return out


class _Flatten:
    def reset_state(self) -> None:
        pass

    def forward(self, block: np.ndarray, at: int = 0) -> np.ndarray:
        return block  # blocks are already flat (C order)


class StreamingEngine:
    """Simulate one input frame at a time; ``advance(k)`` returns the output after each of k steps.

    ``event_density``: layers whose input spike block is sparser than this add the synapses of the
    inputs that spiked, denser blocks run one GEMM; None (default): per layer and block length, the
    crossover measured on this CPU (:func:`measured_density`). Each population counts the blocks that
    took each path (``pops[i].path_blocks``). ``threads``: numba threads that share the steps of a
    block in event-driven convolutions (default 1: the node's engine stays on its own thread; on a busy
    machine 2 threads ran 10x slower than 1, docs/performance.md).
    ``compiled``: use the numba kernels (:mod:`.kernels`), else NumPy.
    """

    def __init__(self, bundle: Bundle, max_chunk: int = 64, event_density: float | None = None,
                 compiled: bool = True, threads: int = 1):
        self.bundle, self.threads = bundle, threads
        ks = kernels.kernel_set(compiled)
        self.max_chunk = max_chunk
        self.num_classes = bundle.num_classes
        shape, self.pops, self.stages = tuple(bundle.input.shape), [], []
        self._first_index = next(i for i, layer in enumerate(bundle.layers) if layer.weighted)
        self._analog_layers = bundle.layers[:self._first_index]  # shape layers on the analog input
        index = {layer.name: i for i, layer in enumerate(bundle.layers)}
        self._skips = []  # per stage: the stage index of its residual source, or None
        for layer in bundle.layers:
            if layer.weighted:
                stage = _Population(layer, shape, max_chunk, event_density, ks, threads)
                self.pops.append(stage)
            elif layer.kind == "zero_pad2d":
                stage = _ZeroPad(layer, shape, max_chunk)
            elif layer.kind == "max_pool2d":
                stage = _MaxPool(layer, shape, max_chunk, ks)
            else:
                stage = _Flatten()
            self.stages.append(stage)
            self._skips.append(index[layer.skip] if layer.weighted and layer.skip is not None else None)
            shape = output_shape(layer, shape)
        self.first, self.output = self.pops[0], self.pops[-1]
        self._blocks: list = [None] * len(self.stages)
        self._analog_current = np.zeros(self.first.n, np.float32)
        self._previous_current = self._analog_current
        self.t = 0
        self.frame_events = 0  # synaptic events of the current frame so far
        self.input_events = 0
        self._steps = np.arange(1, max_chunk + 1, dtype=np.int64)
        self.kernels = ks

    def reset(self, x: np.ndarray, keep_state: bool = False) -> None:
        """Start a new frame with network input ``x`` (shape ``bundle.input.shape``, float).

        ``keep_state`` carries membrane potentials, refractory counters and in-flight spikes over from
        the previous frame (video streams); otherwise every neuron restarts from V0.
        """
        x = np.asarray(x, np.float32)
        if x.shape != tuple(self.bundle.input.shape):
            raise ValueError(f"input shape {x.shape} != bundle input shape {tuple(self.bundle.input.shape)}")
        if not keep_state:
            for stage in self.stages:
                stage.reset_state()
        first = self.first
        for layer in self._analog_layers:
            x = ops.zero_pad(x.reshape(1, *x.shape), layer)[0] if layer.kind == "zero_pad2d" else x.reshape(-1)
        self._previous_current = self._analog_current if keep_state else np.zeros_like(self._analog_current)
        if first.layer.kind == "dense":
            self._analog_current = np.empty(first.n, np.float32)
            self.kernels.input_current(x.reshape(-1), first.weights, self._analog_current)
        elif first.conv is not None:  # the batched engine's sums: both engines give the same floats
            self._analog_current = np.empty(first.n, np.float32)
            first.conv.analog_current(np.ascontiguousarray(x.reshape(-1)), self._analog_current)
        else:
            self._analog_current = ops.linear(first.layer, x.reshape(1, *first.in_shape)).reshape(-1).astype(np.float32)
        self.input_events = int((x.reshape(-1) != 0) @ first.fanout_in)
        self.t = 0
        self.frame_events = 0

    def advance(self, k: int) -> StepBlock:
        """Simulate ``k`` (1..max_chunk) more steps of the current frame.

        Internally in sub-blocks of at most :data:`SUB_BLOCK` steps, so that a layer's block of
        currents and spikes stays in the L2 cache (measured: docs/performance.md); every buffer still
        holds all k steps afterwards."""
        if not 1 <= k <= self.max_chunk:
            raise ValueError(f"k must be in [1, {self.max_chunk}], got {k}")
        steps = self._steps[:k] + self.t
        v_out = np.empty((k, self.num_classes), np.float32)
        cum = np.empty(k, np.int64)
        for at in range(0, k, SUB_BLOCK):
            n = min(SUB_BLOCK, k - at)
            self._block(at, n, v_out[at:at + n], cum[at:at + n])
        return StepBlock(t=steps, v_out=v_out, cumulative_events=cum)

    def _block(self, at: int, k: int, v_out: np.ndarray, cum: np.ndarray) -> None:
        """Steps t+1 .. t+k into rows ``at`` .. ``at + k`` of every buffer; fills ``v_out`` and ``cum``."""
        events = np.zeros(k, self.first.fanout_in.dtype)
        first = self.first
        current = first.current[at:at + k]
        current[:] = self._analog_current
        if first.delay and self.t < first.delay:
            # The analog input reaches the first layer after its synaptic delay; until then the
            # previous frame's input is still in flight (keep_state) or nothing is.
            current[: first.delay - self.t] = self._previous_current
        current += first.bias
        blocks = self._blocks
        if first is not self.output:
            blocks[self._first_index] = first.integrate(current, at)
        for i in range(self._first_index + 1, len(self.stages)):
            stage = self.stages[i]
            if stage.__class__ is not _Population:
                blocks[i] = stage.forward(blocks[i - 1], at)
                continue
            current = stage.synaptic_current(blocks[i - 1], k, events, at)
            if stage.skip is not None:
                source = blocks[self._skips[i]]
                self.kernels.spike_events(source, stage.fanout_skip, events)
                stage.add_skip(source, current)
            if stage is not self.output:
                blocks[i] = stage.integrate(current, at)
        out = self.output
        v_out[:] = np.cumsum(np.concatenate([out.v[None], current]), axis=0, dtype=np.float32)[1:]
        out.v[:] = v_out[-1]
        cum[:] = self.frame_events + np.cumsum(events).astype(np.int64)
        self.frame_events = int(cum[-1])
        self.t += k

    def step(self) -> StepBlock:
        return self.advance(1)
