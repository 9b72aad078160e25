"""Print versions of anytime-snn and the libraries it uses, for bug reports."""

from __future__ import annotations

import importlib.metadata as md
import platform

HELP = "print library versions (for bug reports)"
_DISTS = ["numpy", "safetensors", "tensorflow-cpu", "tensorflow", "keras", "nlopt", "mpi4py", "PyNN", "brian2",
          "nest-simulator", "sPyNNaker", "numba", "ros-rclpy"]


def add_arguments(parser) -> None:
    pass


def run(args) -> int:
    print(f"python {platform.python_version()} on {platform.platform()}")
    for name in ["anytime-snn", *_DISTS]:
        try:
            print(f"{name} {md.version(name)}")
        except md.PackageNotFoundError:
            pass
    return 0
