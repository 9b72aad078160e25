"""Optimizer faults: SIGKILL anywhere (also inside checkpoint writes) then --resume gives the identical
result; damaged checkpoints are never loaded; an MPI rank dying ends the run with an error, not a hang.

The runs are real: NLopt Subplex, the Optimizer driver, its checkpoints and resume, MPI collectives,
and the paper's loss L_SNN. Only the simulator differs from the CLI's: the loss is computed with the
NumPy reference simulator (the project's oracle) on a tiny dyadic network sharded over ranks with an
integer all-reduce, so a process starts in about a second and many kills fit in CI.

This file is also the child process: ``python tests/test_faults.py OUT [--resume] [--kill SPEC]``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest

from anytime_snn.errors import ConfigError
from anytime_snn.optimize import checkpoint

pytest.importorskip("nlopt")

HERE = Path(__file__).resolve()
VENV_BIN = Path(sys.executable).parent
CONFIG = dict(phases=("model", "layer", "neuron"), budgets=(8, 14, 18), checkpoint_every=2)
RUN_INFO = {"test": "faults", "samples": 48, "timesteps": 12}


# ----------------------------------------------------------------------------- the run (also the child)


def make_objective(comm):
    from anytime_snn.convert.normalize import ann_forward
    from anytime_snn.optimize import Objective
    from anytime_snn.optimize.objective import DEFAULT_LAMBDAS, check_lambdas
    from anytime_snn.optimize.parallel import allreduce_sum
    from anytime_snn.optimize.params import hidden_layers
    from anytime_snn.sim import reference
    from anytime_snn.testing import NetSpec, random_bundle, random_inputs

    spec = NetSpec(input_shape=(16,), convs=(), dense=(12, 8), classes=4)
    base = random_bundle(spec, 7)
    x = random_inputs(spec, RUN_INFO["samples"], 7)
    labels = ann_forward(base.layers, x).argmax(1)

    class ReferenceObjective(Objective):
        """L_SNN with the reference simulator; each rank simulates its shard, integer totals are summed."""

        def __init__(self):  # noqa: D107 - the parent's needs the TF engine; set what __call__/serve use
            self.base, self.a_max, self.lambdas = base, 1.0, check_lambdas(DEFAULT_LAMBDAS)
            self.hidden = hidden_layers(base)
            self.size = 2 * sum(h.channels for h in self.hidden)
            self.comm, self.timesteps = comm, RUN_INFO["timesteps"]
            part = np.array_split(np.arange(len(labels)), comm.size)[comm.rank]
            self.x, self.labels, self.calls = x[part], labels[part], 0

        def _measure(self, state):
            self.calls += 1
            if comm.rank == 1 and self.calls == int(os.environ.get("FAULT_KILL_RANK1_AT", "0")):
                os.kill(os.getpid(), signal.SIGKILL)
            if comm.rank == 1 and self.calls == int(os.environ.get("FAULT_STOP_RANK1_AT", "0")):
                os.kill(os.getpid(), signal.SIGSTOP)  # hangs: neither dies nor answers
            res = reference.simulate(self.bundle(state), self.x, self.timesteps)
            correct = (res.predictions == self.labels[None, :]).sum(axis=1)
            tot = allreduce_sum(comm, np.concatenate([correct, res.events.sum(axis=1)]))
            t = self.timesteps
            return self.measure_curves(tot[:t] / len(labels), tot[t:] / len(labels))

    return ReferenceObjective()


def run(out: Path, resume: bool, kill: str = "", comm=None) -> dict | None:
    """One optimizer process (rank 0 drives, other ranks serve). ``kill``: where to SIGKILL this process:
    ``eval:N`` after its N-th simulated evaluation; ``write:K:STAGE`` in its K-th checkpoint file write
    (odd K: the arrays, even K: checkpoint.json), STAGE one of before | partial (half the temporary
    file written) | unrenamed (temporary file complete, not yet renamed) | after (renamed)."""
    from anytime_snn.optimize import OptimizeConfig, Optimizer, world

    comm = comm or world()
    objective = make_objective(comm)
    if comm.rank != 0:
        objective.serve()
        return None
    die = lambda: os.kill(os.getpid(), signal.SIGKILL)  # noqa: E731
    on_evaluation = None
    if kill.startswith("eval:"):
        n = int(kill.split(":")[1])
        count = iter(range(1, 10**9))
        on_evaluation = lambda entry: next(count) == n and die()  # noqa: E731
    elif kill.startswith("write:"):
        k, stage = int(kill.split(":")[1]), kill.split(":")[2]
        real, calls = checkpoint.atomic_write, iter(range(1, 10**9))

        def faulty_write(target: Path, data: bytes) -> None:
            if next(calls) != k:
                return real(target, data)
            if stage == "after":
                real(target, data)
            elif stage in ("partial", "unrenamed"):
                fd, _ = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")  # as atomic_write does
                os.write(fd, data[:len(data) // 2] if stage == "partial" else data)
                if stage == "unrenamed":
                    os.fsync(fd)
            die()

        checkpoint.atomic_write = faulty_write
    try:
        result = Optimizer(objective, OptimizeConfig(**CONFIG), out, run_info=RUN_INFO,
                           on_evaluation=on_evaluation).run(resume)
    finally:
        objective.close()
    record = {"history": [{k: v for k, v in e.items() if k != "seconds"} for e in result.history],
              "state": result.state.flat().tolist(), "best": result.best["key"], "simulated": result.simulated}
    (out / "result.json").write_text(json.dumps(record))
    return record


def child(out: Path, *flags: str, timeout: float = 120, env=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(HERE), str(out), *flags], capture_output=True, text=True,
                          timeout=timeout, env=env)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The uninterrupted single-process run."""
    from anytime_snn.optimize import SingleProcess

    return run(tmp_path_factory.mktemp("faults") / "reference", resume=False, comm=SingleProcess())


