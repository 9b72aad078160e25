"""Training and sparsity fine-tuning settings as dataclasses, loadable from YAML or JSON; unknown keys are
rejected by name.

Precedence: command-line flags override the file, which overrides these defaults.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError

ARCHITECTURES = ("dense", "conv", "cifar", "mobilenet")


@dataclass
class ArchConfig:
    """A conversion-friendly architecture: weighted layer -> BatchNorm -> ReLU blocks, softmax output.

    ``dense``: Flatten, then one Dense block per entry of ``hidden`` (paper: 784-1200-1200-10).
    ``conv``: Conv blocks with ``filters`` (``"pool"`` entries are 2x2 average pooling), then Dense ``hidden``.
    ``cifar``: the same builder with a VGG-like default for 32x32x3 inputs.
    ``mobilenet``: a 3x3 stem conv, then depthwise-separable blocks ``[filters, stride]``, global average
    pooling (as AveragePooling2D over the whole map) and the classifier.
    """

    kind: str = "dense"
    hidden: list[int] = field(default_factory=lambda: [1200, 1200])
    filters: list[Any] = field(default_factory=list)
    kernel_size: int = 3
    dropout: float = 0.2
    blocks: list[list[int]] = field(default_factory=list)
    stem_filters: int = 32

    def __post_init__(self) -> None:
        if self.kind not in ARCHITECTURES:
            raise ConfigError(f"arch.kind must be one of {list(ARCHITECTURES)}, got {self.kind!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"arch.dropout must be in [0, 1), got {self.dropout}")
        if any(not isinstance(h, int) or h < 1 for h in self.hidden):
            raise ConfigError(f"arch.hidden must be positive integers, got {self.hidden}")
        for f in self.filters:
            if f != "pool" and (not isinstance(f, int) or f < 1):
                raise ConfigError(f"arch.filters entries must be positive integers or 'pool', got {f!r}")
        for b in self.blocks:
            if not (isinstance(b, (list, tuple)) and len(b) == 2 and all(isinstance(v, int) and v >= 1 for v in b)):
                raise ConfigError(f"arch.blocks entries must be [filters, stride], got {b!r}")


def default_arch(kind: str) -> ArchConfig:
    """The standard configuration of each architecture."""
    if kind == "dense":
        return ArchConfig(kind="dense", hidden=[1200, 1200], dropout=0.2)
    if kind == "conv":
        return ArchConfig(kind="conv", filters=[32, 32, "pool", 64, 64, "pool"], hidden=[256], dropout=0.3)
    if kind == "cifar":
        return ArchConfig(kind="cifar", filters=[64, 64, "pool", 128, 128, "pool", 256, 256, "pool"],
                          hidden=[512], dropout=0.3)
    if kind == "mobilenet":
        return ArchConfig(kind="mobilenet", stem_filters=32, blocks=[[64, 1], [128, 2], [128, 1], [256, 2], [256, 1]],
                          hidden=[], dropout=0.2)
    raise ConfigError(f"architecture must be one of {list(ARCHITECTURES)}, got {kind!r}")


@dataclass
class TrainConfig:
    """Everything that determines a training run (together with the data)."""

    dataset: str = "mnist"
    data_path: str | None = None
    arch: ArchConfig = field(default_factory=ArchConfig)
    epochs: int = 30
    batch_size: int = 128
    learning_rate: float = 0.05
    momentum: float = 0.9
    nesterov: bool = True
    schedule: str = "cosine"           # cosine | constant
    weight_decay: float = 5e-5         # decoupled, on kernels only
    augment_shift: int = 2             # random translation of up to this many pixels (0: none)
    augment_flip: bool = False         # random horizontal flips (CIFAR)
    validation_fraction: float = 0.1   # held out of the training split, deterministically (seed)
    input_mean: float = 0.0            # network input = (pixel01 - mean) / std
    input_std: float = 1.0
    train_limit: int | None = None     # use only the first N training examples (quick runs)
    test_limit: int | None = None
    seed: int = 0
    threads: int = 2                   # TensorFlow intra-op threads (inter-op: 1)

    def __post_init__(self) -> None:
        if isinstance(self.arch, dict):
            self.arch = arch_from_dict(self.arch)
        for name in ("epochs", "batch_size"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ConfigError(f"{name} must be a positive integer, got {getattr(self, name)!r}")
        if not self.learning_rate > 0:
            raise ConfigError(f"learning_rate must be positive, got {self.learning_rate}")
        if not 0 <= self.momentum < 1:
            raise ConfigError(f"momentum must be in [0, 1), got {self.momentum}")
        if self.schedule not in ("cosine", "constant"):
            raise ConfigError(f"schedule must be 'cosine' or 'constant', got {self.schedule!r}")
        if not 0 <= self.validation_fraction < 1:
            raise ConfigError(f"validation_fraction must be in [0, 1), got {self.validation_fraction}")
        if not self.input_std > 0:
            raise ConfigError(f"input_std must be positive, got {self.input_std}")
        if self.augment_shift < 0:
            raise ConfigError(f"augment_shift must be >= 0, got {self.augment_shift}")
        if self.threads < 1:
            raise ConfigError(f"threads must be >= 1, got {self.threads}")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def arch_from_dict(d: dict) -> ArchConfig:
    _reject_unknown(d, ArchConfig, "arch")
    kind = d.get("kind", "dense")
    base = dataclasses.asdict(default_arch(kind)) if kind in ARCHITECTURES else {}
    base.update(d)
    return ArchConfig(**base)


def config_from_dict(d: dict) -> TrainConfig:
    if not isinstance(d, dict):
        raise ConfigError(f"a training config must be a mapping, got {type(d).__name__}")
    _reject_unknown(d, TrainConfig, "config")
    d = dict(d)
    if "arch" in d:
        arch = d["arch"]
        d["arch"] = arch_from_dict({"kind": arch} if isinstance(arch, str) else arch)
    try:
        return TrainConfig(**d)
    except TypeError as e:
        raise ConfigError(f"invalid training config: {e}") from None


def load_config(path: str | Path) -> TrainConfig:
    """Read a YAML (``.yaml``/``.yml``) or JSON file."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as e:
        raise ConfigError(f"cannot read config {path}: {e.strerror}") from None
    try:
        if path.suffix in (".yaml", ".yml"):
            import yaml
            data = yaml.safe_load(text)
        else:
            data = json.loads(text)
    except Exception as e:  # yaml.YAMLError / json.JSONDecodeError
        raise ConfigError(f"{path} is not valid {'YAML' if path.suffix in ('.yaml', '.yml') else 'JSON'}: {e}") from None
    return config_from_dict(data or {})


