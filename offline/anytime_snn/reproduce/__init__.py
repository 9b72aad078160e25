"""One command per paper experiment (``anytime-snn reproduce fig4|fig5|fig6|table2|mobilenet``).

- :mod:`.stages`: cached, resumable pipeline stages (train, sparsify, convert, optimize, evaluate)
  built on the toolkit's stage functions;
- :mod:`.experiments`: the experiments as functions of :class:`Settings`;
- :mod:`.report`: results.json, report.md and plots per experiment.
"""

from .experiments import EXPERIMENTS, MODELS, RUNNERS, Settings, quick_settings

__all__ = ["EXPERIMENTS", "MODELS", "RUNNERS", "Settings", "quick_settings", "run_experiment"]


def run_experiment(name: str, settings: Settings, comm=None) -> dict:
    """Run one experiment and (rank 0) write its report into ``settings.out / name``; returns the results."""
    from pathlib import Path

    from ..optimize import world
    from . import report

    comm = comm if comm is not None else world()
    results = RUNNERS[name](settings, comm)
    if comm.rank == 0:
        report.write(results, Path(settings.out) / name, settings.identity())
    return results
