"""When a service request was sent: the executor that tells deadline queries where their budget starts.

A client's deadline counts from when it sent the request, not from when the node's callback began.
Between the two lie DDS delivery, the executor's wait set and the hand-off to a worker thread:
measured here 0.6 ms median and up to 5 ms on a loaded 2-core machine — time a budget measured from
the callback never saw. :class:`SendTimeExecutor` reads each request's DDS source timestamp and passes
the send time (``time.monotonic()`` scale) to service callbacks that accept a third argument
``sent_at``; other services are run as rclpy runs them. With another executor the callback simply
gets no ``sent_at`` and the node measures from its receipt.

It also reports, per answered request, the request's transit and the time ``send_response`` took
(the node's answer-delivery model learns from them).

Depends on ``Executor._take_service`` of rclpy 9 (Kilted); if that hook disappears, nothing breaks:
callbacks just get no send time and the delivery model keeps its prior (an absolute ``deadline`` in
the request needs no hook at all). The source timestamp is the sender's system clock, so it is used
only when the transit it implies is plausible (0 to ``MAX_TRANSIT`` seconds): same host or
synchronised clocks.
"""

from __future__ import annotations

import time

from rclpy.exceptions import InvalidHandle
from rclpy.executors import MultiThreadedExecutor

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


class SendTimeExecutor(MultiThreadedExecutor):
    """A MultiThreadedExecutor that calls ``callback(request, response, sent_at)`` for services marked
    with :func:`wants_send_time`."""

    def _take_service(self, srv):
        if not getattr(srv, "_wants_send_time", False):
            return super()._take_service(srv)
        try:
            with srv.handle:
                request, header = srv.handle.service_take_request(srv.srv_type.Request)
        except InvalidHandle:
            return None
        if header is None:
            return None
        sent_at = send_time(getattr(header, "source_timestamp", 0))

        async def execute() -> None:
            t_callback = time.monotonic()
            response = srv.callback(request, srv.srv_type.Response(), sent_at)
            t_send = time.monotonic()
            srv.send_response(response, header)
            delivered = getattr(srv, "_on_delivered", None)
            if delivered is not None:
                transit = t_callback - sent_at if sent_at is not None else None
                delivered(transit, time.monotonic() - t_send)

        return execute


def wants_send_time(service, on_delivered=None) -> None:
    """Mark a service whose (synchronous) callback takes ``(request, response, sent_at=None)``.

    ``on_delivered(transit, send)``, if given, is called after each response went out: the request's
    transit (client send -> callback start, seconds; None when unknown) and how long sending took."""
    service._wants_send_time = True
    service._on_delivered = on_delivered
