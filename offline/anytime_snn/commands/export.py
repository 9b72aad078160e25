"""Export a bundle to a PyNN simulator (NEST, Brian2, sPyNNaker) and run MNIST-style images through it.

  anytime-snn export models/default --backend nest --images 100 --timesteps 100
  anytime-snn export models/default --backend spinnaker             # map only (virtual board: see docs)

The bundle is switched to SpiNNaker dynamics (zero reset, 1 refractory step, 1-step synaptic delay) unless
--dynamics as-is. Prints the mapping summary and, with --images N > 0, accuracy over time, spikes and
events; with --compare also our own engine's run of the same images (spike trains must agree on NEST and
Brian2). Writes export.json to --out. sPyNNaker reads ~/.spynnaker.cfg (docs/spinnaker.md).
"""

from __future__ import annotations

import json
import shlex
import sys
import time
from pathlib import Path

HELP = "run a bundle on NEST, Brian2 or SpiNNaker through PyNN (SpiNNaker dynamics); mapping summary"


def add_arguments(parser) -> None:
    parser.add_argument("model", help="bundle directory")
    parser.add_argument("--backend", required=True, choices=["nest", "brian2", "spinnaker"])
    parser.add_argument("--images", type=int, default=None,
                        help="test images to run (default 20; spinnaker: 0 = map only)")
    parser.add_argument("--dataset", default="mnist", help="data set for the images (default mnist)")
    parser.add_argument("--data-path", help="location of CIFAR batches, an npz file or an image folder")
    parser.add_argument("--timesteps", type=int, help="default: the bundle's")
    parser.add_argument("--dynamics", choices=["spinnaker", "as-is"], default="spinnaker",
                        help="switch the bundle to SpiNNaker dynamics first (default) or export it unchanged")
    parser.add_argument("--compare", action="store_true", help="also run our reference engine and compare")
    parser.add_argument("--neurons-per-core", type=int, help="sPyNNaker: cap on neurons per core")
    parser.add_argument("--out", default="runs/export", help="output directory (default runs/export)")
    parser.add_argument("--record", help="also write a provenance record (command, commit, model hash, machine, "
                                         "load; the summary, run and comparison) to this JSON file, e.g. "
                                         "results/NAME.json, for docs rendered from records")


