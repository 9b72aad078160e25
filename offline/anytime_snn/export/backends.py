"""Everything that differs between PyNN back ends, in one place.

Each back end gets a :class:`Backend` profile: how to import it, how to set it up, which cell to use,
how our step-based dynamics (docs/simulators.md) map onto its time semantics, and its numeric limits.
The timing offsets below were measured on this project's machines with the versions pinned in
``scripts/pynn-requirements.txt`` (tests/test_export_backends.py pins them down against our reference
simulator); see docs/spinnaker.md for the derivations.

Our step t (1-based) ends at time t*dt. ``spike_step_offset``: a spike recorded at time s (ms) belongs to
our step s/dt + offset. ``v_step_offset``: the potential recorded at time s is ours after step s/dt + offset.
"""

from __future__ import annotations

import importlib
import math

import numpy as np
from dataclasses import dataclass, field

from ..errors import ConfigError

INSTALL = ".venv/bin/python -m pip install -r scripts/pynn-requirements.txt -c offline/constraints.txt"


class BackendMissing(ConfigError):
    """The PyNN back end is not installed. The message carries the install command."""


@dataclass(frozen=True)
class Backend:
    name: str
    module: str  # the PyNN module
    dist: str  # the package that provides it
    drive: str  # 'current': biases and the analog input as i_offset; 'clock': as synapses from clock sources
    tau_m: float  # "no leak": as large as the back end represents exactly (or at all)
    never_fires: float  # v_thresh of the accumulate-only output layer
    hidden_delay_offset: int = 0  # PyNN delay (steps) into a spiking layer = delay_steps + this
    output_delay_offset: int = 0  # ... into the output layer
    refractory_offset: int = 0  # tau_refrac (steps) = refractory_steps + this
    refractory_by_reset: bool = False  # one refractory step emulated by v_reset = -(constant current) x dt / cm
    preroll_steps: int = 0  # empty steps simulated before our step 1
    spike_step_offset: int = 0
    v_step_offset: int = 0
    inhibitory_sign: int = -1  # sign PyNN wants on weights of the 'inhibitory' receptor
    exact: bool = True  # reproduces our engine spike for spike (up to float rounding at threshold ties)
    setup_kwargs: dict = field(default_factory=dict)
    notes: tuple[str, ...] = ()


BACKENDS: dict[str, Backend] = {
    # NEST: iaf_psc_delta. Its constant-current propagator P30 = (1 - exp(-h/tau_m)) tau_m / C loses ~6 digits
    # for a huge tau_m (1.5e-6 error after 50 steps at tau_m = 1e10), so currents arrive as delta synapses from
    # two clock spike sources instead (exact additions; tau_m = 1e20 makes the leak factor exactly 1).
    # PyNN's NEST spike sources cannot fire at t <= min_delay, hence two empty pre-roll steps (the first clock
    # spike, at 2 ms, arrives in step 3 = our step 1). Spikes during a refractory step
    # are discarded, as in our engine. Threshold test is V >= theta, as ours.
    "nest": Backend(
        name="nest", module="pyNN.nest", dist="nest-simulator", drive="clock", tau_m=1e20, never_fires=1e12,
        preroll_steps=2, spike_step_offset=-2, v_step_offset=-2,
        setup_kwargs={"spike_precision": "on_grid"},
        notes=("NEST: IF_curr_delta (iaf_psc_delta); PyNN 0.13 lacks its variable_map for 'v' (patched)",
               "NEST: biases and analog input as delta synapses from clock sources (exact); two empty pre-roll steps",
               "NEST: full reset is not available; each sample is followed by a short flush run")),
    # Brian2: PyNN's IF_curr_delta integrates a finite tau_m with 'exact' (1 - exp(-dt/tau)) and loses ~6 digits,
    # and tests v > v_thresh; we use the same cell with the leak term removed and v >= v_thresh. A spike is
    # stamped at the start of its step (one step early). Synaptic input is added after the threshold test of the
    # step it arrives in, and before that step's reset: so our delay d is Brian2 delay d-1 into spiking layers
    # (input reaching a neuron in the step it fires is dropped by the reset, as our refractory step drops it);
    # the output layer, which never fires, keeps delay d so its recorded v lines up with ours. Brian2's own
    # refractoriness also drops synaptic input during the refractory step (one step more than our r = 1 drops), so
    # it is not used: resetting to v = -i_offset.dt/cm instead makes the step after a spike end at exactly 0, as
    # our refractory step does (r = 1 only).
    "brian2": Backend(
        name="brian2", module="pyNN.brian2", dist="brian2", drive="current", tau_m=1e20, never_fires=1e12,
        hidden_delay_offset=-1, refractory_by_reset=True, spike_step_offset=1,
        notes=("Brian2: IF_curr_delta without the leak term and with v >= v_thresh (exact integration)",
               "Brian2: synaptic delays d-1 into spiking layers; the refractory step as a reset to -i_offset.dt/cm",
               "Brian2: numpy code generation (no C++ compile); connection set-up is slow for large layers")),
    # sPyNNaker: 16.15 fixed point; tau_m above ~32000 overflows its decay constant; 30000 leaks 3.3e-5 per step.
    # Timing assumed as NEST without pre-roll (i_offset integrates from step 1); not measurable without a board.
    "spinnaker": Backend(
        name="spinnaker", module="pyNN.spiNNaker", dist="sPyNNaker", drive="current", tau_m=30000.0,
        never_fires=30000.0, inhibitory_sign=1, exact=False,
        notes=("sPyNNaker: s16.15 fixed-point potentials and currents; weights 16-bit with a per-synapse-type shift",
               "sPyNNaker: tau_m = 30000 ms (the largest safe value) leaks 3.3e-5 of V per step",
               "sPyNNaker: timing offsets assumed equal to NEST's; verify on a board (docs/spinnaker.md)")),
}

