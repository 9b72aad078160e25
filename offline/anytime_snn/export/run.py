"""One call for other commands (e.g. ``anytime-snn evaluate --backend nest``): run inputs on a PyNN back end."""

from __future__ import annotations

import numpy as np

from .. import dynamics
from ..model import Bundle
from .backends import import_backend
from .network import ExportRun, export


def run_on_backend(bundle: Bundle, x: np.ndarray, backend: str, timesteps: int | None = None, *,
                   spinnaker_dynamics: bool = True, progress=None) -> ExportRun:
    """Export ``bundle`` to ``backend`` ('nest', 'brian2', 'spinnaker'), run ``x`` (N, *input_shape), end.

    The bundle is switched to SpiNNaker dynamics first unless ``spinnaker_dynamics`` is False (then it must
    already have zero reset, refractory >= 1 and delay >= 1). ``result.predictions`` is (T, N) and
    ``result.events`` (T, N): the same layout as our engines' per-timestep accuracy and event curves.
    Raises BackendMissing (a ConfigError) with the install command when the back end is absent.
    """
    if spinnaker_dynamics:
        bundle = dynamics.spinnaker_dynamics(bundle)
    _, sim = import_backend(backend)
    net = export(bundle, sim, timesteps=timesteps)
    try:
        return net.run(x, progress=progress)
    finally:
        net.end()
