"""An interpreter of the ROS 2 launch XML subset our launch files use (``ros2 launch`` is not
installable from PyPI): ``<arg name default>``, ``<node pkg exec name namespace>`` with
``<param from>``, ``<param name value>`` and ``<remap from to>``; substitutions ``$(var x)``,
``$(env X [default])`` and ``$(find-pkg-share pkg)``. Anything else raises, so a launch file that
grows beyond the subset fails the tests instead of being half-run.
"""

from __future__ import annotations

import os
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

_SUBST = re.compile(r"\$\(([a-z-]+)((?:\s+[^)\s]+)*)\s*\)")


class LaunchError(ValueError):
    pass


def _find_prefix(pkg: str, env: dict) -> Path:
    for prefix in env.get("AMENT_PREFIX_PATH", "").split(os.pathsep):
        if prefix and (Path(prefix) / "share" / "ament_index" / "resource_index" / "packages" / pkg).exists():
            return Path(prefix)
    raise LaunchError(f"package {pkg!r} not found on AMENT_PREFIX_PATH")


def substitute(text: str, args: dict, env: dict) -> str:
    def one(m):
        kind, rest = m.group(1), m.group(2).split()
        if kind == "var":
            if rest[0] not in args:
                raise LaunchError(f"undefined launch argument {rest[0]!r}")
            return args[rest[0]]
        if kind == "env":
            if rest[0] in env:
                return env[rest[0]]
            if len(rest) > 1:
                return rest[1].strip("'\"")
            raise LaunchError(f"environment variable {rest[0]!r} is not set")
        if kind == "find-pkg-share":
            return str(_find_prefix(rest[0], env) / "share" / rest[0])
        raise LaunchError(f"unsupported substitution $({kind} ...)")

    return _SUBST.sub(one, text)


@dataclass
class NodeAction:
    pkg: str
    exec: str
    name: str | None
    namespace: str
    ros_args: list[str] = field(default_factory=list)

    def command(self, env: dict) -> list[str]:
        exe = _find_prefix(self.pkg, env) / "lib" / self.pkg / self.exec
        if not exe.is_file():
            raise LaunchError(f"executable {exe} not found")
        cmd = [str(exe), "--ros-args"]
        if self.name:
            cmd += ["-r", f"__node:={self.name}"]
        if self.namespace:
            ns = self.namespace if self.namespace.startswith("/") else "/" + self.namespace
            cmd += ["-r", f"__ns:={ns}"]
        return cmd + self.ros_args


def parse_launch(path: str | os.PathLike, launch_args: dict | None = None, env: dict | None = None) -> list[NodeAction]:
    """The node actions of the launch file with ``launch_args`` (name:=value) applied."""
    env = dict(os.environ if env is None else env)
    given = dict(launch_args or {})
    root = ET.parse(path).getroot()
    if root.tag != "launch":
        raise LaunchError(f"root element must be <launch>, got <{root.tag}>")
    args: dict[str, str] = {}
    nodes = []
    for el in root:
        if el.tag == "arg":
            name = el.get("name")
            if name in given:
                args[name] = given.pop(name)
            elif el.get("default") is not None:
                args[name] = substitute(el.get("default"), args, env)
            else:
                raise LaunchError(f"launch argument {name!r} is required")
        elif el.tag == "node":
            ros_args = []
            for child in el:
                if child.tag == "param" and child.get("from") is not None:
                    ros_args += ["--params-file", substitute(child.get("from"), args, env)]
                elif child.tag == "param":
                    ros_args += ["-p", f"{child.get('name')}:={substitute(child.get('value'), args, env)}"]
                elif child.tag == "remap":
                    ros_args += ["-r", f"{substitute(child.get('from'), args, env)}:="
                                       f"{substitute(child.get('to'), args, env)}"]
                else:
                    raise LaunchError(f"unsupported <node> child <{child.tag}>")
            nodes.append(NodeAction(
                pkg=el.get("pkg"), exec=el.get("exec"),
                name=substitute(el.get("name"), args, env) if el.get("name") else None,
                namespace=substitute(el.get("namespace", ""), args, env), ros_args=ros_args))
        else:
            raise LaunchError(f"unsupported launch element <{el.tag}>")
    if given:
        raise LaunchError(f"unknown launch arguments: {sorted(given)}")
    return nodes


def launch_commands(path, launch_args=None, env=None) -> list[list[str]]:
    env = dict(os.environ if env is None else env)
    return [n.command(env) for n in parse_launch(path, launch_args, env)]
