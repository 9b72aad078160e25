"""The paper's experiments (Figures 4-6, Table 2, the MobileNet run) as functions of :class:`Settings`.

Each returns a JSON-ready dict of every number; :mod:`.report` turns it into tables and plots. The
model variants of Figure 5/6 are:

* baseline: no sparsity fine-tuning, layer-wise normalization (99.9th percentile), V0 = 0, no optimization;
* component 1 (sparsity): :func:`anytime_snn.train.finetune.finetune` with the architecture's default lambdas;
* component 2 (scaling): optimization of H (the per-neuron firing-rate scales);
* component 3 (initialization): V0 = 0.5 as the start and optimization of V0.

An ablation keeps the coordinates of a removed component fixed (H at the normalization's, V0 at 0)
with :class:`~.stages.PinnedObjective`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ConfigError
from . import stages
from .stages import Pin

EXPERIMENTS = ("fig4", "fig5", "fig6", "table2", "mobilenet")


@dataclass(frozen=True)
class ModelSpec:
    """One network of the experiments: its data set, architecture and training epochs."""

    name: str
    dataset: str
    arch: dict
    epochs: int
    quick_arch: dict
    learning_rate: float = 0.05


MODELS = {
    "dense-mnist": ModelSpec("dense-mnist", "mnist", {"kind": "dense"}, 10,
                             {"kind": "dense", "hidden": [64, 64]}),
    "conv-mnist": ModelSpec("conv-mnist", "mnist", {"kind": "conv"}, 4,
                            {"kind": "conv", "filters": [8, "pool", 16, "pool"], "hidden": [32]}),
    "conv-fashion": ModelSpec("conv-fashion", "fashion-mnist", {"kind": "conv"}, 8,
                              {"kind": "conv", "filters": [8, "pool", 16, "pool"], "hidden": [32]}),
    "cifar10": ModelSpec("cifar10", "cifar10", {"kind": "cifar"}, 30,
                         {"kind": "cifar", "filters": [8, "pool", 16, "pool"], "hidden": [32]}),
    "mobilenet-fashion": ModelSpec("mobilenet-fashion", "fashion-mnist", {"kind": "mobilenet"}, 10,
                                   {"kind": "mobilenet", "stem_filters": 8, "blocks": [[16, 1], [32, 2]]}),
}


@dataclass
class Settings:
    """Budgets and sizes of a reproduction run (``quick``: the CI-sized defaults, see :func:`quick_settings`)."""

    out: Path
    quick: bool = False
    seed: int = 0
    timesteps: int = 50                 # MNIST-style models (paper: 50); table2 uses 100
    test_limit: int = 10000             # test images per evaluation (paper: the whole test set)
    train_limit: int | None = None      # training images for training and fine-tuning (None: all)
    epochs: int | None = None           # ANN training epochs (None: the model's)
    sparsify_epochs: int = 3
    sparsify_lambdas: tuple[float, float] | None = None  # (lambda_a, lambda_w); None: the architecture's defaults
    phases: tuple[str, ...] = ("model", "layer", "neuron")
    budgets: tuple[int, ...] = (100, 1000, 10000)   # the paper's
    subset: int = 1000                  # training images per objective evaluation
    neuron_order: str = "input-first"   # the neuron phase's sweep (OptimizeConfig.neuron_order)
    calibration_samples: int = 10000
    models: dict[str, str] = field(default_factory=dict)         # name -> existing .keras or bundle dir
    sparse_models: dict[str, str] = field(default_factory=dict)  # name -> existing fine-tuned .keras
    cifar_path: str | None = None
    only: tuple[str, ...] | None = None  # fig4/fig5: restrict to these models
    mobilenet_dataset: str = "fashion-mnist"  # mobilenet: any data set the loaders read (npz, folder: ImageNet)
    mobilenet_data_path: str | None = None
    nest_images: int = 100              # table2: test images confirmed on NEST (0: skip)
    log: object = print

    @property
    def stage_dir(self) -> Path:
        return Path(self.out) / "stages"

    def identity(self) -> dict:
        d = dataclasses.asdict(self)
        d.pop("log")
        d["out"] = str(self.out)
        return d


def quick_settings(out: Path, **overrides) -> Settings:
    """Minutes on 2 cores: tiny nets, 2000 training images, 3 epochs (fine-tuning 1), 200 test images, 20 steps, few evaluations."""
    base = dict(out=Path(out), quick=True, timesteps=20, test_limit=200, train_limit=2000, epochs=3,
                sparsify_epochs=1, phases=("model", "layer"), budgets=(6, 8), subset=100, calibration_samples=500,
                nest_images=2)
    base.update({k: v for k, v in overrides.items() if v is not None})
    return Settings(**base)


# ------------------------------------------------------------------------------------------ models


class Pipeline:
    """The cached stages of one model under one :class:`Settings` (shared by every experiment)."""

    def __init__(self, spec: ModelSpec, s: Settings, comm):
        self.data_path = s.cifar_path if spec.dataset.startswith("cifar") else None
        if spec.name == "mobilenet-fashion" and s.mobilenet_dataset != spec.dataset:
            spec = dataclasses.replace(spec, dataset=s.mobilenet_dataset)
            self.data_path = s.mobilenet_data_path
        self.spec, self.s, self.comm = spec, s, comm
        # Wall seconds of each stage this pipeline used, as measured when the stage ran (a cached stage keeps
        # the time of its run; None for a stage cached before stages recorded their time).
        self.seconds: dict[str, float | None] = {}
        # The code identities of the runs that made each stage (None: cached before stages recorded them).
        self.code: dict[str, list[dict] | None] = {}
        self.dir = s.stage_dir / (spec.name if spec.name != "mobilenet-fashion" or spec.dataset == "fashion-mnist"
                                  else f"mobilenet-{spec.dataset}")

    def _used(self, name: str, result: dict, seconds_key: str) -> None:
        self.seconds[name] = result.get(seconds_key)
        self.code[name] = result.get("code")

    def _log(self, msg):
        if self.comm.rank == 0:
            self.s.log(msg)

    def keras_model(self) -> str:
        user = self.s.models.get(self.spec.name)
        if user:
            if not str(user).endswith(".keras"):
                raise ConfigError(f"{self.spec.name}: this experiment needs a Keras model (.keras), got {user}")
            return str(user)
        from ..train import config_from_dict

        cfg = config_from_dict({"dataset": self.spec.dataset, "data_path": self.data_path,
                                "arch": self.spec.quick_arch if self.s.quick else self.spec.arch,
                                "epochs": self.s.epochs or self.spec.epochs, "learning_rate": self.spec.learning_rate,
                                "train_limit": self.s.train_limit, "seed": self.s.seed,
                                "augment_flip": self.spec.dataset.startswith("cifar")})
        r = stages.train_stage(self.dir / "train", cfg, self.comm, self._log)
        self._used("train", r, "wall_time_s")
        return r["model"]

    def sparse_model(self) -> tuple[str, dict | None]:
        user = self.s.sparse_models.get(self.spec.name)
        if user:
            return str(user), None
        lambda_a, lambda_w = self.s.sparsify_lambdas or (None, None)
        r = stages.sparsify_stage(self.dir / "sparsify", self.keras_model(), epochs=self.s.sparsify_epochs,
                                  train_limit=self.s.train_limit, test_limit=self.s.test_limit, seed=self.s.seed,
                                  lambda_a=lambda_a, lambda_w=lambda_w, comm=self.comm, log=self._log)
        self._used("sparsify", r, "wall_time_s")
        return r["model"], r

    def bundle(self, sparse: bool) -> str:
        """The converted SNN (V0 0.5 stored; evaluations and the optimizer set V0 themselves)."""
        user = self.s.models.get(self.spec.name)
        if not sparse and user and not str(user).endswith(".keras"):
            return str(user)  # an existing bundle (e.g. models/default)
        model = self.sparse_model()[0] if sparse else self.keras_model()
        name = "convert_sparse" if sparse else "convert"
        r = stages.convert_stage(self.dir / name, model, dataset=self.spec.dataset, data_path=self.data_path,
                                 calibration_samples=self.s.calibration_samples, timesteps=self.s.timesteps,
                                 comm=self.comm, log=self._log)
        self._used(name, r, "wall_time_s")
        return r["bundle"]

    def optimized(self, sparse: bool, pin: Pin | None, v0_init: float, *, dynamics: str | None = None,
                  timesteps: int | None = None, tag: str = "") -> tuple[str, dict]:
        name = "opt_" + ("sparse" if sparse else "dense") + (f"_{tag}" if tag else "")
        r = stages.optimize_stage(self.dir / name, self.bundle(sparse), dataset=self.spec.dataset,
                                  data_path=self.data_path, subset=self.s.subset, timesteps=timesteps or self.s.timesteps,
                                  phases=self.s.phases, budgets=self.s.budgets, v0_init=v0_init, pin=pin,
                                  seed=self.s.seed, comm=self.comm, dynamics=dynamics,
                                  neuron_order=self.s.neuron_order, log=self._log)
        self._used(name, r, "wall_time_s")
        return r["bundle"], r

    def evaluate(self, bundle: str, tag: str, *, v0: float | None = None, dynamics: str | None = None,
                 timesteps: int | None = None) -> dict:
        r = stages.evaluate_stage(self.dir / f"eval_{tag}", bundle, dataset=self.spec.dataset,
                                  data_path=self.data_path, test_limit=self.s.test_limit,
                                  timesteps=timesteps or self.s.timesteps, v0=v0, comm=self.comm,
                                  dynamics=dynamics, a_max_bundle=self.bundle(False), log=self._log)
        self._used(f"eval_{tag}", r, "seconds")
        return r


def _summary(ev: dict) -> dict:
    s = ev["summary"]
    return {"ann_accuracy": s["a_max"], "peak_accuracy": s["peak_accuracy"], "peak_timestep": s["peak_timestep"],
            "final_accuracy": s["final_accuracy"], "P_l": s["P_l"], "P_p": s["P_p"], "M_e": s["M_e"],
            "events_per_sample": s["events_per_sample"],
            "time_to": {k: v["timesteps"] for k, v in s["thresholds"].items()},
            "events_to": {k: v["events"] for k, v in s["thresholds"].items()}}


def _curve(ev: dict) -> dict:
    return {"accuracy": ev["accuracy"], "events_per_step": ev["events_per_step"]}


def _stages(p: Pipeline) -> dict:
    """What an experiment's results say about the stages of one model it used: wall seconds and code."""
    return {"stage_seconds": p.seconds, "stage_code": p.code}


