"""The rclpy adapter: topics, service, action, parameters and diagnostics around the ROS-free core.

Threads: a worker thread runs the image stream (:class:`~spike_perception.core.StreamProcessor`); one
executor thread (:class:`~spike_perception.executor.QueryExecutor`) takes images, parameter requests,
timers, service requests and action goals and cancels; service queries and action goals compute on a
pool of ``max_concurrent_queries`` + 2 query threads, each with an engine from a pool (never the stream's),
and a service worker sends its own answer. At most ``max_concurrent_queries`` compute at once; a query
beyond that waits for an engine while its deadline allows one step, else answers ``infeasible`` (with a
deadline) or ``busy`` (without), on one of the two spare threads. Long queries therefore never hold up
intake, parameters or cancels. Each answered request feeds the
:class:`~spike_perception.core.DeliveryModel` that keeps answers on time (docs/ros.md: why this executor).
"""

from __future__ import annotations

import array
import collections
import concurrent.futures
import math
import signal
import statistics
import sys
import threading
import time
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import rclpy
from builtin_interfaces.msg import Duration
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor, SetParametersResult
from rclpy.action import ActionServer, CancelResponse, GoalResponse
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup, ReentrantCallbackGroup
from rclpy.executors import ExternalShutdownException
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.task import Future
from rclpy.qos_overriding_options import QoSOverridingOptions
from rclpy.qos import (DurabilityPolicy, HistoryPolicy, QoSPolicyKind, QoSProfile, ReliabilityPolicy,
                       qos_profile_sensor_data)
from rclpy.signals import SignalHandlerOptions
from sensor_msgs.msg import Image
from spike_perception_interfaces.action import ClassifyAnytime
from spike_perception_interfaces.msg import AnytimeClassification, ModelInfo
from spike_perception_interfaces.srv import ClassifyWithDeadline

from anytime_snn.errors import BundleError

from . import stop_reasons
from .core import (CANCELED, INFEASIBLE, DeliveryModel, Estimate, Query, SettingsError, StopConditions,
                   StreamProcessor, StreamSettings, answer_now)
from .executor import make_executor, serve_on_workers
from .image_convert import ImageRejected
from .model_path import resolve_model
from .runtime import ModelRuntime
from .scheduling import ThreadScheduling


class RequestError(ValueError):
    """A query that cannot run as asked (invalid fields, a rejected image, no latest frame)."""


@dataclass
class _Request:
    """A validated query: the model it runs on, its network input and stop conditions."""

    model: ModelRuntime
    x: np.ndarray
    header: Any
    stop: StopConditions
    deadline: float  # monotonic; inf = none
    fallback: Estimate | None  # the stream's estimate of the same frame (use_latest_frame)


SPARE_WORKERS = 2  # query threads beyond max_concurrent_queries: they answer 'busy' / 'infeasible' at once
FEEDBACK_DEPTH = 1000

