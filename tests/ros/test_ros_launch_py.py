"""launch/spike_perception.launch.py declares what spike_perception.launch.xml declares.

`launch` and `launch_ros` are not installable here (not on PyPI), so the Python file runs against
minimal stand-ins that record what it constructs; the result is resolved like the XML interpreter
resolves the XML (spike_perception.launch_xml) and the two are compared for defaults and overrides.
"""

from __future__ import annotations

import runpy
import sys
import types
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from spike_perception.launch_xml import parse_launch

ROOT = Path(__file__).resolve().parents[2]
XML, PY = ROOT / "launch" / "spike_perception.launch.xml", ROOT / "launch" / "spike_perception.launch.py"


class _Recorded:
    def __init__(self, *args, **kwargs):
        self.args, self.kwargs = args, kwargs


def _stand_ins() -> dict:
    names = {"launch": ["LaunchDescription"], "launch.actions": ["DeclareLaunchArgument"],
             "launch.substitutions": ["LaunchConfiguration", "PathJoinSubstitution"],
             "launch_ros.actions": ["Node"], "launch_ros.substitutions": ["FindPackageShare"]}
    mods = {}
    for mod, classes in names.items():
        m = types.ModuleType(mod)
        for c in classes:
            setattr(m, c, type(c, (_Recorded,), {}))
        mods[mod] = m
    mods["launch_ros"] = types.ModuleType("launch_ros")
    return mods


def _resolve(value, args: dict, share: str) -> str:
    kind = type(value).__name__
    if isinstance(value, str):
        return value
    if kind == "LaunchConfiguration":
        return args[value.args[0]]
    if kind == "FindPackageShare":
        assert value.args == ("spike_perception",)
        return share
    if kind == "PathJoinSubstitution":
        return "/".join(_resolve(v, args, share) for v in value.args[0])
    raise AssertionError(f"unexpected substitution {kind}")


def _python_launch(given: dict, share: str):
    """(declared arguments {name: (default, description)}, node as (pkg, exec, name, namespace, ros_args))."""
    saved = {k: sys.modules.get(k) for k in _stand_ins()}
    sys.modules.update(_stand_ins())
    try:
        desc = runpy.run_path(str(PY))["generate_launch_description"]()
    finally:
        for k, v in saved.items():
            if v is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = v
    (entities,) = desc.args
    declared, args, nodes = {}, {}, []
    for e in entities:
        if type(e).__name__ == "DeclareLaunchArgument":
            name = e.args[0]
            default = _resolve(e.kwargs["default_value"], args, share)
            declared[name] = (default, e.kwargs["description"])
            args[name] = given.get(name, default)
        else:
            nodes.append(e)
    (node,) = nodes
    k = node.kwargs
    ros_args = []
    for p in k["parameters"]:
        if isinstance(p, dict):
            ros_args += [x for name, v in p.items() for x in ("-p", f"{name}:={_resolve(v, args, share)}")]
        else:
            ros_args += ["--params-file", _resolve(p, args, share)]
    for src, dst in k["remappings"]:
        ros_args += ["-r", f"{_resolve(src, args, share)}:={_resolve(dst, args, share)}"]
    return declared, (k["package"], k["executable"], k["name"], _resolve(k["namespace"], args, share), ros_args)


def _xml_arguments(share: str) -> dict:
    out = {}
    for el in ET.parse(XML).getroot().iter("arg"):
        default = el.get("default").replace("$(find-pkg-share spike_perception)", share)
        out[el.get("name")] = (default, el.get("description"))
    return out


@pytest.mark.parametrize("given", [{}, {"namespace": "robot1", "model": "/m", "params_file": "/p.yaml",
                                        "image_topic": "/cam/image_raw"}])
def test_python_launch_file_matches_the_xml(tmp_path, given):
    prefix = tmp_path / "install"
    (prefix / "share/ament_index/resource_index/packages").mkdir(parents=True)
    (prefix / "share/ament_index/resource_index/packages/spike_perception").touch()
    share = str(prefix / "share" / "spike_perception")
    declared, node = _python_launch(given, share)
    assert declared == _xml_arguments(share)
    (x,) = parse_launch(XML, given, {"AMENT_PREFIX_PATH": str(prefix)})
    assert node == (x.pkg, x.exec, x.name, x.namespace, x.ros_args)


def test_launch_and_config_files_live_in_the_package():
    """setup.py installs the package's launch/ and config/ into share/ (no link out of the package; the
    repository's top-level launch/ is a link to the package's)."""
    pkg = ROOT / "ros2_ws" / "src" / "spike_perception"
    assert not (pkg / "launch").is_symlink() and (pkg / "launch" / PY.name).is_file()
    assert (pkg / "launch" / XML.name).is_file() and (pkg / "config" / "spike_perception.yaml").is_file()
    assert PY.resolve() == (pkg / "launch" / PY.name).resolve()