def stage_codes(results: dict) -> dict[str, list[dict] | None]:
    """Every stage an experiment's results used, as ``"model/stage"`` -> the code identities of its runs."""
    per_model = results["models"] if "models" in results else {results["model"]: results}
    return {f"{m}/{stage}": code for m, r in per_model.items() for stage, code in r.get("stage_code", {}).items()}


def _factor(base: float, new: float) -> float | None:
    return base / new if new else None


def _variant(p: Pipeline, sparse: bool, scaling: bool, init: bool, tag: str) -> dict:
    """One combination of the three components: evaluation summary, curves and stage records."""
    rec: dict = {"components": {"sparsity": sparse, "scaling": scaling, "initialization": init}}
    if sparse:
        rec["sparsify"] = p.sparse_model()[1]
    if not scaling and not init:
        ev = p.evaluate(p.bundle(sparse), tag, v0=0.0)
    else:
        pin = None if (scaling and init) else (Pin(v0=0.0) if scaling else Pin(eta=True))
        bundle, opt = p.optimized(sparse, pin, 0.5 if init else 0.0, tag=tag)
        rec["optimization"] = opt
        ev = p.evaluate(bundle, tag)
    rec["metrics"], rec["curve"] = _summary(ev), _curve(ev)
    return rec


def _models(s: Settings, names) -> list[str]:
    out = list(names)
    if s.cifar_path and "cifar10" not in out:
        out.append("cifar10")
    if s.only:
        unknown = sorted(set(s.only) - set(MODELS))
        if unknown:
            raise ConfigError(f"--only: unknown model(s) {unknown}; known: {sorted(MODELS)}")
        out = [n for n in s.only]
    return out


