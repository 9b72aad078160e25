"""``anytime-snn reproduce <experiment> --quick`` end to end on real (tiny) MNIST / Fashion-MNIST data.

All experiments share one output directory, so the tiny models trained for the first one are reused
by the others (the stage cache), as they would be in a user's run."""

from __future__ import annotations

import json

import numpy as np

import pytest

from anytime_snn.cli import main
from anytime_snn.data import mnist as mnist_mod

pytestmark = pytest.mark.skipif(not mnist_mod.is_cached(), reason="MNIST not cached: run anytime-snn data fetch mnist")


@pytest.fixture(scope="module")
def out(tmp_path_factory):
    return tmp_path_factory.mktemp("reproduce")


def _run_once(out, argv):
    """Run an experiment into the shared directory unless an earlier test already has (a test selected
    alone with -k still gets the stages it builds on)."""
    name = argv[1]
    if not (out / name / "results.json").is_file():
        assert main(argv) == 0
    return _results(out, name)


@pytest.fixture(scope="module")
def fig4(out):
    return _run_once(out, ["reproduce", "fig4", "--quick", "--out", str(out)])


@pytest.fixture(scope="module")
def fig5(out):
    return _run_once(out, ["reproduce", "fig5", "--quick", "--out", str(out), "--only", "dense-mnist,conv-fashion"])


def _results(out, name):
    report = out / name / "report.md"
    assert report.is_file() and report.stat().st_size > 200
    assert list((out / name).rglob("*.png"))
    return json.loads((out / name / "results.json").read_text())


def _metrics_ok(m):
    assert 0 < m["ann_accuracy"] <= 1 and 0 <= m["peak_accuracy"] <= 1 and m["events_per_sample"] > 0
    assert set(m["time_to"]) == {"0.9", "0.95", "0.99"}


def test_fig4_quick(fig4):
    r = fig4
    assert set(r["models"]) == {"dense-mnist", "conv-mnist"}
    for m in r["models"].values():
        _metrics_ok(m["v0_0"]), _metrics_ok(m["v0_0.5"])
        assert m["relative_P_l"] == pytest.approx(m["v0_0.5"]["P_l"] / m["v0_0"]["P_l"])
        assert m["v0_0"]["ann_accuracy"] == m["v0_0.5"]["ann_accuracy"]  # one reference per model


def test_fig5_quick(out, fig4, fig5):
    r = fig5
    assert set(r["models"]) == {"dense-mnist", "conv-fashion"}
    for name, m in r["models"].items():
        _metrics_ok(m["baseline"]["metrics"]), _metrics_ok(m["full"]["metrics"])
        assert m["full"]["components"] == {"sparsity": True, "scaling": True, "initialization": True}
        sp = m["full"]["sparsify"]
        assert sp["after"]["weight_sparsity"] > sp["before"]["weight_sparsity"]
        # the optimizer returns its best point, never worse than its start on the training subset
        assert m["full"]["optimization"]["best"]["loss"] <= m["full"]["optimization"]["start"]["loss"]
        assert m["improvement"]["P_p"] == pytest.approx(m["baseline"]["metrics"]["P_p"] / m["full"]["metrics"]["P_p"])
        # how long each stage took when it ran (the dense model's training stage ran for fig4, above)
        assert set(m["stage_seconds"]) == {"train", "sparsify", "convert", "convert_sparse", "opt_sparse_full",
                                           "eval_baseline", "eval_full"}
        assert all(v >= 0 for v in m["stage_seconds"].values()), m["stage_seconds"]  # rounded to 1 ms
        assert m["stage_seconds"]["opt_sparse_full"] > 0 and m["stage_seconds"]["train"] > 0
    # the dense model was trained once, by fig4, and reused here
    assert len(list((out / "stages" / "dense-mnist").glob("train/model.keras"))) == 1


