"""Build a bundle as a PyNN network on any back end, run it sample by sample, decode it like our engines.

Mapping (docs/spinnaker.md has the derivation):

* one population per weighted layer, non-leaky IF neurons (``IF_curr_delta``: v_rest = v_reset = 0,
  v_thresh = the layer's threshold, tau_refrac = refractory steps, cm = 1 nF, tau_m "infinite");
  the output layer never fires (huge threshold) and its recorded v *is* the accumulated output;
* the synapses of every non-first weighted layer as explicit (pre, post, weight) lists with TensorFlow's
  padding, split into an excitatory (w > 0) and an inhibitory (w < 0) projection; delay = delay steps;
* **encoder**: the analog input is not turned into spikes. The first layer's synaptic input W.x is computed
  on the host once per sample (as every engine of ours does) and injected as a constant current together
  with the bias: i_offset = W.x + b. Our engine delays that input by one step (the bias is not delayed);
  starting V at V0 - W.x makes the current-driven neuron identical from step 1 on. Hidden biases are
  i_offset = b. On NEST, whose constant-current integration is inexact for huge tau_m, the same currents
  arrive as delta synapses from two clock spike sources (see backends.py);
* decoding: the prediction at step t is argmax of the output population's v after step t (accumulated
  output, never reset), ties to the lowest index;
* events: back ends report spikes only; events = spikes x non-zero outgoing synapses of the spiking neuron,
  attributed to the spike's step (docs/simulators.md), computed here from the recorded spikes.
"""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass, field, replace

import numpy as np

from ..errors import ConfigError
from ..model.bundle import Bundle
from ..model.layers import output_shape
from ..sim import ops
from .backends import Backend, cell_class, check_limits, profile_for, setup, spinnaker_mapping, weight_setter
from .connectivity import layer_synapses, position_index


@dataclass
class SampleRecord:
    spikes: list[np.ndarray]  # per hidden layer: (T, n) bool, our step t at row t-1
    v_out: np.ndarray  # (T, C) accumulated output after each step


@dataclass
class ExportRun:
    """Results of running samples through the exported network."""

    backend: str
    timesteps: int
    spikes: list[np.ndarray]  # per hidden layer: (T, N, n) bool spike trains (same layout as ReferenceResult)
    v_out: np.ndarray  # (T, N, C)
    events: np.ndarray  # (T, N) synaptic events caused by the spikes of step t
    input_events: np.ndarray  # (N,) host-side: non-zero inputs x their non-zero first-layer synapses
    seconds: float
    note: str = "events = recorded spikes x non-zero outgoing synapses (the back end reports spikes only)"

    @property
    def predictions(self) -> np.ndarray:
        """(T, N) argmax of the accumulated output after each step."""
        return np.argmax(self.v_out, axis=-1)

    def spike_counts(self) -> list[np.ndarray]:
        return [s.sum(axis=0) for s in self.spikes]


@dataclass
class LayerMap:
    name: str
    kind: str
    shape: tuple[int, ...]
    neurons: int
    synapses: int  # incoming synapses (0 for the first layer: it is current-driven)
    excitatory: int
    inhibitory: int
    max_fan_in: int
    output: bool


