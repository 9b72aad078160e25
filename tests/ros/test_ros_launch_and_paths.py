"""The launch-XML interpreter and the model path resolution (no ROS processes)."""

from __future__ import annotations

from pathlib import Path

import pytest

from spike_perception.launch_xml import LaunchError, parse_launch
from spike_perception.model_path import ENV_VAR, resolve_model

ROOT = Path(__file__).resolve().parents[2]
LAUNCH = ROOT / "launch" / "spike_perception.launch.xml"


def fake_prefix(tmp_path) -> dict:
    prefix = tmp_path / "install"
    (prefix / "share/ament_index/resource_index/packages").mkdir(parents=True)
    (prefix / "share/ament_index/resource_index/packages/spike_perception").touch()
    (prefix / "lib/spike_perception").mkdir(parents=True)
    (prefix / "lib/spike_perception/anytime_classifier").touch()
    return {"AMENT_PREFIX_PATH": str(prefix)}


def test_launch_file_defaults_and_arguments(tmp_path):
    env = fake_prefix(tmp_path)
    (node,) = parse_launch(LAUNCH, {}, env)
    assert (node.pkg, node.exec, node.name, node.namespace) == ("spike_perception", "anytime_classifier",
                                                                 "anytime_classifier", "")
    share = Path(env["AMENT_PREFIX_PATH"]) / "share" / "spike_perception"
    assert node.ros_args == ["--params-file", f"{share}/config/spike_perception.yaml", "-p", "model:=default",
                             "-r", "image:=image"]
    (node,) = parse_launch(LAUNCH, {"namespace": "robot1", "model": "/m", "params_file": "/p.yaml",
                                    "image_topic": "/cam/image_raw"}, env)
    cmd = node.command(env)
    assert cmd[0].endswith("lib/spike_perception/anytime_classifier") and cmd[1] == "--ros-args"
    assert ["-r", "__ns:=/robot1"] == cmd[4:6]
    assert cmd[6:] == ["--params-file", "/p.yaml", "-p", "model:=/m", "-r", "image:=/cam/image_raw"]


def test_launch_interpreter_refuses_what_it_does_not_know(tmp_path):
    env = fake_prefix(tmp_path)
    with pytest.raises(LaunchError, match="unknown launch arguments"):
        parse_launch(LAUNCH, {"modle": "x"}, env)
    bad = tmp_path / "bad.launch.xml"
    bad.write_text('<launch><include file="x.launch.xml"/></launch>')
    with pytest.raises(LaunchError, match="include"):
        parse_launch(bad, {}, env)
    bad.write_text('<launch><node pkg="p" exec="e"><param name="a" value="$(command ls)"/></node></launch>')
    with pytest.raises(LaunchError, match="unsupported substitution"):
        parse_launch(bad, {}, env)
    with pytest.raises(LaunchError, match="not found"):
        parse_launch(LAUNCH, {}, {"AMENT_PREFIX_PATH": str(tmp_path / "nowhere")})


def test_default_model_resolution(tmp_path, monkeypatch):
    bundle = tmp_path / "b"
    bundle.mkdir()
    (bundle / "manifest.json").write_text("{}")
    monkeypatch.setenv(ENV_VAR, str(bundle))
    assert resolve_model("default") == bundle and resolve_model("") == bundle
    assert resolve_model(str(bundle)) == bundle
    with pytest.raises(FileNotFoundError, match="does not exist"):
        resolve_model(str(tmp_path / "missing"))
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "missing"))
    if not (ROOT / "models" / "default" / "manifest.json").is_file():
        with pytest.raises(FileNotFoundError, match=ENV_VAR):
            resolve_model("default")