def assert_prefix_of(out: Path, ref: dict) -> int:
    """The checkpoint on disk loads (never a half-written one) and holds a prefix of the reference history."""
    found = checkpoint.load(out)
    if found is None:
        return 0
    history = [{k: v for k, v in e.items() if k != "seconds"} for e in found[0]["history"]]
    assert history == ref["history"][:len(history)]
    return len(history)


def assert_same_result(out: Path, ref: dict) -> None:
    got = json.loads((out / "result.json").read_text())
    assert got["history"] == ref["history"]
    assert got["state"] == ref["state"] and got["best"] == ref["best"]


# ----------------------------------------------------------------------------- SIGKILL then resume


def test_sigkill_at_every_stage_of_checkpoint_writing_then_resume_is_identical(reference, tmp_path):
    """One run killed nine times in a row, each resumed with --resume: before the first checkpoint,
    inside each stage of writing the arrays and the state file, and between the two; the final
    result equals the uninterrupted run's, and every checkpoint left behind loads."""
    kills = ["eval:1", "write:1:partial", "write:2:partial", "write:3:unrenamed", "write:4:unrenamed",
             "write:1:after", "write:2:after", "write:2:before", "eval:5"]
    out, progress = tmp_path / "run", []
    for i, kill in enumerate(kills):
        proc = child(out, *(["--resume"] if i else []), "--kill", kill)
        assert proc.returncode == -signal.SIGKILL, (kill, proc.stderr[-3000:])
        progress.append(assert_prefix_of(out, reference))
    assert progress[-1] > progress[0] and progress[-1] < len(reference["history"])  # work kept, not finished
    proc = child(out, "--resume")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert_same_result(out, reference)
    assert json.loads((out / "result.json").read_text())["simulated"] < len(reference["history"]) - progress[-1] + 3
    # Only the newest generation is kept; temporary files of the killed writes were cleaned up.
    assert sorted(p.name for p in out.iterdir()) == [
        "checkpoint-%06d.npz" % checkpoint.load_state(out)["generation"], "checkpoint.json", "result.json"]


def test_sigkill_at_random_points_then_resume_is_identical(reference, tmp_path):
    """Kill points drawn at random (seeded, so a failure reproduces): after a random number of
    evaluations, in a random write at a random stage, or after a random wall-clock delay; each run
    is resumed until it finishes, then must equal the uninterrupted one. CI draws 5 kills; the
    documented longer run sets FAULT_KILLS (and FAULT_SEED). Ends with a JSON summary line (with -s, for
    benchmarks/record_command.py)."""
    rng_seed = int(os.environ.get("FAULT_SEED", "2026"))
    rng = random.Random(rng_seed)
    wanted, kills, runs, out, specs = int(os.environ.get("FAULT_KILLS", "5")), 0, 0, None, []
    while kills < wanted or out is not None:
        if out is None:
            runs, fresh = runs + 1, True
            out = tmp_path / f"run{runs}"
        u = rng.random()
        spec = ("" if kills >= wanted else f"eval:{rng.randint(1, 8)}" if u < 0.35 else
                f"time:{rng.uniform(0.3, 2.5):.2f}" if u < 0.55 else
                f"write:{rng.randint(1, 8)}:{rng.choice(['before', 'partial', 'unrenamed', 'after'])}")
        specs.append(spec)
        flags = ([] if fresh else ["--resume"]) + (["--kill", spec] if spec and not spec.startswith("time:") else [])
        fresh = False
        if spec.startswith("time:"):
            proc = subprocess.Popen([sys.executable, str(HERE), str(out), *flags], stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL)
            try:
                proc.wait(timeout=float(spec[5:]))
            except subprocess.TimeoutExpired:
                proc.send_signal(signal.SIGKILL)
                proc.wait()
            rc = proc.returncode
        else:
            proc = child(out, *flags)
            rc = proc.returncode
            assert rc in (0, -signal.SIGKILL), (specs, proc.stderr[-3000:])
        if rc == 0:  # the run finished (before the kill point, or the final resume)
            assert_same_result(out, reference)
            out = None
            continue
        assert rc == -signal.SIGKILL, (specs, rc)
        kills += 1
        assert_prefix_of(out, reference)
    print(f"{kills} kills over {runs} runs, all resumed to the identical result: {specs}")
    drawn = [sp.split(":")[0] for sp in specs if sp]
    print(json.dumps({"kills": kills, "runs": runs, "processes": len(specs), "seed": rng_seed,
                      "kill_points": {k: drawn.count(k) for k in ("write", "eval", "time")},
                      "all_runs_identical": True}))


