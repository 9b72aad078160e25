"""Deadline queries as the client sees them (two processes over DDS), and queries that cannot starve the node.

CI runs on a loaded 2-core machine, so these tests cannot hold the benchmark's 99 % on time
(benchmarks/node_latency.py on an idle machine, docs/ros.md); they catch regressions: the node never
computes for a deadline it can see it will miss, its ``deadline_met`` predicts what the client sees, and
no answer is badly late. Uses the bundled default model (real MNIST digits).
"""

from __future__ import annotations

import pytest

from sandbox import ROOT, Sandbox, workspace_missing

pytestmark = pytest.mark.skipif(workspace_missing() is not None, reason=workspace_missing() or "")
STATUS_CANCELED = 5


@pytest.fixture(scope="module")
def box(tmp_path_factory):
    params = tmp_path_factory.mktemp("params") / "p.yaml"
    params.write_text("/**:\n  ros__parameters:\n    timesteps: 40\n    max_concurrent_queries: 1\n")
    sb = Sandbox(log_path=str(tmp_path_factory.mktemp("logs") / "node.log"))
    try:
        sb.ok("start_node", model=str(ROOT / "models" / "default"), params_file=str(params))
        sb.ok("deadline_queries", n=20, budgets=[0.02])  # warm-up: connections, the delivery model's samples
        yield sb
    finally:
        sb.close()


def test_deadline_answers_arrive_on_time_and_the_node_predicts_it(box):
    budgets = [0.001, 0.005, 0.01, 0.02]
    answers = box.ok("deadline_queries", n=120, budgets=budgets, seed=1, past=10, timeout=60)["answers"]
    assert len(answers) == 130
    timely, past = answers[:120], answers[120:]
    # a deadline that has passed: nothing is computed, the answer says so
    assert all(a["stop_reason"] == "infeasible" and a["timestep"] == 0 and not a["deadline_met"] for a in past)
    # the node never computes for a deadline it can see coming: an answer either was computed and finished
    # before its deadline (a slack for a CI machine that takes the CPU away mid-chunk), or is 'infeasible'
    # with nothing computed
    for a in timely:
        assert (a["stop_reason"] == "infeasible") == (a["timestep"] == 0), a
        assert a["stop_reason"] in ("budget", "infeasible"), a
    computed = [a for a in timely if a["timestep"] > 0]
    assert len(computed) >= 0.25 * len(timely)  # not vacuous: the 10 and 20 ms budgets leave time to compute
    # (20 runs beside a 2-core background load: none over 5 ms; one CI run under such load saw one, so one
    # answer in fifty may be, within the 20 ms bound below)
    over = [a for a in computed if a["computed_late"] > 0.005]
    assert len(over) <= max(1, 0.02 * len(computed)), over
    assert sum(a["computed_late"] <= 0 for a in computed) >= 0.95 * len(computed)
    # the node's deadline_met agrees with the client's observation, up to 1 ms of scheduling jitter either
    # way (20 loaded runs: exact agreement fell to 93 % in two; 10 of 2,600 answers were off by more than
    # 1 ms, at most 3 in a run)
    wrong = [a for a in answers if (a["late"] > 0.001 if a["deadline_met"] else a["late"] < -0.001)]
    assert len(wrong) <= 0.05 * len(answers), wrong
    assert max(a["late"] for a in answers) <= 0.020
    # and the computed answers are good ones (the default model: 91 % after one timestep, 99 % at its peak)
    assert sum(a["correct"] for a in computed) >= 0.85 * len(computed)


def test_long_queries_cannot_starve_intake_parameters_or_cancels(box):
    """max_concurrent_queries 1: a goal without a budget runs for minutes (one core of CI's two); parameters,
    the image stream, further queries (answered busy / infeasible) and the cancel are all still served."""
    box.ok("goals_start", n=1, index=0, max_timesteps=1_000_000)
    try:
        got = box.ok("timed", command="get_params", names=["max_concurrent_queries"], timeout=5.0)
        assert got["values"]["max_concurrent_queries"] == 1 and got["seconds"] < 2.0
        busy = box.ok("timed", command="service", index=1, max_timesteps=10)
        assert busy["stop_reason"].startswith("busy") and busy["seconds"] < 2.0
        # with a deadline the query waits for the engine while one step could still fit, then answers at
        # once (the goal's thread competes for the CPU and the GIL: promptly, not necessarily on time)
        late = box.ok("deadline_queries", n=3, budgets=[0.05])["answers"]
        assert all(a["stop_reason"] == "infeasible" and a["late"] <= 0.1 for a in late), late
        box.ok("clear")
        stream = box.ok("stream", indices=[5], timeout=10.0)
        assert any(e["final"] for e in stream["estimates"])
        diag = box.ok("diagnostics")["values"]
        assert int(diag["queries_busy"]) >= 1 and int(diag["queries_infeasible"]) >= 3
        assert float(diag["smallest_feasible_budget_ms"]) > 0
    finally:
        cancel = box.ok("goals_cancel", timeout=20.0)
    assert cancel["status"] == [STATUS_CANCELED] and cancel["seconds"] < 5.0, cancel
