"""The node package's own tests (what `colcon test` runs: its ROS-free core on a small network and
ament_flake8), run here so that the suite catches a package whose colcon test would fail."""

from __future__ import annotations

import subprocess

import pytest

from sandbox import ROOT, VENV_PY, ros_environment, workspace_missing

pytestmark = pytest.mark.skipif(workspace_missing() is not None, reason=workspace_missing() or "")


def test_package_tests_pass():
    pkg = ROOT / "ros2_ws" / "src" / "spike_perception"
    env = dict(ros_environment())
    env["PYTHONPATH"] = f"{pkg}:{env.get('PYTHONPATH', '')}"  # the package's sources, as colcon test sees them
    out = subprocess.run([str(VENV_PY), "-m", "pytest", "-q", "-p", "no:cacheprovider", str(pkg / "test")],
                         cwd=pkg, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]
    assert "4 passed" in out.stdout