@dataclass
class SparsifyConfig:
    """Everything that determines a sparsity fine-tuning run (``anytime-snn sparsify``) besides the model.

    ``None`` means: from the model's training record (dataset, batch size, limits) or, for the lambdas,
    :func:`~anytime_snn.train.penalties.default_lambdas` of the model.
    """

    lambda_a: float | None = None      # weight of L_a (eq. 8)
    lambda_w: float | None = None      # weight of L_w (eq. 9)
    epochs: int = 3                    # 0: only prune
    epsilon: float = 1e-4              # prune kernel weights with |w| < epsilon
    learning_rate: float = 0.01        # SGD, cosine decay to 0
    batch_size: int | None = None
    seed: int = 0
    threads: int = 2                   # TensorFlow intra-op threads
    dataset: str | None = None
    data_path: str | None = None
    train_limit: int | None = None
    test_limit: int | None = None
    snn_samples: int = 1000            # test images simulated as an SNN before and after (0: skip)
    timesteps: int = 50
    calibration_samples: int = 10000   # training images for the conversion's normalization
    normalization: str = "layer"       # conversion normalization for the SNN measurement
    bn_samples: int = 10000            # training images for re-estimating BN statistics (0: keep the averages)

    def __post_init__(self) -> None:
        if isinstance(self.epochs, bool) or not isinstance(self.epochs, int) or self.epochs < 0:
            raise ConfigError(f"epochs must be an integer >= 0, got {self.epochs!r}")
        if not self.learning_rate > 0:
            raise ConfigError(f"learning rate must be positive, got {self.learning_rate}")
        if self.timesteps < 1 or self.snn_samples < 0 or self.calibration_samples < 1:
            raise ConfigError(f"need timesteps >= 1, snn samples >= 0, calibration samples >= 1; got {self.timesteps}, "
                              f"{self.snn_samples}, {self.calibration_samples}")
        if self.lambda_a is not None:
            check_factor("lambda_a", self.lambda_a)
        if self.lambda_w is not None:
            check_factor("lambda_w", self.lambda_w)
        if isinstance(self.bn_samples, bool) or not isinstance(self.bn_samples, int) or self.bn_samples < 0:
            raise ConfigError(f"bn samples must be an integer >= 0, got {self.bn_samples!r}")
        check_factor("epsilon", self.epsilon)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def sparsify_config_from_dict(d: dict) -> SparsifyConfig:
    """A :class:`SparsifyConfig` from a mapping; unknown keys are a ConfigError that lists the valid ones."""
    if not isinstance(d, dict):
        raise ConfigError(f"sparsify settings must be a mapping, got {type(d).__name__}")
    _reject_unknown(d, SparsifyConfig, "sparsify")
    return SparsifyConfig(**d)


def check_factor(name: str, value) -> float:
    """``value`` as a float if it is a finite number >= 0, else ConfigError naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise ConfigError(f"{name} must be a finite number >= 0, got {value!r}")
    return float(value)


def _reject_unknown(d: dict, cls, where: str) -> None:
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(d) - known)
    if unknown:
        raise ConfigError(f"unknown {where} key(s) {unknown}; valid keys: {sorted(known)}")
