"""Pareto metrics against values computed by hand (paper eq. 4, 5, 11)."""

import math

import numpy as np
import pytest

from anytime_snn import metrics


def test_pareto_latency_hand_computed():
    # a_max 0.9; a = 0.5, 0.8, 0.9 -> 0.4 + 0.1 + 0 = 0.5
    assert metrics.pareto_latency([0.5, 0.8, 0.9], 0.9) == pytest.approx(0.5)


def test_pareto_power_hand_computed():
    # e = 100, 50, 10 -> 100*0.4 + 50*0.1 + 10*0 = 45
    assert metrics.pareto_power([0.5, 0.8, 0.9], [100, 50, 10], 0.9) == pytest.approx(45.0)


def test_pareto_split_hand_computed():
    # a_max 0.9; a = 0.5, 0.8, 0.7 (peak 0.8); e = 10, 20, 30
    # P_l gap 3 * 0.1 = 0.3, rise 0.3 + 0 + 0.1 = 0.4; P_p gap 60 * 0.1 = 6, rise 10*0.3 + 0 + 30*0.1 = 6
    s = metrics.pareto_split([0.5, 0.8, 0.7], [10, 20, 30], 0.9)
    assert s == pytest.approx({"peak": 0.8, "P_l_gap": 0.3, "P_l_rise": 0.4, "P_p_gap": 6.0, "P_p_rise": 6.0})
    assert s["P_l_gap"] + s["P_l_rise"] == pytest.approx(metrics.pareto_latency([0.5, 0.8, 0.7], 0.9))
    assert s["P_p_gap"] + s["P_p_rise"] == pytest.approx(metrics.pareto_power([0.5, 0.8, 0.7], [10, 20, 30], 0.9))
    with pytest.raises(ValueError):
        metrics.pareto_split([0.5, 0.8], [1.0], 0.9)


def test_accuracy_above_a_max_counts_negatively():
    # a_3 = 0.95 > a_max = 0.9: latency 0.4 + 0.1 - 0.05 = 0.45; power 40 + 5 - 0.5 = 44.5
    a, e = [0.5, 0.8, 0.95], [100, 50, 10]
    assert metrics.pareto_latency(a, 0.9) == pytest.approx(0.45)
    assert metrics.pareto_power(a, e, 0.9) == pytest.approx(44.5)
    assert metrics.min_error(a) == pytest.approx(0.05)


def test_snn_loss_combines_terms():
    a, e = [0.5, 0.8, 0.9], [100, 50, 10]
    # M_e = 0.1, P_l = 0.5, P_p = 45 -> 2*0.1 + 3*0.5 + 0.01*45 = 0.2 + 1.5 + 0.45
    assert metrics.snn_loss(a, e, 0.9, (2, 3, 0.01)) == pytest.approx(2.15)


def test_threshold_metrics():
    a, e = [0.2, 0.6, 0.85, 0.89], [10, 20, 30, 40]
    assert metrics.time_to_accuracy(a, 0.85) == 3
    assert metrics.time_to_accuracy(a, 0.95) is None
    assert metrics.events_to_accuracy(a, e, 0.6) == 30
    t = metrics.threshold_metrics(a, e, 0.9, fractions=(0.9, 0.99))
    # 0.9 * a_max = 0.81 is first reached at step 3 (0.85), after 10 + 20 + 30 events
    assert t["0.9"]["threshold"] == pytest.approx(0.81)
    assert t["0.9"]["timesteps"] == 3 and t["0.9"]["events"] == 60
    assert t["0.99"]["timesteps"] is None and t["0.99"]["events"] is None


def test_accuracy_vs_events_is_cumulative():
    cum, acc = metrics.accuracy_vs_events([0.1, 0.5], [3, 4])
    assert cum.tolist() == [3, 7] and acc.tolist() == [0.1, 0.5]


def test_summary_and_validation():
    s = metrics.summarize([0.5, 0.8, 0.9], [100, 50, 10], 0.9)
    assert s["peak_timestep"] == 3 and s["P_l"] == pytest.approx(0.5) and s["events_per_sample"] == 160
    assert math.isclose(s["M_e"], 0.1)
    with pytest.raises(ValueError):
        metrics.pareto_power([0.1, 0.2], [1], 0.5)
    with pytest.raises(ValueError):
        metrics.pareto_latency(np.zeros((2, 2)), 0.5)
