"""Start the test agent (client process, which starts the node process) in an isolated sandbox.

Isolation: ``unshare -n -m -p -f --kill-child --mount-proc`` with ``lo`` up and a private tmpfs on
/dev/shm, so DDS reaches nothing outside, shared-memory files vanish with the namespace and every
process inside dies with the sandbox. Where unshare is not permitted the agent runs directly (the
LOCALHOST discovery range and the fixed domain id still fence DDS to this machine) and the
fastdds files our processes leave in /dev/shm are removed afterwards.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
VENV_PY = Path(os.environ.get("VIRTUAL_ENV", ROOT / ".venv")) / "bin" / "python"
DOMAIN_ID = "77"


@functools.lru_cache(maxsize=4)
def ros_environment(prefix: str | None = None) -> dict:
    """The environment of scripts/ros_env.sh (venv + colcon overlay) with the network fence; with
    ``prefix``, the venv and that install prefix's overlay only (not the repository's workspace)."""
    if prefix is None:
        script = f"source {ROOT}/scripts/ros_env.sh >/dev/null"
    else:
        venv = VENV_PY.parent.parent
        script = (f"source {venv}/bin/activate && export AMENT_PREFIX_PATH={venv} CMAKE_PREFIX_PATH={venv} "
                  f"RMW_IMPLEMENTATION=rmw_fastrtps_cpp && set +u && source {prefix}/setup.bash")
    base = {k: v for k, v in os.environ.items()
            if prefix is None or k not in ("AMENT_PREFIX_PATH", "CMAKE_PREFIX_PATH", "PYTHONPATH", "COLCON_PREFIX_PATH")}
    out = subprocess.run(["bash", "-c", f"{script} && env -0"],
                         capture_output=True, check=True, env={**base, "ROS_DOMAIN_ID": DOMAIN_ID})
    env = dict(item.split("=", 1) for item in out.stdout.decode().split("\0") if "=" in item)
    env.update(ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST", ROS_DOMAIN_ID=DOMAIN_ID, PYTHONUNBUFFERED="1")
    env.pop("_ROS_WHEELS_BOOTSTRAP_COMPLETE", None)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (env.get("PYTHONPATH", ""), str(ROOT / "tests" / "ros")) if p)
    return env


def workspace_missing() -> str | None:
    if not (ROOT / "ros2_ws" / "install" / "setup.bash").is_file():
        return "ros2_ws is not built: run scripts/build_ros_ws.sh"
    if not VENV_PY.is_file():
        return f"no venv python at {VENV_PY}: run scripts/bootstrap.sh"
    return None


@functools.lru_cache(maxsize=1)
def unshare_works() -> bool:
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        return False
    probe = subprocess.run(["unshare", "-n", "-m", "-p", "-f", "--kill-child", "--mount-proc", "sh", "-c",
                            "ip link set lo up && mount -t tmpfs -o size=8m tmpfs /dev/shm"],
                           capture_output=True)
    return probe.returncode == 0


def _shm_users() -> set[str]:
    used = set()
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/maps") as f:
                for line in f:
                    if "/dev/shm/" in line:
                        used.add(line.rsplit("/dev/shm/", 1)[1].strip())
        except OSError:
            continue
    return used


class Sandbox:
    """A running agent; ``call(cmd, **kw)`` sends one command and returns the reply dict."""

    def __init__(self, namespace: str = "", log_path: str | None = None, prefix: str | None = None):
        """``prefix``: run agent and node from that install prefix (its launch file, package and model)."""
        env = dict(ros_environment(prefix))
        env["AGENT_NAMESPACE"] = namespace
        if prefix is not None:
            env["AGENT_LAUNCH"] = f"{prefix}/share/spike_perception/launch/spike_perception.launch.xml"
            env.pop("ANYTIME_SNN_DEFAULT_MODEL", None)
        if log_path:
            env["AGENT_NODE_LOG"] = log_path
        agent = [str(VENV_PY), str(ROOT / "tests" / "ros" / "ros_agent.py")]
        self.isolated = unshare_works()
        self._shm_before = set(os.listdir("/dev/shm")) if not self.isolated else set()
        if self.isolated:
            script = "ip link set lo up && mount -t tmpfs -o size=256m tmpfs /dev/shm && exec \"$@\""
            cmd = ["unshare", "-n", "-m", "-p", "-f", "--kill-child", "--mount-proc", "sh", "-c", script, "sh", *agent]
        else:
            cmd = agent
        self.proc = subprocess.Popen(cmd, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, bufsize=1)
        self._stderr: list[str] = []
        threading.Thread(target=self._drain, daemon=True).start()
        hello = self._read(timeout=60)
        if not hello.get("ready"):
            raise RuntimeError(f"agent did not start: {hello}")

    def _drain(self):
        for line in self.proc.stderr:
            self._stderr.append(line)
            del self._stderr[:-200]

    def _read(self, timeout: float) -> dict:
        box: list = []
        t = threading.Thread(target=lambda: box.append(self.proc.stdout.readline()), daemon=True)
        t.start()
        t.join(timeout)
        if not box or not box[0]:
            raise RuntimeError("agent did not answer; stderr:\n" + "".join(self._stderr[-40:]))
        return json.loads(box[0])

    def call(self, cmd: str, timeout: float = 60.0, **kw) -> dict:
        self.proc.stdin.write(json.dumps({"cmd": cmd, **kw}) + "\n")
        self.proc.stdin.flush()
        return self._read(timeout)

    def ok(self, cmd: str, **kw) -> dict:
        reply = self.call(cmd, **kw)
        assert reply.get("ok"), f"{cmd} failed: {reply}"
        return reply

    def close(self):
        try:
            if self.proc.poll() is None:
                self.proc.stdin.write(json.dumps({"cmd": "quit"}) + "\n")
                self.proc.stdin.flush()
                self.proc.wait(15)
        except (OSError, subprocess.TimeoutExpired):
            self.proc.kill()
            self.proc.wait()
        if not self.isolated:
            # Remove fastdds files our processes created and nobody maps any more.
            leftover = set(os.listdir("/dev/shm")) - self._shm_before
            busy = _shm_users()
            for name in leftover:
                if ("fastdds" in name or "fastrtps" in name) and name not in busy:
                    try:
                        os.unlink(os.path.join("/dev/shm", name))
                    except OSError:
                        pass


if __name__ == "__main__":  # manual smoke: python tests/ros/sandbox.py MODEL_DIR
    box = Sandbox()
    print(box.call("start_node", model=sys.argv[1] if len(sys.argv) > 1 else None))
    print(box.call("stream", indices=[0, 1]))
    box.close()