@dataclass
class ExportedNetwork:
    bundle: Bundle
    sim: object
    profile: Backend
    timesteps: int
    dt: float
    populations: list  # one per weighted layer
    layer_maps: list[LayerMap]
    first_weights: object  # the first weighted layer (its W.x is computed on the host)
    first_in_shape: tuple  # its input shape (after any flatten or zero padding)
    fanouts: list[np.ndarray]  # fanouts[l]: outgoing non-zero synapses of hidden layer l's neurons
    input_fanout: np.ndarray  # per network input value (zero padding has no synapses of its own)
    v0: list[np.ndarray]
    bias: list[np.ndarray]
    clocks: dict = field(default_factory=dict)  # NEST: the clock projections
    warnings: list[str] = field(default_factory=list)
    build_seconds: float = 0.0
    first_index: np.ndarray | None = None  # input value behind each first-layer input position (-1: padding)
    _runs: int = 0

    # ------------------------------------------------------------------------------------------------ running
    def _first_current(self, x: np.ndarray) -> np.ndarray:
        """W.x of the first weighted layer for one sample (flat, float64)."""
        layer = replace(self.first_weights, weights=np.asarray(self.first_weights.weights, np.float64))
        x = np.asarray(x, np.float64).reshape(-1)
        if self.first_index is not None:  # zero padding on the analog input
            x = np.where(self.first_index >= 0, x[np.maximum(self.first_index, 0)], 0.0)
        return ops.linear(layer, x.reshape((1, *self.first_in_shape))).reshape(-1)

    def _prepare_sample(self, x: np.ndarray) -> None:
        drive = self._first_current(x)
        first = self.populations[0]
        d = self.bundle.weighted_layers[0].neuron.delay_steps
        if self.profile.drive == "clock":
            self.clocks["input"](drive)
            first.initialize(v=self.v0[0])
            for pop, v0 in zip(self.populations[1:], self.v0[1:]):
                pop.initialize(v=v0)
        else:
            first.set(i_offset=drive + self.bias[0])
            if self.profile.refractory_by_reset:
                first.set(v_reset=-(drive + self.bias[0]) * self.dt)
            first.initialize(v=self.v0[0] - d * drive)
            for pop, v0 in zip(self.populations[1:], self.v0[1:]):
                pop.initialize(v=v0)

    def run_sample(self, x: np.ndarray) -> SampleRecord:
        """Run one sample for ``timesteps`` steps (then reset) and read it back in our step convention."""
        sim, p, T = self.sim, self.profile, self.timesteps
        if self._runs:
            sim.reset()
        self._prepare_sample(x)
        sim.run((T + p.preroll_steps) * self.dt)
        self._runs += 1
        spikes = []
        for pop in self.populations[:-1]:
            seg = pop.get_data("spikes", clear=True).segments[-1]
            s = np.zeros((T, pop.size), bool)
            for st in seg.spiketrains:
                steps = np.rint(np.asarray(st.magnitude) / self.dt).astype(np.int64) + p.spike_step_offset
                ok = (steps >= 1) & (steps <= T)
                s[steps[ok] - 1, int(st.annotations["source_index"])] = True
            spikes.append(s)
        seg = self.populations[-1].get_data("v", clear=True).segments[-1]
        sig = seg.filter(name="v")[0]
        times = np.rint(np.asarray(sig.times.rescale("ms").magnitude) / self.dt).astype(np.int64) + p.v_step_offset
        v = np.asarray(sig.magnitude, np.float64)
        channels = np.asarray(sig.array_annotations.get("channel_index", np.arange(v.shape[1])))
        v = v[:, np.argsort(channels)]
        rows = {int(t): i for i, t in enumerate(times)}
        missing = [t for t in range(1, T + 1) if t not in rows]
        if missing:
            raise RuntimeError(f"{p.name}: no output potential recorded for steps {missing[:5]}...")
        v_out = v[[rows[t] for t in range(1, T + 1)]]
        return SampleRecord(spikes, v_out)

    def run(self, x: np.ndarray, progress=None) -> ExportRun:
        """Run every sample of ``x`` (N, *input_shape); ``progress(i, n)`` is called after each sample."""
        x = np.asarray(x)
        if x.shape[1:] != tuple(self.bundle.input.shape):
            raise ConfigError(f"inputs must have shape (N, {tuple(self.bundle.input.shape)}), got {x.shape}")
        t0 = time.perf_counter()
        records = []
        for i, xi in enumerate(x):
            records.append(self.run_sample(xi))
            if progress is not None:
                progress(i + 1, len(x))
        spikes = [np.stack([r.spikes[l] for r in records], axis=1) for l in range(len(self.populations) - 1)]
        v_out = np.stack([r.v_out for r in records], axis=1)
        events = np.zeros((self.timesteps, len(x)), np.int64)
        for s, f in zip(spikes, self.fanouts):
            events += s.astype(np.int64) @ f
        input_events = (x.reshape(len(x), -1) != 0).astype(np.int64) @ self.input_fanout
        return ExportRun(self.profile.name, self.timesteps, spikes, v_out, events, input_events,
                         time.perf_counter() - t0)

    def map(self, x: np.ndarray | None = None) -> dict:
        """Run the first sample (or zeros) once without reading results back: on sPyNNaker this partitions,
        places, routes and generates data (on a virtual board nothing more happens). Returns the mapping."""
        t0 = time.perf_counter()
        if x is None:
            x = np.zeros((1, *self.bundle.input.shape))
        if self._runs:
            self.sim.reset()
        self._prepare_sample(np.asarray(x)[0])
        self.sim.run((self.timesteps + self.profile.preroll_steps) * self.dt)
        self._runs += 1
        out = {"seconds": round(time.perf_counter() - t0, 3)}
        if self.profile.name == "spinnaker":
            out.update(spinnaker_mapping())
        return out

    def end(self) -> None:
        self.sim.end()

    # ------------------------------------------------------------------------------------------------ summary
    def summary(self) -> dict:
        return {
            "backend": self.profile.name,
            "dt_ms": self.dt,
            "timesteps": self.timesteps,
            "drive": self.profile.drive,
            "exact": self.profile.exact,
            "layers": [m.__dict__ for m in self.layer_maps],
            "neurons": sum(m.neurons for m in self.layer_maps),
            "synapses": sum(m.synapses for m in self.layer_maps),
            "build_seconds": round(self.build_seconds, 3),
            "notes": list(self.profile.notes),
            "warnings": list(self.warnings),
        }


