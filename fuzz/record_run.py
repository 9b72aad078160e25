#!/usr/bin/env python
"""One longer fuzzing run of a harness, summarised as one JSON line for a record (a script, not a test).

    .venv/bin/python benchmarks/record_command.py --record results/fuzz_image_convert.json -- \
        .venv/bin/python fuzz/record_run.py image_convert 600

Runs ``fuzz/run.sh TARGET SECONDS`` with a fresh work directory (the corpus grows from the committed seeds
only, so a re-run measures the same thing), then replays the final corpus under coverage.py and prints:
executions, executions/s, libFuzzer's coverage edges, features and corpus size at the end, peak RSS, the
crash / timeout / out-of-memory inputs it left (copied to ``$FUZZ_KEEP/<target>/``, default
/tmp/anytime-snn-fuzz-found, with the fuzzer's log: replay one with ``.venv/bin/python fuzz/fuzz_<target>.py
FILE``), and the fraction of the module's lines the corpus covers.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
MODULES = {"image_convert": "*/spike_perception/image_convert.py", "bundle_loader": "*/anytime_snn/model/io.py",
           "core_validation": "*/spike_perception/core.py"}


def stat(text: str, name: str) -> int:
    found = re.findall(rf"stat::{name}:\s+(\d+)", text)
    return int(found[-1]) if found else 0


def main() -> int:
    target, seconds = sys.argv[1], int(sys.argv[2])
    if target not in MODULES:
        sys.exit(f"record_run: unknown target {target!r} ({', '.join(MODULES)})")
    py = os.environ.get("PYTHON", sys.executable)
    with tempfile.TemporaryDirectory() as work:
        env = {**os.environ, "FUZZ_WORK": work}
        proc = subprocess.run([str(HERE / "run.sh"), target, str(seconds)], env=env, capture_output=True, text=True)
        log = proc.stderr + proc.stdout
        done = re.findall(r"DONE\s+cov: (\d+) ft: (\d+) corp: (\d+)/", log)
        artifacts = sorted(p.name for p in (Path(work) / target / "artifacts").iterdir())
        if artifacts or proc.returncode:
            keep = Path(os.environ.get("FUZZ_KEEP", "/tmp/anytime-snn-fuzz-found")) / target
            keep.mkdir(parents=True, exist_ok=True)
            for name in artifacts:
                shutil.copy(Path(work) / target / "artifacts" / name, keep / name)
            (keep / "fuzzer.log").write_text(log)
            sys.stderr.write(log[-6000:] + f"\nrecord_run: inputs and log kept in {keep}\n")
        corpus = Path(work) / target / "corpus"
        data = Path(work) / "coverage"
        subprocess.run([py, "-m", "coverage", "run", f"--data-file={data}", f"--include={MODULES[target]}",
                        str(HERE / "replay.py"), target, str(corpus), str(HERE / "corpus" / target)],
                       check=True, capture_output=True)
        report = subprocess.run([py, "-m", "coverage", "json", f"--data-file={data}", "-o", "-"], check=True,
                                capture_output=True, text=True).stdout
        covered = json.loads(report)["totals"]["percent_covered"]
    print(json.dumps({
        "target": target, "seconds": seconds, "fuzzer_exit_status": proc.returncode,
        "executions": stat(log, "number_of_executed_units"), "executions_per_s": stat(log, "average_exec_per_sec"),
        "coverage_edges": int(done[-1][0]) if done else None, "features": int(done[-1][1]) if done else None,
        "corpus": int(done[-1][2]) if done else None, "peak_rss_mb": stat(log, "peak_rss_mb"),
        "crashes": [a for a in artifacts if a.startswith("crash-")],
        "timeouts": [a for a in artifacts if a.startswith("timeout-")],
        "ooms": [a for a in artifacts if a.startswith("oom-")],
        "corpus_line_coverage_percent": covered}))
    return 0 if proc.returncode == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