def fig5(s: Settings, comm, names=("dense-mnist", "conv-mnist", "conv-fashion")) -> dict:
    """Full method vs the unoptimized baseline per model: improvement factors of P_l and P_p (paper Fig. 5)."""
    results = {}
    for name in _models(s, names):
        p = Pipeline(MODELS[name], s, comm)
        base = _variant(p, False, False, False, "baseline")
        full = _variant(p, True, True, True, "full")
        results[name] = {"baseline": base, "full": full, "improvement": {
            "P_l": _factor(base["metrics"]["P_l"], full["metrics"]["P_l"]),
            "P_p": _factor(base["metrics"]["P_p"], full["metrics"]["P_p"])}, **_stages(p)}
    return {"experiment": "fig5", "models": results,
            "paper": {"P_l_factor": "about 10x", "P_p_factor": "about 100x"}}


FIG6_VARIANTS = {  # tag: (sparsity, scaling, initialization)
    "baseline": (False, False, False), "+1 sparsity": (True, False, False), "+2 scaling": (False, True, False),
    "+3 initialization": (False, False, True), "full (1+2+3)": (True, True, True),
    "-1 sparsity": (False, True, True), "-2 scaling": (True, False, True), "-3 initialization": (True, True, False),
}


def fig6(s: Settings, comm, name: str = "conv-mnist") -> dict:
    """Addition to the baseline and ablation from the full method of the three components (paper Fig. 6)."""
    p = Pipeline(MODELS[name], s, comm)
    tags = {"baseline": "baseline", "full (1+2+3)": "full"}
    variants = {label: _variant(p, *c, tags.get(label, label.replace(" ", "_").replace("+", "add").replace("-", "ablate")))
                for label, c in FIG6_VARIANTS.items()}
    b = variants["baseline"]["metrics"]
    for v in variants.values():
        v["improvement"] = {"P_l": _factor(b["P_l"], v["metrics"]["P_l"]), "P_p": _factor(b["P_p"], v["metrics"]["P_p"])}
    return {"experiment": "fig6", "model": name, "variants": variants, **_stages(p)}


