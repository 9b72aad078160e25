"""Reading bundle files without trusting them: regular files inside the bundle directory only, size limits
checked before reading, the safetensors header checked against the file and a byte budget before any
tensor is allocated, and no format that can execute code (JSON and safetensors only, never pickle)."""

from __future__ import annotations

import math
import os
import stat
import struct
from pathlib import Path

import numpy as np
from safetensors.numpy import load as st_load

from ..errors import BundleError
from .schema import parse_json

MAX_MANIFEST_BYTES = 16 << 20
MAX_TENSOR_BYTES = 1 << 30  # 1 GiB: far above any model we ship, far below what would hurt a robot
_ST_DTYPES = {"F32": (np.float32, 4)}


def open_inside(path: Path, what: str) -> int:
    """A read-only descriptor of ``path``, which must be a regular file in its bundle directory: not a
    symbolic link out of it, nor a FIFO or device (opened non-blocking, so a FIFO cannot hang us)."""
    try:
        real = path.resolve()
    except (OSError, RuntimeError, ValueError) as e:  # a symlink loop, a NUL byte in the name
        raise BundleError(f"cannot read {what}: {e}", path=str(path)) from None
    if real.parent != path.parent.resolve():
        raise BundleError(f"{what} is a symbolic link to {real}, outside the bundle directory", path=str(path))
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as e:
        raise BundleError(f"cannot read {what}: {e.strerror or e}", path=str(path)) from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise BundleError(f"{what} is not a regular file", path=str(path))
    return fd


def read_manifest(mpath: Path) -> dict:
    with os.fdopen(open_inside(mpath, "manifest"), "rb") as f:
        size = os.fstat(f.fileno()).st_size
        if size > MAX_MANIFEST_BYTES:
            raise BundleError(f"manifest is {size} bytes, more than the {MAX_MANIFEST_BYTES} allowed",
                              path=str(mpath))
        try:
            raw = f.read(size + 1)  # size <= the limit; a larger read would preallocate it
        except OSError as e:
            raise BundleError(f"cannot read manifest: {e.strerror or e}", path=str(mpath)) from None
    try:
        manifest = parse_json(raw)
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise BundleError(f"manifest is not valid UTF-8 JSON: {e}", path=str(mpath)) from None
    if not isinstance(manifest, dict):
        raise BundleError("manifest must be a JSON object", path=str(mpath))
    return manifest


def read_tensors(tpath: Path, max_bytes: int) -> tuple[dict[str, np.ndarray], bytes]:
    """Check the safetensors header against the file and the byte budget, then load."""
    try:
        with os.fdopen(open_inside(tpath, "tensor file"), "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size > max_bytes + (16 << 20):
                raise BundleError(f"tensor file is {size} bytes, over the {max_bytes} byte limit", path=str(tpath))
            head = f.read(8)
            if len(head) < 8:
                raise BundleError("tensor file is truncated (no header)", path=str(tpath))
            (hlen,) = struct.unpack("<Q", head)
            if hlen > min(size - 8, 16 << 20):
                raise BundleError(f"tensor header claims {hlen} bytes; file has {size}", path=str(tpath))
            header = parse_json(f.read(hlen))
    except BundleError:
        raise
    except OSError as e:
        raise BundleError(f"cannot read tensor file: {e.strerror or e}", path=str(tpath)) from None
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise BundleError(f"tensor header is not valid JSON: {e}", path=str(tpath)) from None
    if not isinstance(header, dict):
        raise BundleError("tensor header must be a JSON object", path=str(tpath))
    header.pop("__metadata__", None)
    end_max, total, spans = 0, 0, []
    for key, info in header.items():
        fld = f"tensors[{key!r}]"
        if not isinstance(info, dict) or not isinstance(info.get("dtype"), str) or info["dtype"] not in _ST_DTYPES:
            raise BundleError(f"unsupported dtype {info.get('dtype') if isinstance(info, dict) else info!r}; "
                              "tensors must be float32 (F32)", path=str(tpath), field=fld)
        shp, offs = info.get("shape"), info.get("data_offsets")
        if (not isinstance(shp, list) or not all(type(d) is int and 0 <= d for d in shp)
                or not isinstance(offs, list) or len(offs) != 2 or not all(type(o) is int for o in offs)):
            raise BundleError("malformed shape or data_offsets", path=str(tpath), field=fld)
        nbytes = math.prod(shp) * _ST_DTYPES[info["dtype"]][1]
        total += nbytes
        if total > max_bytes:
            raise BundleError(f"tensors claim more than the {max_bytes} byte limit", path=str(tpath), field=fld)
        if offs[1] - offs[0] != nbytes or offs[0] < 0:
            raise BundleError(f"shape {shp} needs {nbytes} bytes, offsets give {offs[1] - offs[0]}",
                              path=str(tpath), field=fld)
        end_max = max(end_max, offs[1])
        spans.append((offs[0], offs[1], key))
    pos = 0
    for start, end, key in sorted(spans):  # the data must be tiled exactly: no overlap, no gap
        if start != pos:
            problem = "overlaps the previous tensor" if start < pos else f"leaves a gap of {start - pos} bytes"
            raise BundleError(f"tensor data at offsets {[start, end]} {problem}", path=str(tpath),
                              field=f"tensors[{key!r}]")
        pos = end
    if 8 + hlen + end_max != size:
        raise BundleError(f"tensor file size {size} does not match its header (expected {8 + hlen + end_max}); "
                          "truncated or corrupted", path=str(tpath))
    try:
        with os.fdopen(open_inside(tpath, "tensor file"), "rb") as f:
            blob = f.read(size + 1)
        if len(blob) != size:
            raise BundleError("tensor file changed while it was being loaded", path=str(tpath))
        tensors = st_load(blob)
    except BundleError:
        raise
    except OSError as e:
        raise BundleError(f"cannot read tensor file: {e.strerror or e}", path=str(tpath)) from None
    except Exception as e:  # safetensors raises its own error type for corrupt data
        raise BundleError(f"corrupted tensor file: {e}", path=str(tpath)) from None
    return {k: np.array(v, dtype=np.float32, copy=True) for k, v in tensors.items()}, blob