GENERIC = Backend(name="generic", module="", dist="", drive="current", tau_m=1e20, never_fires=1e12, exact=False,
                  notes=("unknown PyNN back end: NEST-like timing assumed, not validated",))

SPINNAKER_LIMITS = {
    "max_abs_potential": 32767.0,  # s16.15
    "potential_resolution": 2.0 ** -15,
    "weight_bits": 16,
    "neurons_per_core": 255,  # sPyNNaker's default ceiling for IF_curr_delta
}


def import_backend(name: str):
    """(profile, PyNN module) for 'nest', 'brian2' or 'spinnaker'; BackendMissing with the install command."""
    if name not in BACKENDS:
        raise ConfigError(f"unknown back end {name!r}; valid: {', '.join(BACKENDS)}")
    profile = BACKENDS[name]
    try:
        sim = importlib.import_module(profile.module)
    except ImportError as e:  # the module or one of its compiled parts
        raise BackendMissing(f"PyNN back end {name!r} is not available ({profile.module}: {e}); install the "
                             f"pinned back ends with: {INSTALL}") from e
    return profile, sim


def profile_for(sim) -> Backend:
    """The profile of a PyNN module object (``pyNN.nest`` ...); GENERIC for others."""
    name = getattr(sim, "__name__", "")
    for profile in BACKENDS.values():
        if name == profile.module:
            return profile
    return GENERIC


def cell_class(sim, profile: Backend):
    """The non-leaky IF cell class to use on this back end (with the back end's quirks fixed)."""
    if profile.name == "nest":
        cls = sim.IF_curr_delta
        if "v" not in getattr(cls, "variable_map", {}):  # PyNN 0.13: recording/initialising v silently fails
            cls.variable_map = {**getattr(cls, "variable_map", {}), "v": "V_m"}
        return cls
    if profile.name == "brian2":
        return _brian2_nonleaky_cell(sim)
    if not hasattr(sim, "IF_curr_delta"):
        raise ConfigError(f"{getattr(sim, '__name__', sim)} has no IF_curr_delta cell; the exporter needs it")
    return sim.IF_curr_delta


def set_weight_scale(post_population) -> float:
    """Factor for weights passed to ``Projection.set`` so they mean what they meant at creation.

    PyNN 0.13 / NEST: the creation path multiplies delta-synapse weights by the cell's ``receptor_scale``
    (1e-3, undoing the nA -> pA scaling); ``Projection.set`` forgets it, so set weights come out 1000x too large.
    """
    return float(getattr(getattr(post_population, "celltype", None), "receptor_scale", 1.0))


def weight_setter(sim, profile: Backend, post, projections):
    """A function ``set(w)`` giving the one-source (excitatory, inhibitory) clock projections into ``post`` the
    per-neuron weights ``w`` (positive parts to the first, negative to the second).

    NEST: straight on the NEST connections (PyNN's ``Projection.set`` loops over every target neuron, ~6 s
    per sample for 784 targets, and forgets the receptor_scale, see ``set_weight_scale``).
    """
    exc, inh = projections
    if profile.name == "nest":
        import nest

        def set_nest(w):
            # Fetch the connections anew every time: NEST sorts its connections when a simulation starts,
            # after which a SynapseCollection taken earlier addresses different synapses (this once sent
            # neuron 12's drive to neuron 13 from the second sample on).
            for proj, part in zip(projections, (np.maximum(w, 0), np.minimum(w, 0))):
                conns = nest.GetConnections(source=proj.pre.node_collection, target=post.node_collection,
                                            synapse_model=proj.nest_synapse_model,
                                            synapse_label=proj.nest_synapse_label)
                idx = post.id_to_index(np.asarray(conns.get("target")))
                conns.set(weight=[float(v) for v in part[idx]])
        return set_nest

    scale = set_weight_scale(post)

    def set_pynn(w):
        exc.set(weight=scale * np.maximum(w, 0).reshape(1, -1))
        inh.set(weight=scale * np.minimum(w, 0).reshape(1, -1))
    return set_pynn


