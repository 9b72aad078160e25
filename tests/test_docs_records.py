"""The docs state what the committed records say (issue 15).

Every rendered block in README.md and docs/*.md (``<!-- rendered: TEMPLATE results/... -->``) must equal what
benchmarks/render_docs.py makes of its records, and a line stating a measured number outside such a block must
be listed in docs/unrecorded.txt (the to-do list of numbers still to be re-measured into a record). Reads files
only: no ROS workspace, no TensorFlow, well under a second.
"""

import difflib
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import render_docs  # noqa: E402

DOCS = render_docs.docs()


def rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


@pytest.mark.parametrize("doc", DOCS, ids=rel)
def test_rendered_blocks_equal_their_records(doc):
    text = doc.read_text()
    rendered = render_docs.render(text)
    diff = "".join(difflib.unified_diff(text.splitlines(True), rendered.splitlines(True), "committed", "records"))
    assert rendered == text, (f"{rel(doc)} differs from what its records render; run "
                              f"`.venv/bin/python benchmarks/render_docs.py` (or fix the doc):\n{diff}")


def test_blocks_name_known_templates_and_committed_records():
    seen = 0
    for doc in DOCS:
        for m in render_docs.BLOCK.finditer(doc.read_text()):
            name, *paths = m.group("spec").split()
            assert name in render_docs.TEMPLATES, f"{rel(doc)}: unknown template {name!r}"
            assert paths, f"{rel(doc)}: block {name!r} names no record"
            for p in paths:
                assert p.startswith("results/") and (ROOT / p).is_file(), f"{rel(doc)}: {p} is not a committed record"
                record = json.loads((ROOT / p).read_text())
                for key in ("command", "commit", "machine", "date", "load_average_before", "numbers"):
                    assert key in record, f"{p} lacks {key!r}"
            seen += 1
    assert seen >= 5  # docs/ros.md's executor, deadline, stage and stream tables and the README's summary


def test_markers_are_balanced():
    for doc in DOCS:
        text = doc.read_text()
        opened = text.count("<!-- rendered:")
        assert opened == text.count("<!-- /rendered -->") == len(render_docs.BLOCK.findall(text)), rel(doc)


def test_no_measured_number_outside_rendered_blocks_unless_listed():
    allowed = render_docs.allowlist()
    missing = [f"{rel(d)}: {line}" for d in DOCS for _, line in render_docs.unrecorded(d)
               if f"{rel(d)}: {line}" not in allowed]
    assert not missing, ("lines stating a measured number outside a rendered block (render them from a record in "
                         "results/, or list them in docs/unrecorded.txt with the reason):\n" + "\n".join(missing))


def test_allowlist_has_no_stale_entries():
    """An entry whose line is gone (re-measured and rendered, or reworded) leaves the list, so it stays the to-do
    list."""
    current = {f"{rel(d)}: {line}" for d in DOCS for _, line in render_docs.unrecorded(d)}
    stale = sorted(render_docs.allowlist() - current)
    assert not stale, "docs/unrecorded.txt entries that match no line stating a number:\n" + "\n".join(stale)


def test_allowlist_holds_no_measurement_without_a_record():
    """docs/unrecorded.txt has two sections only: numbers a rendered block shows elsewhere, and numbers that are not
    measurements. A measured number without a committed record has no place in it (issue 15)."""
    sections = [line for line in render_docs.ALLOWLIST.read_text().splitlines() if line.startswith("## ")]
    assert sections == ["## Backed by a committed record that a rendered block shows elsewhere (the prose repeats it)",
                        "## Not a measurement: an example, a parameter, a test threshold or a specification"]


@pytest.mark.parametrize("text", ["99.7 % on time", "1.79× the best peer", "took 67 min", "21,260 steps/s",
                                  "a 509 MB venv", "96 s for set-up", "0.3 ms", "2.5x faster", "~25 µs"])
def test_measured_number_pattern_finds(text):
    assert render_docs.MEASURED.search(text)


@pytest.mark.parametrize("text", ["28×28 images", "784-1200-1200-10", "5 steps", "2 cores", "commit 9cca2b7",
                                  "issue 14", "t = 50", "0.995 quantile", "3x3 kernel"])