def _clock_projections(sim, clock, pop, weights: np.ndarray, dt: float, label: str):
    """A clock source to every neuron of ``pop`` with per-neuron weights: (excitatory, inhibitory) projections."""
    out = []
    for receptor, w in (("excitatory", np.maximum(weights, 0)), ("inhibitory", np.minimum(weights, 0))):
        out.append(sim.Projection(clock, pop, sim.AllToAllConnector(),
                                  sim.StaticSynapse(weight=w.reshape(1, -1).copy(), delay=dt),
                                  receptor_type=receptor, label=f"{label}_{receptor}"))
    return tuple(out)


def _check_structure(bundle: Bundle) -> None:
    """Refuse what the PyNN mapping does not build (it would otherwise skip it and give a wrong network)."""
    for layer in bundle.layers:
        if layer.kind == "max_pool2d":
            raise ConfigError(f"layer {layer.name!r}: the spiking max pool (per-frame spike counts per window) has no "
                              "PyNN cell; export a model that uses average pooling (AveragePooling2D converts to a "
                              "depthwise convolution) instead")
        if layer.weighted and layer.skip is not None:
            raise ConfigError(f"layer {layer.name!r} has a residual input from {layer.skip!r}; residual joins are not "
                              "exported to PyNN yet (simulate with the TF or streaming engine)")


def _check_dynamics(bundle: Bundle) -> None:
    _check_structure(bundle)
    layers = bundle.weighted_layers
    for layer in layers:
        n = layer.neuron
        if not layer.output and n.reset != "zero":
            raise ConfigError(f"layer {layer.name!r} resets by {n.reset!r}; PyNN cells reset to a value, so export "
                              "needs reset 'zero' (SpiNNaker dynamics: bundle.with_neuron(NeuronConfig.spinnaker()), "
                              "or --dynamics spinnaker on the command line)")
        if n.delay_steps < 1:
            raise ConfigError(f"layer {layer.name!r} has delay_steps={n.delay_steps}; PyNN synapses need a delay of at "
                              "least one step (SpiNNaker dynamics has 1)")
        if not layer.output and n.refractory_steps < 1:
            raise ConfigError(f"layer {layer.name!r} has refractory_steps=0; the export needs >= 1 (SpiNNaker "
                              "dynamics has 1: it makes input arriving in the step after a spike irrelevant, which "
                              "is what lets every back end order reset and synaptic input the same way)")
    if len(layers) < 2:
        raise ConfigError("the exporter needs at least one hidden (spiking) layer before the output layer")
    if layers[0].neuron.delay_steps != 1:
        raise ConfigError(f"the first layer's delay must be 1 step for the current encoder, got "
                          f"{layers[0].neuron.delay_steps}")


