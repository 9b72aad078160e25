"""Train a Keras model from a :class:`TrainConfig`; save ``.keras`` and a JSON record next to it."""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

from ..data import Dataset, load_dataset, validation_split
from ..errors import ConfigError
from ..evaluate.ann import evaluate_accuracy
from .batchnorm import re_estimate_batchnorm
from .config import TrainConfig
from .models import build_model


BN_SAMPLES = 10000  # training images for the BN statistics after training


def configure_tensorflow(threads: int) -> None:
    """Limit TensorFlow to ``threads`` intra-op threads and one inter-op thread, deterministic ops (call before any TF op)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf
    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:
        pass  # already initialised in this process; keep its settings
    # Same seed, same data, same machine: the same model (training-based tests and records rely on it).
    tf.config.experimental.enable_op_determinism()


def load_split_data(cfg: TrainConfig) -> tuple[Dataset, Dataset | None, Dataset, dict]:
    """(train, validation or None, test, data info) following the config's limits and split."""
    full = load_dataset(cfg.dataset, "train", cfg.data_path, limit=cfg.train_limit)
    test = load_dataset(cfg.dataset, "test", cfg.data_path, limit=cfg.test_limit)
    tr_idx, va_idx = validation_split(len(full), cfg.validation_fraction, cfg.seed)
    train = full.subset(tr_idx)
    val = full.subset(va_idx) if len(va_idx) else None
    info = {
        "dataset": full.name,
        "train_hash": full.hash(),
        "test_hash": test.hash(),
        "n_train": len(train),
        "n_validation": 0 if val is None else len(val),
        "n_test": len(test),
        "validation_seed": cfg.seed,
        "validation_fraction": cfg.validation_fraction,
        "label_names": full.label_names,
    }
    return train, val, test, info


def _augment_fn(shift: int, flip: bool, seed: int):
    import tensorflow as tf

    rng = tf.random.Generator.from_seed(seed)

    def augment(x, y):
        x = tf.cast(x, tf.float32) / 255.0
        if shift:
            b, h, w = tf.shape(x)[0], x.shape[1], x.shape[2]
            pad = tf.pad(x, [[0, 0], [shift, shift], [shift, shift], [0, 0]])
            dy = rng.uniform([b, 1], -shift, shift + 1, dtype=tf.int32)
            dx = rng.uniform([b, 1], -shift, shift + 1, dtype=tf.int32)
            rows = tf.range(h)[None, :] + shift + dy
            cols = tf.range(w)[None, :] + shift + dx
            x = tf.gather(pad, rows, axis=1, batch_dims=1)
            x = tf.gather(x, cols, axis=2, batch_dims=1)
        if flip:
            mask = rng.uniform([tf.shape(x)[0], 1, 1, 1]) < 0.5
            x = tf.where(mask, tf.reverse(x, axis=[2]), x)
        return x, y

    return augment


def make_datasets(cfg: TrainConfig, train: Dataset):
    import tensorflow as tf

    ds = tf.data.Dataset.from_tensor_slices((train.images, train.labels))
    ds = ds.shuffle(len(train), seed=cfg.seed, reshuffle_each_iteration=True).batch(cfg.batch_size)
    ds = ds.map(_augment_fn(cfg.augment_shift, cfg.augment_flip, cfg.seed), num_parallel_calls=1)
    return ds.prefetch(2)


def compile_model(model, cfg: TrainConfig, steps_per_epoch: int):
    import keras

    lr = cfg.learning_rate
    if cfg.schedule == "cosine":
        lr = keras.optimizers.schedules.CosineDecay(cfg.learning_rate, decay_steps=cfg.epochs * steps_per_epoch)
    opt = keras.optimizers.SGD(learning_rate=lr, momentum=cfg.momentum, nesterov=cfg.nesterov,
                               weight_decay=cfg.weight_decay or None)
    if cfg.weight_decay:
        opt.exclude_from_weight_decay(var_names=["gamma", "beta", "bias"])
    model.compile(optimizer=opt, loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def train(cfg: TrainConfig, out: str | os.PathLike, *, verbose: int | None = None, command: str | None = None) -> dict:
    """Train, evaluate on the test split, save ``out`` (.keras) and ``out`` with suffix .json; return the record."""
    out = Path(out)
    if out.suffix != ".keras":
        raise ConfigError(f"the model file must end in .keras, got {out}")
    configure_tensorflow(cfg.threads)
    import keras

    keras.utils.set_random_seed(cfg.seed)
    train_ds, val_ds, test_ds, info = load_split_data(cfg)
    model = build_model(cfg.arch, train_ds.shape, len(train_ds.label_names), mean=cfg.input_mean,
                        std=cfg.input_std, name=f"{cfg.arch.kind}_{info['dataset']}")
    steps = int(np.ceil(len(train_ds) / cfg.batch_size))
    compile_model(model, cfg, steps)
    val = (val_ds.pixels01(), val_ds.labels) if val_ds is not None else None
    if verbose is None:
        verbose = 1 if sys.stdout.isatty() else 2
    t0 = time.perf_counter()
    hist = model.fit(make_datasets(cfg, train_ds), epochs=cfg.epochs, validation_data=val,
                     validation_batch_size=500, verbose=verbose, shuffle=False)
    wall = time.perf_counter() - t0
    # The BN moving averages lag behind the weights in short runs (quick runs lost up to 30 points to
    # it); inference uses the exact statistics of the final weights instead, unless the moving averages
    # classify the validation split better (see train.batchnorm.re_estimate_batchnorm).
    acc_moving_average = evaluate_accuracy(model, test_ds)
    bn_images = train_ds.pixels01()[:BN_SAMPLES]
    _, bn_choice = re_estimate_batchnorm(model, bn_images, val_ds)
    test_acc = evaluate_accuracy(model, test_ds)
    val_acc = evaluate_accuracy(model, val_ds) if val_ds is not None else None
    out.parent.mkdir(parents=True, exist_ok=True)
    model.save(out)
    record = {
        "model": out.name,
        "test_accuracy": test_acc,
        "validation_accuracy": val_acc,
        "train_wall_time_s": round(wall, 1),
        "test_accuracy_moving_average_bn": acc_moving_average,
        "bn_recalibration_samples": len(bn_images),
        "bn_statistics": bn_choice,
        "epochs": cfg.epochs,
        "history": {k: [float(v) for v in vs] for k, vs in hist.history.items()},
        "data": info,
        "input": {"shape": list(train_ds.shape), "mean": cfg.input_mean, "std": cfg.input_std},
        "config": cfg.to_dict(),
        "command": command,
        **run_environment(cfg.threads),
    }
    record_path(out).write_text(json.dumps(record, indent=1))
    return record


def run_environment(threads: int) -> dict:
    """Library versions and machine of a run, for the JSON records of training and fine-tuning."""
    import keras
    import tensorflow as tf

    return {"versions": {"python": platform.python_version(), "tensorflow": tf.__version__, "keras": keras.__version__,
                         "numpy": np.__version__},
            "machine": f"{platform.machine()} {os.cpu_count()} cpus, {threads} TF threads"}


def record_path(model_path: str | os.PathLike) -> Path:
    return Path(model_path).with_suffix(".json")
