#!/usr/bin/env python
"""Benchmark of the ROS 2 node with real processes (the node from the launch file + this client).

    .venv/bin/python benchmarks/node_bench.py [--model DIR] [--queries 1000] [--soak 20] [--json out.json]

Measures (targets from issue 5, on a 2-core CPU with the bundled dense MNIST model):
  1. first estimate: node-side latency from receiving an image to publishing its first estimate (the
     message's `elapsed`), and the client's round trip publish -> receive;         target <= 2 ms median
  2. timestep rate with publish_every 10 and 1 (one long frame; steps / node-side time), plus the
     engine-only rate the node reports in /diagnostics;                             target >= 10,000 /s at 10
  3. deadline queries: 1000 service calls with budgets 2-50 ms; answered (client round trip) within
     budget + 2 ms;                                                                  target >= 99 %
  4. a 30 fps stream for --soak seconds: no crash, node RSS growth;                  target < 20 MB / 10 min

Network: ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST, ROS_DOMAIN_ID=78; as root with unshare available the
benchmark re-runs itself inside `unshare -n` (loopback only, private /dev/shm). Needs the built workspace:
`source scripts/ros_env.sh` is done for you.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
os.environ["ROS_DOMAIN_ID"] = os.environ.get("NODE_BENCH_DOMAIN_ID", "78")


def reexec_in_ros_env(argv, script=__file__):
    """Re-run ``script`` inside scripts/ros_env.sh's environment (and unshare -n when possible)."""
    env_out = subprocess.run(["bash", "-c", f"source {ROOT}/scripts/ros_env.sh >/dev/null && env -0"],
                             capture_output=True, check=True, env=os.environ).stdout.decode()
    env = dict(kv.split("=", 1) for kv in env_out.split("\0") if "=" in kv)
    env.pop("_ROS_WHEELS_BOOTSTRAP_COMPLETE", None)
    env["NODE_BENCH_INNER"] = "1"
    cmd = [sys.executable, str(script), *argv]
    if (os.geteuid() == 0 and shutil.which("unshare") and shutil.which("ip")
            and subprocess.run(["unshare", "-n", "-m", "-p", "-f", "--kill-child", "--mount-proc", "true"],
                               capture_output=True).returncode == 0):
        cmd = ["unshare", "-n", "-m", "-p", "-f", "--kill-child", "--mount-proc", "sh", "-c",
               'ip link set lo up && mount -t tmpfs -o size=512m tmpfs /dev/shm && exec "$@"', "sh", *cmd]
        print("(isolated: unshare -n, loopback only, private /dev/shm)", file=sys.stderr)
    return subprocess.call(cmd, env=env)


def node_model(value: str, script: str) -> Path:
    """The bundle the node will load for ``--model value`` (the node's own resolution), or a one-line error."""
    from spike_perception.model_path import resolve_model

    try:
        return resolve_model(value)
    except FileNotFoundError as e:
        sys.exit(f"{Path(script).name}: --model {value}: {e}")


def pct(values, q):
    s = sorted(values)
    return s[min(len(s) - 1, int(q / 100 * len(s)))] if s else float("nan")


