"""Our NL-IAF network expressed in independent PyTorch SNN simulators (runs in the peers' venv).

The network comes from ``export_network`` in ``bench_peers.py`` (an .npz of PyTorch-layout tensors and
a JSON layer list). Dynamics, identical in every peer and in our engines (paper eq. 1-3):
hidden layers are integrate-and-fire neurons with threshold 1, no leak, reset by subtraction,
update order charge -> fire (V >= 1) -> reset, starting from V0; the analog image is a constant
current into the first layer (its product is computed once per frame, as our engines do and as
SpikingJelly's static-image examples do); the output layer only accumulates (V_t = V_{t-1} + I_t)
and the prediction at t is argmax V_t.

- SpikingJelly: ``neuron.HalfThresholdIFNode`` (soft-reset IF, V0 = threshold / 2) in multi-step
  mode for batches (one GEMM/convolution over all T x batch rows per layer), single-step mode for
  streaming; the output is ``neuron.NonSpikingIFNode`` (pure accumulation).
- sinabs: ``layers.IAFSqueeze`` with ``SingleSpike`` and ``MembraneSubtract`` (at most one spike per
  step, reset by subtraction), v_mem preset to V0; output accumulated with a running sum.
- roofline: the same per-step products with plain PyTorch, no dynamics.
"""

from __future__ import annotations

import json
import math

import numpy as np
import torch
from torch import nn


def load_network(npz_path: str) -> list[dict]:
    """Layer dicts with torch tensors: kind, weight, bias, v0 (flat, CHW order), pads, stride, output."""
    data = np.load(npz_path)
    layers = json.loads(str(data["meta"]))
    for i, layer in enumerate(layers):
        for key in ("weight", "bias", "v0"):
            layer[key] = torch.from_numpy(np.ascontiguousarray(data[f"{i}/{key}"]))
    return layers


def synapse(layer: dict) -> nn.Module:
    """The layer's synaptic map as a torch module (Linear, or explicit TF-style padding + Conv2d)."""
    w, b = layer["weight"], layer["bias"]
    if layer["kind"] == "dense":
        mod = nn.Linear(w.shape[1], w.shape[0])
    else:
        groups = w.shape[0] if layer["kind"] == "depthwise_conv2d" else 1
        conv = nn.Conv2d(w.shape[1] * groups, w.shape[0], tuple(w.shape[2:]), stride=tuple(layer["stride"]),
                         groups=groups)
        pt, pb, pl, pr = layer["pads"]
        mod = nn.Sequential(nn.ZeroPad2d((pl, pr, pt, pb)), conv) if any(layer["pads"]) else conv
    target = mod if isinstance(mod, (nn.Linear, nn.Conv2d)) else mod[1]
    with torch.no_grad():
        target.weight.copy_(w)
        target.bias.copy_(b)
    return mod.eval()


def _flat_input(layer: dict, h: torch.Tensor) -> torch.Tensor:
    return h.reshape(h.shape[0], -1) if layer["kind"] == "dense" else h


def _hwc(counts: torch.Tensor) -> np.ndarray:
    """(B, C, H, W) or (B, n) -> (B, n) in our channels-last flat order."""
    if counts.ndim == 4:
        counts = counts.permute(0, 2, 3, 1)
    return counts.reshape(counts.shape[0], -1).numpy()


class Net:
    """Shared parts: synapses, per-layer V0 tensors, first-layer current, readout."""

    name = "base"

    def __init__(self, layers: list[dict]):
        self.layers = layers
        self.syn = [synapse(layer) for layer in layers]
        self.out_shapes = [tuple(layer["out_shape_chw"]) for layer in layers]

    def first_current(self, x: torch.Tensor) -> torch.Tensor:
        return self.syn[0](_flat_input(self.layers[0], x))

    def v0(self, i: int, batch: int) -> torch.Tensor:
        return self.layers[i]["v0"].reshape(self.out_shapes[i]).expand(batch, *self.out_shapes[i]).clone()


class SpikingJellyNet(Net):
    name = "spikingjelly"

    def __init__(self, layers: list[dict]):
        super().__init__(layers)
        from spikingjelly.activation_based import layer as sjl
        from spikingjelly.activation_based import neuron

        for l in layers[:-1]:
            if not np.allclose(l["v0"].numpy(), 0.5):
                raise ValueError("HalfThresholdIFNode starts at threshold/2: the network needs V0 = 0.5")
            if l["threshold"] != 1.0:
                raise ValueError("threshold must be 1")
        if not np.allclose(layers[-1]["v0"].numpy(), 0.0):
            raise ValueError("NonSpikingIFNode starts at 0: the output layer needs V0 = 0")
        self.neuron_mod = neuron
        # multi-step: synapses wrapped to run on all T x batch rows at once
        self.m_syn = [None] + [sjl.SeqToANNContainer(s) for s in self.syn[1:]]
        self.m_nodes = [neuron.HalfThresholdIFNode(v_threshold=1.0, step_mode="m") for _ in layers[:-1]]
        self.s_nodes = [neuron.HalfThresholdIFNode(v_threshold=1.0, step_mode="s") for _ in layers[:-1]]
        self.readout = neuron.NonSpikingIFNode()

    def _reset(self, nodes):
        for node in nodes:
            node.reset()

    @torch.inference_mode()
    def run_batched(self, x: torch.Tensor, steps: int, tchunk: int, record: bool = False):
        """Multi-step mode over time chunks of ``tchunk`` steps. Returns (counts, v_out) when ``record``."""
        self._reset(self.m_nodes)
        cur0 = self.first_current(x)
        counts = [torch.zeros(x.shape[0], *s) for s in self.out_shapes[:-1]]
        out_currents = []
        for start in range(0, steps, tchunk):
            k = min(tchunk, steps - start)
            h = cur0.unsqueeze(0).expand(k, *cur0.shape)
            for i, node in enumerate(self.m_nodes):
                s = node(h)
                if record:
                    counts[i] += s.sum(0)
                h = self.m_syn[i + 1](_flat_seq(self.layers[i + 1], s))
            out_currents.append(h)
        v_out = self.readout(torch.cat(out_currents))  # list of (B, C) potentials, one per step
        if record:
            return [_hwc(c) for c in counts], torch.stack(v_out).numpy()
        return None

    @torch.inference_mode()
    def stream(self, x1: torch.Tensor, steps: int) -> np.ndarray:
        """Batch 1, one network step per call (single-step mode); returns (T, C) output potentials."""
        self._reset(self.s_nodes)
        cur0 = self.first_current(x1)
        v = torch.zeros(1, self.out_shapes[-1][0])
        out = torch.empty(steps, self.out_shapes[-1][0])
        for t in range(steps):
            h = cur0
            for i, node in enumerate(self.s_nodes):
                h = self.syn[i + 1](_flat_input(self.layers[i + 1], node(h)))
            v = v + h
            out[t] = v[0]
        return out.numpy()


