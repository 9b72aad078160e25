#!/usr/bin/env python
"""Which rclpy executor gets a service request to its callback, and the answer back, fastest?

    .venv/bin/python benchmarks/ros_executors.py [--queries 400] [--busy-thread] [--record results/NAME.json]

A server process runs one trivial service (our ClassifyWithDeadline type, answered at once) on each
candidate executor in turn; a plain client (call_async + SingleThreadedExecutor.spin_until_future_complete,
one call at a time, 2 ms apart) measures, on CLOCK_MONOTONIC (shared by the processes of a machine):
request transit (call -> server callback) and response transit (callback -> the client holds the answer).
Candidates:
  mt         MultiThreadedExecutor(4 threads), reentrant group (what the node used before)
  st         SingleThreadedExecutor
  events     rclpy.experimental.events_executor.EventsExecutor, synchronous callback
  events-worker  EventsExecutor with the work handed to a worker thread (async callback awaiting a Future
             the worker completes): what the node would need so that a long query does not block intake
``--busy-thread`` adds a thread to the server that keeps the GIL busy with small NumPy steps (like the
node's stream worker). The first 20 calls are warm-up and not counted.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from node_bench import pct, reexec_in_ros_env  # noqa: E402
from record import Record  # noqa: E402

os.environ["ROS_DOMAIN_ID"] = os.environ.get("ROS_EXECUTORS_DOMAIN_ID", "81")
KINDS = ("mt", "st", "events", "events-worker")
WARMUP = 20


def server(kind: str, out: str, seconds: float, busy: bool) -> None:
    import numpy as np
    import rclpy
    from rclpy.node import Node
    from spike_perception_interfaces.srv import ClassifyWithDeadline

    rclpy.init()
    node = Node("executor_bench_server")
    callbacks: dict[int, float] = {}
    running = True
    if busy:
        def spin_gil():
            a = np.zeros(1000, np.float32)
            while running:
                a += 1.0  # small NumPy steps: the GIL changes hands constantly, like the stream worker's
        threading.Thread(target=spin_gil, daemon=True).start()

    def callback(req, resp):
        callbacks[req.max_timesteps] = time.monotonic()
        return resp

    if kind == "mt":
        from rclpy.callback_groups import ReentrantCallbackGroup
        from rclpy.executors import MultiThreadedExecutor
        node.create_service(ClassifyWithDeadline, "bench", callback, callback_group=ReentrantCallbackGroup())
        ex = MultiThreadedExecutor(num_threads=4)
    elif kind == "st":
        from rclpy.executors import SingleThreadedExecutor
        node.create_service(ClassifyWithDeadline, "bench", callback)
        ex = SingleThreadedExecutor()
    else:
        from rclpy.experimental.events_executor import EventsExecutor
        ex = EventsExecutor()
        if kind == "events":
            node.create_service(ClassifyWithDeadline, "bench", callback)
        else:
            from rclpy.task import Future

            async def handed_off(req, resp):
                fut = Future(executor=ex)
                threading.Thread(target=lambda: fut.set_result(callback(req, resp))).start()
                return await fut
            node.create_service(ClassifyWithDeadline, "bench", handed_off)
    ex.add_node(node)
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        ex.spin_once(timeout_sec=0.05)
    running = False
    Path(out).write_text(json.dumps(callbacks))
    os._exit(0)  # executors of several kinds in one process do not always shut down cleanly


def client(n: int) -> list:
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.node import Node
    from spike_perception_interfaces.srv import ClassifyWithDeadline

    rclpy.init()
    node = Node("executor_bench_client")
    ex = SingleThreadedExecutor()
    ex.add_node(node)
    cli = node.create_client(ClassifyWithDeadline, "bench")
    if not cli.wait_for_service(timeout_sec=20):
        raise RuntimeError("no server")
    rows = []
    for i in range(1, n + WARMUP + 1):
        t0 = time.monotonic()
        fut = cli.call_async(ClassifyWithDeadline.Request(max_timesteps=i))
        ex.spin_until_future_complete(fut, timeout_sec=2)
        if fut.done() and i > WARMUP:
            rows.append((i, t0, time.monotonic()))
        time.sleep(0.002)
    node.destroy_node()
    rclpy.try_shutdown()
    return rows


def measure(kind: str, n: int, busy: bool) -> dict:
    tmp = Path(tempfile.mkdtemp(prefix="ros_executors_"))
    seconds = 10 + n * 0.006
    srv = subprocess.Popen([sys.executable, __file__, "--server", kind, str(tmp / "cb.json"), str(seconds),
                            str(int(busy))])
    try:
        rows = client(n)
    finally:
        srv.wait(seconds + 30)
    cb = {int(k): v for k, v in json.loads((tmp / "cb.json").read_text()).items()}
    req = [(cb[i] - t0) * 1e3 for i, t0, _ in rows if i in cb]
    resp = [(t1 - cb[i]) * 1e3 for i, _, t1 in rows if i in cb]
    return {"calls": len(req), "request_ms": {"p50": pct(req, 50), "p99": pct(req, 99)},
            "response_ms": {"p50": pct(resp, 50), "p99": pct(resp, 99)}}


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--server":
        server(sys.argv[2], sys.argv[3], float(sys.argv[4]), bool(int(sys.argv[5])))
        return
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--queries", type=int, default=400)
    ap.add_argument("--kinds", default=",".join(KINDS))
    ap.add_argument("--busy-thread", action="store_true")
    ap.add_argument("--record", help="write the numbers with their provenance to this JSON file")
    args = ap.parse_args()
    if not os.environ.get("NODE_BENCH_INNER"):
        sys.exit(reexec_in_ros_env(sys.argv[1:], script=__file__))
    record = Record()
    load0 = os.getloadavg()
    out = {}
    for kind in args.kinds.split(","):
        # one client process per executor: rclpy's context is initialised once per process
        r = subprocess.run([sys.executable, "-c", f"import sys; sys.argv=['x']; sys.path.insert(0, {str(Path(__file__).parent)!r});"
                            f"import json, ros_executors as m; print(json.dumps(m.measure({kind!r}, {args.queries}, "
                            f"{args.busy_thread})))"], capture_output=True, text=True, timeout=600)
        if r.returncode:
            raise RuntimeError(f"{kind}: {r.stderr[-2000:]}")
        out[kind] = json.loads(r.stdout.strip().splitlines()[-1])
        d = out[kind]
        print(f"{kind:14s} request p50 {d['request_ms']['p50']:.3f} p99 {d['request_ms']['p99']:.3f} ms | "
              f"response p50 {d['response_ms']['p50']:.3f} p99 {d['response_ms']['p99']:.3f} ms ({d['calls']} calls)")
    load1 = os.getloadavg()
    print(f"load average {load0[0]:.2f} -> {load1[0]:.2f}; busy thread in the server: {args.busy_thread}")
    if args.record:
        record.finish({"busy_thread": args.busy_thread, "queries": args.queries, "executors": out})
        record.write(args.record)


if __name__ == "__main__":
    main()
