"""ANN training: architectures as configs (dense / conv MNIST, CIFAR-style, small MobileNet), SGD training."""

from .config import ARCHITECTURES, ArchConfig, TrainConfig, config_from_dict, default_arch, load_config
from .models import build_model
from .trainer import configure_tensorflow, evaluate_accuracy, load_split_data, record_path, train

__all__ = [
    "ARCHITECTURES", "ArchConfig", "TrainConfig", "build_model", "config_from_dict", "configure_tensorflow",
    "default_arch", "evaluate_accuracy", "load_config", "load_split_data", "record_path", "train",
]
