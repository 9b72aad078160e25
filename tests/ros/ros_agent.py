"""The client side of the two-process ROS tests: a process that starts the node (from the launch file)
and talks to it over DDS, driven by the test through JSON lines on stdin/stdout.

Run by :mod:`sandbox` inside ``unshare -n`` (loopback only, private /dev/shm) when possible. Every
command returns ``{"ok": true, ...}`` or ``{"ok": false, "error": ...}``; the assertions live in the tests.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import traceback
from pathlib import Path

# The fence is set by the sandbox already; repeat it so this file is safe to run by hand.
os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
os.environ.setdefault("ROS_DOMAIN_ID", "77")

import numpy as np  # noqa: E402
import rclpy  # noqa: E402
from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from rcl_interfaces.msg import Parameter as ParameterMsg  # noqa: E402
from rcl_interfaces.msg import ParameterType, ParameterValue  # noqa: E402
from rcl_interfaces.srv import GetParameters, SetParameters, SetParametersAtomically  # noqa: E402
from lifecycle_msgs.msg import Transition  # noqa: E402
from lifecycle_msgs.srv import ChangeState, GetState  # noqa: E402
from rclpy.action import ActionClient  # noqa: E402
from rclpy.duration import Duration  # noqa: E402
from rclpy.executors import MultiThreadedExecutor, SingleThreadedExecutor  # noqa: E402
from rclpy.node import Node  # noqa: E402
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402
from spike_perception.launch_xml import launch_commands  # noqa: E402
from spike_perception.stop_reasons import describe  # noqa: E402
from spike_perception_interfaces.action import ClassifyAnytime  # noqa: E402
from spike_perception_interfaces.msg import AnytimeClassification, ModelInfo  # noqa: E402
from spike_perception_interfaces.srv import ClassifyWithDeadline  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
LAUNCH = Path(os.environ.get("AGENT_LAUNCH", ROOT / "launch" / "spike_perception.launch.xml"))


def est_dict(m: AnytimeClassification) -> dict:
    return dict(frame_seq=m.frame_seq, timestep=m.timestep, total=m.total_timesteps, top=m.top_class,
                label=m.top_label, conf=float(m.confidence), events=m.synaptic_events, final=bool(m.final),
                scores=[float(s) for s in m.scores], stamp=m.header.stamp.sec * 10**9 + m.header.stamp.nanosec,
                frame_id=m.header.frame_id, elapsed=m.elapsed.sec + m.elapsed.nanosec * 1e-9,
                model_id=m.model_id, stop=describe(m))


def image_msg(pixels: np.ndarray | None, encoding="mono8", stamp_ns=0, frame_id="cam", **override) -> Image:
    msg = Image()
    if pixels is not None:
        h, w = pixels.shape[:2]
        raw = np.ascontiguousarray(pixels).view(np.uint8).reshape(h, -1)
        msg.height, msg.width, msg.encoding, msg.step = h, w, encoding, raw.shape[1]
        msg.data = raw.tobytes()
    msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(int(stamp_ns), 10**9)
    msg.header.frame_id = frame_id
    for k, v in override.items():
        setattr(msg, k, v)
    return msg


class Agent:
    def __init__(self, ns: str = ""):
        rclpy.init()
        self.node = Node("test_agent")
        self.ns = ns
        self.node_proc: subprocess.Popen | None = None
        self.node_log = None
        self.received: list[dict] = []
        self.diags: list[dict] = []
        self.lock = threading.Lock()
        self.executor = MultiThreadedExecutor(num_threads=3)
        self.executor.add_node(self.node)
        self._spin = threading.Thread(target=self._spin_loop, daemon=True)
        self._running = True
        self.images = None
        self._setup_endpoints()
        self._spin.start()

    def _spin_loop(self):
        while self._running and rclpy.ok():
            self.executor.spin_once(timeout_sec=0.05)

    def _name(self, rel: str) -> str:
        return f"/{self.ns}/{rel}" if self.ns else f"/{rel}"

    def _setup_endpoints(self):
        n = self.node
        self.pub = n.create_publisher(Image, self._name("camera/image"), qos_profile_sensor_data)
        n.create_subscription(AnytimeClassification, self._name("classification"), self._on_cls,
                              QoSProfile(depth=1000, reliability=ReliabilityPolicy.RELIABLE))
        n.create_subscription(DiagnosticArray, "/diagnostics", self._on_diag, 10)
        self.srv = n.create_client(ClassifyWithDeadline, self._name("classify_with_deadline"))
        self.act = ActionClient(n, ClassifyAnytime, self._name("classify_anytime"),
                                feedback_sub_qos_profile=QoSProfile(depth=1000))
        # Feedback straight from the action's feedback topic: rclpy's ActionClient drops feedback that
        # arrives after the result (the result is a service reply and can overtake the last messages).
        self.raw_feedback: dict[bytes, list] = {}
        n.create_subscription(ClassifyAnytime.Impl.FeedbackMessage, self._name("classify_anytime/_action/feedback"),
                              self._on_raw_fb, QoSProfile(depth=1000))
        self.params = n.create_client(SetParameters, self._name("anytime_classifier/set_parameters"))
        self.params_atomic = n.create_client(SetParametersAtomically,
                                             self._name("anytime_classifier/set_parameters_atomically"))
        self.get_params = n.create_client(GetParameters, self._name("anytime_classifier/get_parameters"))
        self.change_state = n.create_client(ChangeState, self._name("anytime_classifier/change_state"))
        self.get_state = n.create_client(GetState, self._name("anytime_classifier/get_state"))

    def _on_cls(self, m):
        with self.lock:
            self.received.append(est_dict(m))

    def _on_raw_fb(self, m):
        with self.lock:
            self.raw_feedback.setdefault(bytes(m.goal_id.uuid), []).append(est_dict(m.feedback.estimate))

    def _on_diag(self, m):
        with self.lock:
            for st in m.status:
                if "anytime classifier" in st.name:
                    self.diags.append({kv.key: kv.value for kv in st.values} | {"_level": int.from_bytes(st.level, "little") if isinstance(st.level, bytes) else int(st.level)})

    # ------------------------------------------------------------------ commands
    def cmd_start_node(self, params_file=None, model=None, timeout=30.0, extra_env=None, lifecycle=False):
        args = {"image_topic": "camera/image"}
        if self.ns:
            args["namespace"] = self.ns
        if params_file:
            args["params_file"] = params_file
        if model:
            args["model"] = model
        (cmd,) = launch_commands(LAUNCH, args)
        if lifecycle:  # the managed node: same package, parameters and remappings, another executable
            cmd[0] = cmd[0] + "_lifecycle"
        env = dict(os.environ, **(extra_env or {}))
        self.node_log = open(os.environ.get("AGENT_NODE_LOG", "/tmp/anytime_node.log"), "wb")
        t0 = time.monotonic()
        self.node_proc = subprocess.Popen(cmd, env=env, stdout=self.node_log, stderr=subprocess.STDOUT)
        while time.monotonic() - t0 < timeout:
            if self.node_proc.poll() is not None:
                return {"ok": False, "error": f"node exited with {self.node_proc.returncode}", "log": self.log_tail()}
            if lifecycle and self.change_state.service_is_ready() and self.params.service_is_ready():
                break
            if self.srv.service_is_ready() and self.params.service_is_ready() and self.act.server_is_ready():
                break
            time.sleep(0.05)
        else:
            return {"ok": False, "error": "node services did not appear", "log": self.log_tail()}
        # Wait until the node's image subscription has matched our publisher (an unconfigured managed node has none).
        while not lifecycle and self.pub.get_subscription_count() < 1 and time.monotonic() - t0 < timeout:
            time.sleep(0.02)
        return {"ok": True, "pid": self.node_proc.pid, "startup_s": time.monotonic() - t0, "cmd": cmd}

    def log_tail(self, n=4000):
        try:
            return Path(self.node_log.name).read_bytes()[-n:].decode(errors="replace")
        except Exception:
            return ""

    def cmd_log(self):
        return {"ok": True, "log": self.log_tail(20000)}

    def _mnist(self):
        if self.images is None:
            from anytime_snn.data import load_mnist

            self.images, self.labels = load_mnist("test")
        return self.images, self.labels

    def cmd_stream(self, indices, period=0.5, wait_final=True, timeout=10.0, encoding="mono8", settle=0.5):
        """Publish MNIST test images (stamp = index + 1 ns), re-sending each until its first estimate arrives;
        return when each has a first estimate (``wait_final=False``) or its newest frame has ended."""
        images, labels = self._mnist()
        with self.lock:
            first = len(self.received)
        for idx in indices:
            px = images[idx]
            if encoding == "rgb8":
                px = np.repeat(px[..., None], 3, axis=2)
            elif encoding == "bgra8":
                px = np.concatenate([np.repeat(px[..., None], 3, axis=2), np.full((28, 28, 1), 255, np.uint8)], 2)
            elif encoding == "mono16":
                px = px.astype(np.uint16) * 257
            elif encoding == "32FC1":
                px = px.astype(np.float32) / 255
            msg = image_msg(px, encoding, stamp_ns=idx + 1)
            t0 = time.monotonic()
            done = False
            with self.lock:
                start = len(self.received)  # only answers to this publication count
            # Re-send (best-effort QoS) only until the first estimate shows the image arrived. Copies sent
            # before that may still become frames of their own (preempting or queued behind the first), so
            # after a re-send "final" means: the newest frame of this image is final and no newer one
            # started within `settle` seconds.
            seen, sent, final_at = False, 0, None
            while not done and time.monotonic() - t0 < timeout:
                if not seen:
                    self.pub.publish(msg)
                    sent += 1
                t1 = time.monotonic()
                while time.monotonic() - t1 < period:
                    with self.lock:
                        mine = [r for r in self.received[start:] if r["stamp"] == idx + 1]
                    seen = seen or bool(mine)
                    if mine and not wait_final:
                        done = True
                        break
                    newest = max((r["frame_seq"] for r in mine), default=None)
                    if any(r["final"] and r["frame_seq"] == newest for r in mine):
                        if final_at is None or final_at[0] != newest:
                            final_at = (newest, time.monotonic())  # when we saw the newest frame end
                        if sent == 1 or time.monotonic() - final_at[1] >= settle:
                            done = True
                            break
                    time.sleep(0.002)
            if not done:
                return {"ok": False, "error": f"no classification for image {idx}", "log": self.log_tail()}
        with self.lock:
            got = [r for r in self.received[first:] if r["stamp"] in {i + 1 for i in indices}]
        return {"ok": True, "estimates": got, "labels": [int(labels[i]) for i in indices]}

    def cmd_publish_raw(self, count=1, **fields):
        """Publish a (possibly malformed) image built from raw fields."""
        data = bytes.fromhex(fields.pop("data_hex", ""))
        msg = Image(height=fields.get("height", 0), width=fields.get("width", 0), encoding=fields.get("encoding", ""),
                    is_bigendian=fields.get("is_bigendian", 0), step=fields.get("step", 0), data=data)
        for _ in range(count):
            self.pub.publish(msg)
            time.sleep(0.01)
        return {"ok": True}

    def cmd_publish_images(self, indices, gap=0.02):
        """Publish MNIST test images once each (stamp = index + 1 ns), ``gap`` seconds apart."""
        images, _ = self._mnist()
        for idx in indices:
            self.pub.publish(image_msg(images[idx], stamp_ns=idx + 1))
            time.sleep(gap)
        return {"ok": True}

    def cmd_received(self, stamps):
        with self.lock:
            return {"ok": True, "estimates": [r for r in self.received if r["stamp"] in set(stamps)]}

    def cmd_clear(self):
        with self.lock:
            self.received.clear()
            self.diags.clear()
        return {"ok": True}

    def _request_fields(self, req, index=None, budget=0.0, max_timesteps=0, min_confidence=0.0, max_events=0,
                        image=None, latest=False, feedback_every=None):
        if index is not None:
            images, _ = self._mnist()
            req.image = image_msg(images[index], stamp_ns=index + 1)
        elif image is not None:
            req.image = Image(height=image["height"], width=image["width"], encoding=image["encoding"],
                              step=image["step"], data=bytes.fromhex(image["data_hex"]))
        req.use_latest_frame = bool(latest)
        if feedback_every is not None:
            req.feedback_every = feedback_every
        ns = int(round(budget * 1e9))
        req.budget.sec, req.budget.nanosec = divmod(ns, 10**9)
        req.max_timesteps = max_timesteps
        req.min_confidence = float(min_confidence)
        req.max_synaptic_events = max_events
        return req

    def cmd_service(self, timeout=10.0, **kw):
        req = self._request_fields(ClassifyWithDeadline.Request(), **kw)
        t0 = time.monotonic()
        fut = self.srv.call_async(req)
        ev = threading.Event()
        fut.add_done_callback(lambda _f: ev.set())
        if not ev.wait(timeout):
            return {"ok": False, "error": "service timed out"}
        r = fut.result()
        return {"ok": True, "result": est_dict(r.result), "deadline_met": r.deadline_met,
                "stop_reason": describe(r.result, r.error), "rtt": time.monotonic() - t0}

    def cmd_service_many(self, n, concurrent=1, **kw):
        """``n`` service calls, ``concurrent`` in flight at a time; returns each answer's summary."""
        out = []
        for start in range(0, n, concurrent):
            futs = []
            for _ in range(min(concurrent, n - start)):
                req = self._request_fields(ClassifyWithDeadline.Request(), **kw)
                futs.append((time.monotonic(), self.srv.call_async(req)))
            for t0, fut in futs:
                ev = threading.Event()
                fut.add_done_callback(lambda _f, ev=ev: ev.set())
                if not ev.wait(10.0):
                    return {"ok": False, "error": "service timed out"}
                r = fut.result()
                out.append({"rtt": time.monotonic() - t0, "deadline_met": r.deadline_met,
                            "stop_reason": describe(r.result, r.error), "timestep": r.result.timestep, "top": r.result.top_class})
        return {"ok": True, "answers": out}

    def _plain_client(self):
        """A plain rclpy client, as a planner would have: its own node and SingleThreadedExecutor, spun by the
        calling thread until the future completes (no hand-off to another thread before the answer counts)."""
        if getattr(self, "_plain", None) is None:
            node = Node("test_agent_planner")
            ex = SingleThreadedExecutor()
            ex.add_node(node)
            cli = node.create_client(ClassifyWithDeadline, self._name("classify_with_deadline"))
            cli.wait_for_service(timeout_sec=10)
            self._plain = (node, ex, cli)
        return self._plain

    def cmd_deadline_queries(self, n, budgets, seed=0, past=0, gap=0.002, timeout=5.0):
        """``n`` service calls, one at a time from a plain client, each with an absolute deadline: the client's
        ROS time at the call plus a budget drawn from ``budgets`` (seconds); then ``past`` calls whose deadline
        passed 1 ms before the call. Per answer: the client's view (arrived by the deadline?) and the node's."""
        images, labels = self._mnist()
        rng = np.random.default_rng(seed)
        node, ex, cli = self._plain_client()
        clock = node.get_clock()
        out = []
        for q in range(n + past):
            budget = float(rng.choice(budgets)) if q < n else -0.001
            i = q % len(images)
            req = self._request_fields(ClassifyWithDeadline.Request(), index=i, max_timesteps=1_000_000)
            t_call = time.monotonic()
            req.deadline = (clock.now() + Duration(nanoseconds=int(budget * 1e9))).to_msg()
            fut = cli.call_async(req)
            ex.spin_until_future_complete(fut, timeout_sec=timeout)
            t_done = time.monotonic()
            if not fut.done():
                return {"ok": False, "error": f"query {q} unanswered"}
            r = fut.result()
            out.append({"budget": budget, "late": t_done - (t_call + budget), "deadline_met": r.deadline_met,
                        "stop_reason": describe(r.result, r.error), "timestep": r.result.timestep,
                        "elapsed": r.result.elapsed.sec + r.result.elapsed.nanosec * 1e-9,
                        "computed_late": t_call + r.result.elapsed.sec + r.result.elapsed.nanosec * 1e-9
                        - (t_call + budget), "correct": r.result.top_class == int(labels[i])})
            time.sleep(gap)
        return {"ok": True, "answers": out}

    def cmd_model_info(self, timeout=5.0):
        """Subscribe to the latched model_info topic now (after the node published it) and return it."""
        got = []
        qos = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)
        sub = self.node.create_subscription(ModelInfo, self._name("model_info"), got.append, qos)
        t0 = time.monotonic()
        while not got and time.monotonic() - t0 < timeout:
            time.sleep(0.01)
        self.node.destroy_subscription(sub)
        if not got:
            return {"ok": False, "error": "no model_info"}
        m = got[-1]
        return {"ok": True, "model_id": m.model_id, "location": m.location, "labels": list(m.labels),
                "input": [m.input_height, m.input_width, m.input_channels], "timesteps": m.timesteps}

    def cmd_publisher_qos(self, topic, timeout=5.0):
        """QoS of the publishers of ``topic`` as the graph reports them."""
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            infos = self.node.get_publishers_info_by_topic(topic)
            if infos:
                return {"ok": True, "qos": [{"durability": i.qos_profile.durability.name,
                                             "reliability": i.qos_profile.reliability.name} for i in infos]}
            time.sleep(0.05)
        return {"ok": False, "error": f"no publisher on {topic}"}

    def cmd_run_example(self, args, indices, timeout=60.0):
        """Run the installed planner_example (a separate process, like a planner) with ``args`` while this
        agent publishes the MNIST test images ``indices`` in a loop as the camera; its JSON output."""
        exe = ROOT / "ros2_ws" / "install" / "lib" / "spike_perception" / "planner_example"
        images, _ = self._mnist()
        stop = threading.Event()

        def camera():
            while not stop.is_set():
                for idx in indices:
                    self.pub.publish(image_msg(images[idx], stamp_ns=idx + 1))
                    if stop.wait(0.1):
                        return

        cam = threading.Thread(target=camera, daemon=True)
        cam.start()
        try:
            ns = ["--ros-args", "-r", f"__ns:=/{self.ns}"] if self.ns else []
            p = subprocess.run([sys.executable, str(exe), *args, *ns], capture_output=True, text=True,
                               timeout=timeout, env=dict(os.environ))
        finally:
            stop.set()
            cam.join(2)
        if p.returncode:
            return {"ok": False, "error": f"planner_example exited {p.returncode}", "stderr": p.stderr[-3000:]}
        return {"ok": True, "out": json.loads(p.stdout.strip().splitlines()[-1])}

    def _call(self, client, request, timeout):
        fut = client.call_async(request)
        ev = threading.Event()
        fut.add_done_callback(lambda _f: ev.set())
        return fut.result() if ev.wait(timeout) else None

    def cmd_lifecycle(self, transition, timeout=30.0):
        """Drive the managed node through ``transition`` (configure, activate, deactivate, cleanup, shutdown);
        its success and the state it is in afterwards."""
        ids = {"configure": Transition.TRANSITION_CONFIGURE, "activate": Transition.TRANSITION_ACTIVATE,
               "deactivate": Transition.TRANSITION_DEACTIVATE, "cleanup": Transition.TRANSITION_CLEANUP,
               "shutdown": Transition.TRANSITION_UNCONFIGURED_SHUTDOWN}
        res = self._call(self.change_state, ChangeState.Request(transition=Transition(id=ids[transition])), timeout)
        if res is None:
            return {"ok": False, "error": f"change_state {transition} timed out"}
        state = self._call(self.get_state, GetState.Request(), timeout)
        return {"ok": True, "success": res.success, "state": state.current_state.label if state else None,
                "service_ready": self.srv.service_is_ready(), "action_ready": self.act.server_is_ready()}

    def cmd_lifecycle_ready(self, expect=True, timeout=3.0):
        """Whether the classify service is discoverable, waiting up to ``timeout`` for it to become ``expect``."""
        t0 = time.monotonic()
        while self.srv.service_is_ready() != expect and time.monotonic() - t0 < timeout:
            time.sleep(0.05)
        return {"ok": True, "service_ready": self.srv.service_is_ready()}

    def cmd_goals_start(self, n, **kw):
        """Send ``n`` action goals and return once all are accepted (they keep running in the node)."""
        if not self.act.wait_for_server(timeout_sec=5.0):
            return {"ok": False, "error": "action server not available"}
        futs = [self.act.send_goal_async(self._request_fields(ClassifyAnytime.Goal(), **kw)) for _ in range(n)]
        t0 = time.monotonic()
        while not all(f.done() for f in futs) and time.monotonic() - t0 < 10:
            time.sleep(0.005)
        self._goals = [f.result() for f in futs if f.done()]
        if len(self._goals) < n or not all(h.accepted for h in self._goals):
            return {"ok": False, "error": "goals not accepted"}
        ids = [bytes(h.goal_id.uuid) for h in self._goals]
        while time.monotonic() - t0 < 10:  # running: each has sent feedback
            with self.lock:
                if all(self.raw_feedback.get(g) for g in ids):
                    return {"ok": True}
            time.sleep(0.005)
        return {"ok": False, "error": "goals accepted but not running"}

    def cmd_goals_cancel(self, timeout=10.0):
        """Cancel the goals of ``goals_start``; their final statuses and stop reasons."""
        t0 = time.monotonic()
        for h in self._goals:
            h.cancel_goal_async()
        rfuts = [h.get_result_async() for h in self._goals]
        while not all(f.done() for f in rfuts) and time.monotonic() - t0 < timeout:
            time.sleep(0.005)
        if not all(f.done() for f in rfuts):
            return {"ok": False, "error": "goal results timed out"}
        return {"ok": True, "seconds": time.monotonic() - t0, "status": [f.result().status for f in rfuts],
                "stop_reason": [describe(f.result().result.result, f.result().result.error) for f in rfuts]}

    def cmd_timed(self, command, **kw):
        """Run another command and report how long it took."""
        t0 = time.monotonic()
        reply = getattr(self, f"cmd_{command}")(**kw)
        return {**reply, "seconds": time.monotonic() - t0}

    def cmd_action(self, cancel_after_feedback=None, timeout=20.0, **kw):
        goal = self._request_fields(ClassifyAnytime.Goal(), **kw)
        feedback = []
        fb_event = threading.Event()

        def on_fb(m):
            feedback.append(est_dict(m.feedback.estimate))
            if cancel_after_feedback is not None and len(feedback) >= cancel_after_feedback:
                fb_event.set()

        if not self.act.wait_for_server(timeout_sec=5.0):
            return {"ok": False, "error": "action server not available"}
        gfut = self.act.send_goal_async(goal, feedback_callback=on_fb)
        t0 = time.monotonic()
        while not gfut.done() and time.monotonic() - t0 < timeout:
            time.sleep(0.001)
        handle = gfut.result()
        if not handle.accepted:
            return {"ok": False, "error": "goal rejected"}
        if cancel_after_feedback is not None:
            if not fb_event.wait(timeout):
                return {"ok": False, "error": "no feedback before cancel"}
            cfut = handle.cancel_goal_async()
            while not cfut.done() and time.monotonic() - t0 < timeout:
                time.sleep(0.001)
        rfut = handle.get_result_async()
        while not rfut.done() and time.monotonic() - t0 < timeout:
            time.sleep(0.001)
        if not rfut.done():
            return {"ok": False, "error": "action result timed out"}
        res = rfut.result()
        r = res.result
        gid = bytes(handle.goal_id.uuid)
        t1 = time.monotonic()
        while time.monotonic() - t1 < 2.0:
            with self.lock:
                raw = list(self.raw_feedback.get(gid, []))
            if raw and raw[-1]["timestep"] >= r.result.timestep:
                break
            time.sleep(0.005)
        feedback = raw
        return {"ok": True, "status": res.status, "result": est_dict(r.result), "deadline_met": r.deadline_met,
                "stop_reason": describe(r.result, r.error), "feedback": feedback}

    def cmd_action_async(self, **kw):
        """Send a goal and return at once (the goal keeps running in the node)."""
        goal = self._request_fields(ClassifyAnytime.Goal(), **kw)
        if not self.act.wait_for_server(timeout_sec=5.0):
            return {"ok": False, "error": "action server not available"}
        self._pending_goal = self.act.send_goal_async(goal)
        t0 = time.monotonic()
        while not self._pending_goal.done() and time.monotonic() - t0 < 5:
            time.sleep(0.001)
        return {"ok": self._pending_goal.done() and self._pending_goal.result().accepted}

    def cmd_set_params(self, params: dict, timeout=10.0, atomic=False):
        req = (SetParametersAtomically if atomic else SetParameters).Request()
        for name, value in params.items():
            pv = ParameterValue()
            if isinstance(value, bool):
                pv.type, pv.bool_value = ParameterType.PARAMETER_BOOL, value
            elif isinstance(value, int):
                pv.type, pv.integer_value = ParameterType.PARAMETER_INTEGER, value
            elif isinstance(value, float):
                pv.type, pv.double_value = ParameterType.PARAMETER_DOUBLE, value
            else:
                pv.type, pv.string_value = ParameterType.PARAMETER_STRING, str(value)
            req.parameters.append(ParameterMsg(name=name, value=pv))
        fut = (self.params_atomic if atomic else self.params).call_async(req)
        ev = threading.Event()
        fut.add_done_callback(lambda _f: ev.set())
        if not ev.wait(timeout):
            return {"ok": False, "error": "set_parameters timed out"}
        res = [fut.result().result] if atomic else fut.result().results
        return {"ok": True, "results": [{"successful": r.successful, "reason": r.reason} for r in res]}

    def cmd_get_params(self, names: list, timeout=10.0):
        fut = self.get_params.call_async(GetParameters.Request(names=names))
        ev = threading.Event()
        fut.add_done_callback(lambda _f: ev.set())
        if not ev.wait(timeout):
            return {"ok": False, "error": "get_parameters timed out"}
        vals = {}
        for name, v in zip(names, fut.result().values):
            vals[name] = {ParameterType.PARAMETER_BOOL: v.bool_value, ParameterType.PARAMETER_INTEGER: v.integer_value,
                          ParameterType.PARAMETER_DOUBLE: v.double_value,
                          ParameterType.PARAMETER_STRING: v.string_value}.get(v.type)
        return {"ok": True, "values": vals}

    def cmd_killed_client(self, kind="action", steps=1_000_000, budget=0.0, timeout=30.0):
        """Start a client process (ros_victim.py) that sends a goal / request, SIGKILL it while the node works."""
        env = dict(os.environ, AGENT_NAMESPACE=self.ns)
        victim = subprocess.Popen([sys.executable, str(Path(__file__).with_name("ros_victim.py")), kind, str(steps),
                                   str(budget)], env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        box: list = []
        reader = threading.Thread(target=lambda: box.append(victim.stdout.readline()), daemon=True)
        reader.start()
        reader.join(timeout)
        victim.kill()
        victim.wait()
        sent = bool(box and box[0] and json.loads(box[0]).get("sent"))
        return {"ok": sent, "killed_with": victim.returncode, **({} if sent else {"error": "victim never got going"})}

    def cmd_diagnostics(self, timeout=3.0):
        t0 = time.monotonic()
        with self.lock:
            n = len(self.diags)
        while time.monotonic() - t0 < timeout:
            with self.lock:
                if len(self.diags) > n:
                    return {"ok": True, "values": self.diags[-1]}
            time.sleep(0.02)
        return {"ok": False, "error": "no diagnostics"}

    def cmd_alive(self):
        return {"ok": True, "running": self.node_proc is not None and self.node_proc.poll() is None}

    def cmd_shm(self):
        try:
            return {"ok": True, "files": sorted(os.listdir("/dev/shm"))}
        except OSError as e:
            return {"ok": False, "error": str(e)}

    def cmd_sigterm(self, timeout=10.0):
        p = self.node_proc
        t0 = time.monotonic()
        p.send_signal(signal.SIGTERM)
        try:
            code = p.wait(timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
            return {"ok": False, "error": "node ignored SIGTERM", "log": self.log_tail()}
        return {"ok": True, "returncode": code, "seconds": time.monotonic() - t0, "log": self.log_tail()}

    def shutdown(self):
        if self.node_proc is not None and self.node_proc.poll() is None:
            self.node_proc.terminate()
            try:
                self.node_proc.wait(5)
            except subprocess.TimeoutExpired:
                self.node_proc.kill()
        self._running = False
        self._spin.join(timeout=2)
        self.node.destroy_node()
        rclpy.try_shutdown()


def main():
    agent = Agent(os.environ.get("AGENT_NAMESPACE", ""))
    out = sys.stdout
    sys.stdout = sys.stderr  # keep the protocol channel clean
    out.write(json.dumps({"ok": True, "ready": True}) + "\n")
    out.flush()
    try:
        for line in sys.stdin:
            if not line.strip():
                continue
            req = json.loads(line)
            name = req.pop("cmd")
            if name == "quit":
                break
            try:
                reply = getattr(agent, f"cmd_{name}")(**req)
            except Exception as e:  # report, keep serving
                reply = {"ok": False, "error": f"{type(e).__name__}: {e}", "trace": traceback.format_exc()}
            out.write(json.dumps(reply) + "\n")
            out.flush()
    finally:
        agent.shutdown()
        out.write(json.dumps({"ok": True, "bye": True}) + "\n")
        out.flush()


if __name__ == "__main__":
    main()
