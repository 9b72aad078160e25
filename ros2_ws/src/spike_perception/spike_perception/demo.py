"""Demo: start the node from the launch file, stream real MNIST test digits to it, show the anytime
estimates arriving (confidence rising timestep by timestep) and answer deadline queries.

    scripts/demo.sh [--frames N] [--fps F] [--model DIR] [--seconds S]

Two processes: this one (camera + client) and the node, started from
launch/spike_perception.launch.xml. Runs with ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST and a fixed
ROS_DOMAIN_ID (set here too, not only by the wrapper script).
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
os.environ.setdefault("ROS_DOMAIN_ID", "42")


BAR = " ▁▂▃▄▅▆▇█"


def spark(values) -> str:
    return "".join(BAR[min(8, int(v * 8 + 0.5))] for v in values)


def find_launch_file() -> Path:
    here = Path(__file__).resolve()
    for cand in [Path(os.environ.get("SPIKE_PERCEPTION_LAUNCH", "")), *[p / "launch" for p in here.parents]]:
        f = cand / "spike_perception.launch.xml" if cand.is_dir() else cand
        if f.name == "spike_perception.launch.xml" and f.is_file():
            return f
    from ament_index_python.packages import get_package_share_directory

    return Path(get_package_share_directory("spike_perception")) / "launch" / "spike_perception.launch.xml"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--frames", type=int, default=12, help="MNIST test images to stream (default 12)")
    ap.add_argument("--fps", type=float, default=4.0, help="camera rate (default 4 frames/s, readable)")
    ap.add_argument("--seconds", type=float, default=60.0, help="hard limit on the demo's run time (default 60)")
    ap.add_argument("--model", default="default", help="bundle directory (default: the bundled model)")
    ap.add_argument("--first", type=int, default=0, help="index of the first MNIST test image")
    args = ap.parse_args(argv)
    if args.frames < 1 or args.fps <= 0 or args.seconds <= 0:
        ap.error("--frames, --fps and --seconds must be positive")

    from anytime_snn.errors import DataError

    try:
        from anytime_snn.data import load_mnist

        images, labels = load_mnist("test")
    except DataError as e:
        print(f"demo: {e}", file=sys.stderr)
        return 1
    from spike_perception.model_path import resolve_model

    try:
        model = str(resolve_model(args.model))
    except FileNotFoundError as e:
        print(f"demo: {e}", file=sys.stderr)
        return 1

    import rclpy
    from rclpy.duration import Duration
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.node import Node
    from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
    from sensor_msgs.msg import Image
    from spike_perception_interfaces.msg import AnytimeClassification
    from spike_perception_interfaces.srv import ClassifyWithDeadline

    from spike_perception.launch_xml import launch_commands
    from spike_perception.stop_reasons import describe

    deadline_at = time.monotonic() + args.seconds
    (cmd,) = launch_commands(find_launch_file(), {"model": model, "image_topic": "camera/image"})
    print(f"starting the node: {' '.join(cmd)}", flush=True)
    node_proc = subprocess.Popen(cmd)

    rclpy.init()
    node = Node("mnist_camera")
    ex = SingleThreadedExecutor()
    ex.add_node(node)
    lock = threading.Lock()
    frames: dict[tuple, list] = {}  # by the image's stamp (sec, nanosec)

    def on_cls(m):
        with lock:
            frames.setdefault((m.header.stamp.sec, m.header.stamp.nanosec), []).append(
                (m.timestep, m.top_label, float(m.confidence), bool(m.final), m.elapsed.nanosec + m.elapsed.sec * 10**9,
                 m.frame_seq))

    node.create_subscription(AnytimeClassification, "classification", on_cls,
                             QoSProfile(depth=1000, reliability=ReliabilityPolicy.RELIABLE))
    pub = node.create_publisher(Image, "camera/image", qos_profile_sensor_data)
    client = node.create_client(ClassifyWithDeadline, "classify_with_deadline")
    stop = threading.Event()

    def spin():
        while not stop.is_set():
            ex.spin_once(timeout_sec=0.05)

    spinner = threading.Thread(target=spin, daemon=True)
    spinner.start()

    def image(i):
        msg = Image(height=28, width=28, encoding="mono8", step=28, data=images[i].tobytes())
        msg.header.frame_id = "mnist_camera"
        msg.header.stamp = node.get_clock().now().to_msg()  # as a camera driver stamps its frames
        return msg

    code = 0
    try:
        while not (client.service_is_ready() and pub.get_subscription_count() > 0):
            if node_proc.poll() is not None:
                print(f"demo: the node exited with {node_proc.returncode}", file=sys.stderr)
                return 1
            if time.monotonic() > deadline_at:
                print("demo: the node did not come up in time", file=sys.stderr)
                return 1
            time.sleep(0.05)
        print(f"\nstreaming {args.frames} MNIST test digits at {args.fps:g} fps; each line is one frame: "
              "confidence per timestep, then the final answer\n", flush=True)
        hits_first = hits_final = 0
        shown = 0
        for n in range(args.frames):
            i = args.first + n
            t_next = time.monotonic() + 1.0 / args.fps
            msg = image(i)
            key = (msg.header.stamp.sec, msg.header.stamp.nanosec)  # the estimates of this frame carry its stamp
            got = None
            t_send = time.monotonic()
            while got is None and time.monotonic() < min(t_send + 2.0, deadline_at):
                pub.publish(msg)  # best effort (sensor QoS): re-send if the first copy was lost
                t_wait = time.monotonic()
                while time.monotonic() - t_wait < 0.5:
                    with lock:
                        rows = frames.get(key, [])
                        fin = [r for r in rows if r[3]]
                    if fin:
                        seq = fin[-1][5]
                        got = [r for r in rows if r[5] == seq]
                        break
                    time.sleep(0.002)
            if got is None:
                print(f"  image {i}: no answer", flush=True)
                code = 1
                break
            label = str(int(labels[i]))
            got.sort()
            conf = [r[2] for r in got]
            first, last = got[0], got[-1]
            hits_first += first[1] == label
            hits_final += last[1] == label
            if shown == 0:
                print("  first frame, timestep by timestep:  t  class  confidence")
                for t, lab, c, fin, el, _ in got:
                    if not (t <= 6 or t % 5 == 0 or fin):
                        continue
                    print(f"                                     {t:3d}  {lab:>5}  {c:6.3f} {'█' * int(c * 30)}"
                          f"{'  final' if fin else ''}  ({el / 1e6:.2f} ms)")
                print()
            shown += 1
            mark = "✓" if last[1] == label else "✗"
            print(f"  digit {label}: {spark(conf[:60])}  t=1 '{first[1]}' {first[2]:.2f} -> t={last[0]} '{last[1]}' "
                  f"{last[2]:.2f} {mark}  first estimate {first[4] / 1e6:.2f} ms, final {last[4] / 1e6:.2f} ms",
                  flush=True)
            time.sleep(max(0.0, t_next - time.monotonic()))
        if shown:
            print(f"\naccuracy over {shown} frames: {hits_first / shown:.0%} at the first timestep, "
                  f"{hits_final / shown:.0%} at the last\n")

        # Warm-up: the first calls on a new connection pay its set-up (a few ms): not what we want to show.
        for _ in range(3):
            warm = ClassifyWithDeadline.Request(use_latest_frame=True, max_timesteps=1)
            fut = client.call_async(warm)
            while not fut.done() and time.monotonic() < deadline_at:
                time.sleep(0.0005)
        # Deadline-driven queries on the latest frame and on new images, each with an absolute deadline: the
        # answer must be in our hands by then, so the node stops computing early enough for it to arrive.
        for deadline_ms, min_conf, what in [(5.0, 0.0, "latest frame"), (20.0, 0.0, "new image"),
                                            (50.0, 0.9, "new image")]:
            idx = args.first + args.frames
            req = ClassifyWithDeadline.Request(use_latest_frame=what == "latest frame")
            if what == "new image":
                req.image = image(idx)
            req.max_timesteps = 1_000_000 if min_conf == 0 else 0
            req.min_confidence = min_conf
            t0 = time.monotonic()
            req.deadline = (node.get_clock().now() + Duration(nanoseconds=int(deadline_ms * 1e6))).to_msg()
            fut = client.call_async(req)
            while not fut.done() and time.monotonic() < deadline_at:
                time.sleep(0.0002)
            if not fut.done():
                print("demo: the deadline query got no answer", file=sys.stderr)
                code = 1
                break
            rtt = (time.monotonic() - t0) * 1e3
            r = fut.result()
            truth = labels[idx] if what == "new image" else labels[args.first + args.frames - 1]
            cond = f"deadline in {deadline_ms:g} ms" + (f", stop at confidence {min_conf:g}" if min_conf else "")
            print(f"deadline query ({what}, {cond}): class '{r.result.top_label}' (true {truth}) confidence "
                  f"{r.result.confidence:.2f} after {r.result.timestep} timesteps, {r.result.synaptic_events} "
                  f"synaptic events; stop reason '{describe(r.result, r.error)}'; in our hands after {rtt:.2f} ms "
                  f"({'on time' if rtt <= deadline_ms else 'late'}; the node predicted "
                  f"{'on time' if r.deadline_met else 'late'})", flush=True)
    except KeyboardInterrupt:
        code = 130
    finally:
        stop.set()
        spinner.join(timeout=1)
        if node_proc.poll() is None:
            node_proc.send_signal(signal.SIGTERM)
            try:
                node_proc.wait(10)
            except subprocess.TimeoutExpired:
                node_proc.kill()
                node_proc.wait()
        node.destroy_node()
        rclpy.try_shutdown()
    print(f"node stopped (exit code {node_proc.returncode})")
    return code


if __name__ == "__main__":
    sys.exit(main())
