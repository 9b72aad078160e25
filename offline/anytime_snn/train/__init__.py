"""ANN training (architectures as configs: dense / conv MNIST, CIFAR-style, small MobileNet; SGD) and sparsity
fine-tuning (:mod:`.finetune`, names gathered in :mod:`.sparsity`). Importing this package does not import Keras."""

from .config import (ARCHITECTURES, ArchConfig, SparsifyConfig, TrainConfig, config_from_dict, default_arch,
                     load_config, sparsify_config_from_dict)
from .models import build_model
from .trainer import configure_tensorflow, evaluate_accuracy, load_split_data, record_path, train

__all__ = [
    "ARCHITECTURES", "ArchConfig", "SparsifyConfig", "TrainConfig", "build_model", "config_from_dict",
    "configure_tensorflow", "default_arch", "evaluate_accuracy", "load_config", "load_split_data", "record_path",
    "sparsify_config_from_dict", "train",
]
