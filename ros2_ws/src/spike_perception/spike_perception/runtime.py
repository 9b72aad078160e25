"""A loaded model ready to run: the node's ROS-free runtime for one bundle (engines, readout, input)."""

from __future__ import annotations

import threading
import time

import numpy as np

from anytime_snn.model import load_bundle
from anytime_snn.sim.streaming import StreamingEngine

from .core import Readout, model_identity
from .image_convert import InputAdapter

MAX_CHUNK = 64  # steps per engine call: the granularity at which queries check deadlines and cancels


class ModelRuntime:
    """Everything derived from one loaded bundle: input adapter, readout (labels, identity, calibration),
    and a pool of warmed-up streaming engines for queries with a step-time estimate. ``threads``: numba
    threads per engine in event-driven convolutions (:class:`StreamingEngine`)."""

    def __init__(self, path: str, max_engines: int = 4, threads: int = 1):
        self.path, self.threads = path, threads
        self.bundle = load_bundle(path)
        self.adapter = InputAdapter.for_bundle(self.bundle)
        self.model_id = model_identity(path)
        self.readout = Readout(self.bundle, self.model_id)
        self._cv = threading.Condition()
        # One query engine ready before the first request (allocation and any JIT compilation happen now,
        # not inside a deadline).
        self._free: list[StreamingEngine] = [self.new_engine()]
        self._count = 1
        self.max_engines = max_engines

    def new_engine(self) -> StreamingEngine:
        engine = StreamingEngine(self.bundle, max_chunk=MAX_CHUNK, threads=self.threads)
        x = np.full(self.bundle.input.shape, 0.5, np.float32)
        engine.reset(x)
        engine.advance(2)  # warm-up: first-call costs (kernels, caches) are paid here
        if not hasattr(self, "step_time"):  # a first step-time estimate for deadline queries (refined by each)
            runs = []
            for _ in range(3):  # the fastest of three: a run the OS interrupted must not set it
                engine.reset(x)
                t0 = time.monotonic()
                engine.advance(8)
                runs.append((time.monotonic() - t0) / 8)
            self.step_time = min(runs)
        return engine

    def acquire(self, until: float = 0.0) -> StreamingEngine | None:
        """A free engine (a new one while fewer than ``max_engines`` exist), waiting for one until the
        monotonic time ``until``; None if none became free."""
        with self._cv:
            while not self._free and self._count >= self.max_engines:
                left = until - time.monotonic()
                if left <= 0:
                    return None
                self._cv.wait(left)
            if self._free:
                return self._free.pop()
            self._count += 1
        return self.new_engine()

    def release(self, engine: StreamingEngine) -> None:
        with self._cv:
            self._free.append(engine)
            self._cv.notify()
