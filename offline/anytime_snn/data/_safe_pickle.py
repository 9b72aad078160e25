"""Load the numeric pickles that MNIST and CIFAR are distributed as, without executing arbitrary code.

Python's pickle can call any importable function while loading. :func:`safe_loads` only lets a
pickle rebuild plain containers (dict, list, tuple, str, bytes, numbers) and NumPy arrays of
non-object dtypes: any other global, and any object dtype, raises :class:`UnsafePickleError`.
Callers should still verify a checksum where one is known.
"""

from __future__ import annotations

import io
import pickle

import numpy as np


class UnsafePickleError(pickle.UnpicklingError):
    """The pickle refers to something other than NumPy array reconstruction."""


def _dtype(*args, **kwargs):
    dt = np.dtype(*args, **kwargs)
    if dt.hasobject:
        raise UnsafePickleError(f"object dtype {dt!r} is not allowed in a data pickle")
    return dt


def _reconstruct(cls, shape, dtype_code):
    if cls is not np.ndarray:
        raise UnsafePickleError(f"only numpy.ndarray may be reconstructed, got {cls!r}")
    return np.ndarray.__new__(np.ndarray, shape, _dtype(dtype_code))


def _frombuffer(buf, dtype, shape, order):
    return np.frombuffer(buf, dtype=_dtype(dtype)).reshape(shape, order=order).copy()


def _encode(text, encoding="latin1"):
    # Python 3 writes bytes into protocol-2 pickles as _codecs.encode(str, 'latin1').
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise UnsafePickleError("only latin-1 string encoding is allowed in a data pickle")
    return text.encode("latin1")


# (module, name) -> what the pickle gets instead. The names differ between NumPy 1 and 2.
_ALLOWED = {
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): _dtype,
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy.core.numeric", "_frombuffer"): _frombuffer,
    ("numpy._core.numeric", "_frombuffer"): _frombuffer,
    ("_codecs", "encode"): _encode,
}


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise UnsafePickleError(f"refusing to load global {module}.{name} from a data pickle") from None


def safe_loads(data: bytes):
    """Unpickle ``data`` allowing only containers, numbers, strings and NumPy arrays.

    Python 2 pickles (MNIST, CIFAR) store byte strings; ``encoding='latin1'`` keeps NumPy's raw
    array buffers intact.
    """
    obj = _RestrictedUnpickler(io.BytesIO(data), encoding="latin1").load()
    _check(obj)
    return obj


def _check(obj, depth: int = 0) -> None:
    if depth > 8:
        raise UnsafePickleError("data pickle is nested too deeply")
    if isinstance(obj, np.ndarray):
        if obj.dtype.hasobject:
            raise UnsafePickleError("object arrays are not allowed in a data pickle")
    elif isinstance(obj, dict):
        for k, v in obj.items():
            _check(k, depth + 1)
            _check(v, depth + 1)
    elif isinstance(obj, (list, tuple)):
        if len(obj) < 64:  # long lists are labels or names; checking their items is cheap but pointless
            for v in obj:
                _check(v, depth + 1)
    elif not isinstance(obj, (str, bytes, int, float, bool, type(None))):
        raise UnsafePickleError(f"unexpected {type(obj).__name__} in a data pickle")
