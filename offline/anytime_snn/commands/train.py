"""Train an ANN (Keras 3, SGD with momentum) and save it as .keras plus a JSON record.

Examples:
  anytime-snn train --arch dense --dataset mnist --out runs/dense/model.keras
  anytime-snn train --config my.yaml --epochs 5 --out runs/quick/model.keras

The JSON record (same name, .json) holds test and validation accuracy, wall time, the data hashes,
the full config and library versions. Flags override the config file, which overrides the defaults
of the architecture (see the docs for every key).
"""

from __future__ import annotations

import shlex
import sys

HELP = "train an ANN (dense/conv MNIST, CIFAR-style, MobileNet-style) and save .keras + JSON record"

_FLAGS = {  # flag dest -> config key
    "dataset": "dataset", "data_path": "data_path", "epochs": "epochs", "batch_size": "batch_size",
    "learning_rate": "learning_rate", "momentum": "momentum", "weight_decay": "weight_decay",
    "augment_shift": "augment_shift", "validation_fraction": "validation_fraction", "seed": "seed",
    "threads": "threads", "train_limit": "train_limit", "test_limit": "test_limit", "input_mean": "input_mean",
    "input_std": "input_std", "schedule": "schedule",
}


def add_arguments(parser) -> None:
    parser.add_argument("--config", metavar="FILE", help="YAML or JSON training config")
    parser.add_argument("--arch", choices=["dense", "conv", "cifar", "mobilenet"],
                        help="architecture (its default layout; a config file can change it)")
    parser.add_argument("--out", required=True, metavar="FILE.keras", help="where to save the trained model")
    parser.add_argument("--dataset", help="mnist, fashion-mnist, cifar10, cifar100, npz or folder")
    parser.add_argument("--data-path", help="location of CIFAR batches, an npz file or an image folder")
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--learning-rate", type=float)
    parser.add_argument("--momentum", type=float)
    parser.add_argument("--schedule", choices=["cosine", "constant"])
    parser.add_argument("--weight-decay", type=float)
    parser.add_argument("--augment-shift", type=int, help="random translation in pixels (0 = none)")
    parser.add_argument("--flip", action="store_true", help="random horizontal flips (for CIFAR)")
    parser.add_argument("--validation-fraction", type=float, help="held-out share of the training split")
    parser.add_argument("--input-mean", type=float, help="network input = (pixel01 - mean) / std")
    parser.add_argument("--input-std", type=float)
    parser.add_argument("--train-limit", type=int, help="use only the first N training examples")
    parser.add_argument("--test-limit", type=int, help="evaluate on the first N test examples")
    parser.add_argument("--seed", type=int)
    parser.add_argument("--threads", type=int, help="TensorFlow threads (default 2)")
    parser.add_argument("--quiet", action="store_true", help="one line per epoch instead of a progress bar")


def run(args) -> int:
    import dataclasses

    from ..train import config_from_dict, default_arch, load_config, train

    base = dataclasses.asdict(load_config(args.config)) if args.config else {}
    if args.arch:
        base["arch"] = dataclasses.asdict(default_arch(args.arch))
    for dest, key in _FLAGS.items():
        value = getattr(args, dest)
        if value is not None:
            base[key] = value
    if args.flip:
        base["augment_flip"] = True
    cfg = config_from_dict(base)
    record = train(cfg, args.out, verbose=2 if args.quiet else None,
                   command="anytime-snn " + " ".join(shlex.quote(a) for a in sys.argv[1:]))
    print(f"test accuracy {record['test_accuracy']:.4f}"
          + (f", validation {record['validation_accuracy']:.4f}" if record["validation_accuracy"] is not None else "")
          + f"; {record['train_wall_time_s']:.0f} s; saved {args.out} and its .json record")
    return 0