def setup(sim, profile: Backend, dt: float = 1.0, *, n_layers: int = 3) -> None:
    kwargs = dict(profile.setup_kwargs)
    if profile.name == "nest":
        kwargs["t_flush"] = (n_layers + 3) * dt  # enough for every in-flight spike to arrive (delay = 1 step)
    if profile.name == "brian2":
        import brian2

        brian2.prefs.codegen.target = "numpy"
    sim.setup(timestep=dt, min_delay=dt, **kwargs)


_BRIAN2_CELL = None


def _brian2_nonleaky_cell(sim):
    global _BRIAN2_CELL
    if _BRIAN2_CELL is not None:
        return _BRIAN2_CELL
    import brian2
    from pyNN.brian2.cells import BaseNeuronGroup

    eqs = brian2.Equations("""
        dv/dt = (i_syn + i_offset + i_inj)/c_m  : volt (unless refractory)
        tau_m                   : second
        c_m                     : farad
        v_rest                  : volt
        i_offset                : amp
        i_inj                   : amp
        i_syn = 0 * amp         : amp
    """)

    class NonLeakyGroup(BaseNeuronGroup):
        def __init__(self, n, equations, **parameters):
            equations += """v_thresh : volt (constant)
                            v_reset  : volt (constant)"""
            BaseNeuronGroup.__init__(self, n, equations, "v >= v_thresh", reset="v = v_reset", **parameters)

    class IF_curr_delta_nonleaky(sim.IF_curr_delta):
        __doc__ = "IF_curr_delta with tau_m = infinity (exact) and v >= v_thresh, as our engine."

    IF_curr_delta_nonleaky.eqs = eqs
    IF_curr_delta_nonleaky.brian2_model = NonLeakyGroup
    _BRIAN2_CELL = IF_curr_delta_nonleaky
    return _BRIAN2_CELL


def check_limits(profile: Backend, layers, v0s, currents_bound: float) -> list[str]:
    """Warnings about values the back end cannot represent (only sPyNNaker has such limits here)."""
    if profile.name == "brian2":
        n = sum(len(syn) for _, syn in layers)
        return [f"{n} synapses: PyNN's Brian2 back end creates them one by one (~1 ms each here, ~{n / 60e3:.0f} min)"
                ] if n > 100_000 else []
    if profile.name != "spinnaker":
        return []
    out = []
    lim = SPINNAKER_LIMITS
    for layer, syn in layers:
        if len(syn) == 0:
            continue
        wmax = float(np.abs(syn.weight).max())
        # best case: the largest weight uses all 16 bits; sPyNNaker's ring-buffer shift can only make it coarser
        res = 2.0 ** (math.ceil(math.log2(wmax)) - lim["weight_bits"]) if wmax > 0 else 0.0
        lost = int(np.count_nonzero(np.abs(syn.weight) < res / 2))
        if lost:
            out.append(f"{layer.name}: {lost} of {len(syn)} weights are below sPyNNaker's weight resolution "
                       f"(>= {res:.3g}) and may round to zero")
        fan_in = int(syn.fan_in().max())
        if fan_in > 4096:
            out.append(f"{layer.name}: fan-in up to {fan_in}; expect many synapse cores or long row loads")
    vmax = max(float(np.max(np.abs(v))) for v in v0s) if v0s else 0.0
    if max(vmax, currents_bound) >= lim["max_abs_potential"]:
        out.append(f"potentials/currents up to {max(vmax, currents_bound):.3g} exceed sPyNNaker's s16.15 range "
                   f"(|x| < {lim['max_abs_potential']:.0f})")
    return out


def spinnaker_mapping() -> dict:
    """Cores and chips used by the last sPyNNaker run (placements per population label), and board mode."""
    from pacman.data import PacmanDataView
    from spinn_utilities.config_holder import get_config_bool

    placements = list(PacmanDataView.iterate_placemements())
    per_label: dict[str, int] = {}
    for p in placements:
        label = getattr(getattr(p.vertex, "app_vertex", None), "label", None) or p.vertex.label or "?"
        per_label[label] = per_label.get(label, 0) + 1
    return {"cores": len(placements), "chips": len({(p.x, p.y) for p in placements}),
            "cores_per_population": per_label, "virtual_board": bool(get_config_bool("Machine", "virtual_board"))}