def test_neuron_order_and_lambdas_reach_their_stages(out, fig5, tmp_path):
    """--neuron-order output-first is part of the optimization stage's config and of the optimizer's
    checkpoint; the default leaves the config as before the option existed (cached stages stay valid).
    --sparsify-lambdas reach the fine-tuning."""
    from anytime_snn.optimize.checkpoint import load_state

    d = out / "stages" / "dense-mnist"
    args = ["reproduce", "fig5", "--quick", "--out", str(tmp_path), "--only", "dense-mnist",
            "--model", f"dense-mnist={d / 'train' / 'model.keras'}",
            "--sparse-model", f"dense-mnist={d / 'sparsify' / 'sparse.keras'}",
            "--phases", "model,layer,neuron", "--budgets", "2,2,4", "--neuron-order", "output-first"]
    assert main(args) == 0
    # the fine-tuning's lambdas reach the sparsify stage (a user's lambdas, not the architecture's defaults)
    args = ["reproduce", "fig5", "--quick", "--out", str(tmp_path / "lam"), "--only", "dense-mnist",
            "--model", f"dense-mnist={d / 'train' / 'model.keras'}", "--sparsify-lambdas", "2,30"]
    assert main(args) == 0
    results = json.loads((tmp_path / "lam" / "fig5" / "results.json").read_text())
    sp = results["models"]["dense-mnist"]["full"]["sparsify"]
    assert (sp["lambda_a"], sp["lambda_w"]) == (2.0, 30.0)
    stage = tmp_path / "stages" / "dense-mnist" / "opt_sparse_full"
    assert json.loads((stage / "stage.json").read_text())["config"]["neuron_order"] == "output-first"
    assert load_state(stage)["config"]["neuron_order"] == "output-first"
    assert "neuron_order" not in json.loads((d / "opt_sparse_full" / "stage.json").read_text())["config"]


def test_fig6_quick(out):
    assert main(["reproduce", "fig6", "--quick", "--out", str(out)]) == 0
    r = _results(out, "fig6")
    v = r["variants"]
    assert len(v) == 8 and v["baseline"]["improvement"] == {"P_l": 1.0, "P_p": 1.0}
    # an ablation of initialization optimizes H only: its V0 stays 0, unlike the full method's
    from anytime_snn.model import load_bundle

    no_init = load_bundle(v["-3 initialization"]["optimization"]["bundle"])
    assert all((layer.v0 == 0).all() for layer in no_init.layers if layer.weighted and not layer.output)
    no_scaling = v["-2 scaling"]["optimization"]
    assert no_scaling["best"]["loss"] <= no_scaling["start"]["loss"]
    # each of the six optimizations has its stage time (rounded to 0.1 s: a quick one may read 0)
    opts = {k for k in r["stage_seconds"] if k.startswith("opt_")}
    assert len(opts) == 6 and all(r["stage_seconds"][k] >= 0 for k in opts), r["stage_seconds"]


def test_table2_quick(out):
    pytest.importorskip("pyNN")
    pytest.importorskip("nest")
    assert main(["reproduce", "table2", "--quick", "--out", str(out)]) == 0
    r = _results(out, "table2")
    _metrics_ok(r["before"]), _metrics_ok(r["after"])
    for check in r["nest"].values():  # NEST through the PyNN export = the reference simulator, spike for spike
        assert check["spike_trains_equal"] and check["predictions_equal"] and check["events_equal"]
        assert check["max_abs_accuracy_difference"] == 0 and check["images"] == 2


def test_mobilenet_quick(out):
    assert main(["reproduce", "mobilenet", "--quick", "--out", str(out)]) == 0
    r = _results(out, "mobilenet")
    m = r["models"]["mobilenet-fashion"]
    _metrics_ok(m["baseline"]["metrics"]), _metrics_ok(m["full"]["metrics"])


def test_resume_skips_finished_stages(out, fig4, capsys):
    """A second run with the same settings only rewrites the report (no stage runs again); --record keeps
    its results.json with the command and the machine."""
    import time

    capsys.readouterr()  # what the fixture's first run printed
    t0 = time.perf_counter()
    rec = out / "records" / "fig4.json"
    assert main(["reproduce", "fig4", "--quick", "--out", str(out), "--record", str(rec)]) == 0
    assert time.perf_counter() - t0 < 30
    assert "Epoch" not in capsys.readouterr().out
    record = json.loads(rec.read_text())
    assert record["numbers"] == json.loads((out / "fig4" / "results.json").read_text())
    assert record["command"].startswith("anytime-snn reproduce fig4 --quick") and record["machine"]["cores"] >= 1
    # every stage it used ran at this code; one cached at another commit, or before stages noted their code,
    # is named in the record
    assert "parts_at_other_code" not in record
    other = {"commit": "0" * 40, "diff_sha256": None}
    for stage, code in (("eval_v0_0", [other]), ("eval_v0_0.5", None)):
        path = out / "stages" / "conv-mnist" / stage / "stage.json"
        saved = json.loads(path.read_text())
        saved["result"]["code"] = code
        path.write_text(json.dumps(saved))
    assert main(["reproduce", "fig4", "--quick", "--out", str(out), "--record", str(rec)]) == 0
    record = json.loads(rec.read_text())
    assert record["parts_at_other_code"] == {"conv-mnist/eval_v0_0": [other], "conv-mnist/eval_v0_0.5": None}


