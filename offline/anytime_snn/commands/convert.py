"""Convert a trained Keras model into an SNN model bundle (paper section 3 and 5.2).

  anytime-snn convert runs/dense/model.keras --out runs/dense/snn --v0 0.5 --evaluate 1000

Folds BatchNormalization, removes Dropout, turns average pooling into depthwise convolutions and
normalizes firing rates with the chosen percentile of non-zero activations on training images
(the training portion of the split recorded next to the model; the held-out validation part is left
for calibration). With --evaluate N the SNN is simulated on N test images and its accuracy at the
last step is compared with the ANN's and stored in the bundle's provenance.
"""

from __future__ import annotations

import json
import shlex
import sys
import time
from pathlib import Path

HELP = "convert a Keras model (.keras) into an SNN bundle with data-based normalization"


def add_arguments(parser) -> None:
    parser.add_argument("model", help="trained Keras model (.keras); its .json training record is used if present")
    parser.add_argument("--out", required=True, metavar="DIR", help="bundle directory to write")
    parser.add_argument("--normalization", choices=["layer", "channel", "none"], default="layer",
                        help="granularity of the data-based normalization (default: layer)")
    parser.add_argument("--percentile", type=float, default=99.9,
                        help="percentile of non-zero activations mapped to firing rate 1 (default 99.9)")
    parser.add_argument("--calibration-samples", type=int, default=10000,
                        help="training images used for normalization (default 10000)")
    parser.add_argument("--dataset", help="data set for calibration/evaluation (default: from the training record)")
    parser.add_argument("--data-path", help="location of CIFAR batches, an npz file or an image folder")
    parser.add_argument("--v0", type=float, default=0.5, help="initial membrane potential of hidden neurons "
                        "(default 0.5, high-entropy initialization)")
    parser.add_argument("--timesteps", type=int, default=50, help="default simulation length stored in the bundle")
    parser.add_argument("--labels", nargs="+", help="class labels (default: the data set's class names)")
    parser.add_argument("--evaluate", type=int, default=0, metavar="N",
                        help="simulate the SNN on the first N test images and record its accuracy (0: skip)")
    parser.add_argument("--evaluate-steps", type=int, help="timesteps for --evaluate (default: --timesteps)")
    parser.add_argument("--threads", type=int, default=2, help="TensorFlow threads (default 2)")


def run(args) -> int:
    import numpy as np

    from ..convert import convert_model, network_input
    from ..data import load_dataset, validation_split
    from ..errors import ConfigError
    from ..model import save_bundle
    from ..train import configure_tensorflow, evaluate_accuracy, record_path

    model_path = Path(args.model)
    if not model_path.is_file():
        raise ConfigError(f"model file {model_path} does not exist")
    if args.percentile <= 0 or args.percentile > 100:
        raise ConfigError(f"--percentile must be in (0, 100], got {args.percentile}")
    configure_tensorflow(args.threads)
    import keras

    record = {}
    if record_path(model_path).is_file():
        record = json.loads(record_path(model_path).read_text())
    data_info = record.get("data", {})
    dataset = args.dataset or data_info.get("dataset")
    data_path = args.data_path or (record.get("config") or {}).get("data_path")
    if dataset is None and args.normalization != "none":
        raise ConfigError("no training record next to the model: pass --dataset for the calibration images")
    try:
        model = keras.models.load_model(model_path, safe_mode=True)
    except Exception as e:  # Keras raises many types for unreadable files
        raise ConfigError(f"cannot load Keras model {model_path}: {e}") from None

    calibration = None
    label_names = None
    train_hash = data_info.get("train_hash")
    if dataset is not None:
        full = load_dataset(dataset, "train", data_path, limit=(record.get("config") or {}).get("train_limit"))
        train_hash = full.hash()
        if data_info.get("train_hash") not in (None, train_hash):
            print(f"warning: the {dataset} training data differ from those the model was trained on", file=sys.stderr)
        label_names = full.label_names
        tr_idx, _ = validation_split(len(full), data_info.get("validation_fraction", 0.0),
                                     data_info.get("validation_seed", 0))
        calibration = full.images[tr_idx[:args.calibration_samples]]
    provenance = {
        "ann_accuracy": record.get("test_accuracy"),
        "ann_validation_accuracy": record.get("validation_accuracy"),
        "dataset": dataset,
        "data_hash": {"train": train_hash, "test": data_info.get("test_hash")},
        "validation": {"fraction": data_info.get("validation_fraction"), "seed": data_info.get("validation_seed")},
        "training": {k: record.get(k) for k in ("epochs", "train_wall_time_s", "command") if k in record},
        "architecture": (record.get("config") or {}).get("arch"),
        "command": "anytime-snn " + " ".join(shlex.quote(a) for a in sys.argv[1:]),
    }
    t0 = time.perf_counter()
    result = convert_model(model, calibration, granularity=args.normalization, percentile=args.percentile,
                           labels=args.labels or label_names, timesteps=args.timesteps, v0=args.v0,
                           provenance=provenance)
    bundle = result.bundle
    print(f"converted {len(bundle.weighted_layers)} weighted layers in {time.perf_counter() - t0:.1f} s")
    for name, s in result.scales.items():
        print(f"  {name}: scale {np.mean(s):.4g}" + (f" (mean of {len(s)})" if len(s) > 1 else ""))
    if args.evaluate:
        test = load_dataset(dataset, "test", data_path, limit=args.evaluate)
        steps = args.evaluate_steps or args.timesteps
        from ..sim.tf_engine import TFEngine

        t0 = time.perf_counter()
        res = TFEngine(bundle).run(network_input(bundle, test.images), steps)
        acc = res.accuracy(test.labels)
        ann = evaluate_accuracy(model, test)
        bundle.provenance["evaluation"] = {
            "test_examples": len(test), "timesteps": steps, "ann_accuracy": ann,
            "snn_accuracy_final": float(acc[-1]), "snn_accuracy_max": float(acc.max()),
            "snn_accuracy_at": {str(t): float(acc[t - 1]) for t in (1, 5, 10, 20, 50, 100, 200) if t <= steps},
            "mean_synaptic_events_per_step": float(res.mean_events.mean()),
            "wall_time_s": round(time.perf_counter() - t0, 1),
        }
        print(f"ANN accuracy {ann:.4f}; SNN accuracy at t={steps}: {acc[-1]:.4f} (max {acc.max():.4f}) "
              f"on {len(test)} test images")
    save_bundle(bundle, args.out)
    print(f"saved {args.out}")
    return 0
