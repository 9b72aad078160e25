"""The package installs anywhere: a fresh install prefix, built from the sources, runs the node on its own.

scripts/build_ros_ws.sh --prefix builds both packages into a new prefix; agent and node then run with only
the venv and that prefix on their paths (not the repository's workspace), from the prefix's launch file,
parameter file and bundled model.
"""

from __future__ import annotations

import subprocess

import pytest

from sandbox import ROOT, Sandbox, workspace_missing

pytestmark = pytest.mark.skipif(workspace_missing() is not None, reason=workspace_missing() or "")


def test_node_runs_from_a_fresh_install_prefix(tmp_path):
    prefix = tmp_path / "ws"
    built = subprocess.run([str(ROOT / "scripts" / "build_ros_ws.sh"), "--prefix", str(prefix)],
                           capture_output=True, text=True, timeout=900)
    assert built.returncode == 0, built.stderr[-3000:]
    install = prefix / "install"
    share = install / "share" / "spike_perception"
    for f in ("models/default/manifest.json", "models/default/tensors.safetensors", "config/spike_perception.yaml",
              "launch/spike_perception.launch.xml", "package.xml"):
        assert (share / f).is_file() and not (share / f).is_symlink(), f
    sb = Sandbox(prefix=str(install), log_path=str(tmp_path / "node.log"))
    try:
        start = sb.ok("start_node")  # the prefix's launch file and its default parameter file; model "default"
        assert start["cmd"][0].startswith(str(install))
        assert f"{share}/config/spike_perception.yaml" in start["cmd"]
        info = sb.ok("model_info")
        assert info["location"] == str(share / "models" / "default") and len(info["labels"]) == 10
        answer = sb.ok("service", index=3, max_timesteps=10)
        assert answer["stop_reason"] == "timesteps" and answer["result"]["model_id"] == info["model_id"]
    finally:
        sb.close()
