"""Export a bundle to PyNN simulators (NEST, Brian2, sPyNNaker) and run it there (docs/spinnaker.md)."""

from .backends import BACKENDS, INSTALL, Backend, BackendMissing, import_backend, profile_for
from .connectivity import Synapses, layer_synapses
from .network import ExportedNetwork, ExportRun, export
from .run import run_on_backend

__all__ = ["BACKENDS", "INSTALL", "Backend", "BackendMissing", "ExportRun", "ExportedNetwork", "Synapses",
           "export", "import_backend", "layer_synapses", "profile_for", "run_on_backend"]
