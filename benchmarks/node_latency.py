#!/usr/bin/env python
"""Deadline queries as a client sees them, and where their time goes, with real processes.

    .venv/bin/python benchmarks/node_latency.py [--queries 1000] [--budgets 5,10,20,50] [--deadline absolute|budget]
                                                [--hogs 2] [--model DIR] [--record results/NAME.json]

A plain rclpy client (call_async + SingleThreadedExecutor.spin_until_future_complete, one query at a time,
real MNIST test digits) asks the node (started from the launch file) for its best answer by a deadline:
``--deadline absolute`` (default) sets the request's ``deadline`` to the client's ROS time at the call plus
the budget; ``budget`` sets the relative ``budget`` instead. An answer is **on time** when the client holds
it by the deadline (the future completes no later than call + budget; strict, no grace). Reported per
budget: on-time fraction, accuracy, stop reasons; over all queries: how often the node's ``deadline_met``
agrees with the client's view, whether the node ever finished computing after the deadline (it must not:
it either stops in time or answers ``infeasible`` at once), and, on the node's monotonic clock
(CLOCK_MONOTONIC is shared by the processes of a machine), the stages of each query:
  sent       the request's DDS source timestamp (the client's send)
  callback   the service callback starts (after DDS delivery, the executor's wait set, the thread hand-off)
  computed   the callback returns (the answer is ready)
  replied    send_response returned
``--hogs N`` runs N busy-loop processes beside node and client (a robot's other work).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from node_bench import ROOT, node_model, pct, reexec_in_ros_env  # noqa: E402
from record import Record  # noqa: E402

os.environ["ROS_DOMAIN_ID"] = os.environ.get("NODE_LATENCY_DOMAIN_ID", "80")
HOG = "while True: pass"


def traced_node(out_path: str) -> int:
    """Run the node's main() with per-request timestamps; write them to ``out_path`` at exit."""
    from spike_perception import node as node_mod
    from spike_perception.executor import send_time

    trace: dict[int, dict] = {}
    cls = node_mod.AnytimeClassifierNode
    on_service, init = cls._on_service, cls.__init__

    def traced_service(self, request, response, sent_at=None):
        stamp = request.image.header.stamp.sec * 10**9 + request.image.header.stamp.nanosec
        t_cb = time.monotonic()
        out = on_service(self, request, response, sent_at)
        trace[stamp] = {"callback": t_cb, "computed": time.monotonic(), "reserve": self.delivery.reserve()}
        return out

    def traced_init(self, *a, **kw):
        init(self, *a, **kw)
        send = self.srv.send_response

        def send_response(response, header):
            send(response, header)
            stamp = response.result.header.stamp.sec * 10**9 + response.result.header.stamp.nanosec
            if stamp in trace:
                trace[stamp]["replied"] = time.monotonic()
                trace[stamp]["sent"] = send_time(getattr(header, "source_timestamp", 0))  # at reply time: same scale

        self.srv.send_response = send_response

    cls._on_service, cls.__init__ = traced_service, traced_init
    code = node_mod.main(sys.argv[:1] + sys.argv[3:])
    Path(out_path).write_text(json.dumps({str(k): v for k, v in trace.items()}))
    return code


