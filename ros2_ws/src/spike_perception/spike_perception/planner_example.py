"""How a planner uses the anytime classifier: a small, complete client to copy from.

    ros2 run spike_perception planner_example [--deadline-ms 20] [--feedback-every 10] [--json]
    (here: ros2_ws/install/lib/spike_perception/planner_example, after `source scripts/env.sh`)

It does the three things a planner typically needs, against a running ``anytime_classifier`` whose image
topic carries a camera stream:

1. reads the model's labels and identity once, from the latched ``model_info`` topic;
2. keeps only the **final** estimate of each frame from ``classification`` (the stream publishes one per
   timestep; a planner that does not act on early estimates needs only the last);
3. asks for the best answer on the latest frame **by an absolute deadline** (``classify_with_deadline``
   with ``use_latest_frame``): the node stops computing early enough for the answer to arrive in time;
4. runs an action goal on the same frame with **thinned feedback** (``feedback_every``), e.g. to show
   progress, and reads its result.

With ``--json`` it prints one JSON object (used by the tests); otherwise a readable summary.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import rclpy
from rclpy.action import ActionClient
from rclpy.duration import Duration
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from spike_perception_interfaces.action import ClassifyAnytime
from spike_perception_interfaces.msg import AnytimeClassification, ModelInfo
from spike_perception_interfaces.srv import ClassifyWithDeadline

STOP_NAMES = {getattr(AnytimeClassification, n): n[5:].lower() for n in dir(AnytimeClassification)
              if n.startswith("STOP_")}


class Planner(Node):
    """The planner side: model info, the final estimate of each frame, deadline queries, a thinned goal."""

    def __init__(self):
        super().__init__("planner_example")
        self.model_info: ModelInfo | None = None
        self.last_final: AnytimeClassification | None = None
        self.finals = 0
        latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                             durability=DurabilityPolicy.TRANSIENT_LOCAL)
        self.create_subscription(ModelInfo, "model_info", self._on_info, latched)
        self.create_subscription(AnytimeClassification, "classification", self._on_estimate,
                                 QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE))
        self.query = self.create_client(ClassifyWithDeadline, "classify_with_deadline")
        self.goal = ActionClient(self, ClassifyAnytime, "classify_anytime")

    def _on_info(self, msg: ModelInfo) -> None:
        self.model_info = msg

    def _on_estimate(self, msg: AnytimeClassification) -> None:
        if msg.final:  # early estimates are for consumers that act on them; this planner waits for the last
            self.last_final = msg
            self.finals += 1

    def classify_by(self, seconds: float) -> tuple[ClassifyWithDeadline.Response, float]:
        """The best answer on the latest frame, in our hands within ``seconds``; (response, seconds taken)."""
        req = ClassifyWithDeadline.Request(use_latest_frame=True, max_timesteps=1_000_000)
        req.deadline = (self.get_clock().now() + Duration(nanoseconds=int(seconds * 1e9))).to_msg()
        t0 = time.monotonic()
        fut = self.query.call_async(req)
        self.executor.spin_until_future_complete(fut, timeout_sec=seconds + 5.0)
        return fut.result(), time.monotonic() - t0

    def classify_with_progress(self, timesteps: int, feedback_every: int):
        """An action goal on the latest frame with feedback every ``feedback_every`` steps; (feedback, result)."""
        feedback = []
        goal = ClassifyAnytime.Goal(use_latest_frame=True, max_timesteps=timesteps, feedback_every=feedback_every)
        sent = self.goal.send_goal_async(goal, feedback_callback=lambda m: feedback.append(m.feedback.estimate))
        self.executor.spin_until_future_complete(sent, timeout_sec=10.0)
        handle = sent.result()
        if handle is None or not handle.accepted:
            return feedback, None
        done = handle.get_result_async()
        self.executor.spin_until_future_complete(done, timeout_sec=30.0)
        return feedback, done.result().result if done.done() else None


def _describe(est: AnytimeClassification) -> dict:
    return {"timestep": est.timestep, "label": est.top_label, "class": est.top_class,
            "confidence": round(float(est.confidence), 4), "stop": STOP_NAMES.get(est.stop_reason, "?"),
            "model_id": est.model_id, "stamp_ns": est.header.stamp.sec * 10**9 + est.header.stamp.nanosec}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--deadline-ms", type=float, default=20.0, help="deadline of the service query")
    ap.add_argument("--feedback-every", type=int, default=10, help="feedback thinning of the action goal")
    ap.add_argument("--timesteps", type=int, default=40, help="timesteps of the action goal")
    ap.add_argument("--wait", type=float, default=20.0, help="seconds to wait for the node and a first frame")
    ap.add_argument("--json", action="store_true")
    args, ros_args = ap.parse_known_args(argv)
    rclpy.init(args=[sys.argv[0], *ros_args])
    node = Planner()
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    out: dict = {}
    try:
        t_end = time.monotonic() + args.wait
        while (node.model_info is None or node.last_final is None) and time.monotonic() < t_end:
            executor.spin_once(timeout_sec=0.05)
        if node.model_info is None or node.last_final is None or not node.query.wait_for_service(timeout_sec=5):
            print("planner_example: no anytime_classifier with a camera stream found "
                  f"(model_info: {node.model_info is not None}, a final estimate: {node.last_final is not None})",
                  file=sys.stderr)
            return 1
        info = node.model_info
        out["model"] = {"model_id": info.model_id, "labels": list(info.labels), "timesteps": info.timesteps}
        out["last_final"] = _describe(node.last_final)
        for _ in range(3):  # the first calls of a new connection pay its set-up: warm up before timing
            node.classify_by(0.05)
        resp, took = node.classify_by(args.deadline_ms * 1e-3)
        out["deadline_query"] = {**_describe(resp.result), "deadline_met": resp.deadline_met, "error": resp.error,
                                 "seconds": round(took, 6), "deadline_ms": args.deadline_ms}
        feedback, result = node.classify_with_progress(args.timesteps, args.feedback_every)
        out["goal"] = {"feedback_timesteps": [f.timestep for f in feedback],
                       "result": _describe(result.result) if result is not None else None}
        out["finals_seen"] = node.finals
    finally:
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown()
    if args.json:
        print(json.dumps(out))
    else:
        q, g = out["deadline_query"], out["goal"]
        print(f"model {out['model']['model_id'][:12]}…, labels {out['model']['labels']}")
        print(f"latest final estimate: '{out['last_final']['label']}' ({out['last_final']['confidence']:.2f}) "
              f"after {out['last_final']['timestep']} timesteps")
        print(f"by a {args.deadline_ms:g} ms deadline: '{q['label']}' ({q['confidence']:.2f}) after {q['timestep']} "
              f"timesteps, stop {q['stop']}, in hand after {q['seconds'] * 1e3:.2f} ms (node predicted on time: "
              f"{q['deadline_met']})")
        print(f"action goal: feedback at timesteps {g['feedback_timesteps']}; result "
              f"{g['result']['label'] if g['result'] else 'none'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
