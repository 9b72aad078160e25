"""Where the node finds its model bundle."""

from __future__ import annotations

import os
from pathlib import Path

ENV_VAR = "ANYTIME_SNN_DEFAULT_MODEL"
DEFAULT_NAMES = ("", "default")  # values of the `model` parameter that mean "the bundled default model"


def default_model_candidates() -> list[Path]:
    """$ANYTIME_SNN_DEFAULT_MODEL; the model installed with this package (share/spike_perception/models/
    default, found through the ament index); <repo>/models/default next to the anytime_snn sources."""
    out = []
    if os.environ.get(ENV_VAR):
        out.append(Path(os.environ[ENV_VAR]).expanduser())
    try:
        from ament_index_python.packages import PackageNotFoundError, get_package_share_directory

        try:
            out.append(Path(get_package_share_directory("spike_perception")) / "models" / "default")
        except PackageNotFoundError:
            pass
    except ImportError:  # pragma: no cover - ament_index_python comes with rclpy
        pass
    try:
        import anytime_snn

        pkg = Path(anytime_snn.__file__).resolve().parent
        out += [pkg.parent.parent / "models" / "default", pkg / "models" / "default"]
    except ImportError:  # pragma: no cover - the node needs anytime_snn anyway
        pass
    return out


def resolve_model(value: str) -> Path:
    """The bundle directory for the ``model`` parameter value; raises FileNotFoundError naming what was tried."""
    if value.strip() in DEFAULT_NAMES:
        tried = default_model_candidates()
        for cand in tried:
            if (cand / "manifest.json").is_file():
                return cand
        raise FileNotFoundError(
            "the bundled default model was not found; tried " + ", ".join(str(c) for c in tried)
            + f". Set the `model` parameter or {ENV_VAR} to a bundle directory.")
    path = Path(value).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"model bundle {str(path)!r} does not exist")
    return path