# ----------------------------------------------------------------------------- damaged checkpoints


@pytest.fixture
def saved_twice(tmp_path) -> Path:
    checkpoint.save(tmp_path, {"history": [1]}, {"a": np.arange(3.0)})
    checkpoint.save(tmp_path, {"history": [1, 2]}, {"a": np.arange(4.0)})
    return tmp_path


def test_leftover_temporary_files_of_a_killed_write_are_ignored(saved_twice):
    (saved_twice / ".checkpoint.json.x1y2z3").write_text('{"format": "anytime-snn-optimize-checkpoint", "ver')
    (saved_twice / ".checkpoint-000003.npz.abc").write_bytes(b"PK\x03\x04 half")
    state, arrays = checkpoint.load(saved_twice)
    assert state["history"] == [1, 2] and np.array_equal(arrays["a"], np.arange(4.0))


@pytest.mark.parametrize("damage,message", [
    (lambda d: (d / "checkpoint.json").write_bytes((d / "checkpoint.json").read_bytes()[:40]), "cannot read checkpoint"),
    (lambda d: (d / "checkpoint.json").write_text("[]"), "not an anytime-snn optimizer checkpoint"),
    (lambda d: (d / "checkpoint-000002.npz").unlink(), "missing"),
    (lambda d: (d / "checkpoint-000002.npz").write_bytes((d / "checkpoint-000002.npz").read_bytes()[:100]), "digest"),
])
def test_damaged_checkpoint_is_never_loaded(saved_twice, damage, message):
    """Damage that an atomic write cannot cause (disk errors, a partial copy): a clear error, no guess."""
    damage(saved_twice)
    with pytest.raises(ConfigError, match=message):
        checkpoint.load(saved_twice)


def _point_arrays_at(directory: Path, name: str) -> None:
    record = json.loads((directory / "checkpoint.json").read_text())
    record["arrays"] = name
    (directory / "checkpoint.json").write_text(json.dumps(record))


@pytest.mark.parametrize("name", ["../outside.npz", "/etc/passwd", "checkpoint.json", 7])
def test_checkpoint_naming_another_file_is_refused(saved_twice, name):
    _point_arrays_at(saved_twice, name)
    with pytest.raises(ConfigError, match="expected checkpoint-<generation>.npz"):
        checkpoint.load(saved_twice)


def test_checkpoint_arrays_behind_a_symlink_are_refused(saved_twice, tmp_path):
    outside = tmp_path.parent / f"{tmp_path.name}-outside.npz"
    (saved_twice / "checkpoint-000002.npz").rename(outside)
    (saved_twice / "checkpoint-000002.npz").symlink_to(outside)
    with pytest.raises(ConfigError, match="regular file"):
        checkpoint.load(saved_twice)


def test_forged_checkpoint_with_a_pickle_is_never_unpickled(saved_twice, tmp_path):
    """Even with a matching digest an object array is refused (allow_pickle=False): no code runs."""
    import hashlib
    import io

    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (Path.touch, (marker,))

    buf = io.BytesIO()
    np.savez(buf, a=np.array([Evil()], dtype=object), allow_pickle=True)
    (saved_twice / "checkpoint-000002.npz").write_bytes(buf.getvalue())
    record = json.loads((saved_twice / "checkpoint.json").read_text())
    record["arrays_sha256"] = hashlib.sha256(buf.getvalue()).hexdigest()
    (saved_twice / "checkpoint.json").write_text(json.dumps(record))
    with pytest.raises((ConfigError, ValueError), match="pickle"):
        checkpoint.load(saved_twice)
    assert not marker.exists()


