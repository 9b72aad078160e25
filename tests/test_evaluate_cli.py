"""evaluate / calibrate end to end through the CLI, on real MNIST test images and a small bundle."""

import json

import numpy as np
import pytest

from anytime_snn import cli, metrics
from anytime_snn.model import load_bundle, save_bundle
from anytime_snn.testing import dense_bundle

pytest.importorskip("tensorflow")


@pytest.fixture
def small_model(tmp_path):
    bundle = dense_bundle((784, 48, 10), seed=3)
    bundle.timesteps = 12
    bundle.provenance["ann_accuracy"] = 0.5
    return save_bundle(bundle, tmp_path / "model")


def test_evaluate_writes_consistent_metrics_and_plots(small_model, tmp_path, capsys):
    out = tmp_path / "eval"
    assert cli.main(["evaluate", str(small_model), "--limit", "64", "--out", str(out)]) == 0
    record = json.loads((out / "evaluation.json").read_text())
    acc, events = np.array(record["accuracy"]), np.array(record["events_per_step"])
    assert acc.shape == (12,) and events.shape == (12,) and record["samples"] == 64
    s = record["summary"]
    assert s["a_max"] == 0.5  # from the bundle's provenance
    assert s["P_l"] == pytest.approx(metrics.pareto_latency(acc, 0.5))
    assert s["P_p"] == pytest.approx(metrics.pareto_power(acc, events, 0.5))
    assert np.allclose(np.cumsum(events), record["cumulative_events"])
    assert (out / "accuracy_vs_time.png").stat().st_size > 1000 and (out / "accuracy_vs_events.png").is_file()
    assert "P_l" in capsys.readouterr().out


def test_evaluate_record_carries_provenance_and_the_same_numbers(small_model, tmp_path):
    """--record: the command, the model's content hash, machine and load beside the evaluation's numbers."""
    out, rec = tmp_path / "eval", tmp_path / "results" / "eval.json"
    assert cli.main(["evaluate", str(small_model), "--limit", "32", "--out", str(out), "--record", str(rec)]) == 0
    record, evaluation = json.loads(rec.read_text()), json.loads((out / "evaluation.json").read_text())
    manifest = json.loads((small_model / "manifest.json").read_text())
    assert record["model"]["manifest_sha256"] == manifest["manifest_sha256"]
    assert "evaluate" in record["command"] and "--record" in record["command"]
    assert record["machine"]["cores"] >= 1 and len(record["load_average_before"]) == 3
    n = record["numbers"]
    assert n["summary"] == evaluation["summary"] and n["accuracy"] == evaluation["accuracy"]
    assert n["samples"] == 32 and "events_per_step" not in n  # the record stays small


def test_calibrate_stores_per_step_temperatures(small_model, tmp_path):
    out = tmp_path / "calibrated"
    assert cli.main(["calibrate", str(small_model), "--limit", "1000", "--limit-holdout", "100", "--out", str(out)]) == 0
    b = load_bundle(out)
    assert b.calibration.inv_temperature.shape == (12,)
    info = b.provenance["calibration"]
    assert info["samples"] == 100 and len(info["ece_after"]) == 12
    assert np.mean(info["ece_after"]) <= np.mean(info["ece_before"]) + 1e-6