def run(args) -> int:
    from ..errors import ConfigError
    from ..export import export, import_backend
    from ..dynamics import spinnaker_dynamics
    from ..model import load_bundle
    from ..provenance import Record

    bundle = load_bundle(args.model)
    provenance = Record(args.model, command="anytime-snn " + shlex.join(getattr(args, "argv", []))) \
        if args.record else None
    if args.dynamics == "spinnaker":
        bundle = spinnaker_dynamics(bundle)
    n_images = args.images if args.images is not None else (0 if args.backend == "spinnaker" else 20)
    if n_images < 0:
        raise ConfigError(f"--images must be >= 0, got {n_images}")
    T = args.timesteps or bundle.timesteps
    if T < 1:
        raise ConfigError(f"--timesteps must be >= 1, got {T}")
    _, sim = import_backend(args.backend)  # BackendMissing (a ConfigError) names the install command

    x = labels = None
    if n_images:
        from ..convert.convert import network_input
        from ..data import load_dataset

        data = load_dataset(args.dataset, "test", args.data_path, limit=n_images)
        x, labels = network_input(bundle, data.images), data.labels
    print(f"building {Path(args.model).name} on {args.backend} ({T} steps of 1 ms)", flush=True)
    net = export(bundle, sim, timesteps=T, neurons_per_core=args.neurons_per_core,
                 log=lambda m: print(m, flush=True))
    summary = net.summary()
    print(f"mapped {summary['neurons']} neurons, {summary['synapses']} synapses in {summary['build_seconds']:.1f} s"
          f" (drive: {summary['drive']})")
    for note in summary["notes"]:
        print(f"  note: {note}")
    record = {"model": str(args.model), "dynamics": args.dynamics, "summary": summary}
    try:
        if args.backend == "spinnaker" and (n_images == 0 or _virtual_board()):
            mapping = net.map(x)
            record["mapping"] = mapping
            print(f"sPyNNaker mapping: {mapping['cores']} cores on {mapping['chips']} chips "
                  f"({'virtual board' if mapping['virtual_board'] else 'board'}, {mapping['seconds']:.1f} s)")
            for label, n in mapping["cores_per_population"].items():
                print(f"  {label}: {n} cores")
            if n_images and mapping["virtual_board"]:
                print("virtual board: no spikes are simulated; run on a real board for results")
        elif n_images:
            t0 = time.perf_counter()
            res = net.run(x, progress=_progress)
            print(file=sys.stderr)
            record["run"] = _run_record(res, labels)
            s = record["run"]
            print(f"{n_images} images x {T} steps on {args.backend} in {time.perf_counter() - t0:.1f} s")
            print(f"accuracy at t={T}: {s['final_accuracy'] * 100:.2f} %, peak {s['peak_accuracy'] * 100:.2f} % "
                  f"at t={s['peak_timestep']}; spikes/sample {s['spikes_per_sample']:.1f}, "
                  f"events/sample {s['events_per_sample']:.1f}")
            print(f"  ({res.note})")
            if args.compare:
                record["compare"] = _compare(bundle, x, T, res)
                c = record["compare"]
                print(f"our engine: same spike trains: {c['spike_trains_equal']}, same predictions at every step: "
                      f"{c['predictions_equal']}, max |v_out difference| {c['max_abs_v_out_difference']:.3g}")
    finally:
        net.end()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "export.json").write_text(json.dumps(record, indent=1, default=_json_default))
    print(f"wrote {out}/export.json")
    if provenance is not None:
        provenance.finish(json.loads(json.dumps(
            {**record, "backend": args.backend, "images": n_images, "timesteps": T,
             "run": {k: v for k, v in record.get("run", {}).items() if k != "events_per_step"}},
            default=_json_default)))
        provenance.write(args.record)
    return 0


def _progress(i: int, n: int) -> None:
    print(f"\r  sample {i}/{n}", end="", file=sys.stderr, flush=True)


def _virtual_board() -> bool:
    try:
        from spinn_utilities.config_holder import get_config_bool

        return bool(get_config_bool("Machine", "virtual_board"))
    except Exception:  # config not loaded yet: export() loads it; asked again after setup
        return False


def _run_record(res, labels) -> dict:
    import numpy as np

    acc = (res.predictions == np.asarray(labels)[None, :]).mean(axis=1)
    return {"accuracy": acc.tolist(), "final_accuracy": float(acc[-1]), "peak_accuracy": float(acc.max()),
            "peak_timestep": int(acc.argmax()) + 1,
            "spikes_per_sample": float(sum(s.sum() for s in res.spikes) / res.v_out.shape[1]),
            "events_per_sample": float(res.events.sum() / res.v_out.shape[1]),
            "events_per_step": res.events.mean(axis=1).tolist(),
            "input_events_per_sample": float(res.input_events.mean()), "seconds": res.seconds, "note": res.note}


def _compare(bundle, x, T, res) -> dict:
    import numpy as np

    from ..sim.reference import simulate

    ref = simulate(bundle, x, T)
    return {"spike_trains_equal": all(np.array_equal(a, b) for a, b in zip(res.spikes, ref.spikes)),
            "predictions_equal": bool(np.array_equal(res.predictions, ref.predictions)),
            "events_equal": bool(np.array_equal(res.events, ref.events)),
            "max_abs_v_out_difference": float(np.abs(res.v_out - ref.v_out).max())}


def _json_default(o):
    import numpy as np

    if isinstance(o, (np.integer, np.floating)):
        return o.item()
    if isinstance(o, (tuple, np.ndarray)):
        return list(o)
    raise TypeError(type(o).__name__)