def test_a_resumed_stage_keeps_the_code_of_every_run(tmp_path):
    """A stage that resumes a killed run's work (the optimizer's checkpoint) was made by both runs' code; a
    stage that starts over, by the last run's only."""
    from anytime_snn.optimize import world
    from anytime_snn.provenance import code_identity
    from anytime_snn.reproduce import stages

    earlier = {"commit": "1" * 40, "diff_sha256": "ab" * 8}
    for name in ("opt", "train"):
        (tmp_path / name).mkdir()
        (tmp_path / name / stages.CODE_FILE).write_text(json.dumps(earlier) + "\n")  # a killed run's note
    now = code_identity()
    assert len(now["commit"]) == 40
    resumed = stages.collective_cached(tmp_path / "opt", {"stage": 1}, lambda d: {"v": 1}, world(), resumes=True)
    assert resumed == {"v": 1, "code": [earlier, now]}
    redone = stages.cached(tmp_path / "train", {"stage": 2}, lambda d: {"v": 2})
    assert redone == {"v": 2, "code": [now]}
    assert stages.cached(tmp_path / "train", {"stage": 2}, lambda d: 1 / 0) == redone  # read back, not rerun
    fresh = stages.collective_cached(tmp_path / "new", {"stage": 4}, lambda d: {"v": 4}, world(), resumes=True)
    assert fresh["code"] == [now]  # nothing to resume: only this run's code
    # a checkpoint left by a run from before stages noted their code: that run's code is unknown
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "checkpoint.json").write_text("{}")
    old = stages.collective_cached(tmp_path / "old", {"stage": 3}, lambda d: {"v": 3}, world(), resumes=True)
    assert old["code"] == [{"commit": None, "diff_sha256": None}, now]


def test_stages_note_the_code_the_process_started_with(tmp_path, monkeypatch):
    """A commit made while a long run goes on does not change the code that run executes: its later stages note
    the code it began its record with (the record says the tree changed under it)."""
    from anytime_snn import provenance
    from anytime_snn.reproduce import stages

    head = {"commit": "a" * 40}
    monkeypatch.setattr(provenance, "_process_code", None)
    monkeypatch.setattr(provenance, "_git", lambda *args: head["commit"] if args[0] == "rev-parse" else "")
    record = provenance.Record()
    first = stages.cached(tmp_path / "train", {"stage": 1}, lambda d: {"v": 1})
    head["commit"] = "b" * 40  # a commit lands while the run goes on
    later = stages.cached(tmp_path / "opt", {"stage": 2}, lambda d: {"v": 2})
    assert first["code"] == later["code"] == [{"commit": "a" * 40, "diff_sha256": None}]
    assert "parts_at_other_code" not in record.finish({}, parts={"train": first["code"], "opt": later["code"]})


def test_bad_arguments_are_one_line_errors(tmp_path, capsys):
    assert main(["reproduce", "fig5", "--quick", "--out", str(tmp_path), "--model", "nope=x.keras"]) == 2
    assert main(["reproduce", "fig5", "--quick", "--out", str(tmp_path), "--budgets", "1,x"]) == 2
    assert main(["reproduce", "fig5", "--quick", "--out", str(tmp_path), "--phases", "model", "--budgets", "3,4"]) == 2
    assert main(["reproduce", "fig5", "--quick", "--out", str(tmp_path), "--budgets", "3,4,5"]) == 2  # quick: 2 phases
    assert main(["reproduce", "fig5", "--quick", "--out", str(tmp_path), "--sparsify-lambdas", "20"]) == 2
    err = capsys.readouterr().err
    assert "NAME=PATH" in err and "--budgets" in err and "Traceback" not in err