def test_user_mistakes_are_one_line_errors(tmp_path, capsys):
    assert cli.main(["evaluate", str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err
    assert "error:" in err and "Traceback" not in err


@pytest.mark.parametrize("backend", ["nest", "brian2"])
def test_evaluate_on_a_pynn_backend_agrees_with_our_engine_in_spinnaker_mode(tmp_path, backend):
    """`evaluate --backend B` runs the PyNN export sample after sample; its curves equal our engine's under
    SpiNNaker dynamics. (Several samples with drives of both signs: this caught NEST re-sorting its
    connections after the first run, which sent later samples' input currents to the wrong neurons.)"""
    import importlib

    from anytime_snn.model import NeuronConfig

    try:
        importlib.import_module(f"pyNN.{backend}")
    except ImportError:
        pytest.skip(f"{backend} is not installed: pip install -r scripts/pynn-requirements.txt")
    bundle = dense_bundle((784, 24, 10), seed=5)
    bundle.timesteps = 15
    model = save_bundle(bundle, tmp_path / "m")
    out = tmp_path / backend
    assert cli.main(["evaluate", str(model), "--backend", backend, "--limit", "4", "--out", str(out)]) == 0
    nest = json.loads((out / "evaluation.json").read_text())
    save_bundle(bundle.with_neuron(NeuronConfig.spinnaker()), tmp_path / "spin")
    assert cli.main(["evaluate", str(tmp_path / "spin"), "--limit", "4", "--out", str(tmp_path / "tf")]) == 0
    ours = json.loads((tmp_path / "tf" / "evaluation.json").read_text())
    assert nest["backend"] == backend and "spikes" in nest["note"]
    assert nest["accuracy"] == ours["accuracy"]
    assert nest["events_per_step"] == pytest.approx(ours["events_per_step"])


def test_evaluate_on_two_mpi_ranks_equals_one_process(small_model, tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    bin_dir = Path(sys.executable).parent
    if not (bin_dir / "mpiexec").exists():
        pytest.skip("no mpiexec in the venv: pip install 'anytime-snn[mpi]'")
    one, two = tmp_path / "one", tmp_path / "two"
    assert cli.main(["evaluate", str(small_model), "--limit", "50", "--out", str(one)]) == 0
    proc = subprocess.run([str(bin_dir / "mpiexec"), "-n", "2", str(bin_dir / "anytime-snn"), "evaluate",
                           str(small_model), "--limit", "50", "--out", str(two),
                           "--record", str(tmp_path / "rec.json")],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    # the record says how the numbers were measured: on 2 ranks
    assert json.loads((tmp_path / "rec.json").read_text())["command"].startswith("mpiexec -n 2 anytime-snn evaluate ")
    a, b = (json.loads((d / "evaluation.json").read_text()) for d in (one, two))
    for key in ("accuracy", "events_per_step", "summary", "samples"):
        assert a[key] == b[key], key


def test_records_name_the_mpi_launcher_from_its_environment(monkeypatch):
    from anytime_snn.provenance import mpi_launcher

    for key in ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE"):
        monkeypatch.delenv(key, raising=False)
    assert mpi_launcher() == []
    monkeypatch.setenv("PMI_SIZE", "1")
    assert mpi_launcher() == []  # one rank: the command as typed
    monkeypatch.setenv("PMI_SIZE", "4")
    assert mpi_launcher() == ["mpiexec", "-n", "4"]
    monkeypatch.delenv("PMI_SIZE")
    monkeypatch.setenv("OMPI_COMM_WORLD_SIZE", "3")
    assert mpi_launcher() == ["mpiexec", "-n", "3"]


def test_a_record_says_when_the_code_changed_under_the_run(tmp_path, monkeypatch):
    """A long run imports parts of the package lazily: code edited or committed while it runs can change what
    it measures, so the record flags it (a real git repository stands in for the checkout)."""
    import subprocess

    from anytime_snn import provenance

    def git(*args):
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)

    git("init", "-q")
    (tmp_path / "code.py").write_text("x = 1\n")
    git("add", "code.py")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "one")
    monkeypatch.setattr(provenance, "ROOT", tmp_path)

    quiet = provenance.Record(command="run").finish({})
    assert "code_changed_during_run" not in quiet and len(quiet["commit"]) == 40
    (tmp_path / "notes.md").write_text("docs do not count\n")
    git("add", "notes.md")
    assert "code_changed_during_run" not in provenance.Record(command="run").finish({})

    rec = provenance.Record(command="run")
    (tmp_path / "code.py").write_text("x = 2\n")  # edited during the run
    edited = rec.finish({})
    assert edited["code_changed_during_run"] is True and edited["commit_at_end"] == edited["commit"]
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qam", "two")
    rec = provenance.Record(command="run")
    assert rec.data["uncommitted_changes"] is False
    (tmp_path / "code.py").write_text("x = 3\n")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qam", "three")  # committed during the run
    committed = rec.finish({})
    assert committed["code_changed_during_run"] is True and committed["commit_at_end"] != committed["commit"]
    rec = provenance.Record(command="run")
    (tmp_path / "notes.md").write_text("a docs commit during the run changes no code\n")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qam", "four")
    assert "code_changed_during_run" not in rec.finish({})
