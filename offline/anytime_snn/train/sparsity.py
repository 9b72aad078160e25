"""Sparsity fine-tuning (paper section 5.1): every public name in one place, for ``from anytime_snn.train import
sparsity``. Each lives in the module of its concern:

* :mod:`.regularizers`: the Keras regularizers on beta and kernels (one layer's share of lambda_a L_a, lambda_w L_w);
* :mod:`.penalties`: where they apply (:func:`sparsity_terms`), L_a and L_w themselves, attaching them, the
  default lambdas;
* :mod:`.gamma`: gamma fixed to 1 keeping the network function; :mod:`.pruning`: |w| < epsilon to zero;
* :mod:`.batchnorm`: BN statistics re-estimated from the final weights (also used after training);
* :mod:`anytime_snn.evaluate.ann` and :mod:`anytime_snn.evaluate.conversion`: ANN and SNN measurement;
* :mod:`.finetune`: the driver of ``anytime-snn sparsify``, its settings a :class:`~.config.SparsifyConfig`.

Importing this module imports Keras (the regularizers are Keras classes).
"""

from ..evaluate.ann import activation_sparsity, ann_synaptic_ops, weight_sparsity
from ..evaluate.conversion import snn_measure
from ..keras_layers import PASS_THROUGH, WEIGHTED
from .batchnorm import bn_statistics as _bn_statistics
from .batchnorm import re_estimate_batchnorm, recalibrate_batchnorm
from .config import SparsifyConfig, sparsify_config_from_dict
from .finetune import finetune, measure
from .gamma import fix_gamma
from .penalties import (DEFAULT_LAMBDA_A, DEFAULT_LAMBDA_W, SparsityTerms, activation_penalty, attach_penalties,
                        default_lambdas, detach_penalties, sparsity_terms, weight_penalty)
from .pruning import prune
from .regularizers import BetaActivationPenalty, WeightL1Penalty

__all__ = [
    "DEFAULT_LAMBDA_A", "DEFAULT_LAMBDA_W", "PASS_THROUGH", "WEIGHTED", "BetaActivationPenalty", "SparsityTerms",
    "SparsifyConfig", "WeightL1Penalty", "activation_penalty", "activation_sparsity", "ann_synaptic_ops",
    "attach_penalties", "default_lambdas", "detach_penalties", "finetune", "fix_gamma", "measure", "prune",
    "re_estimate_batchnorm", "recalibrate_batchnorm", "snn_measure", "sparsify_config_from_dict", "sparsity_terms",
    "weight_penalty", "weight_sparsity",
]
