"""A new user's path, timed on a fresh clone of this repository: ``.ci/run`` (set-up and every test) or ``./run demo``.

    .venv/bin/python benchmarks/fresh_clone.py ci|demo [--keep]
    .venv/bin/python benchmarks/record_command.py --record results/NAME.json -- \
        .venv/bin/python benchmarks/fresh_clone.py ci

Clones the committed HEAD (``git clone`` of this checkout: uncommitted files are not in it) into a temporary
directory, runs the command there with the ROS network fence, and prints one JSON object: the clone's
commit, the wall seconds, the exit status, for ``ci`` the counts of the summary line ``.ci/run`` prints,
and the sizes of the clone and of its ``.venv``. The clone is removed afterwards unless ``--keep``.
Downloads (PyPI wheels, data sets) come from the machine's caches where it has them, as for any user.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COMMANDS = {"ci": [".ci/run"], "demo": ["./run", "demo"]}
SUMMARY = re.compile(r"ci: (\d+) tests: (\d+) passed, (\d+) failed; skips: (\d+)")


def size_mb(path: Path) -> float | None:
    if not path.exists():
        return None
    out = subprocess.run(["du", "-sm", str(path)], capture_output=True, text=True).stdout.split()
    return float(out[0]) if out else None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", choices=sorted(COMMANDS))
    ap.add_argument("--keep", action="store_true", help="keep the clone (its path is printed)")
    args = ap.parse_args()
    parent = Path(tempfile.mkdtemp(prefix="fresh_clone_"))
    clone = parent / "repo"
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(clone)], check=True)
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=clone, capture_output=True, text=True).stdout.strip()
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH", "CI")}
    env.update(ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST", ROS_DOMAIN_ID=env.get("ROS_DOMAIN_ID", "73"))
    t0 = time.monotonic()
    proc = subprocess.run(COMMANDS[args.what], cwd=clone, env=env, capture_output=True, text=True)
    wall = time.monotonic() - t0
    out = {"what": args.what, "command": " ".join(COMMANDS[args.what]), "clone_commit": commit,
           "wall_seconds": round(wall, 1), "exit_status": proc.returncode,
           "venv_mb": size_mb(clone / ".venv"), "clone_mb": size_mb(clone)}
    match = None
    for line in proc.stdout.splitlines() + proc.stderr.splitlines():
        match = SUMMARY.search(line) or match
    if match:
        out |= dict(zip(("tests", "passed", "failed", "skips"), map(int, match.groups())))
    sys.stderr.write((proc.stdout + proc.stderr)[-3000:])
    if args.keep:
        out["clone"] = str(clone)
    else:
        shutil.rmtree(parent, ignore_errors=True)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
