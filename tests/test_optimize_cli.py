"""The optimize command end to end: SIGKILL mid-phase + --resume, and 2 MPI ranks, both equal to one plain run.

Each test compares against one uninterrupted single-process run (shared, module scope) of the same
command: the history (every objective call, its point's sha256 and loss; wall-clock seconds aside)
and the optimized bundle's tensors must be identical.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from anytime_snn import cli
from anytime_snn.model import load_bundle, save_bundle
from anytime_snn.testing import dense_bundle

pytest.importorskip("tensorflow")
pytest.importorskip("nlopt")

ARGS = ["--budgets", "6,10,12", "--subset", "48", "--batch-size", "16", "--checkpoint-every", "3", "--quiet",
        "--test-limit", "40"]
VENV_BIN = Path(sys.executable).parent

KILLER = """
import os, signal, sys
from anytime_snn.optimize import subplex
init = subplex.Optimizer.__init__
def patched(self, *a, **kw):
    init(self, *a, **kw)
    def kill(entry):  # a real SIGKILL in the middle of the layer phase, after a checkpoint and more
        if entry["phase"] == "layer" and entry["call"] >= 7:
            os.kill(os.getpid(), signal.SIGKILL)
    self.on_evaluation = kill
subplex.Optimizer.__init__ = patched
from anytime_snn import cli
sys.exit(cli.main(sys.argv[1:]))
"""


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    bundle = dense_bundle((784, 32, 24, 10), seed=3)
    bundle.timesteps = 10
    bundle.provenance["ann_accuracy"] = 0.5
    return save_bundle(bundle, tmp_path_factory.mktemp("opt") / "model")


@pytest.fixture(scope="module")
def reference(model):
    out = model.parent / "reference"
    assert cli.main(["optimize", str(model), "--out", str(out), *ARGS]) == 0
    return out


def _history(out: Path) -> dict:
    record = json.loads((out / "history.json").read_text())
    for key in ("seconds_this_run", "simulated_this_run", "command"):
        record.pop(key)
    for e in record["history"]:
        e.pop("seconds")
    return record


def _assert_same_result(out: Path, ref: Path) -> None:
    a, b = _history(out), _history(ref)
    assert a["history"] == b["history"]
    assert a == b
    ba, bb = load_bundle(out / "bundle"), load_bundle(ref / "bundle")
    for la, lb in zip(ba.weighted_layers, bb.weighted_layers):
        for k in ("weights", "bias", "v0"):
            assert np.array_equal(getattr(la, k), getattr(lb, k)), (la.name, k)


def _env():
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONDONTWRITEBYTECODE="1")
    return env


def test_outputs_and_optimized_bundle(reference):
    record = json.loads((reference / "history.json").read_text())
    assert len(record["history"]) == 1 + 6 + 10 + 12
    # the search lowers the loss: 94.49 at the start, 92.07 after the model phase, 91.86 at the end
    assert record["best"]["loss"] < 0.99 * record["start"]["loss"]
    assert [p["best_loss"] < p["start_loss"] for p in record["phases"]][:2] == [True, True]
    b = load_bundle(reference / "bundle")
    assert b.provenance["optimization"]["best"]["key"] == record["best"]["key"]
    assert set(record["test"]) == {"before", "after"}
    for name in ("accuracy_vs_time.png", "accuracy_vs_events.png", "loss_vs_evaluations.png"):
        assert (reference / "plots" / name).stat().st_size > 1000


def test_sigkill_mid_phase_then_resume_equals_uninterrupted_run(model, reference):
    out = model.parent / "killed"
    script = model.parent / "killer.py"
    script.write_text(KILLER)
    proc = subprocess.run([sys.executable, str(script), "optimize", str(model), "--out", str(out), *ARGS],
                          env=_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    state = json.loads((out / "checkpoint.json").read_text())
    phases = [e["phase"] for e in state["history"]]
    assert "layer" in phases and "neuron" not in phases  # killed mid-phase, after a checkpoint
    assert not (out / "history.json").exists()
    assert cli.main(["optimize", str(model), "--out", str(out), *ARGS, "--resume"]) == 0
    _assert_same_result(out, reference)


def test_two_mpi_ranks_equal_one_process(model, reference):
    pytest.importorskip("mpi4py")
    mpiexec = VENV_BIN / "mpiexec"
    if not mpiexec.exists() or not (VENV_BIN / "anytime-snn").exists():
        pytest.skip("the venv has no mpiexec / anytime-snn launcher")
    out = model.parent / "mpi"
    proc = subprocess.run([str(mpiexec), "-n", "2", str(VENV_BIN / "anytime-snn"), "optimize", str(model),
                           "--out", str(out), *ARGS], env=_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    _assert_same_result(out, reference)


def test_user_mistakes_are_one_line_errors(model, tmp_path, capsys):
    for extra, message in [(["--phases", "neuron,model"], "coarse to fine"), (["--budgets", "5,5"], "budget"),
                           (["--lambdas", "1,2"], "lambdas"), (["--subset", "0"], "--subset")]:
        assert cli.main(["optimize", str(model), "--out", str(tmp_path / "x"), *extra]) == 2
        err = capsys.readouterr().err.strip()
        assert message in err and len(err.splitlines()) == 1, err
    shutil.rmtree(tmp_path / "x", ignore_errors=True)


def test_keras_model_is_converted_then_optimized(tmp_path):
    keras = pytest.importorskip("keras")
    model = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Flatten(),
                              keras.layers.Dense(16, activation="relu"), keras.layers.Dense(10)])
    model.save(tmp_path / "tiny.keras")
    out = tmp_path / "opt"
    argv = ["optimize", str(tmp_path / "tiny.keras"), "--out", str(out), "--phases", "layer", "--budgets", "3",
            "--subset", "20", "--timesteps", "5", "--quiet"]
    assert cli.main(argv) == 0
    assert (out / "converted" / "manifest.json").is_file()
    assert load_bundle(out / "bundle").provenance["optimization"]["config"]["phases"] == ["layer"]
