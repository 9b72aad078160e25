#!/usr/bin/env python
"""Run a command that prints its numbers as one JSON line, and keep them as a record (benchmarks/record.py).

    .venv/bin/python benchmarks/record_command.py --record results/NAME.json [--model DIR] [--cwd DIR] -- CMD ...

For measurements whose program cannot write a record itself, e.g. a benchmark at an older git revision
(checked out with ``git worktree add /tmp/old REV``, run with ``PYTHONPATH=/tmp/old/offline``) for a
before/after pair. The record's command is this whole command line; its numbers are the last JSON
object CMD printed on stdout, plus CMD's exit status.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from record import Record  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--record", required=True, type=Path)
    ap.add_argument("--model", help="the bundle the command measures (its hash goes into the record)")
    ap.add_argument("--cwd", help="working directory of the command")
    ap.add_argument("cmd", nargs=argparse.REMAINDER)
    args = ap.parse_args()
    cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
    if not cmd:
        ap.error("no command given (put it after --)")
    record = Record(args.model)
    proc = subprocess.run(cmd, cwd=args.cwd, capture_output=True, text=True)
    sys.stderr.write(proc.stderr[-4000:])
    print(proc.stdout, end="")
    numbers = None
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith("{"):
            try:
                numbers = json.loads(line)
                break
            except json.JSONDecodeError:
                continue
    if proc.returncode != 0 or numbers is None:
        sys.exit(f"record_command: the command failed (exit {proc.returncode}) or printed no JSON line; no record")
    cwd_commit = None
    if args.cwd:
        cwd_commit = subprocess.run(["git", "-C", args.cwd, "rev-parse", "HEAD"], capture_output=True,
                                    text=True).stdout.strip() or None
    record.finish({"exit_status": proc.returncode, "cwd": args.cwd, "cwd_commit": cwd_commit,
                   "pythonpath": os.environ.get("PYTHONPATH"), **numbers})
    record.write(args.record)


if __name__ == "__main__":
    main()
