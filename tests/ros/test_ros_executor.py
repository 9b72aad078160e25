"""The node's executor (spike_perception.executor): marked services run on workers that send their own answers,
with the request's send time and delivery measurements; everything else runs as rclpy runs it."""

from __future__ import annotations

import os
import threading
import time

import pytest

from sandbox import ros_environment, workspace_missing


def test_send_time_from_source_timestamp():
    from spike_perception.executor import MAX_TRANSIT, send_time

    now_ns, now_mono = 1_700_000_000_000_000_000, 500.0
    assert send_time(now_ns - 2_500_000, now_ns=now_ns, now_mono=now_mono) == pytest.approx(500.0 - 0.0025)
    assert send_time(now_ns, now_ns=now_ns, now_mono=now_mono) == now_mono
    assert send_time(0, now_ns=now_ns, now_mono=now_mono) is None  # no timestamp
    assert send_time(now_ns + 1_000_000, now_ns=now_ns, now_mono=now_mono) is None  # from the future: other clock
    old = now_ns - int((MAX_TRANSIT + 0.1) * 1e9)
    assert send_time(old, now_ns=now_ns, now_mono=now_mono) is None  # implausibly old: other clock


@pytest.mark.skipif(workspace_missing() is not None, reason=workspace_missing() or "")
def test_executor_serves_marked_services_on_workers_with_their_send_time(monkeypatch):
    """In one process over DDS: the marked service's callback runs on a worker thread (not the executor's)
    with a send time between the client's call and the callback, and the delivery report follows its
    answer; an unmarked one is called on the executor's thread as rclpy calls it."""
    for k, v in ros_environment().items():
        if k.startswith(("ROS_", "RMW_", "AMENT_")):
            monkeypatch.setenv(k, v)
    import rclpy
    from rcl_interfaces.srv import GetParameters
    from rclpy.node import Node

    import concurrent.futures

    from spike_perception.executor import QueryExecutor, hook_available, serve_on_workers

    ctx = rclpy.Context()
    rclpy.init(context=ctx)
    seen = {}
    try:
        node = Node(f"send_time_test_{os.getpid()}", context=ctx)

        def marked(req, resp, sent_at=None):
            seen["marked"] = (sent_at, time.monotonic(), threading.current_thread().name)
            return resp

        def plain(req, resp):
            seen["plain"] = threading.current_thread().name
            return resp

        def delivered(transit, send):
            seen["delivered"] = (transit, send)

        tag = f"send_time_test_{os.getpid()}"  # unique: this process is not in a network sandbox
        assert hook_available()  # rclpy 9: QueryExecutor, not the MultiThreadedExecutor fallback
        pool = concurrent.futures.ThreadPoolExecutor(2, thread_name_prefix="worker")
        serve_on_workers(node.create_service(GetParameters, f"{tag}/marked", marked), pool.submit, delivered)
        node.create_service(GetParameters, f"{tag}/plain", plain)
        ex = QueryExecutor(context=ctx)
        ex.add_node(node)
        stop = threading.Event()
        spin = threading.Thread(target=lambda: [ex.spin_once(0.05) for _ in iter(stop.is_set, True)], daemon=True,
                                name="spin")
        spin.start()
        t_call = {}
        for name in ("marked", "plain"):
            cli = node.create_client(GetParameters, f"{tag}/{name}")
            assert cli.wait_for_service(timeout_sec=20)
            t_call[name] = time.monotonic()
            fut = cli.call_async(GetParameters.Request())
            t_end = time.monotonic() + 10
            while not fut.done() and time.monotonic() < t_end:
                time.sleep(0.001)
            assert fut.done(), name
        sent_at, t_callback, thread = seen["marked"]
        assert sent_at is not None and t_call["marked"] <= sent_at <= t_callback
        assert thread.startswith("worker") and seen["plain"] == "spin"
        transit, send = seen["delivered"]
        assert transit == pytest.approx(t_callback - sent_at, abs=1e-3) and 0 <= send < 1.0
    finally:
        stop.set()
        spin.join(2)
        ex.shutdown()
        pool.shutdown()
        rclpy.shutdown(context=ctx)
