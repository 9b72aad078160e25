"""A client that is killed mid-query (fault test): sends an action goal or a service request, prints
``{"sent": true}`` once the node is working on it, then waits to be SIGKILLed by the test agent.

    python ros_victim.py action|service [steps] [budget_s]
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time

os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
os.environ.setdefault("ROS_DOMAIN_ID", "77")

import rclpy  # noqa: E402
from rclpy.action import ActionClient  # noqa: E402
from rclpy.executors import MultiThreadedExecutor  # noqa: E402
from rclpy.node import Node  # noqa: E402
from rclpy.qos import QoSProfile  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402
from spike_perception_interfaces.action import ClassifyAnytime  # noqa: E402
from spike_perception_interfaces.srv import ClassifyWithDeadline  # noqa: E402


def main():
    kind, steps, budget = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    ns = os.environ.get("AGENT_NAMESPACE", "")
    name = (f"/{ns}/" if ns else "/") + ("classify_anytime" if kind == "action" else "classify_with_deadline")
    rclpy.init()
    node = Node("victim")
    ex = MultiThreadedExecutor(num_threads=2)
    ex.add_node(node)
    threading.Thread(target=ex.spin, daemon=True).start()
    img = Image(height=28, width=28, encoding="mono8", step=28, data=bytes(range(256)) * 3 + bytes(16))
    sec, nsec = divmod(int(budget * 1e9), 10**9)
    working = threading.Event()
    if kind == "action":
        cli = ActionClient(node, ClassifyAnytime, name, feedback_sub_qos_profile=QoSProfile(depth=1000))
        cli.wait_for_server(timeout_sec=20)
        goal = ClassifyAnytime.Goal(image=img, max_timesteps=steps)
        goal.budget.sec, goal.budget.nanosec = sec, nsec
        cli.send_goal_async(goal, feedback_callback=lambda _fb: working.set())
    else:
        cli = node.create_client(ClassifyWithDeadline, name)
        cli.wait_for_service(timeout_sec=20)
        req = ClassifyWithDeadline.Request(image=img, max_timesteps=steps)
        req.budget.sec, req.budget.nanosec = sec, nsec
        cli.call_async(req)
        time.sleep(0.3)  # no feedback for a service: give the request time to arrive
        working.set()
    working.wait(20)
    print(json.dumps({"sent": working.is_set()}), flush=True)
    time.sleep(3600)  # until killed


if __name__ == "__main__":
    main()