PARAMS = {
    # name: (default, description, extra descriptor fields)
    "model": ("default", "Model bundle directory; 'default' = the bundled model "
                         "($ANYTIME_SNN_DEFAULT_MODEL or <repo>/models/default).", {}),
    "timesteps": (0, "Timesteps simulated per frame; 0 = the bundle's own value.",
                  dict(integer_range=[IntegerRange(from_value=0, to_value=1_000_000, step=1)])),
    "publish_every": (1, "Publish an estimate every this many timesteps (plus the final one).",
                      dict(integer_range=[IntegerRange(from_value=1, to_value=1_000_000, step=1)])),
    "timestep_period": (0.0, "Seconds per timestep; 0 = as fast as possible, > 0 paces steps like "
                             "neuromorphic hardware.",
                        dict(floating_point_range=[FloatingPointRange(from_value=0.0, to_value=10.0, step=0.0)])),
    "min_confidence": (0.0, "Stop a frame once its confidence reaches this; 0 = never stop early.",
                       dict(floating_point_range=[FloatingPointRange(from_value=0.0, to_value=1.0, step=0.0)])),
    "max_synaptic_events": (0, "Stop a frame before its synaptic events exceed this; 0 = no limit.",
                            dict(integer_range=[IntegerRange(from_value=0, to_value=2**62, step=1)])),
    "frame_policy": ("latest", "'latest': a new frame preempts the current one; 'finish': the current frame "
                               "completes, a queue of one holds the newest frame.", {}),
    "reset_between_frames": (True, "false = carry membrane state into the next frame (video streams).", {}),
    "deadline_margin": (0.0, "Extra seconds kept free before a query's deadline, on top of the measured answer "
                             "delivery time (the delivery model's deadline_probability quantile).",
                        dict(floating_point_range=[FloatingPointRange(from_value=0.0, to_value=1.0, step=0.0)])),
    "deadline_probability": (0.995, "Probability with which an answer should reach the client by its deadline: "
                                    "the quantile of recent answer delivery times kept free before each deadline.",
                             dict(floating_point_range=[FloatingPointRange(from_value=0.5, to_value=0.999,
                                                                           step=0.0)])),
    "max_concurrent_queries": (4, "Service and action queries computed at once (each on its own thread and "
                                  "engine; read at start-up).",
                               dict(read_only=True,
                                    integer_range=[IntegerRange(from_value=1, to_value=64, step=1)])),
    "engine_threads": (1, "Threads that share the steps of each chunk in the engines' event-driven convolutions "
                          "(the stream's and each query's); 1 keeps an engine on its own thread. More helps a "
                          "convolutional model where cores are idle (read at start-up).",
                       dict(read_only=True, integer_range=[IntegerRange(from_value=1, to_value=64, step=1)])),
    "realtime_priority": (0, "SCHED_FIFO priority (1-99) of the stream worker and query threads; 0 = the normal "
                             "scheduler. Needs CAP_SYS_NICE or root; a clear warning when not permitted.",
                          dict(integer_range=[IntegerRange(from_value=0, to_value=99, step=1)])),
    "cpu_affinity": ("", "CPUs for the stream worker and query threads, e.g. '1' or '0,1' (empty = any).", {}),
    "diagnostics_window": (10.0, "Seconds: /diagnostics reports WARN while a problem (rejected image, missed "
                                 "deadline, failed query, rejected goal) happened within this window.",
                           dict(floating_point_range=[FloatingPointRange(from_value=1.0, to_value=3600.0,
                                                                         step=0.0)])),
    "budget_from_send_time": (True, "true: a service query's budget counts from when the client sent it (the request's "
                                    "DDS source timestamp; same host or synchronised clocks); false: from the node's "
                                    "receipt.", {}),
    "stream_yields_to_queries": (True, "true: the image stream pauses between chunks while a query with a budget "
                                       "runs (deadline queries first; images still arrive, the newest waits).", {}),
}


