#!/usr/bin/env python
"""Run tests and print their outcome and wall time per test as one JSON line (a script, not a test).

    .venv/bin/python benchmarks/record_command.py --record results/NAME.json -- \
        .venv/bin/python benchmarks/test_durations.py tests/test_reproduce.py

Runs ``scripts/run_tests.sh ARGS`` (the README's test command) with a JUnit XML report and prints
{"tests": [{"name", "outcome", "seconds"}], "passed", "failed", "skipped", "seconds"}: the time of each test
(set-up and tear-down included, as pytest reports them) and of the whole run.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "junit.xml"
        t0 = time.perf_counter()
        proc = subprocess.run([str(ROOT / "scripts" / "run_tests.sh"), *sys.argv[1:], f"--junitxml={report}", "-q"],
                              cwd=ROOT)
        seconds = time.perf_counter() - t0
        tests = []
        for case in ET.parse(report).getroot().iter("testcase"):
            outcome = next((kind for kind in ("failure", "error", "skipped") if case.find(kind) is not None), "passed")
            tests.append({"name": f"{case.get('classname', '')}::{case.get('name')}", "outcome": outcome,
                          "seconds": float(case.get("time", 0))})
    count = {k: sum(t["outcome"] == k for t in tests) for k in ("passed", "failure", "error", "skipped")}
    print(json.dumps({"tests": tests, "passed": count["passed"], "failed": count["failure"] + count["error"],
                      "skipped": count["skipped"], "seconds": seconds, "pytest_exit_status": proc.returncode}))
    return proc.returncode


if __name__ == "__main__":
    sys.exit(main())