def deadline_summary(rows: list, budgets: list) -> dict:
    """Rows (budget, rtt, deadline_met, elapsed, timestep, correct, stop_reason, mode) -> the client-side
    distribution per budget."""
    def one(sel):
        rtt = [r[1] * 1e3 for r in sel]
        after = [(r[1] - r[3]) * 1e3 for r in sel]  # round trip - node-side elapsed: delivery of the answer
        return {"n": len(sel), "within_budget_plus_2ms": sum(r[1] <= r[0] + 0.002 for r in sel) / len(sel),
                "node_deadline_met": sum(r[2] for r in sel) / len(sel),
                "rtt_p50_ms": pct(rtt, 50), "rtt_p99_ms": pct(rtt, 99), "rtt_max_ms": max(rtt),
                "answer_delivery_p50_p99_max_ms": [pct(after, 50), pct(after, 99), max(after)],
                "median_timesteps": statistics.median(r[4] for r in sel),
                "accuracy": sum(r[5] for r in sel) / len(sel)}

    out = one(rows) if rows else {"n": 0}
    out["stop_reasons"] = {s: sum(r[6] == s for r in rows) for s in {r[6] for r in rows}}
    out["per_budget"] = {f"{b * 1e3:g}ms": one(sel) for b in budgets if (sel := [r for r in rows if r[0] == b])}
    return out


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def run(args) -> dict:
    import numpy as np
    import rclpy
    from diagnostic_msgs.msg import DiagnosticArray
    from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue
    from rcl_interfaces.srv import SetParameters
    from rclpy.executors import MultiThreadedExecutor, SingleThreadedExecutor
    from rclpy.node import Node
    from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
    from sensor_msgs.msg import Image
    from spike_perception.launch_xml import launch_commands
    from spike_perception.stop_reasons import describe
    from spike_perception_interfaces.msg import AnytimeClassification
    from spike_perception_interfaces.srv import ClassifyWithDeadline

    from anytime_snn.data import load_mnist

    images, labels = load_mnist("test")
    model = args.model  # resolved by main (node_model)
    params = Path(tempfile.mkdtemp()) / "bench.yaml"
    params.write_text(f"/**:\n  ros__parameters:\n    timesteps: {args.timesteps}\n    publish_every: 1\n"
                      + (f"    deadline_margin: {args.deadline_margin}\n" if args.deadline_margin is not None else "")
                      + f"    engine_threads: {args.engine_threads}\n")
    (cmd,) = launch_commands(ROOT / "launch" / "spike_perception.launch.xml",
                             {"model": model, "params_file": str(params), "image_topic": "camera/image"})
    node_log = open(Path(tempfile.mkdtemp()) / "node.log", "wb")
    proc = subprocess.Popen(cmd, stdout=node_log, stderr=subprocess.STDOUT)

    rclpy.init()
    node = Node("node_bench")
    ex = MultiThreadedExecutor(num_threads=2)
    ex.add_node(node)
    lock = threading.Lock()
    received: list = []
    diags: list = []

    def on_cls(m):
        t = time.monotonic()
        with lock:
            received.append((t, m.header.stamp.sec, m.header.stamp.nanosec, m.timestep, m.final,
                             m.elapsed.sec + m.elapsed.nanosec * 1e-9, m.top_class))

    def on_diag(m):
        for st in m.status:
            if "anytime classifier" in st.name:
                with lock:
                    diags.append({kv.key: kv.value for kv in st.values})

    node.create_subscription(AnytimeClassification, "classification", on_cls,
                             QoSProfile(depth=10000, reliability=ReliabilityPolicy.RELIABLE))
    node.create_subscription(DiagnosticArray, "/diagnostics", on_diag, 10)
    pub = node.create_publisher(Image, "camera/image", qos_profile_sensor_data)
    srv = node.create_client(ClassifyWithDeadline, "classify_with_deadline")
    setp = node.create_client(SetParameters, "anytime_classifier/set_parameters")
    stop = threading.Event()

    def spin():
        while not stop.is_set():
            ex.spin_once(timeout_sec=0.05)

    threading.Thread(target=spin, daemon=True).start()

    def image(i, tag):
        msg = Image(height=28, width=28, encoding="mono8", step=28, data=images[i % len(images)].tobytes())
        msg.header.stamp.sec, msg.header.stamp.nanosec = tag, i
        return msg

    def set_params(**kv):
        req = SetParameters.Request()
        for k, v in kv.items():
            if isinstance(v, bool):
                pv = ParameterValue(type=ParameterType.PARAMETER_BOOL, bool_value=v)
            elif isinstance(v, int):
                pv = ParameterValue(type=ParameterType.PARAMETER_INTEGER, integer_value=v)
            else:
                pv = ParameterValue(type=ParameterType.PARAMETER_DOUBLE, double_value=float(v))
            req.parameters.append(Parameter(name=k, value=pv))
        fut = setp.call_async(req)
        while not fut.done():
            time.sleep(0.001)
        assert all(r.successful for r in fut.result().results), fut.result()

    def wait_final(tag, i, timeout=30.0):
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            with lock:
                rows = [r for r in received if r[1] == tag and r[2] == i]
            if any(r[4] for r in rows):
                return rows
            time.sleep(0.0005)
        raise TimeoutError(f"no final estimate for frame {tag}/{i}")

    results: dict = {"model": model, "timesteps_per_frame": args.timesteps, "engine_threads": args.engine_threads,
                     "load_average_start": os.getloadavg()}
    try:
        t0 = time.monotonic()
        while not (srv.service_is_ready() and setp.service_is_ready() and pub.get_subscription_count() > 0):
            if proc.poll() is not None or time.monotonic() - t0 > 30:
                raise RuntimeError("node did not start:\n" + Path(node_log.name).read_text()[-3000:])
            time.sleep(0.05)
        rss0 = rss_mb(proc.pid)

        if not args.skip_rate:
            # 1. first estimate latency (publish_every 1), 100 frames at 20 Hz after 10 warm-up frames
            lat_node, lat_client = [], []
            lost = 0
            for i in range(110):
                for _attempt in range(10):  # best effort: the first frames after discovery can be lost
                    t_pub = time.monotonic()
                    pub.publish(image(i, 1))
                    try:
                        rows = wait_final(1, i, timeout=0.5)
                        break
                    except TimeoutError:
                        lost += 1
                else:
                    raise RuntimeError("the node does not answer:\n" + Path(node_log.name).read_text()[-3000:])
                first = min(rows, key=lambda r: r[3])
                if i >= 10:
                    lat_node.append(first[5] * 1e3)
                    lat_client.append((first[0] - t_pub) * 1e3)
                time.sleep(0.05)
            results["first_estimate_ms"] = {"node_median": statistics.median(lat_node), "node_p90": pct(lat_node, 90),
                                            "client_roundtrip_median": statistics.median(lat_client),
                                            "client_roundtrip_p90": pct(lat_client, 90), "frames": len(lat_node),
                                            "resent_frames": lost}

            # 2. timestep rate: one long frame each
            rates = {}
            for every in (10, 1):
                set_params(publish_every=every, timesteps=args.rate_steps)
                time.sleep(0.2)
                time.sleep(1.1)
                with lock:
                    before = dict(diags[-1]) if diags else {}
                vals = []
                for rep in range(3):
                    pub.publish(image(rep, 2 + every))
                    rows = wait_final(2 + every, rep, timeout=120)
                    final = [r for r in rows if r[4]][-1]
                    vals.append(final[3] / final[5])
                time.sleep(1.2)  # a diagnostics period after the runs
                with lock:
                    after = dict(diags[-1]) if diags else {}
                try:  # steps / seconds inside engine.advance, from the node's cumulative counters
                    engine_rate = ((int(after["steps_total"]) - int(before["steps_total"]))
                                   / (float(after["step_seconds_total"]) - float(before["step_seconds_total"])))
                except (KeyError, ZeroDivisionError, ValueError):
                    engine_rate = float("nan")
                rates[f"publish_every_{every}"] = {"steps_per_s_median": statistics.median(vals),
                                                   "engine_only_steps_per_s": engine_rate}
            results["timestep_rate"] = rates
            set_params(publish_every=1, timesteps=args.timesteps)

        # 3. deadline queries, from a client node spun on this thread (no cross-thread hand-off in the client)
        budgets = [0.002, 0.005, 0.01, 0.02, 0.05]
        rng = np.random.default_rng(0)
        qnode = Node("node_bench_queries")
        qex = SingleThreadedExecutor()
        qex.add_node(qnode)
        qsrv = qnode.create_client(ClassifyWithDeadline, "classify_with_deadline")
        if not qsrv.wait_for_service(timeout_sec=10):
            raise RuntimeError("service not available to the query client")

        def call(req):
            fut = qsrv.call_async(req)
            qex.spin_until_future_complete(fut, timeout_sec=5)
            return fut

        for i in range(5):  # warm-up (connection set-up)
            req = ClassifyWithDeadline.Request(image=image(i, 9), max_timesteps=1_000_000)
            req.budget.nanosec = 2_000_000
            call(req)
        # --ab: alternate blocks of 50 queries with the budget counted from the client's send time (the
        # default) and from the node's receipt, so both see the same machine load.
        # --ab-margin M1,M2: alternate the node's deadline_margin instead (budget start as --budget-from)
        if args.ab_configs:  # START:MARGIN,...: alternate budget start and margin together
            modes = [f"{c.split(':')[0]}, margin {c.split(':')[1]}" for c in args.ab_configs.split(",")]
        elif args.ab_margin:
            modes = [f"{args.budget_from}, margin {m}" for m in args.ab_margin.split(",")]
        else:
            modes = ["send", "receipt"] if args.ab else ["send" if args.budget_from == "send" else "receipt"]
        rows = []
        load_q0 = os.getloadavg()
        for q in range(args.queries):
            mode = modes[(q // 50) % len(modes)]
            if q % 50 == 0 and (args.ab or args.ab_margin or args.ab_configs or q == 0):
                if args.ab_configs:
                    set_params(budget_from_send_time=mode.startswith("send"),
                               deadline_margin=float(mode.rsplit(" ", 1)[1]))
                elif args.ab_margin:
                    set_params(budget_from_send_time=args.budget_from == "send",
                               deadline_margin=float(mode.rsplit(" ", 1)[1]))
                else:
                    set_params(budget_from_send_time=mode == "send")
            b = float(rng.choice(budgets))
            req = ClassifyWithDeadline.Request(image=image(q, 9), max_timesteps=1_000_000)
            req.budget.nanosec = int(b * 1e9)
            t_call = time.monotonic()
            fut = call(req)
            rtt = time.monotonic() - t_call
            r = fut.result()
            elapsed = r.result.elapsed.sec + r.result.elapsed.nanosec * 1e-9
            rows.append((b, rtt, r.deadline_met, elapsed, r.result.timestep,
                         r.result.top_class == labels[q % len(labels)], describe(r.result, r.error), mode))
        time.sleep(1.1)
        with lock:
            transit = {k: diags[-1].get(k) for k in ("query_transit_ms_median", "query_transit_ms_max")} \
                if diags else {}
        results["deadline_queries"] = {m: deadline_summary([r for r in rows if r[7] == m], budgets) for m in modes}
        results["deadline_queries"]["load_average"] = [load_q0, os.getloadavg()]
        results["deadline_queries"]["node_transit_last_256"] = transit

        # 4. 30 fps soak
        if args.soak > 0:
            rss_start = rss_mb(proc.pid)
            t_end = time.monotonic() + args.soak
            i = 0
            while time.monotonic() < t_end:
                pub.publish(image(i, 20))
                i += 1
                time.sleep(max(0.0, 1 / 30 - 0.0005))
                if i % 300 == 0:
                    with lock:
                        received.clear()
            time.sleep(0.5)
            results["soak"] = {"seconds": args.soak, "frames_sent": i, "node_alive": proc.poll() is None,
                               "rss_start_mb": rss_start, "rss_end_mb": rss_mb(proc.pid),
                               "rss_growth_mb": rss_mb(proc.pid) - rss_start, "rss_at_launch_mb": rss0}
            with lock:
                results["soak"]["diagnostics"] = diags[-1] if diags else {}
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
        node.destroy_node()
        rclpy.try_shutdown()
    return results


def report(r: dict) -> str:
    fe, tr, dq = r.get("first_estimate_ms"), r.get("timestep_rate", {}), r["deadline_queries"]
    lines = [f"model: {r['model']}"]
    if fe:
        lines.append(f"first estimate, node-side (receipt -> publish): median {fe['node_median']:.3f} ms, p90 "
                     f"{fe['node_p90']:.3f} ms ({fe['frames']} frames); client round trip median "
                     f"{fe['client_roundtrip_median']:.3f} ms")
    for k, v in tr.items():
        lines.append(f"timestep rate, {k}: {v['steps_per_s_median']:.0f} steps/s in the node "
                     f"(engine only: {v['engine_only_steps_per_s']:.0f} steps/s)")
    la = dq["load_average"]
    lines.append(f"deadline queries (load average {la[0][0]:.2f} -> {la[1][0]:.2f}; node: request sent -> callback "
                 f"median {dq['node_transit_last_256'].get('query_transit_ms_median')} ms, max "
                 f"{dq['node_transit_last_256'].get('query_transit_ms_max')} ms over its last 256):")
    for mode in [k for k in dq if isinstance(dq[k], dict) and "per_budget" in dq[k] and dq[k]["n"]]:
        d = dq[mode]
        lines.append(f" budget from {mode}: {d['n']} queries, within budget + 2 ms: {d['within_budget_plus_2ms']:.1%}; "
                     f"node-side deadline met: {d['node_deadline_met']:.1%}; stop reasons {d['stop_reasons']}; "
                     "round trip - node elapsed p50/p99/max "
                     + "/".join(f"{v:.2f}" for v in d["answer_delivery_p50_p99_max_ms"]) + " ms")
        for k, v in d["per_budget"].items():
            lines.append(f"  budget {k:>5}: n={v['n']:4d}, within+2ms {v['within_budget_plus_2ms']:6.1%}, "
                         f"rtt p50/p99/max {v['rtt_p50_ms']:.2f}/{v['rtt_p99_ms']:.2f}/{v['rtt_max_ms']:.2f} ms, "
                         f"median {v['median_timesteps']:.0f} timesteps, accuracy {v['accuracy']:.1%}")
    if "soak" in r:
        s = r["soak"]
        lines.append(f"30 fps soak: {s['seconds']:g} s, {s['frames_sent']} frames, node alive {s['node_alive']}, "
                     f"RSS {s['rss_start_mb']:.1f} -> {s['rss_end_mb']:.1f} MB (growth {s['rss_growth_mb']:+.1f} MB)")
    lines.append(f"node exit code after SIGTERM: {r.get('node_exit_code')}; load average at start "
                 f"{r['load_average_start'][0]:.2f}, at end {r.get('load_average_end', [float('nan')])[0]:.2f}")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="default")
    ap.add_argument("--timesteps", type=int, default=0, help="timesteps per frame for latency/soak (0 = bundle's)")
    ap.add_argument("--rate-steps", type=int, default=5000, help="timesteps of the long frame for the rate test")
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--soak", type=float, default=20.0, help="seconds of the 30 fps stream (600 for the full target)")
    ap.add_argument("--deadline-margin", type=float, help="the node's deadline_margin parameter (default: its own)")
    ap.add_argument("--engine-threads", type=int, default=1, help="the node's engine_threads parameter (default 1)")
    ap.add_argument("--budget-from", choices=["send", "receipt"], default="send",
                    help="the node's budget_from_send_time parameter for the deadline queries")
    ap.add_argument("--ab", action="store_true",
                    help="alternate blocks of 50 deadline queries between --budget-from send and receipt")
    ap.add_argument("--ab-margin", help="M1,M2: alternate blocks of 50 queries between these deadline_margin values")
    ap.add_argument("--ab-configs", help="START:MARGIN,...: e.g. send:0.0,receipt:0.001 alternates budget start and "
                                         "deadline_margin together in blocks of 50 queries")
    ap.add_argument("--skip-rate", action="store_true", help="skip the first-estimate and rate measurements")
    ap.add_argument("--json", help="also write the results here")
    ap.add_argument("--record", help="write the results with their provenance (command, commit, model hash, machine, "
                                     "load) to this JSON file, e.g. results/node_bench_idle.json")
    args = ap.parse_args()
    if not os.environ.get("NODE_BENCH_INNER"):
        sys.exit(reexec_in_ros_env(sys.argv[1:]))
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from record import Record

    model_dir = node_model(args.model, __file__)
    args.model = str(model_dir)
    record = Record(model_dir)
    r = run(args)
    print(report(r))
    if args.json:
        Path(args.json).write_text(json.dumps(r, indent=1, default=str))
    if args.record:
        record.finish(json.loads(json.dumps(r, default=str)))
        record.write(args.record)


if __name__ == "__main__":
    main()
