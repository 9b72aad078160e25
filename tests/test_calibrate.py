"""Per-timestep temperature calibration and the readout that uses it."""

import numpy as np

from anytime_snn.calibrate import expected_calibration_error, fit_calibration, fit_step
from anytime_snn.model import Calibration
from anytime_snn.sim.readout import class_scores, inverse_temperature


def sample_labels(rng, v, beta):
    z = beta * v
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    return np.array([rng.choice(p.shape[1], p=row) for row in p]), p


def test_fit_recovers_the_true_temperature_per_step():
    rng = np.random.default_rng(0)
    true = [0.5, 2.5]
    v_out, labels = [], None
    v = rng.standard_normal((4000, 5))
    # the same samples seen at two "timesteps" with different sharpness: v_t = v * t, true beta_t * t
    labels, _ = sample_labels(rng, v, 1.0)
    v_out = np.stack([v / b for b in true])  # softmax(b * v/b) = softmax(v): true inverse temperature = b
    cal = fit_calibration(v_out, labels)
    np.testing.assert_allclose(cal.inv_temperature, true, rtol=0.1)


def test_calibrated_scores_have_low_ece_and_uncalibrated_high():
    rng = np.random.default_rng(1)
    v = rng.standard_normal((5000, 10)) * 3
    labels, p_true = sample_labels(rng, v, 0.4)  # the raw outputs are 2.5x over-confident
    beta = fit_step(v, labels)
    assert abs(beta - 0.4) < 0.05
    assert expected_calibration_error(class_scores(v, 1, Calibration(np.array([beta], np.float32))), labels) < 0.03
    assert expected_calibration_error(class_scores(v, 1, Calibration(np.array([1.0], np.float32))), labels) > 0.1


def test_no_signal_gives_flat_scores():
    rng = np.random.default_rng(2)
    v = rng.standard_normal((3000, 4))
    labels = rng.integers(0, 4, 3000)
    assert fit_step(v, labels) < 0.1
    assert fit_step(np.zeros((10, 4)), labels[:10]) == 0.0


def test_readout_defaults_and_table_lookup():
    assert inverse_temperature(np.array([1, 4]), None).tolist() == [1.0, 0.25]
    cal = Calibration(np.array([3.0, 2.0], np.float32))
    assert inverse_temperature(np.array([1, 2, 9]), cal).tolist() == [3.0, 2.0, 2.0]  # past the end: last value
    s = class_scores(np.array([[1000.0, 0.0], [0.0, 0.0]], np.float32), np.array([1, 1]))
    assert np.isfinite(s).all() and np.allclose(s.sum(1), 1) and s[0, 0] > 0.99 and s[1, 0] == 0.5