def fig4(s: Settings, comm, names=("dense-mnist", "conv-mnist")) -> dict:
    """Pareto latency with V0 = 0.5 relative to V0 = 0, unoptimized models (paper Fig. 4)."""
    results = {}
    for name in _models(s, names):
        p = Pipeline(MODELS[name], s, comm)
        e0, e5 = p.evaluate(p.bundle(False), "v0_0", v0=0.0), p.evaluate(p.bundle(False), "v0_0.5", v0=0.5)
        results[name] = {"v0_0": _summary(e0), "v0_0.5": _summary(e5), "curves": {"V0=0": _curve(e0), "V0=0.5": _curve(e5)},
                         "relative_P_l": e5["summary"]["P_l"] / e0["summary"]["P_l"] if e0["summary"]["P_l"] else None,
                         **_stages(p)}
    return {"experiment": "fig4", "models": results}


def table2(s: Settings, comm, name: str = "dense-mnist") -> dict:
    """SpiNNaker dynamics, T = 100: before and after optimizing H and V0 under them; confirmed on NEST."""
    p = Pipeline(MODELS[name], s, comm)
    steps = 100 if not s.quick else max(s.timesteps, 30)
    base = p.bundle(False)
    before = p.evaluate(base, "spinnaker_before", dynamics="spinnaker", timesteps=steps)
    opt_bundle, opt = p.optimized(False, None, 0.5, dynamics="spinnaker", timesteps=steps, tag="spinnaker")
    after = p.evaluate(opt_bundle, "spinnaker_after", dynamics="spinnaker", timesteps=steps)
    out = {"experiment": "table2", "model": name, "timesteps": steps, "optimization": opt,
           "before": _summary(before), "after": _summary(after),
           "curves": {"before": _curve(before), "after": _curve(after)},
           "spikes": {"before": _spikes(base, before), "after": _spikes(opt_bundle, after)},
           "paper": {"before": {"peak_accuracy": 0.84, "P_l": 31.7, "P_p_spikes": 4.17e3},
                     "after": {"peak_accuracy": 0.978, "P_l": 9.54, "P_p_spikes": 1.01e3}}}
    out["improvement"] = {"P_l": _factor(before["summary"]["P_l"], after["summary"]["P_l"]),
                          "P_p": _factor(before["summary"]["P_p"], after["summary"]["P_p"])}
    if s.nest_images:
        out["nest"] = {k: _nest_check(p, b, steps) for k, b in (("before", base), ("after", opt_bundle))}
    return {**out, **_stages(p)}


