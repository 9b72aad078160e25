"""Reproduce one of the paper's experiments end to end and write a report with plots and a JSON of all numbers.

  anytime-snn reproduce fig5 --out runs/reproduce                   # the paper's budgets (hours to days)
  anytime-snn reproduce fig6 --out runs/reproduce --budgets 20,100 --phases model,layer --subset 300
  anytime-snn reproduce fig4 --out runs/reproduce --model dense-mnist=models/default
  anytime-snn reproduce table2 --out runs/reproduce --model dense-mnist=models/default
  anytime-snn reproduce mobilenet --out runs/reproduce --quick      # minutes: tiny nets and subsets (CI)
  .venv/bin/mpiexec -n 2 .venv/bin/anytime-snn reproduce fig5 --out runs/reproduce   # optimization on 2 ranks

Experiments: fig5 (full method vs unoptimized baseline on dense MNIST, conv MNIST, conv Fashion-MNIST and
CIFAR-10 with --cifar PATH), fig6 (addition/ablation of sparsity, scaling, initialization on conv MNIST),
fig4 (V0 = 0.5 vs 0), table2 (SpiNNaker dynamics, T = 100, before/after, confirmed on NEST), mobilenet
(the MobileNet-style net on Fashion-MNIST). Writes OUT/EXPERIMENT/{report.md, results.json, *.png}.
Every stage (training, sparsity fine-tuning, conversion, optimization, evaluation) is cached in
OUT/stages/MODEL/STAGE and skipped when its config is unchanged, so experiments sharing OUT share models
and an interrupted run continues where it stopped (the optimizer resumes from its checkpoint).
--model NAME=PATH uses an existing .keras model (or, where no fine-tuning is needed, a bundle directory)
instead of training; --sparse-model NAME=PATH an existing fine-tuned one. See docs/results.md.
"""

from __future__ import annotations

import json
import shlex
import time

HELP = "reproduce a paper experiment (fig4, fig5, fig6, table2, mobilenet): report, plots, JSON"


def _pairs(values, flag: str) -> dict[str, str]:
    from ..errors import ConfigError
    from ..reproduce import MODELS

    out = {}
    for v in values or []:
        name, sep, path = v.partition("=")
        if not sep or name not in MODELS:
            raise ConfigError(f"{flag} takes NAME=PATH with NAME one of {sorted(MODELS)}, got {v!r}")
        out[name] = path
    return out


def add_arguments(parser) -> None:
    parser.add_argument("experiment", choices=["fig4", "fig5", "fig6", "table2", "mobilenet"])
    parser.add_argument("--out", default="runs/reproduce", metavar="DIR", help="output directory (default runs/reproduce)")
    parser.add_argument("--quick", action="store_true",
                        help="CI-sized run in minutes: tiny nets, 2000 training / 200 test images, 3 epochs, "
                             "20 steps, phases model,layer with budgets 6,8")
    parser.add_argument("--seed", type=int, help="training, fine-tuning, subset and NLopt seed (default 0)")
    parser.add_argument("--phases", help="optimization phases (default model,layer,neuron; quick model,layer)")
    parser.add_argument("--budgets", help="evaluations per phase (default 100,1000,10000 as the paper; quick 6,8)")
    parser.add_argument("--subset", type=int, help="training images per objective evaluation (default 1000)")
    parser.add_argument("--neuron-order", choices=["input-first", "output-first"],
                        help="the neuron phase's sweep: hidden layer 1 first (default, as the paper's vector) or "
                             "the last hidden layer first (docs/optimize.md)")
    parser.add_argument("--timesteps", type=int, help="simulation steps (default 50; table2 always 100 unless quick)")
    parser.add_argument("--test-limit", type=int, help="test images per evaluation (default 10000)")
    parser.add_argument("--train-limit", type=int, help="training images for training and fine-tuning (default all)")
    parser.add_argument("--epochs", type=int, help="ANN training epochs (default: per model)")
    parser.add_argument("--sparsify-epochs", type=int, help="sparsity fine-tuning epochs (default 3)")
    parser.add_argument("--sparsify-lambdas", metavar="A,W", help="sparsity fine-tuning lambda_a,lambda_w (default: "
                                                                  "the architecture's, docs/sparsity.md)")
    parser.add_argument("--calibration-samples", type=int, help="images for the conversion's normalization")
    parser.add_argument("--nest-images", type=int, help="table2: test images run on NEST (default 100; 0 skips)")
    parser.add_argument("--model", action="append", metavar="NAME=PATH",
                        help="use an existing model: dense-mnist, conv-mnist, conv-fashion, cifar10, mobilenet-fashion")
    parser.add_argument("--sparse-model", action="append", metavar="NAME=PATH",
                        help="use an existing sparsity-fine-tuned .keras model for NAME")
    parser.add_argument("--only", metavar="NAME,...", help="fig4/fig5: run only these models (default: all of "
                        "the experiment's)")
    parser.add_argument("--dataset", help="mobilenet: data set (default fashion-mnist; npz or folder for an "
                        "ImageNet subset, see docs/results.md)")
    parser.add_argument("--data-path", help="mobilenet: location of the npz file or image folder")
    parser.add_argument("--cifar", metavar="PATH", help="CIFAR-10 python batches: adds cifar10 to fig4/fig5")
    parser.add_argument("--record", metavar="PATH", help="also write results.json with its provenance (the command "
                                                         "as typed, commit, machine, load, wall time) to PATH, e.g. "
                                                         "results/NAME.json, for docs rendered from records")


