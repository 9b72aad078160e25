"""The NL-IAF neuron update (paper eq. 1-3) and the output layer's readout for the compiled engines: one
definition each, inlined into every kernel that integrates neurons or reads out predictions (the batched
engine, the streaming engine's numba kernels, the incremental simulator). The NumPy reference (the
oracle), the streaming engine's NumPy fallback and the TF engine keep their own, independent, formulations.

    V_t = V_{t-1} + I_t;  spike if V_t >= threshold;  after a spike V -= threshold ("subtract") or V = 0
    during a refractory step the neuron ignores its input and cannot spike.
"""

from __future__ import annotations


import numpy as np

from .compiled import inline, numba

if numba is not None:

    @inline
    def fire(v, theta, sub):  # pragma: no cover - compiled
        """Threshold and reset of a potential that already includes this step's input: (V, spiked).
        Without branches (selects), so a loop over neurons that calls it vectorizes."""
        s = v >= theta
        return ((v - theta if sub else np.float32(0.0)) if s else v), s

    @inline
    def step(v, refractory, current, theta, sub, refractory_steps):  # pragma: no cover - compiled
        """One step of one neuron with a refractory period: (V, refractory steps left, spiked)."""
        if refractory > 0:
            return v, refractory - 1, False
        v, s = fire(v + current, theta, sub)
        return v, (refractory_steps if s else 0), s

    @inline
    def prediction(v):  # pragma: no cover - compiled
        """argmax of the accumulated output potentials ``v``; ties go to the lowest class index (the rule
        of ``readout.predictions``, NumPy's argmax)."""
        best = 0
        for c in range(1, v.shape[0]):
            if v[c] > v[best]:
                best = c
        return best
