"""The node's executor: one thread takes everything in; deadline queries compute on worker threads.

Measured with ``benchmarks/ros_executors.py`` (docs/ros.md): rclpy's ``MultiThreadedExecutor`` rebuilds its
wait set in Python and hands each callback to a thread pool, which costs a request about 0.5 ms more at the
median and several ms at the 99th percentile than ``SingleThreadedExecutor``; the experimental
``EventsExecutor`` is as fast as the single-threaded one when it runs a callback itself, but slower when the
work must move to another thread and the answer come back through a future. So :class:`QueryExecutor` is a
``SingleThreadedExecutor`` that takes the requests of services marked with :func:`serve_on_workers` itself
and passes each to a worker (``submit``): the worker computes the answer and sends it (no way back through
the executor), while the executor thread stays free for images, parameters, timers and action cancels.

Taking the request ourselves also gives its header: the DDS source timestamp tells when the client sent
it (:func:`send_time`), so a relative budget counts from the send, and after each answer the worker
reports the request's transit and how long sending took (the node's answer-delivery model learns from
them). Depends on ``Executor._take_service`` of rclpy 9 (Kilted); where that hook differs (older rclpy),
:func:`make_executor` falls back to a ``MultiThreadedExecutor`` with enough threads, and callbacks get no
send time (an absolute ``deadline`` in the request needs no hook). The source timestamp is the sender's
system clock, so it is used only when the transit it implies is plausible (0 to ``MAX_TRANSIT`` s).
"""

from __future__ import annotations

import sys
import time
import traceback

from rclpy.exceptions import InvalidHandle
from rclpy.executors import Executor, MultiThreadedExecutor, SingleThreadedExecutor

MAX_TRANSIT = 1.0  # seconds; a larger (or negative) apparent transit means the clocks differ


def send_time(source_timestamp_ns: int, *, now_ns: int | None = None, now_mono: float | None = None) -> float | None:
    """The monotonic time at which a message stamped ``source_timestamp_ns`` (system clock) was sent, or None."""
    if not source_timestamp_ns:
        return None
    now_ns = time.time_ns() if now_ns is None else now_ns
    now_mono = time.monotonic() if now_mono is None else now_mono
    transit = (now_ns - source_timestamp_ns) * 1e-9
    if not 0.0 <= transit <= MAX_TRANSIT:
        return None
    return now_mono - transit


def hook_available() -> bool:
    """True when rclpy's executors take service requests the way :class:`QueryExecutor` overrides: rclpy 9
    (Kilted), whose ``_take_service`` returns the coroutine that runs the callback. Older rclpy (Humble to
    Jazzy) split it into ``_take_service`` + ``_execute_service``: there the fallback executor is used."""
    return callable(getattr(Executor, "_take_service", None)) and not hasattr(Executor, "_execute_service")


def serve_on_workers(service, submit, on_delivered=None) -> None:
    """Mark a service whose (synchronous) callback takes ``(request, response, sent_at=None)``: under
    :class:`QueryExecutor`, ``submit(fn)`` runs each request on a worker, which also sends the answer.
    ``on_delivered(transit, send)``, if given, is called after each answer went out: the request's transit
    (client send -> the callback started on a worker, seconds; None when unknown) and how long sending took.
    The transit includes the hand-off to the worker: the answer's way back has a thread wake-up of its own
    in the client (measured: leaving the hand-off out made the node stop too late when both ends ran at
    real-time priority)."""
    service._submit = submit
    service._on_delivered = on_delivered


def _serve(srv, request, header, sent_at: float | None) -> None:
    try:
        t_callback = time.monotonic()
        response = srv.callback(request, srv.srv_type.Response(), sent_at)
        t_send = time.monotonic()
        srv.send_response(response, header)
        if srv._on_delivered is not None:
            srv._on_delivered(t_callback - sent_at if sent_at is not None else None, time.monotonic() - t_send)
    except Exception:  # a worker must not die silently: the node's callbacks catch their own errors
        traceback.print_exc(file=sys.stderr)


async def _nothing() -> None:
    return None


class QueryExecutor(SingleThreadedExecutor):
    """A single-threaded executor whose marked services (:func:`serve_on_workers`) run on workers."""

    def _take_service(self, srv):
        submit = getattr(srv, "_submit", None)
        if submit is None:
            return super()._take_service(srv)
        try:
            with srv.handle:
                request, header = srv.handle.service_take_request(srv.srv_type.Request)
        except InvalidHandle:
            return None
        if header is None:
            return None
        try:
            submit(_serve, srv, request, header, send_time(getattr(header, "source_timestamp", 0)))
        except RuntimeError:  # the workers were shut down (the node is stopping): the request goes unanswered
            pass
        return _nothing


def make_executor(workers: int, context=None) -> Executor:
    """:class:`QueryExecutor`, or where rclpy lacks its hook a ``MultiThreadedExecutor`` with ``workers`` + 2
    threads (then long queries occupy executor threads, but never the last two)."""
    if hook_available():
        return QueryExecutor(context=context)
    return MultiThreadedExecutor(num_threads=workers + 2, context=context)