def _spikes(bundle_dir: str, ev: dict) -> dict:
    """Spikes per sample (total over the steps) and P_p counted in spikes, as the paper's Table 2 does for PyNN.

    Spikes per step come from the recorded per-layer firing rates times the layer sizes.
    """
    import numpy as np

    from .. import metrics
    from ..model import load_bundle

    bundle = load_bundle(bundle_dir)
    sizes = [int(np.prod(sh)) for sh, layer in zip(bundle.shapes(), bundle.layers) if layer.weighted and not layer.output]
    per_step = (np.asarray(ev["layer_firing_rates"]) * np.asarray(sizes, np.float64)[:, None]).sum(axis=0)
    return {"total": float(per_step.sum()),
            "P_p": metrics.pareto_power(np.asarray(ev["accuracy"]), per_step, ev["summary"]["a_max"])}


def _nest_check(p: Pipeline, bundle_dir: str, steps: int) -> dict:
    """Run the first images on NEST through the PyNN export and compare them with the NumPy reference
    simulator (float64, the project's oracle) spike for spike, and with our batched engine's accuracy."""
    def run(d: Path) -> dict:
        import numpy as np

        from ..convert.convert import network_input
        from ..data import load_dataset
        from ..evaluate import evaluate
        from ..export import run_on_backend
        from ..dynamics import spinnaker_dynamics
        from ..model import load_bundle
        from ..sim.reference import simulate

        bundle = spinnaker_dynamics(load_bundle(bundle_dir))
        test = load_dataset(p.spec.dataset, "test", None, limit=p.s.nest_images)
        x, labels = network_input(bundle, test.images), test.labels
        nest = run_on_backend(bundle, x, "nest", steps)
        ref = simulate(bundle, x, steps)
        ours = evaluate(bundle, x, labels, steps, a_max=1.0)
        acc_nest = (nest.predictions == labels[None, :]).mean(axis=1)
        acc_ref = (ref.predictions == labels[None, :]).mean(axis=1)
        return {"images": len(labels), "timesteps": steps,
                "spike_trains_equal": all(np.array_equal(a, b) for a, b in zip(nest.spikes, ref.spikes)),
                "predictions_equal": bool(np.array_equal(nest.predictions, ref.predictions)),
                "events_equal": bool(np.array_equal(nest.events, ref.events)),
                "accuracy_nest": float(acc_nest[-1]), "accuracy_reference": float(acc_ref[-1]),
                "accuracy_ours": float(ours.accuracy[-1]),
                "max_abs_accuracy_difference": float(np.max(np.abs(acc_nest - acc_ref))),
                "max_abs_accuracy_difference_batched_engine": float(np.max(np.abs(ours.accuracy - acc_ref))),
                "events_per_sample_nest": float(nest.events.sum(axis=0).mean()),
                "events_per_sample_reference": float(ref.events.sum(axis=0).mean()),
                "events_per_sample_ours": float(ours.events.sum()), "note": nest.note}

    digest = stages.file_digest(Path(bundle_dir))
    tag = "nest_" + digest[:8]
    r = stages.cached(p.dir / tag, {"stage": "nest", "oracle": "reference", "bundle": digest,
                                    "images": p.s.nest_images, "timesteps": steps}, run, p.comm, p._log)
    p.code[tag] = r.get("code")
    return r


def mobilenet(s: Settings, comm) -> dict:
    """The MobileNet-style net on Fashion-MNIST: full method vs baseline (the paper's ImageNet run, scaled down)."""
    out = fig5(s, comm, names=("mobilenet-fashion",))
    out["experiment"] = "mobilenet"
    out["paper"] = {"imagenet_table1": {"before": {"peak_accuracy": 0.4159, "P_l": 1568, "P_p": 1.02e10},
                                        "after": {"peak_accuracy": 0.4968, "P_l": 416, "P_p": 1.38e9}}}
    out["models"] = {k: v for k, v in out["models"].items() if k == "mobilenet-fashion"}
    return out


RUNNERS = {"fig4": fig4, "fig5": fig5, "fig6": fig6, "table2": table2, "mobilenet": mobilenet}
