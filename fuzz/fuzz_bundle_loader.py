"""Fuzz the model-bundle loader (``anytime_snn.model.io.load_bundle``) with mutated manifests and tensor files.

Input layout (the seed corpus holds real bundles in it; see ``make_seeds.py``)::

    u8 mode         bit 0: the tensor file's 8-byte header length is computed (so that mutations of the
                    safetensors JSON header stay parseable); else the tensor bytes are taken as they are
    u32 n, n bytes  manifest.json
    rest            mode bit 0 set: u32 h, h bytes of safetensors header JSON, then the tensor data;
                    else the whole tensors.safetensors file

Property: ``load_bundle`` returns a valid bundle or raises ``BundleError``; nothing else, for any input.
A loaded bundle must simulate one step with the reference simulator.
"""

from __future__ import annotations

import atexit
import os
import shutil
import struct
import sys
import tempfile
from pathlib import Path

import numpy as np

import _common

with _common.instrumented(__name__ == "__main__", "anytime_snn"):
    from anytime_snn.errors import BundleError
    from anytime_snn.model import io as bundle_io
    from anytime_snn.sim import reference

U32 = struct.Struct("<I")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return True


def _workdir() -> Path:
    """This process's scratch bundle directory, in RAM where possible. libFuzzer ends the process
    without running atexit handlers, so directories of processes that are gone are removed here."""
    base = Path("/dev/shm") if Path("/dev/shm").is_dir() else Path(tempfile.gettempdir())
    for old in base.glob("fuzz-bundle-*"):
        pid = old.name.rsplit("-", 1)[-1]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(old, ignore_errors=True)
    work = base / f"fuzz-bundle-{os.getpid()}"
    work.mkdir(exist_ok=True)
    atexit.register(shutil.rmtree, work, ignore_errors=True)  # when the process does end normally
    return work


WORK = _workdir()


def pack(manifest: bytes, tensors: bytes, structured: bool = True) -> bytes:
    """The fuzz input for one bundle directory (used to write the seed corpus)."""
    if structured:
        (hlen,) = struct.unpack_from("<Q", tensors)
        tensors = U32.pack(hlen) + tensors[8:]
    return bytes([1 if structured else 0]) + U32.pack(len(manifest)) + manifest + tensors


def unpack(buf: bytes) -> tuple[bytes, bytes]:
    """(manifest bytes, tensor file bytes)."""
    buf = buf + b"\0" * max(0, 5 - len(buf))
    mode, (n,) = buf[0], U32.unpack_from(buf, 1)
    manifest, rest = buf[5:5 + n], buf[5 + n:]
    if mode & 1:
        rest = rest + b"\0" * max(0, 4 - len(rest))
        (h,) = U32.unpack_from(rest)
        header, data = rest[4:4 + h], rest[4 + h:]
        tensors = struct.pack("<Q", len(header)) + header + data
    else:
        tensors = rest
    return manifest, tensors


def test_one_input(buf: bytes) -> None:
    manifest, tensors = unpack(buf)
    (WORK / bundle_io.MANIFEST).write_bytes(manifest)
    (WORK / bundle_io.TENSORS).write_bytes(tensors)
    try:
        bundle = bundle_io.load_bundle(WORK)
    except BundleError as e:
        assert str(e)
        return
    x = np.zeros((1, *bundle.input.shape), np.float32)
    out = reference.simulate(bundle, x, 1)
    assert np.isfinite(out.v_out).all()


if __name__ == "__main__":
    _common.fuzz(test_one_input)
    sys.exit(0)
