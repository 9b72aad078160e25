"""A ``reproduce`` run killed in any stage finishes, when run again, with the record of an uninterrupted run.

Each stage records its result (``stage.json``) atomically when its work is done; a run killed before that
leaves the stage's files behind without a record, and the next run must redo the stage over them and come
to the same result. The worst moment is the last one: the work done, the record not yet written. This test
SIGKILLs a real ``anytime-snn reproduce fig5 --quick`` process at exactly that moment, once in every stage
in turn (each run resumes the previous one's directory), and compares the final ``results.json`` and every
stage's result with an uninterrupted run's, wall times aside. (Killing the optimizer mid-run and resuming
its checkpoint is tests/test_faults.py's.)

This file is also the child process: ``python tests/test_reproduce_resume.py OUT [KILL_STAGE]``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

ARGS = ["reproduce", "fig5", "--quick", "--only", "dense-mnist"]


def child(out: str, kill_stage: str | None) -> int:
    """Run the experiment; with ``kill_stage``, SIGKILL this process just before that stage's record is written."""
    from anytime_snn.cli import main
    from anytime_snn.reproduce import stages

    write = stages.atomic_write

    def atomic_write(path, data):
        if kill_stage and Path(path).name == stages.STAGE_FILE and Path(path).parent.name == kill_stage:
            os.kill(os.getpid(), signal.SIGKILL)
        write(path, data)

    stages.atomic_write = atomic_write
    return main([*ARGS, "--out", out])


def _run(out: Path, kill_stage: str | None = None) -> int:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    cmd = [sys.executable, __file__, str(out)] + ([kill_stage] if kill_stage else [])
    return subprocess.run(cmd, env=env, capture_output=True, timeout=600).returncode


def _without_wall_times(value):
    if isinstance(value, dict):
        return {k: _without_wall_times(v) for k, v in value.items()
                if "wall_time" not in k and k not in ("seconds", "stage_seconds")}
    if isinstance(value, list):
        return [_without_wall_times(v) for v in value]
    return value


def _stage_results(out: Path) -> dict:
    return {p.parent.name: _without_wall_times(json.loads(p.read_text())["result"])
            for p in (out / "stages" / "dense-mnist").glob("*/stage.json")}


def _paths_relative(value, out: Path):
    """Stage results name files under their run's directory: compare them relative to it."""
    if isinstance(value, dict):
        return {k: _paths_relative(v, out) for k, v in value.items()}
    if isinstance(value, list):
        return [_paths_relative(v, out) for v in value]
    return value.replace(str(out), "OUT") if isinstance(value, str) else value


@pytest.mark.timeout(900)
def test_run_killed_in_each_stage_resumes_to_the_same_record(tmp_path):
    from anytime_snn.data import mnist

    if not mnist.is_cached():
        pytest.skip("MNIST not cached: run anytime-snn data fetch mnist")
    ref = tmp_path / "uninterrupted"
    assert _run(ref) == 0
    order = sorted((ref / "stages" / "dense-mnist").glob("*/stage.json"), key=lambda p: p.stat().st_mtime_ns)
    stages = [p.parent.name for p in order]
    assert len(stages) >= 6, stages  # train, sparsify, two conversions, optimization, two evaluations

    out = tmp_path / "killed"
    for stage in stages:
        assert _run(out, stage) == -signal.SIGKILL, f"the run was not killed in stage {stage}"
        assert not (out / "stages" / "dense-mnist" / stage / "stage.json").exists()
    assert _run(out) == 0

    # the optimization, killed after its last checkpoint, resumed it: its time counts the killed run's evaluations
    opt = json.loads((out / "stages" / "dense-mnist" / "opt_sparse_full" / "stage.json").read_text())["result"]
    assert 0 < opt["wall_time_s_earlier_runs"] <= opt["wall_time_s"] + 0.001, opt  # both rounded to 1 ms
    ref_opt = json.loads((ref / "stages" / "dense-mnist" / "opt_sparse_full" / "stage.json").read_text())["result"]
    assert ref_opt["wall_time_s_earlier_runs"] == 0
    got = _paths_relative(_stage_results(out), out)
    want = _paths_relative(_stage_results(ref), ref)
    assert got.keys() == want.keys()
    for stage in stages:
        assert got[stage] == want[stage], f"stage {stage} differs after the kills"
    results = [_paths_relative(_without_wall_times(json.loads((d / "fig5" / "results.json").read_text())), d)
               for d in (out, ref)]
    assert results[0] == results[1]


if __name__ == "__main__":
    sys.exit(child(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else None))