# ----------------------------------------------------------------------------- an MPI rank dies


def two_ranks(out: Path, **env: str) -> tuple[subprocess.CompletedProcess, float]:
    """Run this file's optimizer as 2 MPI ranks with extra environment; return the process and its seconds."""
    pytest.importorskip("mpi4py")
    mpiexec = VENV_BIN / "mpiexec"
    if not mpiexec.exists():
        pytest.skip("the venv has no mpiexec")
    t0 = time.monotonic()
    proc = subprocess.run([str(mpiexec), "-n", "2", sys.executable, str(HERE), str(out)], capture_output=True,
                          text=True, timeout=120, env=dict(os.environ, **env))
    return proc, time.monotonic() - t0


def test_mpi_rank_dying_ends_the_run_with_an_error_and_an_intact_checkpoint(reference, tmp_path):
    out = tmp_path / "mpi"
    proc, seconds = two_ranks(out, FAULT_KILL_RANK1_AT="12")  # rank 1 is SIGKILLed in its 12th evaluation
    assert proc.returncode != 0, "the run went on without rank 1"
    text = proc.stdout + proc.stderr
    assert "BAD TERMINATION" in text and "signal 9" in text, text[-3000:]
    assert seconds < 60, f"took {seconds:.0f} s to notice"
    done = assert_prefix_of(out, reference)
    assert 2 <= done < len(reference["history"])  # progress kept (cached repeats add entries without simulating)
    assert not (out / "result.json").exists()
    proc = child(out, "--resume")  # one process picks it up
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert_same_result(out, reference)


def test_mpi_rank_that_hangs_is_aborted_after_the_rank_timeout(reference, tmp_path):
    """A stopped rank never answers; MPI itself would wait forever. The others give up after
    $ANYTIME_SNN_RANK_TIMEOUT seconds, abort the job, and the checkpoint resumes to the same result."""
    out = tmp_path / "mpi"
    proc, seconds = two_ranks(out, FAULT_STOP_RANK1_AT="12", ANYTIME_SNN_RANK_TIMEOUT="3")
    text = proc.stdout + proc.stderr
    assert proc.returncode != 0, text[-3000:]
    assert "rank 0: the other ranks did not answer within 3 s" in text and "--resume" in text, text[-3000:]
    assert 3 < seconds < 60, f"{seconds:.0f} s"
    done = assert_prefix_of(out, reference)
    assert 2 <= done < len(reference["history"])
    proc = child(out, "--resume")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert_same_result(out, reference)


def test_a_rank_failing_where_the_others_wait_ends_the_mpi_job(tmp_path):
    """Rank 0 alone converts the model (a cached stage) while rank 1 waits for its result; a corrupt model
    makes rank 0 fail. MPI has no timeouts: without the abort rank 1 would wait in the broadcast forever."""
    pytest.importorskip("mpi4py")
    mpiexec = VENV_BIN / "mpiexec"
    if not mpiexec.exists():
        pytest.skip("the venv has no mpiexec")
    bad = tmp_path / "bad.keras"
    bad.write_bytes(b"not a zip archive" * 10)
    t0 = time.monotonic()
    proc = subprocess.run([str(mpiexec), "-n", "2", str(VENV_BIN / "anytime-snn"), "reproduce", "fig4", "--quick",
                           "--out", str(tmp_path / "out"), "--only", "dense-mnist", "--model", f"dense-mnist={bad}"],
                          capture_output=True, text=True, timeout=240)
    seconds = time.monotonic() - t0
    text = proc.stdout + proc.stderr
    assert proc.returncode != 0, text[-3000:]
    assert "rank 0 failed" in text and "aborting all ranks" in text, text[-3000:]
    assert seconds < 120, f"took {seconds:.0f} s"


def test_rank_timeout_setting(monkeypatch):
    from anytime_snn.optimize.parallel import DEFAULT_RANK_TIMEOUT_S, RANK_TIMEOUT_ENV, rank_timeout

    for raw, want in [("", DEFAULT_RANK_TIMEOUT_S), ("2.5", 2.5), ("0", None), ("-1", None), ("inf", None)]:
        monkeypatch.setenv(RANK_TIMEOUT_ENV, raw)
        assert rank_timeout() == want, raw
    monkeypatch.setenv(RANK_TIMEOUT_ENV, "soon")
    with pytest.raises(ConfigError, match=RANK_TIMEOUT_ENV):
        rank_timeout()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("out", type=Path)
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--kill", default="")
    a = parser.parse_args()
    run(a.out, a.resume, a.kill)