def test_measured_number_pattern_ignores(text):
    assert not render_docs.MEASURED.search(text)


def test_check_mode_reports_a_drifted_doc(tmp_path, monkeypatch, capsys):
    doc = tmp_path / "README.md"
    good = render_docs.render("<!-- rendered: node_bench results/node_bench_idle.json -->\n<!-- /rendered -->\n")
    doc.write_text(good.replace("21,260", "99,999"))
    monkeypatch.setattr(render_docs, "docs", lambda: [doc])
    monkeypatch.setattr(render_docs, "ROOT", tmp_path)
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "node_bench_idle.json").write_text((ROOT / "results" / "node_bench_idle.json").read_text())
    assert render_docs.main(["--check"]) == 1
    assert "99,999" in capsys.readouterr().out
    assert render_docs.main([]) == 0 and doc.read_text() == good


def test_peers_and_engines_templates_render_benchmark_records():
    """The templates for bench_peers.py / bench_engines.py --record (no such record is committed yet): fed the
    committed peers.json runs as records' numbers."""
    runs = json.loads((ROOT / "benchmarks" / "results" / "peers.json").read_text())
    meta = {"command": "c", "commit": "0" * 40, "machine": {"cores": 2, "cpu": "cpu"}, "date": "2026-01-01T00:00:00Z",
            "load_average_before": [1.0] * 3, "load_average_after": [1.0] * 3, "wall_seconds": 1.0, "model": None}
    text = render_docs.peers([(f"results/peers_{k}.json", dict(meta, numbers=v)) for k, v in runs.items()])
    assert "| workload | ours: best engine |" in text and text.count("- `results/peers_") == len(runs)
    row = {k: 2.0 for k in ("numba_engine", "tf_engine", "plain_xla_loop", "plain_xla_loop_with_events",
                            "dense_roofline")}
    d = {f"{k}_image_steps_per_s": v for k, v in row.items()}
    d |= {f"ratio_numba_engine_vs_{k}": 1.0 for k in ("plain_xla_loop", "tf_engine", "dense_roofline")}
    d |= {k: 1.0 for k in ("ratio_tf_engine_vs_plain_xla", "ratio_tf_engine_vs_plain_xla_with_events",
                           "ratio_tf_engine_vs_roofline", "streaming_chunk1_steps_per_s",
                           "streaming_chunk10_steps_per_s", "streaming_chunk100_steps_per_s")}
    numbers = {"images": 2, "steps": 2, "machine": "m", "dense_model": "models/default", "dense": d, "conv": d}
    text = render_docs.engines([("results/engines.json", dict(meta, numbers=numbers))])
    assert "| dense (image-timesteps/s) | 2 | 2 |" in text and "`results/engines.json`" in text


def test_provenance_names_stages_made_at_other_code():
    """A resumed reproduce run's record lists stages made at other code; the rendered line says so."""
    record = {"command": "anytime-snn reproduce fig6", "commit": "c" * 40, "machine": {"cores": 2, "cpu": "x"},
              "date": "2026-12-05T10:00:00Z", "load_average_before": [1.0], "load_average_after": [2.0],
              "wall_seconds": 10.0, "numbers": {}}
    assert "stage(s)" not in render_docs.provenance([("results/x.json", record)])
    record["parts_at_other_code"] = {
        "conv-mnist/train": [{"commit": "a" * 40, "diff_sha256": None}],
        "conv-mnist/opt_dense": [{"commit": "a" * 40, "diff_sha256": None}, {"commit": "b" * 40, "diff_sha256": "f"}],
        "conv-mnist/opt_sparse": [{"commit": None, "diff_sha256": None}, {"commit": "c" * 40, "diff_sha256": None}],
        "conv-mnist/convert": None}
    line = render_docs.provenance([("results/x.json", record)])
    assert "commit ccccccc (3 stage(s) made at aaaaaaa, bbbbbbb + changes, ccccccc, unknown; 1 stage(s) from " \
           "before stages recorded their code)" in line, line
