"""The conv workload of issue 14, shared by the benchmarks: 28x28x1 -> 3x3/32 s1 -> 3x3/32 s2 -> 3x3/64 s1 ->
3x3/64 s2 -> dense 10, padding 1 (explicit zero_pad2d + 'valid' convolutions), random Gaussian weights
with one gain per layer fitted so that each hidden layer fires in about 10 % of (neuron, step) slots on
MNIST test images (T = 100, V0 = 0.5, subtract reset). ``padding="same"`` gives TF 'same' convolutions
instead (what engines without zero padding ran)."""

from __future__ import annotations

import numpy as np

from anytime_snn.model import Bundle, InputSpec, Layer

CONVS = ((32, 1), (32, 2), (64, 1), (64, 2))  # (channels, stride)
# Per-layer weight gains (x 1/sqrt(fan-in)) fitted with fit_gains() on the first 50 MNIST test images.
GAINS = (5.566, 1.411, 1.302, 1.526, 2.0)


def conv_workload(padding: str = "pad1", gains=GAINS, seed: int = 0) -> Bundle:
    rng = np.random.default_rng(seed)
    half = np.asarray(0.5, np.float32)
    layers, cin, size = [], 1, 28
    for i, ((cout, stride), g) in enumerate(zip(CONVS, gains)):
        w = (rng.standard_normal((3, 3, cin, cout)) * g / np.sqrt(9 * cin)).astype(np.float32)
        b = np.zeros(cout, np.float32)
        if padding == "pad1":
            layers.append(Layer(f"pad{i}", "zero_pad2d", pad=((1, 1), (1, 1))))
            layers.append(Layer(f"conv{i}", "conv2d", w, b, strides=(stride, stride), padding="valid", v0=half))
            size = (size + 2 - 3) // stride + 1
        else:
            layers.append(Layer(f"conv{i}", "conv2d", w, b, strides=(stride, stride), padding="same", v0=half))
            size = -(-size // stride)
        cin = cout
    n = size * size * cin
    w = (rng.standard_normal((n, 10)) * gains[-1] / np.sqrt(n)).astype(np.float32)
    layers += [Layer("flatten", "flatten"), Layer("out", "dense", w, np.zeros(10, np.float32), output=True)]
    return Bundle(input=InputSpec(shape=(28, 28, 1)), layers=layers, labels=[str(i) for i in range(10)])


def firing_rates(bundle: Bundle, x: np.ndarray, steps: int) -> list[float]:
    """Mean spikes per (neuron, step) of every hidden layer."""
    from anytime_snn.sim.batch_engine import BatchEngine

    eng = BatchEngine(bundle)
    res = eng.run(x, steps)
    sizes = [int(np.prod(s)) for s in eng.out_shapes[:-1]]
    return [float(res.layer_spikes[i].sum()) / (len(x) * steps * n) for i, n in enumerate(sizes)]


def fit_gains(x: np.ndarray, steps: int = 100, target: float = 0.1) -> tuple[float, ...]:
    """Bisect each hidden layer's gain in turn (log scale) until it fires at ``target``."""
    gains = list(GAINS)
    for i in range(len(CONVS)):
        lo, hi = 0.2, 10.0
        for _ in range(12):
            gains[i] = float(np.sqrt(lo * hi))
            rate = firing_rates(conv_workload(gains=gains), x, steps)[i]
            lo, hi = (gains[i], hi) if rate < target else (lo, gains[i])
        gains[i] = round(float(np.sqrt(lo * hi)), 3)
    return tuple(gains)


if __name__ == "__main__":
    from anytime_snn.convert.convert import network_input
    from anytime_snn.data import load_mnist

    images, _ = load_mnist("test")
    b = conv_workload()
    x = network_input(b, images[:50])
    g = fit_gains(x)
    print("gains", g)
    print("rates", firing_rates(conv_workload(gains=g), x, 100))
