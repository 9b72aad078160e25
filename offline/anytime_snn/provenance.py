"""Provenance of a measurement: what a committed record in results/ says besides its numbers.

Used by the benchmarks (``--record``) and ``anytime-snn evaluate --record``.

A record lets a reader re-run the measurement and see whether it still holds: the exact command, the
commit (and whether tracked code, i.e. anything but results/, docs/ and Markdown, had uncommitted
changes), the model's content hash, the machine, the date, the wall time and the load average before
and after.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from pathlib import Path

# The checkout this package runs from (git commands fail quietly in an installed copy elsewhere).
ROOT = Path(__file__).resolve().parents[2]


# What "uncommitted changes" means in a record: a tracked file that can change a measurement was edited.
# Records, docs and other Markdown do not (a record rewritten before its commit used to set the flag).
CODE_PATHS = (".", ":(exclude)results", ":(exclude)docs", ":(exclude)*.md")


def _git(*args: str) -> str:
    try:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def _code_diff(commit: str) -> str:
    """The tracked code's difference between ``commit`` and the working tree. A long run imports parts of the
    package lazily, so code edited or committed while it runs can change what it measures: the run's code is
    unchanged while its diff against the starting commit stays the same (commits of docs do not count)."""
    return _git("diff", commit or "HEAD", "--", *CODE_PATHS)


def _working_code() -> tuple[str, str]:
    """HEAD's commit and the tracked code's diff against it, now."""
    commit = _git("rev-parse", "HEAD")
    return commit, _code_diff(commit)


_process_code: dict | None = None  # this process's code identity, taken when it first asked (or began a record)


def code_identity() -> dict:
    """The code this process runs: the commit and a hash of the tracked code's uncommitted diff (None when
    clean), as they were when it first asked or began its record. Cached stages of a long run store it, so a
    record can say which of them ran at other code. A stage finished hours into a run was made by the code the
    run started with, not by what was committed meanwhile (a record says when the tree changed under the run:
    ``code_changed_during_run``)."""
    global _process_code
    if _process_code is None:
        _process_code = _identity(*_working_code())
    return _process_code


def _identity(commit: str, diff: str) -> dict:
    return {"commit": commit, "diff_sha256": hashlib.sha256(diff.encode()).hexdigest()[:16] if diff else None}


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def model_identity(model_dir: str | os.PathLike | None) -> dict | None:
    """Path and content hash (the manifest's sha256, which covers the tensors' sha256) of a bundle."""
    if model_dir is None:
        return None
    manifest = json.loads((Path(model_dir) / "manifest.json").read_text())
    try:
        path = str(Path(model_dir).resolve().relative_to(ROOT))
    except ValueError:
        path = str(model_dir)
    return {"path": path, "manifest_sha256": manifest.get("manifest_sha256")}


def mpi_launcher() -> list[str]:
    """``["mpiexec", "-n", N]`` when this process is one of N > 1 ranks started by mpiexec, else ``[]``:
    a record's command must say how many ranks measured it (read from the launcher's environment)."""
    for key in ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE"):
        raw = os.environ.get(key, "")
        if raw.isdigit() and int(raw) > 1:
            return ["mpiexec", "-n", raw]
    return []


class Record:
    """Start a record before measuring (``Record(model_dir)``), ``finish(numbers)`` after; ``write(path)``."""

    def __init__(self, model_dir=None, argv: list[str] | None = None, command: str | None = None):
        """``command``: the command line as the user typed it (default: this process's, with ``argv`` as
        its arguments if given)."""
        self.t0 = time.time()
        if command is None:
            program = Path(sys.argv[0]).resolve()
            program = program.relative_to(ROOT).as_posix() if program.is_relative_to(ROOT) else sys.argv[0]
            command = shlex.join([program, *(sys.argv[1:] if argv is None else argv)])
        launcher = mpi_launcher()
        commit, self._code = _working_code()
        self.code = _identity(commit, self._code)
        global _process_code
        if _process_code is None:
            _process_code = self.code
        self.data = {
            "command": f"{shlex.join(launcher)} {command}" if launcher else command,
            "commit": commit,
            "uncommitted_changes": bool(self._code),
            "model": model_identity(model_dir),
            "machine": {"cpu": _cpu_model(), "cores": os.cpu_count(), "python": platform.python_version(),
                        "system": f"{platform.system()} {platform.release()}"},
            "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.t0)),
            "load_average_before": list(os.getloadavg()),
        }

    def finish(self, numbers: dict, parts: dict[str, list[dict] | None] | None = None) -> dict:
        """``parts``: the code identities (:func:`code_identity`) of the cached parts the run reused or resumed,
        by name (None: not known); those that ran at code other than this run's go into the record."""
        self.data.update(wall_seconds=round(time.time() - self.t0, 1), load_average_after=list(os.getloadavg()),
                         numbers=numbers)
        if _code_diff(self.data["commit"]) != self._code:  # the code changed under the run: say so, and where
            self.data.update(code_changed_during_run=True, commit_at_end=_git("rev-parse", "HEAD"))
        other = {name: codes for name, codes in (parts or {}).items() if codes != [self.code]}
        if other:
            self.data["parts_at_other_code"] = other
        return self.data

    def write(self, path: str | os.PathLike) -> None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(json.dumps(self.data, indent=1) + "\n")