def to_duration(seconds: float) -> Duration:
    ns = max(0, int(round(seconds * 1e9)))
    return Duration(sec=ns // 1_000_000_000, nanosec=ns % 1_000_000_000)


def from_duration(d: Duration) -> float:
    return d.sec + d.nanosec * 1e-9


class _Classifier:
    """The node's behaviour, shared by the plain node and the lifecycle node. Phases: ``_declare`` (parameters,
    counters), ``_configure`` (load and warm the model, the stream processor, the query threads),
    ``_activate`` (topics, service, action, diagnostics, the stream worker), ``_deactivate`` (the reverse)
    and ``_cleanup`` (release the model)."""

    def _declare(self) -> None:
        for name, (default, text, extra) in PARAMS.items():
            self.declare_parameter(name, default, ParameterDescriptor(description=text, **extra))
        self.model: ModelRuntime | None = None
        self._pending_model: ModelRuntime | None = None  # validated in the set-parameters callback, applied after
        self._no_deadline_queries = threading.Event()  # set while no query with a budget runs
        self._no_deadline_queries.set()
        self._deadline_queries = 0
        self.stream_group = MutuallyExclusiveCallbackGroup()
        self.service_group = ReentrantCallbackGroup()
        self.action_group = ReentrantCallbackGroup()
        self.counters = {"rejected": 0, "queries": 0, "queries_missed_deadline": 0, "queries_failed": 0,
                         "queries_infeasible": 0, "queries_busy": 0, "goals_rejected": 0, "model_load_failures": 0}
        self._model_error = ""  # the last failed model (re)load; cleared by a successful one
        self.rejected_by_reason: dict[str, int] = {}
        self._latest: tuple | None = None  # (network input, header, model, frame seq) of the last accepted frame
        self._last_estimate: Estimate | None = None  # the stream's last published estimate
        self._lock = threading.Lock()
        self._transit: collections.deque = collections.deque(maxlen=256)  # request sent -> executor took it, s
        # per thread: the ThreadScheduling applied to it, the last query's overshoot
        self._thread_state = threading.local()
        self._running = False
        self._queries_in_flight = 0
        self._active: list = []  # what _activate created, for _deactivate
        self.add_on_set_parameters_callback(self._validate_parameters)
        self.add_post_set_parameters_callback(self._apply_parameters)

    def _configure(self) -> None:
        """Load and warm the model; raises (BundleError, FileNotFoundError, SettingsError) when it cannot."""
        values = {name: self.get_parameter(name).value for name in PARAMS}
        self.max_concurrent_queries = int(values["max_concurrent_queries"])
        self.engine_threads = int(values["engine_threads"])
        self.model = self._load_model(values["model"])
        self.settings = self._pending_settings = self._settings(values, self.model)
        self.deadline_margin = float(values["deadline_margin"])
        self.delivery = DeliveryModel(probability=float(values["deadline_probability"]))
        self.scheduling = ThreadScheduling.parse(values["realtime_priority"], values["cpu_affinity"])
        self.budget_from_send_time = bool(values["budget_from_send_time"])
        self.stream_yields_to_queries = bool(values["stream_yields_to_queries"])
        self.diagnostics_window = float(values["diagnostics_window"])
        self.processor = StreamProcessor(self.model.new_engine(), self.model.readout, self.settings, self._publish)
        # service queries and action goals run on these threads; a service's worker sends its own answer
        self.query_pool = concurrent.futures.ThreadPoolExecutor(self.max_concurrent_queries + SPARE_WORKERS,
                                                                thread_name_prefix="snn-query")
        self.get_logger().info(
            f"model {self.model.path} ({self.model.bundle.num_classes} classes, "
            f"input {self.model.bundle.input.shape}); "
            f"{self.settings.timesteps} timesteps, publish_every {self.settings.publish_every}, "
            f"policy {self.settings.frame_policy}")

    def _activate(self) -> None:
        # QoS defaults below; a launch file or YAML may override them per topic with the standard
        # qos_overrides.<topic>.<publisher|subscription>.<policy> parameters
        overridable = QoSOverridingOptions([QoSPolicyKind.HISTORY, QoSPolicyKind.DEPTH, QoSPolicyKind.RELIABILITY,
                                            QoSPolicyKind.DURABILITY])
        self.pub = self.create_publisher(
            AnytimeClassification, "classification",
            QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST),
            qos_overriding_options=overridable)
        self.diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        # latched: a subscriber that comes later still gets the labels and identity of the current model
        self.info_pub = self.create_publisher(
            ModelInfo, "model_info", QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                                                durability=DurabilityPolicy.TRANSIENT_LOCAL))
        self._publish_model_info()
        self.sub = self.create_subscription(Image, "image", self._on_image, qos_profile_sensor_data,
                                            qos_overriding_options=overridable,
                                            callback_group=self.stream_group)
        self.srv = self.create_service(ClassifyWithDeadline, "classify_with_deadline", self._on_service,
                                       callback_group=self.service_group)
        # budgets count from the client's send time and each answer's delivery is measured (see executor.py)
        serve_on_workers(self.srv, self.query_pool.submit, on_delivered=self._on_delivered)
        self.action = ActionServer(self, ClassifyAnytime, "classify_anytime", execute_callback=self._on_action,
                                   goal_callback=self._on_goal,
                                   cancel_callback=lambda _goal: CancelResponse.ACCEPT,
                                   callback_group=self.action_group,
                                   # a chunk sends a burst of per-step feedback: keep it all
                                   feedback_pub_qos_profile=QoSProfile(depth=FEEDBACK_DEPTH))
        self._diag_last = (time.monotonic(), self.processor.stats.steps, self.processor.stats.step_seconds)
        self._diag_history: collections.deque = collections.deque()  # (time, counters) of past diagnostics
        self.diag_timer = self.create_timer(1.0, self._publish_diagnostics, callback_group=self.stream_group)
        self._active = [self.pub, self.diag_pub, self.info_pub, self.sub, self.srv, self.action, self.diag_timer]
        self._running = True
        self._worker = threading.Thread(target=self._work, name="snn-stream", daemon=True)
        self._worker.start()
        self.apply_process_scheduling()

    def _deactivate(self, wait: float = 2.0) -> None:
        """Stop the stream worker and the queries (they end at their next chunk and still answer, stop reason
        'shutdown'), then remove topics, service and action."""
        self.stop()
        t_end = time.monotonic() + wait
        while self.queries_in_flight and time.monotonic() < t_end:
            time.sleep(0.01)
        for entity in self._active:
            if entity is self.action:
                entity.destroy()
            elif entity is self.diag_timer:
                self.destroy_timer(entity)
            elif entity is self.sub:
                self.destroy_subscription(entity)
            elif entity is self.srv:
                self.destroy_service(entity)
            else:
                self.destroy_publisher(entity)
        self._active = []

    def _cleanup(self) -> None:
        """Release the model, its engines and the query threads."""
        self.query_pool.shutdown(wait=False, cancel_futures=True)
        self.model = self._pending_model = None
        self._latest = self._last_estimate = None

    # ------------------------------------------------------------------ parameters
    def _load_model(self, value: str) -> ModelRuntime:
        return ModelRuntime(str(resolve_model(value)), self.max_concurrent_queries, self.engine_threads)

    @staticmethod
    def _settings(values: dict, model: ModelRuntime) -> StreamSettings:
        return StreamSettings(
            timesteps=values["timesteps"] or model.bundle.timesteps,
            publish_every=values["publish_every"],
            timestep_period=float(values["timestep_period"]),
            min_confidence=float(values["min_confidence"]),
            max_synaptic_events=values["max_synaptic_events"],
            frame_policy=values["frame_policy"],
            reset_between_frames=values["reset_between_frames"],
        )

    def _validate_parameters(self, params: list[Parameter]) -> SetParametersResult:
        if self.model is None:  # not configured (lifecycle): the values are checked when it configures
            return SetParametersResult(successful=True)
        values = {name: self.get_parameter(name).value for name in PARAMS}
        for p in params:
            if p.name in PARAMS:
                values[p.name] = p.value
        model = self.model
        loading = False
        try:
            if any(p.name == "model" for p in params):
                loading = True
                model = self._pending_model = self._load_model(values["model"])
                loading = False
            self._pending_settings = self._settings(values, model)
            DeliveryModel(probability=float(values["deadline_probability"]))
            ThreadScheduling.parse(values["realtime_priority"], values["cpu_affinity"])
        except (SettingsError, BundleError, OSError, ValueError, TypeError) as e:
            self._pending_model = None
            if loading:  # the model failed to load: the loaded one stays, diagnostics say so
                with self._lock:
                    self.counters["model_load_failures"] += 1
                    self._model_error = f"{values['model']}: {e}"
            self.get_logger().warning(f"rejected parameter change: {e}")
            return SetParametersResult(successful=False, reason=str(e))
        return SetParametersResult(successful=True)

    def _apply_parameters(self, params: list[Parameter]) -> None:
        if self.model is None:
            return
        model, self._pending_model = self._pending_model, None
        if model is not None and any(p.name == "model" for p in params):
            self.model = model
            with self._lock:
                self._latest = None
                self._model_error = ""
            self.processor.replace_engine(model.new_engine(), model.readout)
            if self._active:
                self._publish_model_info()
            self.get_logger().info(f"loaded model {model.path}")
        self.settings = self._pending_settings
        self.deadline_margin = float(self.get_parameter("deadline_margin").value)
        self.budget_from_send_time = bool(self.get_parameter("budget_from_send_time").value)
        self.stream_yields_to_queries = bool(self.get_parameter("stream_yields_to_queries").value)
        for p in params:
            if p.name == "deadline_probability":
                self.delivery.set_probability(float(p.value))
            elif p.name in ("realtime_priority", "cpu_affinity"):
                values = {n: self.get_parameter(n).value for n in ("realtime_priority", "cpu_affinity")}
                values[p.name] = p.value
                self.scheduling = ThreadScheduling.parse(values["realtime_priority"], values["cpu_affinity"])
                self.apply_process_scheduling()
            if p.name == "deadline_margin":
                self.deadline_margin = float(p.value)
            elif p.name == "diagnostics_window":
                self.diagnostics_window = float(p.value)
            elif p.name == "budget_from_send_time":
                self.budget_from_send_time = bool(p.value)
            elif p.name == "stream_yields_to_queries":
                self.stream_yields_to_queries = bool(p.value)
        self.processor.update(self.settings)

    # ------------------------------------------------------------------ stream
    def _publish_model_info(self) -> None:
        m = self.model
        layout = m.adapter.layout
        msg = ModelInfo(model_id=m.model_id, location=m.path, labels=list(m.bundle.labels),
                        input_height=layout.height, input_width=layout.width, input_channels=layout.channels,
                        timesteps=int(m.bundle.timesteps))
        msg.header.stamp = self.get_clock().now().to_msg()
        self.info_pub.publish(msg)

    def _on_image(self, msg: Image) -> None:
        t_received = time.monotonic()
        model = self.model
        try:
            x = model.adapter.convert(msg.height, msg.width, msg.encoding, bool(msg.is_bigendian), msg.step, msg.data)
        except ImageRejected as e:
            self._reject(e)
            return
        with self._lock:
            seq = self.processor.submit(x, meta=msg.header, t_received=t_received)
            self._latest = (x, msg.header, model, seq)

    def _reject(self, e: ImageRejected) -> None:
        with self._lock:
            self.counters["rejected"] += 1
            self.rejected_by_reason[e.reason] = self.rejected_by_reason.get(e.reason, 0) + 1
        self.get_logger().warning(f"rejected image ({e.reason}): {e}", throttle_duration_sec=5.0)

    def _work(self) -> None:
        proc = self.processor
        while self._running:
            self._apply_scheduling()
            try:
                proc.wait_for_work(0.1)
                while self._running:
                    if self.stream_yields_to_queries and not self._no_deadline_queries.is_set():
                        self._no_deadline_queries.wait(0.05)  # a deadline query runs: leave it the CPU
                        continue
                    if not proc.work():
                        break
            except Exception as e:  # never let a bad frame kill the stream
                self.get_logger().error(f"stream worker: {type(e).__name__}: {e}", throttle_duration_sec=5.0)
                time.sleep(0.01)

    @staticmethod
    def _message(est: Estimate) -> AnytimeClassification:
        msg = AnytimeClassification()
        if est.meta is not None:
            msg.header = est.meta
        msg.model_id = est.model_id
        msg.frame_seq = est.frame_seq
        msg.timestep = est.timestep
        msg.total_timesteps = est.total_timesteps
        msg.scores = array.array("f", est.scores.tobytes())
        msg.top_class = est.top_class
        msg.top_label = est.label
        msg.confidence = est.confidence
        msg.synaptic_events = est.synaptic_events
        msg.elapsed = to_duration(est.elapsed)
        msg.final = est.final
        msg.stop_reason = stop_reasons.code(est.stop_reason)
        return msg

    def _publish(self, est: Estimate) -> None:
        self._last_estimate = est
        self.pub.publish(self._message(est))

    def apply_process_scheduling(self) -> None:
        """The configured priority / CPUs for every thread of the process (logged when not permitted)."""
        if self.scheduling == ThreadScheduling() and not getattr(self, "_process_scheduled", False):
            return  # nothing asked and nothing to undo
        self._process_scheduled = True
        for problem in self.scheduling.apply_to_process():
            self.get_logger().warning(problem)
        if self.scheduling.priority:
            self.get_logger().info(f"all threads: SCHED_FIFO priority {self.scheduling.priority}")

    def _apply_scheduling(self) -> None:
        """Give the calling thread the configured real-time priority / CPUs (once per change)."""
        sched = self.scheduling
        if getattr(self._thread_state, "value", None) is sched:
            return
        self._thread_state.value = sched
        for problem in sched.apply():
            self.get_logger().warning(f"{threading.current_thread().name}: {problem}")

    def _on_delivered(self, transit: float | None, send: float) -> None:
        """After a service answer went out (called on the thread that computed it, see send_time.py)."""
        if transit is not None:
            with self._lock:
                self._transit.append(transit)
        self.delivery.observe(transit, send, getattr(self._thread_state, "overshoot", 0.0))

    # ------------------------------------------------------------------ queries
    def _deadline(self, stamp) -> float:
        """The monotonic time of an absolute deadline (a builtin_interfaces/Time on the node's ROS clock);
        inf for zero (none)."""
        if not (stamp.sec or stamp.nanosec):
            return math.inf
        left = (stamp.sec * 1_000_000_000 + stamp.nanosec - self.get_clock().now().nanoseconds) * 1e-9
        if left > 3600.0:
            raise SettingsError(f"deadline is {left:.0f} s ahead (more than 3600 s: are the clocks synchronised?)")
        return time.monotonic() + left

    def _prepare(self, req, t_received: float) -> _Request:
        """Validate a service request or action goal and convert its image; RequestError says what is wrong."""
        model = self.model
        try:
            budget = from_duration(req.budget)
            stop = StopConditions(max_timesteps=int(req.max_timesteps) or self.settings.timesteps,
                                  min_confidence=float(req.min_confidence),
                                  max_synaptic_events=int(req.max_synaptic_events), budget=budget)
            deadline = min(self._deadline(req.deadline), t_received + budget if budget > 0 else math.inf)
        except SettingsError as e:
            raise RequestError(f"invalid request: {e}") from None
        fallback = None
        if req.use_latest_frame:
            with self._lock:
                latest, last = self._latest, self._last_estimate
            if latest is None or latest[2] is not model:
                raise RequestError("use_latest_frame: no frame was received on the image topic (for this model)")
            x, header = latest[0], latest[1]
            if last is not None and last.frame_seq == latest[3]:
                fallback = replace(last, frame_seq=0, final=False)  # the stream's estimate of this very frame
        else:
            try:
                x = model.adapter.convert(req.image.height, req.image.width, req.image.encoding,
                                          bool(req.image.is_bigendian), req.image.step, req.image.data)
            except ImageRejected as e:
                self._reject(e)
                raise RequestError(f"rejected image ({e.reason}): {e}") from None
            header = req.image.header
        return _Request(model, x, header, stop, deadline, fallback)

    def _error(self, error: str, t_received: float, counter: str = "queries_failed"):
        """The answer to a request that cannot run: the prior, stop reason ERROR (or BUSY), the error text."""
        with self._lock:
            self.counters[counter] += 1
        est = self.model.readout.prior(0, time.monotonic() - t_received)
        est.final = True
        est.stop_reason = stop_reasons.BUSY if counter == "queries_busy" else stop_reasons.ERROR
        return self._message(est), False, error

    def _run_query(self, req, t_received: float, on_estimate=None, feedback_every: int = 1, should_cancel=None):
        """Shared by the service and the action: returns (AnytimeClassification, deadline_met, error text)."""
        self._apply_scheduling()
        try:
            r = self._prepare(req, t_received)
        except RequestError as e:
            return self._error(str(e), t_received)
        model, deadline = r.model, r.deadline
        # an engine: wait while one step could still fit before the deadline, else (no deadline) not at all
        engine = model.acquire(until=deadline - self.delivery.reserve() - self.deadline_margin - model.step_time
                               if deadline != math.inf else 0.0)
        if engine is None:
            if deadline == math.inf:
                return self._error(f"busy: {model.max_engines} queries are running (max_concurrent_queries)",
                                   t_received, "queries_busy")
            return self._finish_query(answer_now(model.readout, r.stop, t_received=t_received, deadline=deadline,
                                                 delivery=self.delivery, fallback=r.fallback, meta=r.header))
        slack = deadline - self.delivery.reserve() - self.deadline_margin - time.monotonic()
        with self._lock:
            self._queries_in_flight += 1
            if deadline != math.inf:
                self._deadline_queries += 1
                self._no_deadline_queries.clear()
        try:
            query = Query(engine, model.readout, r.stop, t_received=t_received, meta=r.header,
                          margin=self.deadline_margin, step_time_hint=model.step_time, deadline=deadline,
                          delivery=self.delivery, fallback=r.fallback)
            # a long query ends at shutdown too
            out = query.run(r.x, on_estimate=on_estimate, feedback_every=feedback_every,
                            should_cancel=lambda: (should_cancel is not None and should_cancel()) or not self.alive())
        finally:
            model.release(engine)
            with self._lock:
                self._queries_in_flight -= 1
                if deadline != math.inf:
                    self._deadline_queries -= 1
                    if self._deadline_queries == 0:
                        self._no_deadline_queries.set()
        if out.steps:
            model.step_time = 0.5 * model.step_time + 0.5 * query.step_time
        elif out.stop_reason == INFEASIBLE and slack > 0:
            # infeasible only because of the step-time estimate: let an estimate that a slow moment inflated
            # recover (a step that runs measures the real cost again)
            model.step_time *= 0.7
        if out.stop_reason == CANCELED and not self._running:
            out.stop_reason = out.estimate.stop_reason = stop_reasons.SHUTDOWN
        return self._finish_query(out)

    def _finish_query(self, out):
        self._thread_state.overshoot = out.overshoot  # per thread: read by _on_delivered after the answer is sent
        with self._lock:
            self.counters["queries"] += 1
            if not out.deadline_met:
                self.counters["queries_missed_deadline"] += 1
            if out.stop_reason == INFEASIBLE:
                self.counters["queries_infeasible"] += 1
        return self._message(out.estimate), out.deadline_met, ""

    def _on_service(self, request, response, sent_at: float | None = None):
        """``sent_at``: when the client sent the request (monotonic; from :class:`QueryExecutor`); the budget
        and ``elapsed`` count from it (``budget_from_send_time``), else from now."""
        t_start = now = time.monotonic()
        if sent_at is not None and sent_at <= now and self.budget_from_send_time:
            t_start = sent_at
        response.result, response.deadline_met, response.error = self._run_query(request, t_start)
        return response

    def _on_goal(self, goal) -> GoalResponse:
        """Reject invalid goals up front (the action protocol then reports them to the client as rejected)."""
        try:
            self._prepare(goal, time.monotonic())
        except RequestError as e:
            with self._lock:
                self.counters["goals_rejected"] += 1
            self.get_logger().warning(f"rejected goal: {e}", throttle_duration_sec=5.0)
            return GoalResponse.REJECT
        return GoalResponse.ACCEPT

    async def _on_action(self, goal_handle):
        """The goal computes on a query thread; the executor thread only waits for its result."""
        t_received = time.monotonic()
        done = Future(executor=self.executor)

        def job():
            try:
                done.set_result(self._execute_goal(goal_handle, t_received))
            except BaseException as e:  # noqa: BLE001 - handed to the awaiting executor task
                done.set_exception(e)

        try:
            self.query_pool.submit(job)
        except RuntimeError:  # the node is shutting down: no new work
            goal_handle.abort()
            est = self.model.readout.prior(0, 0.0)
            est.final, est.stop_reason = True, stop_reasons.SHUTDOWN
            return ClassifyAnytime.Result(result=self._message(est), deadline_met=False, error="shutting down")
        return await done

    def _execute_goal(self, goal_handle, t_received: float):
        fb = ClassifyAnytime.Feedback()

        def feedback(est: Estimate) -> None:
            if not self.alive():  # shutting down: the publisher is gone
                return
            fb.estimate = self._message(est)
            try:
                goal_handle.publish_feedback(fb)
            except Exception:  # rclpy raises RCLError once the context is shut down
                if self.alive():
                    raise

        goal = goal_handle.request
        msg, met, error = self._run_query(goal, t_received, on_estimate=feedback,
                                          feedback_every=goal.feedback_every,
                                          should_cancel=lambda: goal_handle.is_cancel_requested)
        result = ClassifyAnytime.Result(result=msg, deadline_met=met, error=error)
        if msg.stop_reason == AnytimeClassification.STOP_CANCELED and goal_handle.is_cancel_requested:
            goal_handle.canceled()
        elif msg.stop_reason in (AnytimeClassification.STOP_SHUTDOWN, AnytimeClassification.STOP_ERROR,
                                 AnytimeClassification.STOP_BUSY):
            goal_handle.abort()  # e.g. the model changed between acceptance and execution
        else:
            goal_handle.succeed()
        return result

    def alive(self) -> bool:
        return self._running and self.context.ok()

    # ------------------------------------------------------------------ diagnostics
    def _publish_diagnostics(self) -> None:
        st = self.processor.stats
        now = time.monotonic()
        t_last, steps_last, sec_last = self._diag_last
        self._diag_last = (now, st.steps, st.step_seconds)
        d_steps, d_sec = st.steps - steps_last, st.step_seconds - sec_last
        lat = list(st.first_latency)
        with self._lock:
            counters = dict(self.counters)
            reasons = dict(self.rejected_by_reason)
            transit = list(self._transit)
            model_error = self._model_error
        values = {
            "model": self.model.path,
            "frames_received": st.frames_received,
            "frames_processed": st.frames_completed,
            "frames_dropped": st.frames_dropped,
            "frames_preempted": st.frames_preempted,
            "frames_rejected": counters["rejected"],
            "step_rate_hz": f"{d_steps / d_sec:.0f}" if d_sec > 0 else "0",  # engine time, last period
            "steps_total": st.steps,
            "step_seconds_total": f"{st.step_seconds:.6f}",
            "steps_per_wall_second": f"{d_steps / max(now - t_last, 1e-9):.0f}",
            "first_estimate_latency_ms_median": f"{statistics.median(lat) * 1e3:.3f}" if lat else "nan",
            "estimates_published": st.published,
            "queries_served": counters["queries"],
            "queries_missed_deadline": counters["queries_missed_deadline"],
            "queries_failed": counters["queries_failed"],
            "model_load_failures": counters["model_load_failures"],
            "model_last_error": model_error,  # empty unless the last (re)load failed (the old model is in use)
            # request sent (client) -> service callback start, last 256 queries: time the budget already lost
            "query_transit_ms_median": f"{statistics.median(transit) * 1e3:.3f}" if transit else "nan",
            "query_transit_ms_max": f"{max(transit) * 1e3:.3f}" if transit else "nan",
            "queries_infeasible": counters["queries_infeasible"],
            "queries_busy": counters["queries_busy"],
            "goals_rejected": counters["goals_rejected"],
            "model_id": self.model.model_id,
            # the answer-delivery model: what a query keeps free before its deadline, and the smallest
            # budget (from the client's send) in which one timestep still fits
            "answer_delivery_ms_expected": f"{self.delivery.expected() * 1e3:.3f}",
            f"answer_delivery_ms_p{self.delivery.probability * 100:g}": f"{self.delivery.reserve() * 1e3:.3f}",
            "smallest_feasible_budget_ms": f"{self._smallest_feasible_budget() * 1e3:.3f}",
        }
        values.update({f"rejected_{k}": v for k, v in sorted(reasons.items())})
        status = DiagnosticStatus(
            level=DiagnosticStatus.OK, name=f"{self.get_fully_qualified_name()}: anytime classifier",
            message=f"{st.frames_completed} frames, {counters['rejected']} rejected", hardware_id="cpu",
            values=[KeyValue(key=k, value=str(v)) for k, v in values.items()])
        # the level says how things are now: WARN while something went wrong within diagnostics_window
        # seconds (the counters above stay cumulative)
        recent = self._recent_problems(now, counters)
        if recent or model_error:
            status.level = DiagnosticStatus.WARN
            if recent:
                status.message += "; in the last {:g} s: {}".format(
                    self.diagnostics_window, ", ".join(f"{v} {k.replace('_', ' ')}" for k, v in recent.items()))
        if model_error:
            status.message += f"; model reload failed, still using {self.model.path}"
        arr = DiagnosticArray(status=[status])
        arr.header.stamp = self.get_clock().now().to_msg()
        self.diag_pub.publish(arr)

    WARN_COUNTERS = ("rejected", "queries_missed_deadline", "queries_failed", "goals_rejected")

    def _recent_problems(self, now: float, counters: dict) -> dict:
        """How much each problem counter grew within the last ``diagnostics_window`` seconds (non-zero only)."""
        hist = self._diag_history
        hist.append((now, {k: counters[k] for k in self.WARN_COUNTERS}))
        while len(hist) > 1 and hist[1][0] <= now - self.diagnostics_window:
            hist.popleft()  # hist[0] is the newest snapshot at least a window old (or the oldest there is)
        base = hist[0][1] if hist[0][0] <= now - self.diagnostics_window else {}  # younger node: since start
        return {k: counters[k] - base.get(k, 0) for k in self.WARN_COUNTERS if counters[k] - base.get(k, 0) > 0}

    def _smallest_feasible_budget(self) -> float:
        """Budget (counted from the client's send) that still leaves time for one timestep: request transit,
        one step, the delivery reserve and the margin."""
        with self._lock:
            transit = statistics.median(self._transit) if self._transit else self.delivery.prior_transit
        return transit + self.model.step_time + self.delivery.reserve() + self.deadline_margin

    def stop(self) -> None:
        """Stop the stream worker; running queries end at their next chunk (stop reason 'shutdown')."""
        if not self._running:
            return
        self._running = False
        self.processor._wake.set()
        self._worker.join(timeout=2.0)

    @property
    def queries_in_flight(self) -> int:
        with self._lock:
            return self._queries_in_flight

    def close(self) -> None:
        """Deactivate and clean up, whatever state the node is in (at exit)."""
        if self._active:
            self._deactivate(wait=0.0)
        if self.model is not None:
            self._cleanup()


