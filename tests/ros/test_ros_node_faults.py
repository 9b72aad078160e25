"""Faults over DDS (issue 8): a client killed mid-query, invalid parameter updates, a model that becomes
unreadable. Two real processes, isolated like test_ros_node_system.py."""

from __future__ import annotations

import shutil
import time

import pytest

from sandbox import Sandbox, workspace_missing

pytestmark = pytest.mark.skipif(workspace_missing() is not None, reason=workspace_missing() or "")


@pytest.fixture(scope="module")
def model_copy(tmp_path_factory, tiny_bundle_dir) -> str:
    """A model directory of our own (a test deletes it while the node uses it)."""
    dst = tmp_path_factory.mktemp("model") / "tiny"
    shutil.copytree(tiny_bundle_dir, dst)
    return str(dst)


@pytest.fixture(scope="module")
def box(model_copy, tmp_path_factory):
    params = tmp_path_factory.mktemp("params") / "p.yaml"
    params.write_text("/**:\n  ros__parameters:\n    timesteps: 30\n    publish_every: 1\n")
    sb = Sandbox(log_path=str(tmp_path_factory.mktemp("logs") / "node.log"))
    try:
        sb.ok("start_node", model=model_copy, params_file=str(params))
        yield sb
    finally:
        sb.close()


def _serving(box) -> None:
    box.ok("clear")
    est = box.ok("stream", indices=[1])["estimates"]
    assert est[-1]["final"] and est[-1]["timestep"] == 30
    answer = box.ok("service", index=2, max_timesteps=10)
    assert answer["stop_reason"] == "timesteps" and answer["result"]["timestep"] == 10


@pytest.mark.parametrize("kind", ["action", "service"])
def test_client_killed_mid_query_node_keeps_serving(box, kind):
    served = int(box.ok("diagnostics")["values"]["queries_served"])
    # 20,000 steps or a 1.5 s budget: the node is still working on it when the client dies
    killed = box.ok("killed_client", kind=kind, steps=20_000, budget=1.5)
    assert killed["killed_with"] == -9
    _serving(box)  # while the orphaned query may still run
    if kind == "action":
        done = box.ok("action", index=3, max_timesteps=12)
        assert done["status"] == 4 and done["result"]["timestep"] == 12
    time.sleep(1.6)  # the orphaned query has ended (its budget) and its answer went nowhere
    assert box.ok("alive")["running"]
    _serving(box)
    assert int(box.ok("diagnostics")["values"]["queries_served"]) >= served + 2
    log = box.ok("log")["log"]
    assert "Traceback" not in log and "stream worker" not in log, log[-3000:]


def test_invalid_parameter_update_rejected_and_node_unchanged(box):
    names = ["publish_every", "frame_policy", "timesteps", "min_confidence"]
    before = box.ok("get_params", names=names)["values"]
    # atomically: a valid value next to an invalid one -> nothing changes
    res = box.ok("set_params", params={"publish_every": 5, "frame_policy": "oldest"}, atomic=True)["results"][0]
    assert not res["successful"] and "frame_policy" in res["reason"] and "oldest" in res["reason"]
    for params, needle in [({"timesteps": -3}, "timesteps"), ({"min_confidence": float("nan")}, "min_confidence"),
                           ({"timesteps": "many"}, "")]:
        res = box.ok("set_params", params=params)["results"][0]
        assert not res["successful"] and needle in res["reason"], (params, res)
    assert box.ok("get_params", names=names)["values"] == before
    box.ok("clear")
    est = box.ok("stream", indices=[5])["estimates"]
    seq = est[-1]["frame_seq"]
    assert [e["timestep"] for e in est if e["frame_seq"] == seq] == list(range(1, 31))  # publish_every 1 still


def test_model_that_becomes_unreadable_keeps_the_loaded_one(box, model_copy):
    shutil.rmtree(model_copy)  # the node's model directory disappears under it
    _serving(box)  # nothing is read from disk after loading
    res = box.ok("set_params", params={"model": model_copy})["results"][0]  # a reload now fails
    assert not res["successful"] and "does not exist" in res["reason"], res
    assert box.ok("get_params", names=["model"])["values"]["model"] == model_copy
    _serving(box)
    est = box.ok("received", stamps=[2])["estimates"]
    assert len(est[-1]["scores"]) == 3  # still the tiny 3-class model
    diag = box.ok("diagnostics")["values"]
    assert int(diag["model_load_failures"]) >= 1 and "does not exist" in diag["model_last_error"], diag
    assert diag["_level"] == 1  # WARN
