"""Optimization of firing-rate scales H and initial potentials V0 (paper 5.2-5.3).

- :mod:`.params`: the search space (log eta and V0 at model / layer / neuron granularity), applied
  with isolation to a copy of the start bundle;
- :mod:`.objective`: L_SNN on a training subset, simulated by the batched engine;
- :mod:`.parallel`: data-parallel simulation over MPI ranks (bit-identical to one process), and
  :func:`distributed_evaluate`;
- :mod:`.driver`: the MPI protocol of a run (rank 0 drives, the others serve the objective);
- :mod:`.subplex`: the three-phase NLopt LN_SBPLX driver with exact checkpoint/resume;
- :mod:`.checkpoint`: atomic JSON + npz checkpoints.

Nothing here imports TensorFlow, NLopt or mpi4py at import time.
"""

from .checkpoint import load as load_checkpoint
from .objective import DEFAULT_LAMBDAS, Measurement, Objective, training_subset
from .parallel import ChunkPlan, ShardedSimulator, SingleProcess, distributed_evaluate, world
from .params import GRANULARITIES, FullState, Layout, apply_state, hidden_layers
from .subplex import PAPER_BUDGETS, OptimizeConfig, OptimizeResult, Optimizer, state_key

__all__ = [
    "DEFAULT_LAMBDAS", "GRANULARITIES", "PAPER_BUDGETS", "ChunkPlan", "FullState", "Layout", "Measurement",
    "Objective", "OptimizeConfig", "OptimizeResult", "Optimizer", "ShardedSimulator", "SingleProcess",
    "apply_state", "distributed_evaluate", "hidden_layers", "load_checkpoint", "state_key", "training_subset",
    "world",
]
