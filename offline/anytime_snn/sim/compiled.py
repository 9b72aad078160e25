"""The one owner of numba for the compiled engines: whether it is available and the decorators they use.

``numba`` is the module, or None when it is missing or disabled (``ANYTIME_SNN_NO_NUMBA=1``: the NumPy
paths and the TF engine remain). The decorators fix the options every compiled kernel shares: cached on
disk, releasing the GIL (the node's threads run engines in parallel), no bounds checks.

- :func:`jit`: a kernel; :func:`parallel_jit`: a kernel with ``numba.prange`` loops;
- :func:`inline`: a small function inlined into its callers at numba's IR level (the neuron update, the
  event count), so one definition serves every kernel without a call in the inner loop;
- :func:`aligned_empty` (and :func:`aligned_floats` inside kernels): buffers on cache-line boundaries, so
  that a LANES-wide vector access never straddles two lines;
- :func:`load_word`: eight bytes of a bool array as one uint64 (an unaligned load), so that a kernel reads
  eight spikes at once;
- :func:`add_lanes`: ``out[o:o + LANES] += w[i:i + LANES]`` as one LLVM vector operation: a short run of
  float32 adds without the alias checks and remainder loops LLVM wraps around a loop of unknown length
  (element-wise adds, so the same floats as the loop).
"""

from __future__ import annotations

import math
import os

import numpy as np

try:
    if os.environ.get("ANYTIME_SNN_NO_NUMBA"):
        raise ImportError("disabled by ANYTIME_SNN_NO_NUMBA")
    import numba
except ImportError:  # pragma: no cover - numba is a core dependency
    numba = None


LANES = 16  # float32 per add_lanes: one AVX-512 register, two AVX2 or four NEON ones
ALIGN = 64  # bytes: a cache line, and LANES float32


def aligned_empty(shape, dtype=np.float32) -> np.ndarray:
    """An uninitialised C-order array whose data starts on an :data:`ALIGN`-byte boundary. NumPy aligns
    to 16 bytes (numba to 32), so a LANES-wide (64-byte) vector access straddled two cache lines
    (measured: docs/performance.md, ``bench_conv`` against 192fb3d)."""
    shape = (shape,) if isinstance(shape, int) else tuple(shape)
    dtype = np.dtype(dtype)
    n = math.prod(shape)
    raw = np.empty(n * dtype.itemsize + ALIGN, np.uint8)
    start = -raw.ctypes.data % ALIGN
    return raw[start:start + n * dtype.itemsize].view(dtype).reshape(shape)


def aligned(a, dtype=np.float32) -> np.ndarray:
    """An :data:`ALIGN`-byte aligned C-order copy of ``a`` as ``dtype`` (see :func:`aligned_empty`)."""
    a = np.asarray(a, dtype)
    out = aligned_empty(a.shape, dtype)
    out[...] = a
    return out


def aligned_zeros(shape, dtype=np.float32) -> np.ndarray:
    out = aligned_empty(shape, dtype)
    out.fill(0)
    return out


def _unavailable(*_args, **_kwargs):  # pragma: no cover - only without numba
    raise RuntimeError("numba is not available (missing, or ANYTIME_SNN_NO_NUMBA is set)")


if numba is not None:
    jit = numba.njit(cache=True, nogil=True, boundscheck=False)
    parallel_jit = numba.njit(cache=True, nogil=True, boundscheck=False, parallel=True)
    inline = numba.njit(inline="always", nogil=True, boundscheck=False)

    from llvmlite import ir
    from numba.extending import intrinsic

    @inline
    def aligned_floats(n):  # pragma: no cover - compiled
        """A compiled kernel's :func:`aligned_empty` for n float32 (numba aligns its arrays to 32 bytes)."""
        raw = np.empty(n + ALIGN // 4, np.float32)
        start = (-raw.ctypes.data % ALIGN) // 4
        return raw[start:start + n]

    @intrinsic
    def load_word(typingctx, array, index):
        """The bytes ``array[index:index + 8]`` of a 1-d bool/uint8 array as one little-endian uint64 (the
        caller keeps them in bounds)."""
        if not (isinstance(array, numba.types.Array) and array.dtype in (numba.types.boolean, numba.types.uint8)):
            return None

        def codegen(context, builder, signature, args):
            data = context.make_array(signature.args[0])(context, builder, args[0]).data
            pointer = builder.bitcast(builder.gep(data, [args[1]]), ir.IntType(64).as_pointer())
            return builder.load(pointer, align=1)
        return numba.types.uint64(array, index), codegen

    @intrinsic
    def add_lanes(typingctx, out, o, w, i):
        """``out[o:o + LANES] += w[i:i + LANES]`` (1-d float32 arrays; the caller keeps both in bounds)."""
        f32 = numba.types.float32
        if not (isinstance(out, numba.types.Array) and isinstance(w, numba.types.Array)
                and out.dtype == f32 and w.dtype == f32):
            return None

        def codegen(context, builder, signature, args):
            vector = ir.VectorType(ir.FloatType(), LANES).as_pointer()

            def pointer(array_type, array, index):
                data = context.make_array(array_type)(context, builder, array).data
                return builder.bitcast(builder.gep(data, [index]), vector)
            target = pointer(signature.args[0], args[0], args[1])
            source = pointer(signature.args[2], args[2], args[3])
            builder.store(builder.fadd(builder.load(target, align=4), builder.load(source, align=4)), target, align=4)
            return context.get_dummy_value()
        return numba.types.void(out, o, w, i), codegen
else:  # pragma: no cover - only without numba
    jit = parallel_jit = inline = load_word = add_lanes = aligned_floats = _unavailable
