"""The benchmarks' records: :mod:`anytime_snn.provenance` (one definition), and ``require_model``.

A record lets a reader re-run the measurement and see whether it still holds: the exact command, the
commit (and whether tracked code, i.e. anything but results/, docs/ and Markdown, had uncommitted
changes), the model's content hash, the machine, the date, the wall time and the load average before
and after.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from anytime_snn.provenance import Record, model_identity

ROOT = Path(__file__).resolve().parents[1]
__all__ = ["ROOT", "Record", "model_identity", "require_model"]


def require_model(model_dir: str | os.PathLike, option: str = "--model") -> Path:
    """The bundle directory a benchmark simulates, or a clear error (SystemExit) when it is not a bundle.

    Benchmarks never substitute another network (a random one) for a missing model: the numbers would not be
    the documented measurement's. A relative path is taken from the current directory, then from the repository.
    """
    path = Path(model_dir)
    if not path.is_absolute() and not path.exists():
        path = ROOT / path
    if not (path / "manifest.json").is_file():
        raise SystemExit(f"{Path(sys.argv[0]).name}: {option} {model_dir}: not a model bundle (no manifest.json "
                         f"there); build it first (models/default: scripts/make_default_model.sh) or pass "
                         f"{option} DIR")
    return path.resolve()
