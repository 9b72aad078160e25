"""The sparsity fine-tuning driver behind ``anytime-snn sparsify`` (paper 5.1): fix gamma, fine-tune with
lambda_a L_a + lambda_w L_w, re-estimate the BN statistics, prune; measure before and after; save the model
and its JSON record.

The pieces live by concern: :mod:`.penalties` / :mod:`.regularizers` (L_a, L_w), :mod:`.gamma`,
:mod:`.batchnorm`, :mod:`.pruning`, and the measurements in :mod:`anytime_snn.evaluate.ann` and
:mod:`anytime_snn.evaluate.conversion`. The settings are a :class:`~.config.SparsifyConfig`.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import keras
import numpy as np

from ..errors import ConfigError
from ..evaluate.ann import activation_sparsity, evaluate_accuracy, weight_sparsity
from ..evaluate.conversion import snn_measure
from .batchnorm import re_estimate_batchnorm
from .config import SparsifyConfig, TrainConfig, config_from_dict, sparsify_config_from_dict
from .gamma import fix_gamma
from .penalties import activation_penalty, attach_penalties, default_lambdas, detach_penalties, sparsity_terms, weight_penalty
from .pruning import prune
from .trainer import compile_model, configure_tensorflow, load_split_data, make_datasets, record_path, run_environment


def measure(model, test, calibration: np.ndarray, *, snn_samples: int, timesteps: int,
            normalization: str = "layer", log=print) -> dict:
    """Accuracy, L_a, L_w, activation and weight sparsity on ``test`` (a Dataset); SNN metrics if snn_samples."""
    acc = evaluate_accuracy(model, test)
    out = {"test_accuracy": acc, "L_a": activation_penalty(model), "L_w": weight_penalty(model),
           "activation_sparsity": activation_sparsity(model, test.pixels01()),
           "weight_sparsity": weight_sparsity(model)}
    log(f"  test accuracy {acc * 100:.2f} %, L_a {out['L_a']:.4f}, L_w {out['L_w']:.4g}, "
        f"activation sparsity {out['activation_sparsity']['total'] * 100:.1f} %, "
        f"weight sparsity {out['weight_sparsity']['total'] * 100:.1f} %")
    if snn_samples:
        n = min(snn_samples, len(test))
        out["snn"] = snn_measure(model, calibration, test.images[:n], test.labels[:n], a_max=acc,
                                 timesteps=timesteps, normalization=normalization)
        s = out["snn"]
        log(f"  SNN on {n} test images, T={timesteps}: accuracy {s['accuracy_final'] * 100:.2f} % "
            f"(peak {s['peak_accuracy'] * 100:.2f} %), {s['events_per_inference']:.4g} synaptic events/inference, "
            f"P_l {s['P_l']:.3f}, P_p {s['P_p']:.4g}; ANN-side ops {s['ann_synaptic_ops']['hidden']:.4g}")
    return out


class _PenaltyLogger(keras.callbacks.Callback):
    def __init__(self, log):
        super().__init__()
        self.log_fn = log
        self.values: list[dict] = []

    def on_epoch_end(self, epoch, logs=None):
        v = {"epoch": epoch + 1, "L_a": activation_penalty(self.model), "L_w": weight_penalty(self.model),
             "loss": float((logs or {}).get("loss", float("nan"))),
             "accuracy": float((logs or {}).get("accuracy", float("nan")))}
        self.values.append(v)
        self.log_fn(f"  epoch {v['epoch']}: loss {v['loss']:.4f} (with penalties), train accuracy "
                    f"{v['accuracy'] * 100:.2f} %, L_a {v['L_a']:.4f}, L_w {v['L_w']:.4g}")


def finetune(model_path, out, config: SparsifyConfig | None = None, *, verbose: int = 2, command: str | None = None,
             log=print, **settings) -> dict:
    """Sparsity fine-tuning of a trained ``.keras`` model (paper 5.1); saves ``out`` + its JSON record.

    The settings are ``config`` with ``settings`` (any :class:`SparsifyConfig` field by name) on top; an
    unknown name is a ConfigError. The data, split and augmentation come from the model's training record
    (``MODEL.json``) unless ``dataset`` is given. Fine-tuning is SGD (the record's momentum and Nesterov
    setting, cosine decay from ``learning_rate``, no weight decay: L_w replaces it), then pruning of
    |w| < ``epsilon``. ``lambda_a`` / ``lambda_w`` default to :func:`default_lambdas` of the model. After
    fine-tuning the BN moving statistics are re-estimated on ``bn_samples`` training images
    (:func:`~.batchnorm.re_estimate_batchnorm`; 0 skips it). Measures everything of :func:`measure` before and after.
    """
    model_path, out = Path(model_path), Path(out)
    if out.suffix != ".keras":
        raise ConfigError(f"the output model file must end in .keras, got {out}")
    if not model_path.is_file():
        raise ConfigError(f"model file {model_path} does not exist")
    s = sparsify_config_from_dict({**(config.to_dict() if config is not None else {}), **settings})
    base = json.loads(record_path(model_path).read_text()) if record_path(model_path).is_file() else {}
    cfg = _train_config(s, base, model_path)

    configure_tensorflow(s.threads)
    keras.utils.set_random_seed(s.seed)
    try:
        model = keras.models.load_model(model_path, safe_mode=True, compile=False)
    except Exception as e:  # Keras raises many types for unreadable files
        raise ConfigError(f"cannot load Keras model {model_path}: {e}") from None
    train_ds, val_ds, test_ds, info = load_split_data(cfg)
    calibration = train_ds.images[:s.calibration_samples]

    sparsity_terms(model)  # fails early, by name, on unsupported structure
    defaults = default_lambdas(model)
    lambda_a = defaults[0] if s.lambda_a is None else float(s.lambda_a)
    lambda_w = defaults[1] if s.lambda_w is None else float(s.lambda_w)
    log(f"loaded {model_path} ({model.count_params()} parameters); {len(train_ds)} training, "
        f"{len(test_ds)} test images")
    acc0 = evaluate_accuracy(model, test_ds)
    notes = fix_gamma(model)
    for note in notes:
        log(f"  note: {note}")
    log(f"before (gamma fixed to 1; ANN test accuracy before that {acc0 * 100:.2f} %):")
    before = measure(model, test_ds, calibration, snn_samples=s.snn_samples, timesteps=s.timesteps,
                     normalization=s.normalization, log=log)
    before["test_accuracy_original_gamma"] = acc0

    terms = attach_penalties(model, lambda_a, lambda_w)
    steps = int(np.ceil(len(train_ds) / cfg.batch_size))
    compile_model(model, cfg, steps)
    logger = _PenaltyLogger(log)
    log(f"fine-tuning {s.epochs} epochs: lambda_a {lambda_a:g}, lambda_w {lambda_w:g} "
        f"(sum n_k {terms.total_n}, sum m_k {terms.total_m}), learning rate {s.learning_rate:g} (cosine)")
    t0 = time.perf_counter()
    history = {}
    if s.epochs:
        val = (val_ds.pixels01(), val_ds.labels) if val_ds is not None else None
        hist = model.fit(make_datasets(cfg, train_ds), epochs=s.epochs, validation_data=val, validation_batch_size=500,
                         verbose=verbose, shuffle=False, callbacks=[logger])
        history = {k: [float(v) for v in vs] for k, vs in hist.history.items()}
    wall = time.perf_counter() - t0
    detach_penalties(model)
    acc_stale_bn = evaluate_accuracy(model, test_ds)
    bn_changes, bn_choice = {}, None
    if s.bn_samples and s.epochs:
        x_bn = train_ds.pixels01()[:s.bn_samples] if len(train_ds) > s.bn_samples else train_ds.pixels01()
        bn_changes, bn_choice = re_estimate_batchnorm(model, x_bn, val_ds)
        log(f"re-estimated the BN moving statistics on {len(x_bn)} training images "
            f"(test accuracy with the moving averages of fine-tuning: {acc_stale_bn * 100:.2f} %)")
        if bn_choice["validation_accuracy_re_estimated"] is not None:
            log(f"BN statistics kept: {bn_choice['statistics']} (validation accuracy "
                f"{bn_choice['validation_accuracy_re_estimated'] * 100:.2f} % re-estimated, "
                f"{bn_choice['validation_accuracy_moving_averages'] * 100:.2f} % moving averages)")
    acc_unpruned = evaluate_accuracy(model, test_ds)
    pruned = prune(model, s.epsilon)
    log(f"pruned {sum(pruned.values())} weights with |w| < {s.epsilon:g} "
        f"(test accuracy before pruning {acc_unpruned * 100:.2f} %)")
    log("after:")
    after = measure(model, test_ds, calibration, snn_samples=s.snn_samples, timesteps=s.timesteps,
                    normalization=s.normalization, log=log)
    after["test_accuracy_before_pruning"] = acc_unpruned
    after["test_accuracy_moving_average_bn"] = acc_stale_bn
    val_acc = evaluate_accuracy(model, val_ds) if val_ds is not None else None

    out.parent.mkdir(parents=True, exist_ok=True)
    # Saved without the fine-tuning optimizer (whose state excludes the frozen gammas and would not
    # match a fresh build): a plain copy with the same weights, BN statistics and exact zeros.
    plain = keras.models.clone_model(model)
    plain.set_weights(model.get_weights())
    plain.save(out)

    cfg_dict = cfg.to_dict()
    cfg_dict["epochs"] = s.epochs
    record = {
        "model": out.name,
        "test_accuracy": after["test_accuracy"],
        "validation_accuracy": val_acc,
        "train_wall_time_s": round(wall, 1),
        "epochs": s.epochs,
        "history": history,
        "data": info,
        "input": base.get("input"),
        "config": cfg_dict,
        "sparsity": {
            "source_model": str(model_path), "lambda_a": lambda_a, "lambda_w": lambda_w, "epsilon": s.epsilon,
            "learning_rate": s.learning_rate, "epochs": s.epochs, "seed": s.seed, "sum_n_k": terms.total_n,
            "sum_m_k": terms.total_m, "pruned_weights": pruned, "gamma_notes": notes,
            "penalties_per_epoch": logger.values, "lambda_defaults": list(defaults),
            "bn_recalibration": {"samples": min(s.bn_samples, len(train_ds)) if bn_changes else 0,
                                 "max_relative_variance_change": bn_changes, **(bn_choice or {})},
        },
        "before": before,
        "after": after,
        "base_record": {k: base.get(k) for k in ("model", "test_accuracy", "epochs", "train_wall_time_s", "command")},
        "command": command,
        **run_environment(s.threads),
    }
    record_path(out).write_text(json.dumps(record, indent=1))
    return record


def _train_config(s: SparsifyConfig, base: dict, model_path: Path) -> TrainConfig:
    """The training config of the fine-tuning: the model's training record with the sparsify settings on top."""
    if base.get("config"):
        cfg = config_from_dict(base["config"]).to_dict()
    elif s.dataset:
        cfg = TrainConfig(dataset=s.dataset).to_dict()
    else:
        raise ConfigError(f"no training record {record_path(model_path)} next to the model: pass --dataset")
    cfg.update(epochs=max(s.epochs, 1), learning_rate=s.learning_rate, weight_decay=0.0, seed=s.seed,
               threads=s.threads, schedule="cosine")
    for key in ("dataset", "data_path", "batch_size", "train_limit", "test_limit"):
        if getattr(s, key) is not None:
            cfg[key] = getattr(s, key)
    return config_from_dict(cfg)