def settings_from_args(args):
    from pathlib import Path

    from ..errors import ConfigError
    from ..reproduce import Settings, quick_settings

    over = {"seed": args.seed, "subset": args.subset, "timesteps": args.timesteps, "test_limit": args.test_limit,
            "train_limit": args.train_limit, "epochs": args.epochs, "sparsify_epochs": args.sparsify_epochs,
            "calibration_samples": args.calibration_samples, "nest_images": args.nest_images,
            "neuron_order": args.neuron_order, "cifar_path": args.cifar, "mobilenet_dataset": args.dataset,
            "mobilenet_data_path": args.data_path,
            "only": tuple(n.strip() for n in args.only.split(",") if n.strip()) if args.only else None}
    if args.phases:
        over["phases"] = tuple(p.strip() for p in args.phases.split(",") if p.strip())
    if args.sparsify_lambdas:
        try:
            over["sparsify_lambdas"] = tuple(float(v) for v in args.sparsify_lambdas.split(","))
        except ValueError:
            over["sparsify_lambdas"] = ()
        if len(over["sparsify_lambdas"]) != 2:
            raise ConfigError(f"--sparsify-lambdas must be two numbers A,W, got {args.sparsify_lambdas!r}")
    if args.budgets:
        try:
            over["budgets"] = tuple(int(b) for b in args.budgets.split(",") if b.strip())
        except ValueError:
            raise ConfigError(f"--budgets must be comma-separated whole numbers, got {args.budgets!r}") from None
    for k in ("subset", "timesteps", "test_limit", "train_limit", "epochs", "sparsify_epochs", "calibration_samples"):
        if over.get(k) is not None and over[k] < 1:
            raise ConfigError(f"--{k.replace('_', '-')} must be >= 1, got {over[k]}")
    models, sparse = _pairs(args.model, "--model"), _pairs(args.sparse_model, "--sparse-model")
    for name, path in {**models, **sparse}.items():
        if not Path(path).exists():
            raise ConfigError(f"{name}: {path} does not exist")
    over = {k: v for k, v in over.items() if v is not None}
    if args.quick:
        s = quick_settings(Path(args.out), **over)
    else:
        s = Settings(out=Path(args.out), **over)
    s.models, s.sparse_models = models, sparse
    if len(s.phases) != len(s.budgets):
        raise ConfigError(f"give one budget per phase: phases {','.join(s.phases)}, budgets "
                          f"{','.join(map(str, s.budgets))} (--phases and --budgets)")
    return s


def run(args) -> int:
    from ..optimize import world
    from ..reproduce import run_experiment
    from ..train import configure_tensorflow

    comm = world()
    configure_tensorflow(2 if comm.size == 1 else 1)
    s = settings_from_args(args)
    record = None
    if args.record and comm.rank == 0:
        from ..provenance import Record

        record = Record(command="anytime-snn " + shlex.join(getattr(args, "argv", [])))
    t0 = time.perf_counter()
    run_experiment(args.experiment, s, comm)
    if comm.rank == 0:
        print(f"{args.experiment}: wrote {s.out}/{args.experiment}/report.md, results.json and plots "
              f"in {time.perf_counter() - t0:.0f} s")
        if record is not None:
            from ..reproduce.experiments import stage_codes

            results = json.loads((s.out / args.experiment / "results.json").read_text())
            record.finish(results, parts=stage_codes(results))  # stages cached or resumed from other code
            record.write(args.record)
    return 0
