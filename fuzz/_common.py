"""Shared by the fuzz harnesses: import paths, optional atheris instrumentation, the libFuzzer entry.

A harness is importable without atheris (the regression tests call its ``test_one_input`` directly);
only ``python fuzz/<harness>.py ...`` needs atheris, and passes its arguments to libFuzzer.
"""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
for _p in (ROOT / "offline", ROOT / "ros2_ws" / "src" / "spike_perception"):
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))


def instrumented(enabled: bool, *packages: str):
    """Context manager that instruments the listed packages' imports for coverage when fuzzing."""
    if not enabled:
        return contextlib.nullcontext()
    import atheris

    return atheris.instrument_imports(include=list(packages))


def fuzz(test_one_input) -> None:
    """Hand ``test_one_input`` to libFuzzer with the command-line arguments (corpus dirs, -runs=, ...)."""
    import atheris

    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()