def _flat_seq(layer: dict, s: torch.Tensor) -> torch.Tensor:
    return s.reshape(s.shape[0], s.shape[1], -1) if layer["kind"] == "dense" else s


class SinabsNet(Net):
    name = "sinabs"

    def __init__(self, layers: list[dict]):
        super().__init__(layers)
        import sinabs.layers as sl
        from sinabs.activation import MembraneSubtract, SingleSpike

        self.sl = sl
        for l in layers[:-1]:
            if l["threshold"] != 1.0:
                raise ValueError("threshold must be 1")
        self.make = lambda batch: [sl.IAFSqueeze(batch_size=batch, spike_threshold=torch.tensor(1.0),
                                                 spike_fn=SingleSpike, reset_fn=MembraneSubtract(), min_v_mem=None)
                                   for _ in layers[:-1]]
        self._nodes: dict[int, list] = {}

    def _nodes_for(self, batch: int):
        if batch not in self._nodes:
            self._nodes[batch] = self.make(batch)
        nodes = self._nodes[batch]
        for i, node in enumerate(nodes):
            node.init_state_with_shape((batch, *self.out_shapes[i]))
            node.v_mem.copy_(self.v0(i, batch))
        return nodes

    @torch.inference_mode()
    def run_batched(self, x: torch.Tensor, steps: int, tchunk: int, record: bool = False):
        """Squeezed (batch*time) layout over time chunks of ``tchunk`` steps; state carries over chunks."""
        batch = x.shape[0]
        nodes = self._nodes_for(batch)
        cur0 = self.first_current(x)
        counts = [torch.zeros(batch, *s) for s in self.out_shapes[:-1]]
        v = self.v0(len(self.layers) - 1, batch)
        v_out = []
        for start in range(0, steps, tchunk):
            k = min(tchunk, steps - start)
            h = cur0.unsqueeze(1).expand(batch, k, *cur0.shape[1:]).reshape(batch * k, *cur0.shape[1:])
            for i, node in enumerate(nodes):
                s = node(h)  # (batch * k, ...), batch-major
                if record:
                    counts[i] += s.reshape(batch, k, *s.shape[1:]).sum(1)
                h = self.syn[i + 1](_flat_input(self.layers[i + 1], s))
            acc = torch.cumsum(h.reshape(batch, k, -1), dim=1) + v[:, None]
            v = acc[:, -1]
            if record:
                v_out.append(acc)
        if record:
            return [_hwc(c) for c in counts], torch.cat(v_out, 1).transpose(0, 1).numpy()
        return None

    @torch.inference_mode()
    def stream(self, x1: torch.Tensor, steps: int) -> np.ndarray:
        nodes = self._nodes_for(1)
        cur0 = self.first_current(x1)
        v = self.v0(len(self.layers) - 1, 1)
        out = torch.empty(steps, v.shape[-1])
        for t in range(steps):
            h = cur0
            for i, node in enumerate(nodes):
                h = self.syn[i + 1](_flat_input(self.layers[i + 1], node(h)))
            v = v + h
            out[t] = v[0]
        return out.numpy()


class TorchRoofline(Net):
    """T full forward passes of the same products (no dynamics), as the NumPy roofline does."""

    name = "torch_roofline"

    @torch.inference_mode()
    def run_batched(self, x: torch.Tensor, steps: int, tchunk: int, record: bool = False):
        for _ in range(steps):
            h = x
            for layer, syn in zip(self.layers, self.syn):
                h = syn(_flat_input(layer, h))
        return None

    def stream(self, x1: torch.Tensor, steps: int):
        return self.run_batched(x1, steps, 1)


PEERS = {cls.name: cls for cls in (SpikingJellyNet, SinabsNet, TorchRoofline)}


def versions() -> dict:
    import importlib.metadata as md

    return {p: md.version(p) for p in ("torch", "spikingjelly", "sinabs", "numpy")}


def check_shapes(layers: list[dict]) -> None:
    for layer in layers:
        assert math.prod(layer["out_shape_chw"]) == layer["v0"].numel(), layer["kind"]