def run(args) -> dict:
    import numpy as np
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.node import Node
    from sensor_msgs.msg import Image
    from spike_perception.launch_xml import launch_commands
    from spike_perception.stop_reasons import describe
    from spike_perception_interfaces.srv import ClassifyWithDeadline

    from anytime_snn.data import load_mnist

    budgets = [float(b) * 1e-3 for b in args.budgets.split(",")]
    images, labels = load_mnist("test")
    tmp = Path(tempfile.mkdtemp(prefix="node_latency_"))
    extra = "".join(f"    {kv.split('=', 1)[0]}: {kv.split('=', 1)[1]}\n" for kv in args.param)
    (tmp / "p.yaml").write_text("/**:\n  ros__parameters:\n"
                                f"    budget_from_send_time: {str(args.budget_from == 'send').lower()}\n" + extra)
    model_dir = Path(args.model)  # resolved by main (node_model)
    (cmd,) = launch_commands(ROOT / "launch" / "spike_perception.launch.xml",
                             {"model": str(model_dir), "params_file": str(tmp / "p.yaml")})
    trace_path = tmp / "trace.json"
    proc = subprocess.Popen([sys.executable, __file__, "--traced-node", str(trace_path), *cmd[1:]],
                            stdout=open(tmp / "node.log", "wb"), stderr=subprocess.STDOUT)
    hogs = [subprocess.Popen([sys.executable, "-c", HOG]) for _ in range(args.hogs)]
    rclpy.init()
    node = Node("node_latency")
    ex = SingleThreadedExecutor()
    ex.add_node(node)
    cli = node.create_client(ClassifyWithDeadline, "classify_with_deadline")
    clock = node.get_clock()
    if args.client_priority:  # the planner side at real-time priority too (every thread: executor, DDS)
        from spike_perception.scheduling import ThreadScheduling

        for problem in ThreadScheduling(args.client_priority).apply_to_process():
            print(f"client: {problem}", file=sys.stderr)
    rows = []
    load0 = os.getloadavg()
    try:
        if not cli.wait_for_service(timeout_sec=60):
            raise RuntimeError("no service:\n" + (tmp / "node.log").read_text()[-3000:])
        rng = np.random.default_rng(0)
        warmup = 20  # the first calls set up the connection and fill the node's delivery model
        for q in range(args.queries + warmup):
            b = float(rng.choice(budgets)) if q >= warmup else 0.02
            i = q % len(images)
            req = ClassifyWithDeadline.Request(max_timesteps=1_000_000)
            req.image = Image(height=28, width=28, encoding="mono8", step=28, data=images[i].tobytes())
            req.image.header.stamp.sec, req.image.header.stamp.nanosec = divmod(q + 1, 10**9)
            t_call = time.monotonic()
            if args.deadline == "absolute":
                req.deadline = (clock.now() + rclpy.duration.Duration(nanoseconds=int(b * 1e9))).to_msg()
            else:
                req.budget.nanosec = int(b * 1e9)
            fut = cli.call_async(req)
            ex.spin_until_future_complete(fut, timeout_sec=5)
            t_done = time.monotonic()
            if q >= warmup and fut.done():
                r = fut.result()
                rows.append({"stamp": q + 1, "budget": b, "call": t_call, "client": t_done, "met": r.deadline_met,
                             "reason": describe(r.result, r.error), "timestep": r.result.timestep,
                             "correct": r.result.top_class == int(labels[i])})
            time.sleep(0.002)
    finally:
        load1 = os.getloadavg()
        for h in hogs:
            h.kill()
        proc.send_signal(signal.SIGTERM)
        proc.wait(15)
        node.destroy_node()
        rclpy.try_shutdown()
    trace = {int(k): v for k, v in json.loads(trace_path.read_text()).items()}
    stages = {k: [] for k in ("call_to_sent", "request_transit", "compute", "send", "response_transit", "round_trip")}
    per_budget: dict = {}
    agree = late_compute = 0
    late_rows = []  # (row, its trace) of every late answer, attributed below
    for r in rows:
        deadline = r["call"] + r["budget"]
        on_time = r["client"] <= deadline
        agree += r["met"] == on_time
        t = trace.get(r["stamp"], {})
        late_compute += r["timestep"] > 0 and t.get("computed", 0.0) > deadline  # computed, and past the deadline
        pb = per_budget.setdefault(f"{r['budget'] * 1e3:g}ms",
                                   {"n": 0, "on_time": 0, "correct": 0, "reasons": {}, "late_ms": []})
        pb["n"] += 1
        pb["on_time"] += on_time
        pb["correct"] += r["correct"]
        pb["reasons"][r["reason"]] = pb["reasons"].get(r["reason"], 0) + 1
        if not on_time:
            pb["late_ms"].append(round((r["client"] - deadline) * 1e3, 3))
            late_rows.append((r, t))
        if t.get("sent") is None or "replied" not in t:
            continue
        for name, a, b in (("call_to_sent", r["call"], t["sent"]), ("request_transit", t["sent"], t["callback"]),
                           ("compute", t["callback"], t["computed"]), ("send", t["computed"], t["replied"]),
                           ("response_transit", t["replied"], r["client"]), ("round_trip", r["call"], r["client"])):
            stages[name].append((b - a) * 1e3)
    for pb in per_budget.values():
        pb["on_time"] /= pb["n"]
        pb["accuracy"] = pb.pop("correct") / pb["n"]
        late = sorted(pb.pop("late_ms"))
        pb["late_ms"] = {"n": len(late), "median": late[len(late) // 2], "max": late[-1]} if late else {"n": 0}

    late = attribute_late(late_rows, {k: pct(v, 50) for k, v in stages.items() if v})

    def dist(v):
        return {"p50": pct(v, 50), "p90": pct(v, 90), "p99": pct(v, 99), "max": max(v)} if v else {}

    n = max(1, len(rows))
    return {"deadline": args.deadline, "budget_from": args.budget_from, "hogs": args.hogs, "params": args.param,
            "client_priority": args.client_priority,
            "queries": len(rows),
            "model": str(model_dir), "load_average": [load0, load1],
            "on_time_all": sum(r["client"] <= r["call"] + r["budget"] for r in rows) / n,
            "deadline_met_agrees": agree / n, "computed_after_deadline": late_compute, "late": late,
            "per_budget": per_budget, "stages_ms": {k: dist(v) for k, v in stages.items()}}


def attribute_late(late_rows, medians: dict) -> dict:
    """Where each late answer lost its time: the stage furthest above its median in this run.

    ``answered_at_once`` counts late answers the node sent without computing a step (its delivery model
    said not even one step fits): no node-side choice could have made those on time. ``arrived_late``
    counts requests that reached the node with less time left than the run's median response path
    (send + response transit) needs.
    """
    blame: dict = {}
    at_once = arrived_late = 0
    response_p50 = (medians.get("send", 0.0) + medians.get("response_transit", 0.0)) / 1e3
    for r, t in late_rows:
        at_once += r["timestep"] == 0
        if t.get("callback") is not None:
            arrived_late += r["call"] + r["budget"] - t["callback"] < response_p50
        if t.get("sent") is None or "replied" not in t:
            blame["untraced"] = blame.get("untraced", 0) + 1
            continue
        spans = {"call_to_sent": t["sent"] - r["call"], "request_transit": t["callback"] - t["sent"],
                 "compute": t["computed"] - t["callback"], "send": t["replied"] - t["computed"],
                 "response_transit": r["client"] - t["replied"]}
        stage = max(spans, key=lambda k: spans[k] * 1e3 - medians.get(k, 0.0))
        blame[stage] = blame.get(stage, 0) + 1
    return {"n": len(late_rows), "answered_at_once": at_once, "arrived_late": arrived_late,
            "stage_furthest_above_median": blame}


def main():
    if len(sys.argv) > 2 and sys.argv[1] == "--traced-node":
        sys.exit(traced_node(sys.argv[2]))
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="default")
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--budgets", default="5,10,20,50", help="milliseconds, comma-separated (drawn at random)")
    ap.add_argument("--deadline", choices=["absolute", "budget"], default="absolute")
    ap.add_argument("--budget-from", choices=["send", "receipt"], default="send",
                    help="the node's budget_from_send_time (relative budgets only)")
    ap.add_argument("--hogs", type=int, default=0, help="busy-loop processes running beside node and client")
    ap.add_argument("--client-priority", type=int, default=0,
                    help="SCHED_FIFO priority of this client's threads (0 = normal), like the node's realtime_priority")
    ap.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                    help="a node parameter (YAML value), e.g. --param realtime_priority=50; repeatable")
    ap.add_argument("--record", help="write the numbers with their provenance (command, commit, model hash, "
                                     "machine, load) to this JSON file, e.g. results/node_latency_idle.json")
    args = ap.parse_args()
    if not os.environ.get("NODE_BENCH_INNER"):
        sys.exit(reexec_in_ros_env(sys.argv[1:], script=__file__))
    model_dir = node_model(args.model, __file__)
    args.model = str(model_dir)
    record = Record(model_dir)
    r = run(args)
    la = r["load_average"]
    print(f"{r['queries']} queries ({r['deadline']} deadlines, {r['hogs']} CPU hogs), load average "
          f"{la[0][0]:.2f} -> {la[1][0]:.2f}")
    for k, d in r["stages_ms"].items():
        if d:
            print(f"  {k:17s} p50 {d['p50']:7.3f}  p90 {d['p90']:7.3f}  p99 {d['p99']:7.3f}  max {d['max']:7.3f} ms")
    for k, pb in r["per_budget"].items():
        late = pb["late_ms"]
        print(f"  {k:>6s}: on time {pb['on_time']:.1%}, accuracy {pb['accuracy']:.1%}, {pb['reasons']}"
              + (f", {late['n']} late by {late['median']:.2f} ms median, {late['max']:.2f} max" if late["n"] else ""))
    print(f"  all: on time {r['on_time_all']:.1%}; node's deadline_met agrees with the client on "
          f"{r['deadline_met_agrees']:.1%}; answers computed past their deadline: {r['computed_after_deadline']}")
    lt = r["late"]
    if lt["n"]:
        print(f"  late answers: {lt['n']}; answered without computing {lt['answered_at_once']}; request arrived with "
              f"less time left than a median response needs {lt['arrived_late']}; stage furthest above its median: "
              f"{lt['stage_furthest_above_median']}")
    if args.record:
        record.finish(r)
        record.write(args.record)


if __name__ == "__main__":
    main()
