"""Style (colcon test): ament_flake8 with the project's line length (test/flake8.ini)."""

from pathlib import Path

import pytest
from ament_flake8.main import main_with_errors

PKG = Path(__file__).resolve().parents[1]


@pytest.mark.flake8
@pytest.mark.linter
def test_flake8():
    rc, errors = main_with_errors(argv=["--config", str(PKG / "test" / "flake8.ini"),
                                        str(PKG / "spike_perception"), str(PKG / "test")])
    assert rc == 0, f"{len(errors)} style errors:\n" + "\n".join(errors)
