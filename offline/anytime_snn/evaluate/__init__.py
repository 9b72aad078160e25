"""Evaluation: an SNN bundle on labelled data (:mod:`.snn`), a Keras ANN's accuracy and sparsity
(:mod:`.ann`), and a Keras model measured as the SNN it converts to (:mod:`.conversion`).

Only :mod:`.snn` is imported here; the other two are imported by name (they work on Keras models).
"""

from .snn import Evaluation, evaluate, evaluate_on_backend

__all__ = ["Evaluation", "evaluate", "evaluate_on_backend"]
