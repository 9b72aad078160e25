"""The one owner of numba for the compiled engines: whether it is available and the decorators they use.

``numba`` is the module, or None when it is missing or disabled (``ANYTIME_SNN_NO_NUMBA=1``: the NumPy
paths and the TF engine remain). The decorators fix the options every compiled kernel shares: cached on
disk, releasing the GIL (the node's threads run engines in parallel), no bounds checks.

- :func:`jit`: a kernel; :func:`parallel_jit`: a kernel with ``numba.prange`` loops;
- :func:`inline`: a small function inlined into its callers at numba's IR level (the neuron update, the
  event count), so one definition serves every kernel without a call in the inner loop.
"""

from __future__ import annotations

import os

try:
    if os.environ.get("ANYTIME_SNN_NO_NUMBA"):
        raise ImportError("disabled by ANYTIME_SNN_NO_NUMBA")
    import numba
except ImportError:  # pragma: no cover - numba is a core dependency
    numba = None


def _unavailable(*_args, **_kwargs):  # pragma: no cover - only without numba
    raise RuntimeError("numba is not available (missing, or ANYTIME_SNN_NO_NUMBA is set)")


if numba is not None:
    jit = numba.njit(cache=True, nogil=True, boundscheck=False)
    parallel_jit = numba.njit(cache=True, nogil=True, boundscheck=False, parallel=True)
    inline = numba.njit(inline="always", nogil=True, boundscheck=False)
else:  # pragma: no cover - only without numba
    jit = parallel_jit = inline = _unavailable
