#!/usr/bin/env python
"""Soak / load run of the ROS 2 node with real processes: an image stream plus concurrent deadline queries.

    .venv/bin/python benchmarks/node_soak.py [--seconds 20] [--fps 30] [--query-hz 5] [--budget 0.01]
        [--policy latest|finish] [--timesteps 0] [--publish-every 1] [--sample 10] [--json out.json]
        [--model DIR|default] [--record results/NAME.json]

The node starts from the launch file (like the tests and node_bench.py, isolated with `unshare -n` where
permitted, ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST, ROS_DOMAIN_ID=79). A publisher thread streams real
MNIST test digits at --fps (stamp = frame index); a query thread calls the deadline service at --query-hz
with --budget. Every --sample seconds the node's RSS and /diagnostics are recorded. At the end: frames
sent / seen by the node / completed / dropped / preempted, the order of the frames that got estimates
(the newest frame wins: never an older frame after a newer one), queries answered and within
budget + 2 ms, RSS growth (after the first sample) and its slope, the node's exit code after SIGTERM.

Short CI version: tests/ros/test_ros_node_soak.py (a few seconds at 500 fps). Long run (documented in
docs/ros.md): `nice -n 10 .venv/bin/python benchmarks/node_soak.py --seconds 1800 --fps 30 --json ...`.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from node_bench import ROOT, node_model, pct, reexec_in_ros_env, rss_mb  # noqa: E402
from record import Record, model_identity  # noqa: E402

os.environ["ROS_DOMAIN_ID"] = os.environ.get("NODE_SOAK_DOMAIN_ID", "79")


def run(args) -> dict:
    import rclpy
    from diagnostic_msgs.msg import DiagnosticArray
    from rclpy.executors import MultiThreadedExecutor, SingleThreadedExecutor
    from rclpy.node import Node
    from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
    from sensor_msgs.msg import Image
    from spike_perception.launch_xml import launch_commands
    from spike_perception.stop_reasons import describe
    from spike_perception_interfaces.msg import AnytimeClassification
    from spike_perception_interfaces.srv import ClassifyWithDeadline

    from anytime_snn.data import load_mnist

    images, _labels = load_mnist("test")
    model = args.model  # resolved by main (node_model)
    tmp = Path(tempfile.mkdtemp(prefix="node_soak_"))
    (tmp / "params.yaml").write_text(
        "/**:\n  ros__parameters:\n"
        f"    timesteps: {args.timesteps}\n    publish_every: {args.publish_every}\n"
        f"    frame_policy: {args.policy}\n"
        f"    stream_yields_to_queries: {str(not args.no_yield).lower()}\n")
    (cmd,) = launch_commands(ROOT / "launch" / "spike_perception.launch.xml",
                             {"model": model, "params_file": str(tmp / "params.yaml"), "image_topic": "camera/image"})
    log_path = Path(args.node_log) if args.node_log else tmp / "node.log"
    node_log = open(log_path, "wb")
    proc = subprocess.Popen(cmd, stdout=node_log, stderr=subprocess.STDOUT)

    rclpy.init()
    node = Node("node_soak")
    ex = MultiThreadedExecutor(num_threads=2)
    ex.add_node(node)
    lock = threading.Lock()
    est_count = [0]
    finals: list[int] = []  # stamps (frame indices) of final estimates, in arrival order
    order: list[int] = []  # stamp of each new frame seen in the estimates, in arrival order
    diags: list[dict] = []

    def on_cls(m):
        i = m.header.stamp.sec * 10**9 + m.header.stamp.nanosec
        with lock:
            est_count[0] += 1
            if not order or order[-1] != i:
                order.append(i)
            if m.final:
                finals.append(i)
            if len(order) > 100_000:  # bounded memory in long runs: keep the recent part
                del order[:50_000]
                del finals[:-1000]

    def on_diag(m):
        for st in m.status:
            if "anytime classifier" in st.name:
                with lock:
                    level = int.from_bytes(st.level, "little") if isinstance(st.level, bytes) else int(st.level)
                    diags.append({kv.key: kv.value for kv in st.values} | {"_level": level})
                    del diags[:-5]

    node.create_subscription(AnytimeClassification, "classification", on_cls,
                             QoSProfile(depth=1000, reliability=ReliabilityPolicy.RELIABLE))
    node.create_subscription(DiagnosticArray, "/diagnostics", on_diag, 10)
    pub = node.create_publisher(Image, "camera/image", qos_profile_sensor_data)
    stop = threading.Event()

    def spin():
        while not stop.is_set():
            ex.spin_once(timeout_sec=0.05)

    threading.Thread(target=spin, daemon=True).start()

    def image(i):
        msg = Image(height=28, width=28, encoding="mono8", step=28, data=images[i % len(images)].tobytes())
        msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(i, 10**9)
        return msg

    results: dict = {"args": vars(args), "model": model, "load_average_start": os.getloadavg()}
    sent = [0]
    queries: list = []
    samples: list = []
    try:
        qnode = Node("node_soak_queries")
        qex = SingleThreadedExecutor()
        qex.add_node(qnode)
        qsrv = qnode.create_client(ClassifyWithDeadline, "classify_with_deadline")
        t0 = time.monotonic()
        while not (qsrv.service_is_ready() and pub.get_subscription_count() > 0):
            if proc.poll() is not None or time.monotonic() - t0 > 60:
                raise RuntimeError("node did not start:\n" + log_path.read_text()[-3000:])
            time.sleep(0.05)
        # Warm-up: one frame end to end (the first samples after discovery can be lost).
        while True:
            pub.publish(image(0))
            time.sleep(0.2)
            with lock:
                if finals:
                    break
            if time.monotonic() - t0 > 60:
                raise RuntimeError("no estimate from the node:\n" + log_path.read_text()[-3000:])
        sent[0] = 1

        def publisher(t_end):
            period = 1.0 / args.fps
            nxt = time.monotonic()
            i = 1
            while not stop.is_set() and time.monotonic() < t_end:
                pub.publish(image(i))
                i += 1
                sent[0] = i
                nxt += period
                delay = nxt - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                else:
                    nxt = time.monotonic()  # behind: do not burst to catch up

        def querier(t_end):
            q = 0
            while not stop.is_set() and time.monotonic() < t_end:
                req = ClassifyWithDeadline.Request(max_timesteps=1_000_000)
                req.image = image(10_000 + q)
                req.budget.sec, req.budget.nanosec = divmod(int(args.budget * 1e9), 10**9)
                t_call = time.monotonic()
                fut = qsrv.call_async(req)
                qex.spin_until_future_complete(fut, timeout_sec=5.0)
                rtt = time.monotonic() - t_call
                r = fut.result() if fut.done() else None
                if r is None:
                    qsrv.remove_pending_request(fut)
                queries.append(None if r is None
                               else (rtt, r.deadline_met, describe(r.result, r.error), r.result.timestep))
                if len(queries) > 200_000:
                    del queries[:100_000]
                q += 1
                time.sleep(max(0.0, 1.0 / args.query_hz - rtt))

        t_start = time.monotonic()
        t_end = t_start + args.seconds
        threads = [threading.Thread(target=publisher, args=(t_end,), daemon=True)]
        if args.query_hz > 0:
            threads.append(threading.Thread(target=querier, args=(t_end,), daemon=True))
        for t in threads:
            t.start()
        next_sample = t_start
        while time.monotonic() < t_end and proc.poll() is None:
            if time.monotonic() >= next_sample:
                with lock:
                    d = dict(diags[-1]) if diags else {}
                samples.append({"t": round(time.monotonic() - t_start, 2), "rss_mb": rss_mb(proc.pid),
                                "sent": sent[0], "estimates": est_count[0], "load1": os.getloadavg()[0],
                                **{k: d.get(k) for k in ("frames_received", "frames_processed", "frames_dropped",
                                                         "frames_preempted", "queries_served")}})
                if args.verbose:
                    print(json.dumps(samples[-1]), file=sys.stderr, flush=True)
                next_sample += args.sample
            time.sleep(min(0.2, max(0.0, next_sample - time.monotonic())))
        for t in threads:
            t.join(timeout=10)
        alive = proc.poll() is None
        time.sleep(2.5)  # the last frame finishes; two diagnostics periods pass
        with lock:
            d = dict(diags[-1]) if diags else {}
            seen, fin = list(order), list(finals)
        rss_end = rss_mb(proc.pid) if proc.poll() is None else float("nan")
        samples.append({"t": round(time.monotonic() - t_start, 2), "rss_mb": rss_end, "sent": sent[0],
                        "estimates": est_count[0]})
        rss = [s["rss_mb"] for s in samples]
        ts = [s["t"] for s in samples]
        half = min(range(len(ts)), key=lambda i: abs(ts[i] - ts[-1] / 2))
        slope = (statistics.linear_regression(ts[1:], rss[1:]).slope * 3600
                 if len(samples) >= 4 and len(set(ts[1:])) > 1 else float("nan"))
        answered = [q for q in queries if q is not None]
        results.update({
            "seconds": args.seconds,
            "node_alive_at_end": alive,
            "frames_sent": sent[0],
            "estimates_received": est_count[0],
            "frames_with_estimates": len(set(seen)),
            "newest_wins": all(a < b for a, b in zip(seen, seen[1:])),  # never an older frame after a newer
            "last_frame_sent": sent[0] - 1,
            "last_final_frame": fin[-1] if fin else None,
            "diagnostics_end": d,
            "rss_mb": {"first_sample": rss[0], "second_sample": rss[min(1, len(rss) - 1)], "end": rss_end,
                       "max": max(rss), "growth_after_first_sample": rss_end - rss[min(1, len(rss) - 1)],
                       "growth_second_half": rss_end - rss[half],
                       "slope_mb_per_hour": slope},
            "queries": {"sent": len(queries), "answered": len(answered), "unanswered": len(queries) - len(answered),
                        "stop_reasons": {s: sum(q[2] == s for q in answered) for s in {q[2] for q in answered}},
                        "min_timestep": min((q[3] for q in answered), default=None),
                        "node_deadline_met": (sum(q[1] for q in answered) / len(answered)) if answered else None,
                        "within_budget_plus_2ms": (sum(q[0] <= args.budget + 0.002 for q in answered) / len(answered))
                        if answered else None,
                        "rtt_ms_p50_p99_max": [pct([q[0] * 1e3 for q in answered], 50),
                                               pct([q[0] * 1e3 for q in answered], 99),
                                               max((q[0] * 1e3 for q in answered), default=float("nan"))]},
            "samples": samples,
        })
    finally:
        results["load_average_end"] = os.getloadavg()
        stop.set()
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                results["node_exit_code"] = proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                results["node_exit_code"] = "killed"
        else:
            results["node_exit_code"] = proc.returncode
        results["node_log_tail"] = log_path.read_text(errors="replace")[-2000:]
        node.destroy_node()
        rclpy.try_shutdown()
    return results


def report(r: dict) -> str:
    d, q, m = r["diagnostics_end"], r["queries"], r["rss_mb"]
    return "\n".join([
        f"{r['seconds']:g} s at {r['args']['fps']:g} fps (policy {r['args']['policy']}, stream yields to queries "
        f"{not r['args']['no_yield']}), load average "
        f"{r['load_average_start'][0]:.2f} -> {r['load_average_end'][0]:.2f}",
        f"frames: sent {r['frames_sent']}, node received {d.get('frames_received')}, completed "
        f"{d.get('frames_processed')}, dropped {d.get('frames_dropped')}, preempted {d.get('frames_preempted')}, "
        f"rejected {d.get('frames_rejected')}; frames with estimates {r['frames_with_estimates']}, "
        f"newest wins {r['newest_wins']}, last final frame {r['last_final_frame']} (last sent {r['last_frame_sent']})",
        f"queries: {q['sent']} sent, {q['answered']} answered, stop reasons {q['stop_reasons']}, node deadline met "
        f"{q['node_deadline_met']}, within budget + 2 ms {q['within_budget_plus_2ms']}, rtt p50/p99/max "
        + "/".join(f"{v:.2f}" for v in q["rtt_ms_p50_p99_max"]) + " ms",
        f"node RSS: {m['first_sample']:.1f} MB at start, {m['second_sample']:.1f} after the first sample, "
        f"{m['end']:.1f} at the end (growth {m['growth_after_first_sample']:+.1f} MB, second half "
        f"{m['growth_second_half']:+.1f} MB, slope "
        f"{m['slope_mb_per_hour']:+.2f} MB/h, max {m['max']:.1f})",
        f"node alive at end: {r['node_alive_at_end']}; exit code after SIGTERM: {r['node_exit_code']}",
    ])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="default", help="bundle directory, or `default` (the node's bundled model)")
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--fps", type=float, default=30.0)
    ap.add_argument("--query-hz", type=float, default=5.0, help="deadline queries per second (0 = none)")
    ap.add_argument("--budget", type=float, default=0.01, help="seconds per deadline query")
    ap.add_argument("--policy", choices=["latest", "finish"], default="latest")
    ap.add_argument("--timesteps", type=int, default=0, help="per frame (0 = the bundle's)")
    ap.add_argument("--publish-every", type=int, default=1)
    ap.add_argument("--no-yield", action="store_true",
                    help="stream_yields_to_queries false: the stream keeps running during deadline queries")
    ap.add_argument("--sample", type=float, default=10.0, help="seconds between RSS / diagnostics samples")
    ap.add_argument("--node-log", help="write the node's output here")
    ap.add_argument("--verbose", action="store_true", help="print every sample")
    ap.add_argument("--json", help="also write the results here")
    ap.add_argument("--record", help="write the numbers with their provenance (command, commit, model hash, "
                                     "machine, load) to this JSON file")
    args = ap.parse_args()
    if args.fps <= 0:
        ap.error("--fps must be > 0")
    if not os.environ.get("NODE_BENCH_INNER"):
        sys.exit(reexec_in_ros_env(sys.argv[1:], script=__file__))
    model_dir = node_model(args.model, __file__)
    args.model = str(model_dir)
    record = Record(model_dir)
    r = run(args)
    r["model_identity"] = model_identity(model_dir)
    print(report(r))
    if args.json:
        Path(args.json).write_text(json.dumps(r, indent=1, default=str))
    if args.record:
        record.finish(json.loads(json.dumps(r, default=str)))
        record.write(args.record)
    ok = r["node_alive_at_end"] and r["node_exit_code"] == 0 and r["queries"]["unanswered"] == 0
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
