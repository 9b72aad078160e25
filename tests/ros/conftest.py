"""Shared fixtures of the ROS tests. The core tests need no rclpy; the system tests skip without the workspace."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PKG_SRC = ROOT / "ros2_ws" / "src" / "spike_perception"
sys.path.insert(0, str(PKG_SRC))
sys.path.insert(0, str(Path(__file__).resolve().parent))

# Mandatory network fence for anything in this process that might start a ROS context.
os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
os.environ.setdefault("ROS_DOMAIN_ID", "77")


@pytest.fixture(scope="session")
def tiny_bundle_dir(tmp_path_factory):
    from ros_bundles import save, tiny_bundle

    return save(tiny_bundle(), tmp_path_factory.mktemp("bundle") / "tiny")
