"""The node's ROS-free core (colcon test): a query and a stream frame on a small random network, checked
against the streaming engine run directly. The project's full suite is in the repository's tests/ros."""

import numpy as np

from anytime_snn.sim.readout import class_scores
from anytime_snn.sim.streaming import StreamingEngine
from anytime_snn.testing import dense_bundle
from spike_perception.core import (BUDGET, TIMESTEPS, DeliveryModel, Query, Readout, StopConditions,
                                   StreamProcessor, StreamSettings)

BUNDLE = dense_bundle((16, 12, 4), seed=3)
X = np.random.default_rng(0).random(16).astype(np.float32)


def reference(steps):
    e = StreamingEngine(BUNDLE)
    e.reset(X)
    return e.advance(steps)


def test_query_answers_the_engines_estimate():
    out = Query(StreamingEngine(BUNDLE), Readout(BUNDLE, "m1"), StopConditions(12), t_received=0.0).run(X)
    ref = reference(12)
    assert out.stop_reason == TIMESTEPS and out.estimate.timestep == 12 and out.estimate.final
    assert out.estimate.top_class == int(np.argmax(ref.v_out[-1])) and out.estimate.model_id == "m1"
    np.testing.assert_allclose(out.estimate.scores, class_scores(ref.v_out[-1], 12), rtol=1e-6)


def test_query_with_a_deadline_stops_in_time():
    t = [0.0]

    def clock():
        return t[0]

    class Timed(StreamingEngine):
        def advance(self, k):
            t[0] += k * 1e-3  # 1 ms per step
            return super().advance(k)

    delivery = DeliveryModel(prior=0.002)
    out = Query(Timed(BUNDLE), Readout(BUNDLE), StopConditions(1000), t_received=0.0, deadline=0.010, clock=clock,
                step_time_hint=1e-3, delivery=delivery).run(X)
    assert out.stop_reason == BUDGET and out.finished <= 0.010 - 0.002 + 1e-12 and out.deadline_met


def test_stream_publishes_every_k_and_a_final():
    got = []
    proc = StreamProcessor(StreamingEngine(BUNDLE), Readout(BUNDLE), StreamSettings(timesteps=10, publish_every=4),
                           got.append)
    proc.submit(X)
    while proc.work():
        pass
    assert [(e.timestep, e.final) for e in got] == [(4, False), (8, False), (10, True)]
    assert got[-1].stop_reason == TIMESTEPS