def test_mobilenet_on_an_imagenet_style_npz(tmp_path):
    """The ImageNet path at small scale: RGB 32x32 images from an npz file (here: MNIST digits padded and
    tiled to 3 channels, so the test needs no other data) through the same MobileNet experiment."""
    from anytime_snn.data import load_dataset

    def rgb(split, n):
        d = load_dataset("mnist", split, limit=n)
        x = np.pad(d.images.reshape(n, 28, 28, 1), ((0, 0), (2, 2), (2, 2), (0, 0)))
        return np.repeat(x, 3, axis=-1), d.labels

    (xtr, ytr), (xte, yte) = rgb("train", 800), rgb("test", 100)
    data = tmp_path / "imagenet_like.npz"
    np.savez(data, train_images=xtr, train_labels=ytr, test_images=xte, test_labels=yte)
    out = tmp_path / "out"
    assert main(["reproduce", "mobilenet", "--quick", "--out", str(out), "--dataset", "npz", "--data-path", str(data),
                 "--test-limit", "100"]) == 0
    r = _results(out, "mobilenet")
    m = r["models"]["mobilenet-fashion"]
    assert m["baseline"]["curve"] and m["full"]["metrics"]["events_per_sample"] > 0
    assert (out / "stages" / "mobilenet-npz" / "train" / "model.keras").is_file()


def test_a_stage_with_another_config_keeps_the_finished_one_aside(tmp_path):
    """Other settings in the same --out redo a stage but never delete the finished one (hours of optimization):
    it is kept beside it and taken back, not recomputed, by a later run with its settings."""
    from anytime_snn.optimize import world
    from anytime_snn.reproduce import stages

    d = tmp_path / "opt_sparse_full"
    calls = []

    def run(value):
        def go(directory):
            calls.append(value)
            (directory / "bundle.txt").write_text(str(value))
            return {"value": value}
        return go

    first = stages.collective_cached(d, {"subset": 250}, run(250), world(), resumes=True)
    second = stages.collective_cached(d, {"subset": 1000}, run(1000), world(), resumes=True)
    assert (first["value"], second["value"], calls) == (250, 1000, [250, 1000])
    assert (d / "bundle.txt").read_text() == "1000"
    kept = [p.name for p in tmp_path.iterdir() if p.name.startswith("opt_sparse_full@")]
    assert len(kept) == 1 and (tmp_path / kept[0] / "bundle.txt").read_text() == "250"
    again = stages.collective_cached(d, {"subset": 250}, run(-1), world(), resumes=True)
    assert again == first and calls == [250, 1000] and (d / "bundle.txt").read_text() == "250"
    assert len([p for p in tmp_path.iterdir() if p.name.startswith("opt_sparse_full@")]) == 1  # 1000's, aside
    # unfinished work (a killed run's checkpoint) with another config is kept aside too, and resumed later
    d2 = tmp_path / "opt_dense"

    def resume(value):
        def go(directory):
            calls.append((value, (directory / "checkpoint").read_text() if (directory / "checkpoint").exists()
                          else None))
            return {"value": value}
        return go

    stages._start(d2, {"subset": 1000}, resumes=True)  # what a run does before it is killed
    (d2 / "checkpoint").write_text("half of the 1000-image run")
    assert stages.collective_cached(d2, {"subset": 250}, resume(250), world(), resumes=True)["value"] == 250
    assert calls[-1] == (250, None)  # the other config's checkpoint is not resumed by this config...
    assert stages.collective_cached(d2, {"subset": 1000}, resume(1000), world(), resumes=True)["value"] == 1000
    assert calls[-1] == (1000, "half of the 1000-image run")  # ...but by its own, later
    # work from before stages noted their config (no pending.json) is resumed in place, as it always was
    d3 = tmp_path / "opt_old"
    d3.mkdir()
    (d3 / "checkpoint").write_text("an old run's")
    assert stages.collective_cached(d3, {"subset": 250}, resume(3), world(), resumes=True)["value"] == 3
    assert calls[-1] == (3, "an old run's")