class AnytimeClassifierNode(_Classifier, Node):
    """The plain node: configured and active from construction (raises when the model cannot load)."""

    def __init__(self, **kwargs):
        Node.__init__(self, "anytime_classifier", **kwargs)
        self._declare()
        self._configure()
        self._activate()


class LifecycleAnytimeClassifierNode(_Classifier, LifecycleNode):
    """The managed node (``anytime_classifier_lifecycle``): configure loads and warms the model, activate opens
    the topics, service and action, deactivate closes them, cleanup releases the model."""

    def __init__(self, **kwargs):
        LifecycleNode.__init__(self, "anytime_classifier", **kwargs)
        self._declare()

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            self._configure()
        except (BundleError, FileNotFoundError, SettingsError, OSError) as e:
            self.get_logger().error(f"configure failed: {e}")
            self.model = None
            return TransitionCallbackReturn.FAILURE
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._activate()
        return TransitionCallbackReturn.SUCCESS

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._deactivate()
        return TransitionCallbackReturn.SUCCESS

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._cleanup()
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.close()
        return TransitionCallbackReturn.SUCCESS


def main(argv: list[str] | None = None, lifecycle: bool = False) -> int:
    # The stream worker, queries and the executor share the GIL: switch often so that a query's deadline
    # check is not held up for the default 5 ms by another thread.
    sys.setswitchinterval(0.0005)
    # Our own SIGTERM/SIGINT handling: finish in-flight queries (they stop at the next chunk and still
    # answer) while the context is valid, then shut down. rclpy's handler would invalidate the context
    # under the running callbacks.
    rclpy.init(args=argv if argv is not None else sys.argv, signal_handler_options=SignalHandlerOptions.NO)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    node = executor = None
    code = 0
    try:
        node = LifecycleAnytimeClassifierNode() if lifecycle else AnytimeClassifierNode()
        executor = make_executor(int(node.get_parameter("max_concurrent_queries").value))
        executor.add_node(node)
        # spin_once with a timeout (not spin()): the stop flag is checked at least every 0.1 s.
        while rclpy.ok() and not stop.is_set():
            executor.spin_once(timeout_sec=0.1)
        if node._running:
            node.stop()
        t_end = time.monotonic() + 2.0
        while node.queries_in_flight and time.monotonic() < t_end and rclpy.ok():
            executor.spin_once(timeout_sec=0.02)
        t_end = time.monotonic() + 0.2  # let the last replies and goal results go out
        while time.monotonic() < t_end and rclpy.ok():
            executor.spin_once(timeout_sec=0.02)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except (BundleError, FileNotFoundError, SettingsError) as e:
        print(f"anytime_classifier: error: {e}", file=sys.stderr)
        code = 1
    finally:
        if node is not None:
            if executor is not None:
                executor.shutdown(timeout_sec=2.0)
            node.close()
            node.destroy_node()
        rclpy.try_shutdown()
    return code


def main_lifecycle(argv: list[str] | None = None) -> int:
    """``anytime_classifier_lifecycle``: the same node as a managed (lifecycle) node, starting unconfigured."""
    return main(argv, lifecycle=True)


if __name__ == "__main__":
    sys.exit(main())
