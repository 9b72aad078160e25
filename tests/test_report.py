"""anytime-snn report: evaluation records of a tiny bundle combined into one markdown report with plots."""

import json

import pytest

from anytime_snn import cli
from anytime_snn.model import save_bundle
from anytime_snn.report.report import load_evaluations, write_report
from anytime_snn.testing import dense_bundle

pytest.importorskip("tensorflow")


@pytest.fixture(scope="module")
def two_evaluations(tmp_path_factory):
    """evaluation.json of a tiny bundle at V0 = 0 and V0 = 0.5 (real MNIST test images, via the CLI)."""
    root = tmp_path_factory.mktemp("report")
    runs = []
    for v0 in (0.0, 0.5):
        bundle = dense_bundle((784, 48, 10), seed=3).with_v0(v0)
        bundle.timesteps = 10
        bundle.provenance["ann_accuracy"] = 0.5
        model = save_bundle(bundle, root / f"model_v0_{v0}")
        out = root / f"eval_v0_{v0}"
        assert cli.main(["evaluate", str(model), "--limit", "40", "--out", str(out)]) == 0
        runs.append(out)
    return runs


def test_report_combines_runs(two_evaluations, tmp_path, capsys):
    a, b = two_evaluations
    out = tmp_path / "report"
    # a directory and a JSON file are both accepted
    assert cli.main(["report", str(a), str(b / "evaluation.json"), "--out", str(out), "--title", "V0 study"]) == 0
    assert "wrote" in capsys.readouterr().out
    md = (out / "report.md").read_text()
    recs = [json.loads((p / "evaluation.json").read_text()) for p in (a, b)]
    assert md.startswith("# V0 study")
    assert "| run | data | T | a_max | peak accuracy (t) |" in md and "P_p improvement" in md
    for rec in recs:
        s = rec["summary"]
        assert f"{s['P_l']:.3f}" in md and f"{s['P_p']:.4g}" in md and f"{s['events_per_sample']:.4g}" in md
        assert f"{s['peak_accuracy'] * 100:.2f} % ({s['peak_timestep']})" in md
    # labels are made unique (both bundles are named by their directories) and the first run is the baseline
    assert "| model_v0_0.0 |" in md and "| 1× | 1× |" in md
    base, other = recs[0]["summary"], recs[1]["summary"]
    if base["P_l"] > 0 and other["P_l"] > 0:
        assert f"{base['P_l'] / other['P_l']:.3g}×" in md
    assert "t to 90 %" in md and "events to 99 %" in md
    assert "![accuracy vs time](accuracy_vs_time.png)" in md
    for png in ("accuracy_vs_time.png", "accuracy_vs_events.png"):
        assert (out / png).stat().st_size > 1000
    summary = json.loads((out / "report.json").read_text())
    assert [r["summary"] for r in summary["runs"]] == [rec["summary"] for rec in recs]


def test_duplicate_model_names_get_distinct_labels(two_evaluations, tmp_path):
    a, _ = two_evaluations
    runs = load_evaluations([a, a / "evaluation.json"])
    assert len({r.label for r in runs}) == 2
    runs = load_evaluations([a], labels=["baseline"])
    assert runs[0].label == "baseline"
    md = write_report([a], tmp_path / "one").read_text()
    assert "improvement" not in md and "| baseline |" not in md


def test_report_errors_name_the_file(tmp_path, capsys):
    bad = tmp_path / "evaluation.json"
    bad.write_text(json.dumps({"summary": {}, "accuracy": [0.1]}))
    assert cli.main(["report", str(tmp_path), "--out", str(tmp_path / "r")]) == 2
    assert cli.main(["report", str(tmp_path / "nowhere"), "--out", str(tmp_path / "r")]) == 2
    (tmp_path / "x.json").write_text("{not json")
    assert cli.main(["report", str(tmp_path / "x.json"), "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert "missing ['events_per_step'" in err and "no evaluation record" in err and "not a readable JSON" in err
    assert "Traceback" not in err
