"""The node's logic without ROS: readout, stop conditions, deadline-driven queries, the frame stream.

- :class:`Readout` turns an engine :class:`StepBlock` into scores / top class / confidence for every
  step of the block at once (vectorised; no per-step Python work).
- :class:`StopConditions` + :func:`first_stop` decide where a block ends a frame: ``confidence``,
  ``events`` (the answer is the last step whose cumulative events stay within the limit), ``timesteps``.
  A wall-time ``budget`` is checked between chunks by :class:`Query`.
- :class:`Query` runs one deadline-driven classification (the service and the action); a
  :class:`DeliveryModel` tells it how long its answer will take to reach the client.
- :class:`StreamProcessor` runs the image stream: frame policy (``latest`` preempts, ``finish`` keeps a
  queue of one where the newest wins), ``reset_between_frames``, ``publish_every``, ``timestep_period``.

The engine is anything with ``reset(x, keep_state)``, ``advance(k) -> StepBlock(t, v_out, cumulative_events)``,
``t`` and ``max_chunk`` (``anytime_snn.sim.streaming.StreamingEngine``).
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from dataclasses import dataclass, field, replace
from typing import Any, Callable

import numpy as np

CONFIDENCE, BUDGET, TIMESTEPS, EVENTS, CANCELED, PREEMPTED, INFEASIBLE = (
    "confidence", "budget", "timesteps", "events", "canceled", "preempted", "infeasible")
FRAME_POLICIES = ("latest", "finish")


class SettingsError(ValueError):
    """An invalid parameter value; the message names the parameter, the value and what is valid."""


# ----------------------------------------------------------------------------- readout


@dataclass
class Estimate:
    """One anytime estimate (what AnytimeClassification carries, without ROS types)."""

    timestep: int
    total_timesteps: int
    scores: np.ndarray  # (C,) float32 probabilities
    top_class: int
    confidence: float
    synaptic_events: int
    elapsed: float  # seconds since the frame / request was received
    final: bool = False
    frame_seq: int = 0
    meta: Any = None  # opaque (the node keeps the image header here)
    label: str = ""  # the top class's label in the model that produced the estimate
    model_id: str = ""  # that model's content hash
    stop_reason: str = ""  # on final estimates: why the frame or query ended (CONFIDENCE, BUDGET, ...)


def model_identity(bundle_dir) -> str:
    """A bundle's content hash: its manifest's sha256 (which covers the tensors' sha256); '' if absent."""
    import json
    from pathlib import Path

    try:
        return str(json.loads((Path(bundle_dir) / "manifest.json").read_text()).get("manifest_sha256", ""))
    except (OSError, ValueError):
        return ""


class Readout:
    """Class probabilities of every step of a block: softmax(v_out * inv_temperature(t)); and the
    :class:`Estimate` of a step, labelled with this model's labels and identity."""

    def __init__(self, bundle, model_id: str = ""):
        from anytime_snn.sim.readout import class_scores  # numpy only

        self._class_scores = class_scores
        self.calibration = bundle.calibration
        self.labels = list(bundle.labels)
        self.model_id = model_id

    def __call__(self, block) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(scores (k, C), top class (k,), confidence (k,)). Top class = argmax of the output potential."""
        scores = self._class_scores(block.v_out, block.t, self.calibration)
        top = np.argmax(block.v_out, axis=1)
        conf = scores[np.arange(top.size), top]
        return scores, top, conf

    def label(self, index: int) -> str:
        return self.labels[index] if 0 <= index < len(self.labels) else ""

    def estimate(self, block, scores, top, conf, i: int, total: int, elapsed: float, **kw) -> Estimate:
        """The estimate after row ``i`` of a block (``scores, top, conf`` from ``self(block)``)."""
        c = int(top[i])
        return Estimate(timestep=int(block.t[i]), total_timesteps=total, scores=scores[i], top_class=c,
                        confidence=float(conf[i]), synaptic_events=int(block.cumulative_events[i]), elapsed=elapsed,
                        label=self.label(c), model_id=self.model_id, **kw)

    def prior(self, total: int, elapsed: float, **kw) -> Estimate:
        """The estimate before any step: uniform scores, class -1 (when nothing could run)."""
        return uniform_estimate(len(self.labels), total, elapsed, model_id=self.model_id, **kw)


# ----------------------------------------------------------------------------- stop conditions


def _is_int(v) -> bool:
    """An integer, not a bool (a bool is no count of timesteps or events)."""
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


def _is_real(v) -> bool:
    """A real number, not a bool."""
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)


@dataclass(frozen=True)
class StopConditions:
    """When a frame (or query) ends. Zero disables ``min_confidence``, ``max_synaptic_events`` and ``budget``."""

    max_timesteps: int
    min_confidence: float = 0.0
    max_synaptic_events: int = 0
    budget: float = 0.0  # seconds of wall time from receipt

    def __post_init__(self):
        # Types first (fuzzing found TypeError escaping for a str or None value): only SettingsError leaves.
        if not _is_int(self.max_timesteps) or not 1 <= self.max_timesteps <= 1_000_000:
            raise SettingsError(f"max_timesteps must be an integer in [1, 1000000], got {self.max_timesteps!r}")
        if not (_is_real(self.min_confidence) and math.isfinite(self.min_confidence)
                and 0.0 <= self.min_confidence <= 1.0):
            raise SettingsError(f"min_confidence must be in [0, 1], got {self.min_confidence!r}")
        if not (_is_int(self.max_synaptic_events) and 0 <= self.max_synaptic_events < 2**63):
            raise SettingsError(f"max_synaptic_events must be an integer in [0, 2**63), "
                                f"got {self.max_synaptic_events!r}")
        if not (_is_real(self.budget) and math.isfinite(self.budget) and 0.0 <= self.budget <= 3600.0):
            raise SettingsError(f"budget must be between 0 and 3600 s, got {self.budget!r}")


def first_stop(t: np.ndarray, events: np.ndarray, conf: np.ndarray, stop: StopConditions) -> tuple[int, str] | None:
    """Where a block ends the frame: (row of the answer, reason), or None to go on.

    The earliest condition wins. ``events``: the first row whose cumulative events exceed the limit is
    over budget, so the answer is the row before it (-1 = the previous block's last step; the caller
    falls back to the step itself when there is none). ``timesteps``: the last row reaching the limit.
    """
    j_conf = None
    if stop.min_confidence > 0:
        hits = np.flatnonzero(conf >= stop.min_confidence)
        j_conf = int(hits[0]) if hits.size else None
    i_ev = None
    if stop.max_synaptic_events > 0:
        over = np.flatnonzero(events > stop.max_synaptic_events)
        i_ev = int(over[0]) if over.size else None
    if j_conf is not None and (i_ev is None or j_conf < i_ev):
        return j_conf, CONFIDENCE
    if i_ev is not None:
        return i_ev - 1, EVENTS
    if int(t[-1]) >= stop.max_timesteps:
        return int(np.flatnonzero(t >= stop.max_timesteps)[0]), TIMESTEPS
    return None


def uniform_estimate(num_classes: int, total: int, elapsed: float, **kw) -> Estimate:
    """The estimate before any step: uniform scores, class -1 (used only when nothing could run)."""
    return Estimate(timestep=0, total_timesteps=total, scores=np.full(num_classes, 1.0 / num_classes, np.float32),
                    top_class=-1, confidence=0.0, synaptic_events=0, elapsed=elapsed, **kw)


# ----------------------------------------------------------------------------- deadline queries


class DeliveryModel:
    """How long an answer takes to reach the client once the node stops computing: a rolling estimate.

    Every answered query adds one sample: its request's transit (client send -> node callback; the
    ``prior_transit`` when the node could not see the send time), plus the time the node took to send the
    answer, plus how far computing ran past its planned stop (a chunk slowed by the OS or another
    process: :attr:`QueryOutcome.overshoot`). The answer goes back over the same DDS path and through an
    executor wake-up like the request,
    so the request's transit stands in for the response's. :meth:`reserve` is the ``probability``
    quantile of the recent samples (the time a query keeps free before its deadline); :meth:`expected`
    the median (the prediction behind ``deadline_met``). Until ``min_samples`` samples exist, the reserve is
    at least ``prior`` and the expectation at least ``prior_transit``. n samples estimate quantiles only up
    to 1 - 1/n (the largest of n samples sits near that one): with fewer than 1 / (1 - probability) samples
    the reserve is that quantile, so that a single stall (a start-up cost, a descheduled thread) does not
    set the reserve for the next 1 / (1 - probability) queries and turn every tight deadline away.
    Thread-safe.
    """

    def __init__(self, probability: float = 0.995, window: int = 256, prior: float = 0.002,
                 prior_transit: float = 0.001, min_samples: int = 10):
        self.prior, self.prior_transit, self.min_samples = prior, prior_transit, min_samples
        self._samples: deque = deque(maxlen=window)
        self._lock = threading.Lock()
        self._cache: tuple[float, float] | None = None  # (reserve, expected), cleared by observe
        self.set_probability(probability)

    def observe(self, transit: float | None, send: float, overshoot: float = 0.0) -> None:
        """One answered query: its request transit (None = unknown), the seconds its answer took to send and
        the seconds computing ran past the planned stop."""
        sample = (self.prior_transit if transit is None else max(transit, 0.0)) + max(send, 0.0) + max(overshoot, 0.0)
        with self._lock:
            self._samples.append(sample)
            self._cache = None

    def _stats(self) -> tuple[float, float]:
        with self._lock:
            if self._cache is None:
                if self._samples:
                    a = np.fromiter(self._samples, float, len(self._samples))
                    level = min(self.probability, 1.0 - 1.0 / len(a))
                    reserve, expected = (float(v) for v in np.quantile(a, [level, 0.5]))
                else:
                    reserve = expected = 0.0
                if len(self._samples) < self.min_samples:
                    reserve, expected = max(reserve, self.prior), max(expected, self.prior_transit)
                self._cache = (reserve, expected)
            return self._cache

    def set_probability(self, probability: float) -> None:
        if not 0.5 <= probability < 1.0:
            raise SettingsError(f"deadline_probability must be in [0.5, 1), got {probability!r}")
        with self._lock:
            self.probability, self._cache = float(probability), None

    def reserve(self) -> float:
        return self._stats()[0]

    def expected(self) -> float:
        return self._stats()[1]

    @property
    def samples(self) -> int:
        return len(self._samples)


@dataclass
class QueryOutcome:
    estimate: Estimate  # final = True
    stop_reason: str
    deadline_met: bool
    steps: int
    finished: float = 0.0  # clock time at which the answer was ready (computing ended)
    overshoot: float = 0.0  # seconds computing ran past its planned stop (deadline - reserve), budget stops only


class Query:
    """One deadline-driven classification on its own engine (service and action).

    Steps run in chunks; between chunks the wall clock, cancellation and the stop conditions are checked.
    The deadline is the earlier of ``deadline`` (absolute, on ``clock``) and ``t_received + budget``.
    Computing stops at ``deadline - delivery.reserve() - margin``, so that the answer reaches the client
    by the deadline with the delivery model's probability; a chunk spends at most half the time left
    (a chunk slowed by the OS then costs half the slack, not the deadline). If not even one step fits,
    nothing is computed: the answer is ``fallback`` (or the uniform prior) at once, stop reason
    ``infeasible``. ``deadline_met`` predicts the client's view: answer ready + expected delivery <= deadline.
    """

    def __init__(self, engine, readout: Readout, stop: StopConditions, *, t_received: float,
                 clock: Callable[[], float] = time.monotonic, chunk: int = 16, margin: float = 0.0,
                 frame_seq: int = 0, meta: Any = None, step_time_hint: float = 1e-4, deadline: float = math.inf,
                 delivery: DeliveryModel | None = None, fallback: Estimate | None = None):
        self.engine, self.readout, self.stop = engine, readout, stop
        self.t_received, self.clock, self.margin = t_received, clock, margin
        self.chunk = max(1, min(int(chunk), engine.max_chunk))
        self.frame_seq, self.meta = frame_seq, meta
        self.step_time = step_time_hint  # running estimate, seconds per step
        self.deadline = min(deadline, t_received + stop.budget if stop.budget > 0 else math.inf)
        self.delivery, self.fallback = delivery, fallback

    def run(self, x: np.ndarray, *, keep_state: bool = False,
            on_estimate: Callable[[Estimate], None] | None = None, feedback_every: int = 1,
            should_cancel: Callable[[], bool] | None = None) -> QueryOutcome:
        """Classify ``x``. ``on_estimate(estimate)`` gets the estimate of every ``feedback_every``-th step
        up to the answer (the action's feedback); ``should_cancel`` is polled between chunks."""
        every = max(1, int(feedback_every))
        readout = self.readout
        stop, clock, engine, deadline = self.stop, self.clock, self.engine, self.deadline
        reserve = self.margin + (self.delivery.reserve() if self.delivery is not None else 0.0)
        expected = self.delivery.expected() if self.delivery is not None else 0.0
        stop_at = deadline - reserve
        total = stop.max_timesteps
        kw = dict(frame_seq=self.frame_seq, meta=self.meta)
        if clock() + self.step_time > stop_at:  # not one step fits: answer now rather than late
            return answer_now(self.readout, stop, t_received=self.t_received, deadline=deadline,
                              delivery=self.delivery, fallback=self.fallback, clock=clock, **kw)
        engine.reset(x, keep_state=keep_state)
        best: Estimate | None = None
        reason = None
        while True:
            if should_cancel is not None and should_cancel():
                reason = CANCELED
                break
            k = min(self.chunk, total - engine.t)
            if deadline != math.inf:
                fits = int((stop_at - clock()) / self.step_time)
                if fits < 1 and best is not None:
                    reason = BUDGET
                    break
                k = max(1, min(k, fits // 2))
            t0 = clock()
            block = engine.advance(k)
            scores, top, conf = self.readout(block)
            hit = first_stop(block.t, block.cumulative_events, conf, stop)
            now = clock()
            elapsed = now - self.t_received
            # Cost per step including the chunk's readout: conservative for small chunks.
            self.step_time = 0.5 * self.step_time + 0.5 * max((now - t0) / k, 1e-7)
            if on_estimate is not None:
                end = hit[0] + 1 if hit is not None else k
                for i in np.flatnonzero(block.t[:max(end, 0)] % every == 0):
                    on_estimate(readout.estimate(block, scores, top, conf, int(i), total, elapsed, **kw))
            if hit is not None:
                i, reason = hit
                if i >= 0:
                    best = readout.estimate(block, scores, top, conf, i, total, elapsed, **kw)
                elif best is None:  # events exceeded on step 1 already: step 1 is the least we can do
                    best = readout.estimate(block, scores, top, conf, 0, total, elapsed, **kw)
                break
            best = readout.estimate(block, scores, top, conf, k - 1, total, elapsed, **kw)
        if best is None:
            best = readout.prior(total, 0.0, **kw)
        out = self._outcome(best, reason, expected, engine.t)
        if reason == BUDGET:
            out.overshoot = max(0.0, out.finished - stop_at)
        return out

    def _outcome(self, best: Estimate, reason: str, expected: float, steps: int) -> QueryOutcome:
        return _outcome(best, reason, steps, self.t_received, self.deadline, expected, self.clock)


def _outcome(best: Estimate, reason: str, steps: int, t_received: float, deadline: float, expected: float,
             clock: Callable[[], float]) -> QueryOutcome:
    now = clock()
    best.final = True
    best.elapsed = now - t_received
    best.stop_reason = reason
    return QueryOutcome(estimate=best, stop_reason=reason, deadline_met=now + expected <= deadline, steps=steps,
                        finished=now)


def answer_now(readout: Readout, stop: StopConditions, *, t_received: float, deadline: float,
               delivery: DeliveryModel | None = None, fallback: Estimate | None = None,
               clock: Callable[[], float] = time.monotonic, frame_seq: int = 0, meta: Any = None) -> QueryOutcome:
    """The ``infeasible`` answer, computing nothing: ``fallback`` (e.g. the stream's estimate of the same
    frame) or the uniform prior. For a query whose deadline leaves no time for one step (or no engine)."""
    kw = dict(frame_seq=frame_seq, meta=meta)
    best = (replace(fallback, total_timesteps=stop.max_timesteps, **kw) if fallback is not None
            else readout.prior(stop.max_timesteps, 0.0, **kw))
    return _outcome(best, INFEASIBLE, 0, t_received, deadline, delivery.expected() if delivery else 0.0, clock)


# ----------------------------------------------------------------------------- the image stream


@dataclass(frozen=True)
class StreamSettings:
    timesteps: int = 50
    publish_every: int = 1
    timestep_period: float = 0.0  # seconds per step; 0 = as fast as possible
    min_confidence: float = 0.0
    max_synaptic_events: int = 0
    frame_policy: str = "latest"
    reset_between_frames: bool = True

    def __post_init__(self):
        check_stream_settings(self)

    @property
    def stop(self) -> StopConditions:
        return StopConditions(self.timesteps, self.min_confidence, self.max_synaptic_events)


def check_stream_settings(s: StreamSettings) -> None:
    """Raise SettingsError naming the first invalid field. Whatever passes also makes valid
    :class:`StopConditions` (``s.stop``): fuzzing found a bool ``min_confidence`` accepted here and refused
    there, which raised inside the stream's worker on every frame instead of at configuration."""
    def bad(name, value, valid):
        raise SettingsError(f"{name} must be {valid}, got {value!r}")

    if not _is_int(s.timesteps) or not 1 <= s.timesteps <= 1_000_000:
        bad("timesteps", s.timesteps, "an integer in [1, 1000000]")
    if not _is_int(s.publish_every) or not 1 <= s.publish_every <= 1_000_000:
        bad("publish_every", s.publish_every, "an integer in [1, 1000000]")
    if not _is_real(s.timestep_period) or not (
            math.isfinite(s.timestep_period) and 0 <= s.timestep_period <= 10):
        bad("timestep_period", s.timestep_period, "a number of seconds in [0, 10] (0 = as fast as possible)")
    if not _is_real(s.min_confidence) or not (
            math.isfinite(s.min_confidence) and 0 <= s.min_confidence <= 1):
        bad("min_confidence", s.min_confidence, "in [0, 1] (0 = never stop early)")
    if not _is_int(s.max_synaptic_events) or not 0 <= s.max_synaptic_events < 2**63:
        bad("max_synaptic_events", s.max_synaptic_events, "an integer in [0, 2**63) (0 = no limit)")
    if s.frame_policy not in FRAME_POLICIES:
        bad("frame_policy", s.frame_policy, f"one of {list(FRAME_POLICIES)}")
    if not isinstance(s.reset_between_frames, bool):
        bad("reset_between_frames", s.reset_between_frames, "a bool")
    _ = s.stop  # raises SettingsError for anything the stop conditions refuse


@dataclass
class _Frame:
    x: np.ndarray
    meta: Any
    t_received: float
    seq: int


@dataclass
class StreamStats:
    frames_received: int = 0
    frames_completed: int = 0
    frames_dropped: int = 0  # replaced in the queue before they started
    frames_preempted: int = 0  # stopped by a newer frame (policy latest)
    steps: int = 0
    step_seconds: float = 0.0  # time inside engine.advance
    published: int = 0
    first_latency: deque = field(default_factory=lambda: deque(maxlen=256))  # seconds, receipt -> first publish
    stop_reasons: dict = field(default_factory=dict)


class StreamProcessor:
    """Runs the frames of the image stream on one engine; call :meth:`work` from one worker thread.

    ``submit`` may be called from any thread. ``publish(estimate)`` is called from the worker thread for
    every ``publish_every``-th step and for the frame's final estimate (``final=True``; published once,
    also when the last step is a multiple of ``publish_every``). A preempted frame gets a final estimate
    too (its last computed step), so subscribers always see every started frame end.
    """

    def __init__(self, engine, readout: Readout, settings: StreamSettings, publish: Callable[[Estimate], None], *,
                 clock: Callable[[], float] = time.monotonic):
        self.engine, self.readout, self.settings = engine, readout, settings
        self.publish, self.clock = publish, clock
        self.stats = StreamStats()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._pending: _Frame | None = None
        self._current: _Frame | None = None
        self._cur_settings = settings
        self._last: Estimate | None = None
        self._state_valid = False  # engine holds state of a previous frame that may be carried over
        self._seq = 0
        self._published_first = False

    # -- called from any thread
    def submit(self, x: np.ndarray, meta: Any = None, t_received: float | None = None) -> int:
        """Queue a frame; returns its sequence number."""
        with self._lock:
            self._seq += 1
            self.stats.frames_received += 1
            if self._pending is not None:
                self.stats.frames_dropped += 1
            self._pending = _Frame(x, meta, self.clock() if t_received is None else t_received, self._seq)
        self._wake.set()
        return self._seq

    def update(self, settings: StreamSettings) -> None:
        """New settings; they apply from the next frame."""
        with self._lock:
            self.settings = settings

    def replace_engine(self, engine, readout: Readout) -> None:
        """Swap the model (between frames): the queued frame (converted for the old model) is dropped."""
        with self._lock:
            self.engine, self.readout = engine, readout
            if self._pending is not None:
                self.stats.frames_dropped += 1
            self._pending = None
            self._current = None
            self._state_valid = False

    @property
    def busy(self) -> bool:
        return self._current is not None or self._pending is not None

    def wait_for_work(self, timeout: float) -> None:
        if not self.busy:
            self._wake.wait(timeout)
        self._wake.clear()

    # -- worker thread
    def work(self) -> bool:
        """Run one chunk (up to the next publication) of the current frame; False when idle."""
        with self._lock:
            engine, readout = self.engine, self.readout
            if self._current is not None and self._pending is not None and self._cur_settings.frame_policy == "latest":
                self._end_frame(self._last, PREEMPTED)
                self.stats.frames_preempted += 1
            if self._current is None:
                if self._pending is None:
                    return False
                self._current, self._pending = self._pending, None
                self._cur_settings = self.settings
                keep = self._state_valid and not self._cur_settings.reset_between_frames
                engine.reset(self._current.x, keep_state=keep)
                self._state_valid = True
                self._last = None
                self._published_first = False
            frame, s = self._current, self._cur_settings
        total = s.timesteps
        done = engine.t
        k = min(s.publish_every - done % s.publish_every, total - done, engine.max_chunk)
        t0 = self.clock()
        block = engine.advance(k)
        self.stats.step_seconds += self.clock() - t0
        self.stats.steps += k
        scores, top, conf = readout(block)
        hit = first_stop(block.t, block.cumulative_events, conf, s.stop)
        if s.timestep_period > 0:
            self._pace(frame.t_received + int(block.t[-1]) * s.timestep_period)
        elapsed = self.clock() - frame.t_received
        kw = dict(frame_seq=frame.seq, meta=frame.meta)
        if hit is not None:
            i, reason = hit
            if i >= 0:
                est = readout.estimate(block, scores, top, conf, i, total, elapsed, **kw)
            else:
                est = self._last or readout.estimate(block, scores, top, conf, 0, total, elapsed, **kw)
            with self._lock:
                if self._current is frame:
                    self._end_frame(est, reason)
                    self.stats.frames_completed += 1
            return True
        est = readout.estimate(block, scores, top, conf, k - 1, total, elapsed, **kw)
        self._last = est
        if int(block.t[-1]) % s.publish_every == 0:
            self._emit(est)
        return True

    def _pace(self, until: float) -> None:
        """Sleep until ``until`` (steps paced like neuromorphic hardware); a new frame under 'latest' wakes us."""
        while True:
            left = until - self.clock()
            if left <= 0:
                return
            if self._pending is not None and self._cur_settings.frame_policy == "latest":
                return
            self._wake.wait(min(left, 0.05))
            if not (self._pending is not None and self._cur_settings.frame_policy == "latest"):
                self._wake.clear()

    def _emit(self, est: Estimate) -> None:
        self.publish(est)
        self.stats.published += 1
        if not self._published_first:
            self._published_first = True
            self.stats.first_latency.append(self.clock() - self._current.t_received)

    def _end_frame(self, est: Estimate | None, reason: str) -> None:
        frame = self._current
        if est is None:  # preempted before its first step finished
            est = self.readout.prior(self._cur_settings.timesteps, self.clock() - frame.t_received,
                                     frame_seq=frame.seq, meta=frame.meta)
        est = replace(est, final=True, elapsed=self.clock() - frame.t_received, stop_reason=reason)
        self._emit(est)
        self.stats.stop_reasons[reason] = self.stats.stop_reasons.get(reason, 0) + 1
        self._current = None
        self._last = None

    def step_rate(self) -> float:
        return self.stats.steps / self.stats.step_seconds if self.stats.step_seconds > 0 else 0.0