def export(bundle: Bundle, sim, *, timesteps: int | None = None, dt: float = 1.0, record_spikes: bool = True,
           neurons_per_core: int | None = None, log=None) -> ExportedNetwork:
    """Build ``bundle`` (SpiNNaker dynamics: zero reset, refractory >= 1, delay >= 1) on the PyNN module ``sim``.

    Calls ``sim.setup`` (dt = min delay = ``dt`` ms) with the back end's settings; call ``.end()`` when done.
    ``neurons_per_core`` (sPyNNaker only) caps the atoms of every population placed on one core.
    """
    t0 = time.perf_counter()
    _check_dynamics(bundle)
    profile = profile_for(sim)
    if profile.refractory_by_reset and any(l.neuron.refractory_steps != 1 for l in bundle.weighted_layers
                                           if not l.output):
        raise ConfigError(f"on {profile.name} the exporter emulates exactly one refractory step; the bundle has "
                          f"{sorted({l.neuron.refractory_steps for l in bundle.weighted_layers if not l.output})}")
    T = int(timesteps or bundle.timesteps)
    if T < 1:
        raise ConfigError(f"timesteps must be >= 1, got {T}")
    log = log or (lambda msg: None)
    if profile.name == "generic":
        warnings.warn(f"{getattr(sim, '__name__', sim)}: unknown PyNN back end; timing not validated")

    shape = tuple(bundle.input.shape)
    layers = []
    for layer in bundle.layers:
        out = output_shape(layer, shape)
        if layer.weighted:
            layers.append((layer, shape, out))
        shape = out
    weighted = [l for l, _, _ in layers]
    positions = position_index(bundle.layers, tuple(bundle.input.shape))
    n_layers = len(layers)
    setup(sim, profile, dt, n_layers=n_layers)
    if profile.name == "spinnaker" and neurons_per_core:
        sim.set_number_of_neurons_per_core(sim.IF_curr_delta, neurons_per_core)
    cell = cell_class(sim, profile)

    v0s = [np.broadcast_to(np.asarray(l.v0, np.float64), out).reshape(-1).copy() for l, _, out in layers]
    biases = [np.broadcast_to(np.asarray(l.bias, np.float64), out).reshape(-1).copy() for l, _, out in layers]
    pops, maps, fanouts, syn_lists = [], [], [], []
    for i, (layer, in_shape, out) in enumerate(layers):
        n = layer.neuron
        refractory = (0 if layer.output or profile.refractory_by_reset
                      else n.refractory_steps + profile.refractory_offset)
        v_reset = -biases[i] * dt if profile.refractory_by_reset and not layer.output else 0.0
        params = dict(v_rest=0.0, v_reset=v_reset, cm=1.0, tau_m=profile.tau_m,
                      v_thresh=profile.never_fires if layer.output else float(n.threshold),
                      tau_refrac=float(refractory * dt), i_offset=biases[i] if profile.drive == "current" else 0.0)
        pop = sim.Population(math.prod(out), cell(**params), initial_values={"v": v0s[i]}, label=layer.name)
        if layer.output:
            pop.record("v")
        elif record_spikes:
            pop.record("spikes")
        pops.append(pop)
        if i == 0:
            maps.append(LayerMap(layer.name, layer.kind, out, pop.size, 0, 0, 0, 0, layer.output))
            continue
        syn = layer_synapses(layer, in_shape).through(positions[i], pops[i - 1].size)
        syn_lists.append((layer, syn))
        fanouts.append(syn.fan_out())
        delay = (n.delay_steps + (profile.output_delay_offset if layer.output else profile.hidden_delay_offset)) * dt
        exc, inh = syn.split()
        for part, receptor, sign in ((exc, "excitatory", 1), (inh, "inhibitory", profile.inhibitory_sign)):
            if len(part) == 0:
                continue
            w = part.weight if sign < 0 else np.abs(part.weight)
            conn = np.column_stack([part.pre, part.post, w, np.full(len(part), delay)])
            sim.Projection(pops[i - 1], pop, sim.FromListConnector(conn, column_names=["weight", "delay"]),
                           sim.StaticSynapse(), receptor_type=receptor, label=f"{layer.name}_{receptor}")
        maps.append(LayerMap(layer.name, layer.kind, out, pop.size, len(syn), len(exc), len(inh),
                             int(syn.fan_in().max()) if len(syn) else 0, layer.output))
        log(f"  {layer.name}: {pop.size} neurons, {len(syn)} synapses ({len(exc)} exc, {len(inh)} inh)")

    clocks = {}
    if profile.drive == "clock":
        # Our step t is the back end's step t + preroll; a clock spike at time s reaches its targets at step s + 1
        # (delay 1 step), i.e. our step s + 1 - preroll.
        pr = profile.preroll_steps
        bias_times = (np.arange(1, T + 1) + pr - 1) * dt  # reaches our steps 1..T
        d0 = weighted[0].neuron.delay_steps
        input_times = (np.arange(d0 + 1, T + 1) + pr - 1) * dt  # reaches our steps d0+1..T
        bias_clock = sim.Population(1, sim.SpikeSourceArray(spike_times=bias_times), label="bias_clock")
        input_clock = sim.Population(1, sim.SpikeSourceArray(spike_times=input_times), label="input_clock")
        for i, pop in enumerate(pops):
            _clock_projections(sim, bias_clock, pop, biases[i], dt, f"{weighted[i].name}_bias")
        clocks["input"] = weight_setter(sim, profile, pops[0],
                                        _clock_projections(sim, input_clock, pops[0], np.zeros(pops[0].size), dt,
                                                           "input_drive"))

    first = weighted[0]
    fan = ops.fanout(first, layers[0][1]).reshape(-1)
    first_index = positions[0]
    input_fanout = np.zeros(math.prod(bundle.input.shape), np.int64)
    input_fanout[first_index[first_index >= 0]] = fan[first_index >= 0]
    bound = max(float(np.abs(b).max()) for b in biases) + float(np.abs(first.weights).sum(axis=tuple(
        range(first.weights.ndim - 1))).max()) * max(abs(bundle.input.value_range[0]), abs(bundle.input.value_range[1]))
    warns = check_limits(profile, syn_lists, v0s, bound)
    for w in warns:
        log(f"  warning: {w}")
    net = ExportedNetwork(bundle=bundle, sim=sim, profile=profile, timesteps=T, dt=dt, populations=pops,
                          layer_maps=maps, first_weights=first, first_in_shape=layers[0][1], fanouts=fanouts,
                          input_fanout=input_fanout, first_index=first_index,
                          v0=v0s, bias=biases, clocks=clocks, warnings=warns)
    net.build_seconds = time.perf_counter() - t0
    return net
