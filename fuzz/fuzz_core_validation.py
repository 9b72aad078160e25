"""Fuzz request and parameter validation of the node's ROS-free core (``spike_perception.core``).

Input layout (seeds: the node's defaults and typical requests; see ``make_seeds.py``)::

    request (ClassifyWithDeadline / the action goal, IDL types, converted as the node converts them):
        i32 budget.sec, u32 budget.nanosec, u32 max_timesteps, f32 min_confidence, u64 max_synaptic_events
    u8 flags        bit 0: also pass StopConditions values of any type (not only what the node converts)
    7 parameters    (StreamSettings fields in order) each: u8 type tag (int64, float64, bool, str, list, None)
                    then its value

Properties: ``StopConditions`` and ``StreamSettings`` accept a value set or raise ``SettingsError``
naming the field, for any values (NaN, inf, negative, huge, wrong type). Accepted values run: a
:class:`Query` on a small real engine ends within ``max_timesteps`` with a finite final estimate, and
a :class:`StreamProcessor` publishes exactly one final estimate for a frame.
"""

from __future__ import annotations

import math
import struct
import sys

import numpy as np

import _common

with _common.instrumented(__name__ == "__main__", "spike_perception"):
    from spike_perception.core import (FRAME_POLICIES, Query, Readout, SettingsError, StopConditions,
                                       StreamProcessor, StreamSettings)

from anytime_snn.sim.streaming import StreamingEngine  # noqa: E402
from anytime_snn.testing import dense_bundle  # noqa: E402

REQUEST = struct.Struct("<iIIfQ")
FIELDS = ("timesteps", "publish_every", "timestep_period", "min_confidence", "max_synaptic_events",
          "frame_policy", "reset_between_frames")
REASONS = {"confidence", "budget", "timesteps", "events", "canceled", "preempted", "infeasible"}
BUNDLE = dense_bundle((16, 12, 4), seed=1)
ENGINE = StreamingEngine(BUNDLE, max_chunk=16, compiled=False)
READOUT = Readout(BUNDLE)
X = np.linspace(0, 1, 16, dtype=np.float32)
MAX_RUN_STEPS = 64  # accepted settings with more steps are validated but not run (time per input)


class Reader:
    """Consumes typed values from the fuzz input; zeros when it runs out."""

    def __init__(self, buf: bytes):
        self.buf, self.pos = buf, 0

    def take(self, n: int) -> bytes:
        out = self.buf[self.pos:self.pos + n]
        self.pos += n
        return out + b"\0" * (n - len(out))

    def unpack(self, fmt: str):
        return struct.unpack("<" + fmt, self.take(struct.calcsize("<" + fmt)))

    def value(self):
        tag = self.take(1)[0] % 6
        if tag == 0:
            return self.unpack("q")[0]
        if tag == 1:
            return self.unpack("d")[0]
        if tag == 2:
            return bool(self.take(1)[0] & 1)
        if tag == 3:
            return self.take(self.take(1)[0] % 32).decode("latin-1")
        if tag == 4:
            return [self.unpack("q")[0] for _ in range(self.take(1)[0] % 4)]
        return None


def pack_value(v) -> bytes:
    """Inverse of :meth:`Reader.value` (used to write the seed corpus)."""
    if isinstance(v, bool):
        return bytes([2, int(v)])
    if isinstance(v, int):
        return bytes([0]) + struct.pack("<q", v)
    if isinstance(v, float):
        return bytes([1]) + struct.pack("<d", v)
    if isinstance(v, str):
        return bytes([3, len(v)]) + v.encode("latin-1")
    if isinstance(v, list):
        return bytes([4, len(v)]) + b"".join(struct.pack("<q", x) for x in v)
    return bytes([5])


def pack(budget_s: int, budget_ns: int, max_timesteps: int, min_confidence: float, max_events: int,
         params: dict, flags: int = 0) -> bytes:
    return (REQUEST.pack(budget_s, budget_ns, max_timesteps, min_confidence, max_events) + bytes([flags])
            + b"".join(pack_value(params[f]) for f in FIELDS))


def check_query(stop: StopConditions) -> None:
    if stop.max_timesteps > MAX_RUN_STEPS or stop.budget > 0.05:
        return
    out = Query(ENGINE, READOUT, stop, t_received=0.0, clock=_FakeClock()).run(X)
    est = out.estimate
    assert out.stop_reason in REASONS, out.stop_reason
    if out.stop_reason == "infeasible":  # not one step fitted the budget: nothing computed, the prior
        assert est.final and out.steps == 0 and est.timestep == 0 and est.top_class == -1
    else:
        assert est.final and 1 <= out.steps <= stop.max_timesteps and est.timestep <= stop.max_timesteps
    assert np.isfinite(est.scores).all() and abs(float(est.scores.sum()) - 1) < 1e-4
    if out.stop_reason == "confidence":
        assert est.confidence >= stop.min_confidence


class _FakeClock:
    """1 ms per reading: deadline logic runs deterministically and fast."""

    def __init__(self):
        self.t = 0.0

    def __call__(self) -> float:
        self.t += 1e-3
        return self.t


def check_stream(settings: StreamSettings) -> None:
    if settings.timesteps > MAX_RUN_STEPS or settings.timestep_period > 0:
        return
    published = []
    proc = StreamProcessor(ENGINE, READOUT, settings, published.append)
    proc.submit(X)
    for _ in range(MAX_RUN_STEPS + 2):
        if not proc.work():
            break
    finals = [e for e in published if e.final]
    assert len(finals) == 1 and published[-1] is finals[0], [(e.timestep, e.final) for e in published]
    assert finals[0].timestep <= settings.timesteps
    assert all(e.timestep % settings.publish_every == 0 for e in published if not e.final)


def test_one_input(buf: bytes) -> None:
    r = Reader(buf)
    sec, nanosec, max_timesteps, min_conf, max_events = r.unpack(REQUEST.format[1:])
    flags = r.take(1)[0]
    # The node's conversion of a request (node.py _run_query): 0 timesteps = the node's setting.
    values = dict(max_timesteps=int(max_timesteps) or 50, min_confidence=float(min_conf),
                  max_synaptic_events=int(max_events), budget=sec + nanosec * 1e-9)
    if flags & 1:  # any type at all
        values = {k: r.value() for k in values}
    try:
        stop = StopConditions(**values)
    except SettingsError as e:
        assert any(k in str(e) for k in values), str(e)
    else:
        assert 1 <= stop.max_timesteps and math.isfinite(stop.budget) and stop.budget >= 0
        check_query(stop)
    params = {f: r.value() for f in FIELDS}
    try:
        settings = StreamSettings(**params)
    except SettingsError as e:
        assert any(f in str(e) for f in FIELDS), str(e)
        return
    assert settings.frame_policy in FRAME_POLICIES
    check_stream(settings)


if __name__ == "__main__":
    _common.fuzz(test_one_input)
    sys.exit(0)
