#!/usr/bin/env python
"""Where a deadline query's time goes, stage by stage, with real processes.

    .venv/bin/python benchmarks/node_latency.py [--queries 300] [--budget-from send|receipt] [--json out.json]

The node runs from the launch file's command under a thin tracing wrapper (this file, `--traced-node`)
that records, per service request (keyed by the request image's stamp), on the node's monotonic clock
(CLOCK_MONOTONIC is shared by all processes of the machine):
  sent       the request's DDS source timestamp (the client's send), converted to the monotonic clock
  callback   the service callback starts (after DDS delivery, the executor's wait set, the thread hand-off)
  computed   the callback returns (the answer is ready)
  replied    send_response returned
The client (a plain rclpy client: call_async + SingleThreadedExecutor.spin_until_future_complete)
records its call and the moment the future completes. Stages: call -> sent, sent -> callback
(request transit), callback -> computed (compute), computed -> replied (send), replied -> client
(response transit and the client's wake-up), and the round trip against budget + 2 ms.
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
from node_bench import ROOT, pct, reexec_in_ros_env  # noqa: E402

os.environ["ROS_DOMAIN_ID"] = os.environ.get("NODE_LATENCY_DOMAIN_ID", "80")
BUDGETS = [0.002, 0.005, 0.01, 0.02, 0.05]


def traced_node(out_path: str) -> int:
    """Run the node's main() with per-request timestamps; write them to ``out_path`` at exit."""
    from spike_perception import node as node_mod
    from spike_perception.send_time import send_time

    trace: dict[int, dict] = {}
    cls = node_mod.AnytimeClassifierNode
    on_service, init = cls._on_service, cls.__init__

    def traced_service(self, request, response, sent_at=None):
        stamp = request.image.header.stamp.sec * 10**9 + request.image.header.stamp.nanosec
        t_cb = time.monotonic()
        out = on_service(self, request, response, sent_at)
        trace[stamp] = {"callback": t_cb, "computed": time.monotonic()}
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
    from spike_perception.model_path import resolve_model
    from spike_perception_interfaces.srv import ClassifyWithDeadline

    from anytime_snn.data import load_mnist

    images, _ = load_mnist("test")
    tmp = Path(tempfile.mkdtemp(prefix="node_latency_"))
    (tmp / "p.yaml").write_text("/**:\n  ros__parameters:\n"
                                f"    budget_from_send_time: {str(args.budget_from == 'send').lower()}\n")
    (cmd,) = launch_commands(ROOT / "launch" / "spike_perception.launch.xml",
                             {"model": str(resolve_model(args.model)), "params_file": str(tmp / "p.yaml")})
    trace_path = tmp / "trace.json"
    proc = subprocess.Popen([sys.executable, __file__, "--traced-node", str(trace_path), *cmd[1:]],
                            stdout=open(tmp / "node.log", "wb"), stderr=subprocess.STDOUT)
    rclpy.init()
    node = Node("node_latency")
    ex = SingleThreadedExecutor()
    ex.add_node(node)
    cli = node.create_client(ClassifyWithDeadline, "classify_with_deadline")
    rows = []
    load0 = os.getloadavg()
    try:
        if not cli.wait_for_service(timeout_sec=60):
            raise RuntimeError("no service:\n" + (tmp / "node.log").read_text()[-3000:])
        rng = np.random.default_rng(0)
        for q in range(args.queries + 5):  # 5 warm-up queries
            b = float(rng.choice(BUDGETS)) if q >= 5 else 0.002
            req = ClassifyWithDeadline.Request(max_timesteps=1_000_000)
            req.image = Image(height=28, width=28, encoding="mono8", step=28, data=images[q].tobytes())
            req.image.header.stamp.sec, req.image.header.stamp.nanosec = divmod(q + 1, 10**9)
            req.budget.nanosec = int(b * 1e9)
            t_call = time.monotonic()
            fut = cli.call_async(req)
            ex.spin_until_future_complete(fut, timeout_sec=5)
            t_done = time.monotonic()
            if q >= 5 and fut.done():
                rows.append({"stamp": q + 1, "budget": b, "call": t_call, "client": t_done,
                             "met": fut.result().deadline_met})
            time.sleep(0.002)
    finally:
        load1 = os.getloadavg()
        proc.send_signal(signal.SIGTERM)
        proc.wait(15)
        node.destroy_node()
        rclpy.try_shutdown()
    trace = {int(k): v for k, v in json.loads(trace_path.read_text()).items()}
    stages = {k: [] for k in ("call_to_sent", "request_transit", "compute", "send", "response_transit", "round_trip")}
    per_budget: dict = {}
    per_query = []
    for r in rows:
        t = trace.get(r["stamp"])
        if not t or t.get("sent") is None or "replied" not in t:
            continue
        for name, a, b in (("call_to_sent", r["call"], t["sent"]), ("request_transit", t["sent"], t["callback"]),
                           ("compute", t["callback"], t["computed"]), ("send", t["computed"], t["replied"]),
                           ("response_transit", t["replied"], r["client"]), ("round_trip", r["call"], r["client"])):
            stages[name].append((b - a) * 1e3)
        per_budget.setdefault(r["budget"], []).append(r["client"] - r["call"] <= r["budget"] + 0.002)
        per_query.append({"budget": r["budget"], "met": r["met"], **{k: v[-1] for k, v in stages.items()}})

    def dist(v):
        return {"p50": pct(v, 50), "p90": pct(v, 90), "p99": pct(v, 99), "max": max(v)} if v else {}

    return {"budget_from": args.budget_from, "queries": len(rows), "load_average": [load0, load1],
            "stages_ms": {k: dist(v) for k, v in stages.items()},
            "within_budget_plus_2ms": {f"{b * 1e3:g}ms": sum(v) / len(v) for b, v in sorted(per_budget.items())},
            "within_all": sum(sum(v) for v in per_budget.values()) / max(1, sum(len(v) for v in per_budget.values())),
            "per_query_ms": per_query}


def main():
    if len(sys.argv) > 2 and sys.argv[1] == "--traced-node":
        sys.exit(traced_node(sys.argv[2]))
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="default")
    ap.add_argument("--queries", type=int, default=300)
    ap.add_argument("--budget-from", choices=["send", "receipt"], default="send")
    ap.add_argument("--json")
    args = ap.parse_args()
    if not os.environ.get("NODE_BENCH_INNER"):
        sys.exit(reexec_in_ros_env(sys.argv[1:], script=__file__))
    r = run(args)
    la = r["load_average"]
    print(f"{r['queries']} queries, budget from {r['budget_from']}, load average {la[0][0]:.2f} -> {la[1][0]:.2f}")
    for k, d in r["stages_ms"].items():
        if d:
            print(f"  {k:17s} p50 {d['p50']:7.3f}  p90 {d['p90']:7.3f}  p99 {d['p99']:7.3f}  max {d['max']:7.3f} ms")
    print("  within budget + 2 ms: " + ", ".join(f"{k} {v:.1%}" for k, v in r["within_budget_plus_2ms"].items())
          + f"; all {r['within_all']:.1%}")
    if args.json:
        Path(args.json).write_text(json.dumps(r, indent=1))


if __name__ == "__main__":
    main()
