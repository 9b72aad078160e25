"""Crash-safe optimizer checkpoints: a JSON state file plus an npz of parameter vectors (no pickle).

Writing is atomic: the arrays go to a new generation file ``checkpoint-<gen>.npz``, then
``checkpoint.json`` (naming that file and its sha256) replaces the previous one with ``os.replace``,
then older generations are deleted. A crash at any point leaves the previous complete checkpoint
readable. Arrays are loaded with ``allow_pickle=False`` and verified against the recorded digest.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
from pathlib import Path

import numpy as np

from ..errors import ConfigError
from ..fsutil import atomic_write

FORMAT = "anytime-snn-optimize-checkpoint"
VERSION = 1
STATE_FILE = "checkpoint.json"


def save(directory: str | os.PathLike, state: dict, arrays: dict[str, np.ndarray]) -> Path:
    """Write ``state`` (JSON-ready) and ``arrays`` as the newest checkpoint in ``directory``."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    previous = load_state(directory)
    gen = (previous or {}).get("generation", 0) + 1
    buf = io.BytesIO()
    np.savez(buf, **{k: np.asarray(v) for k, v in arrays.items()})
    data = buf.getvalue()
    name = f"checkpoint-{gen:06d}.npz"
    atomic_write(directory / name, data)
    record = {"format": FORMAT, "version": VERSION, "generation": gen, "arrays": name,
              "arrays_sha256": hashlib.sha256(data).hexdigest(), **state}
    atomic_write(directory / STATE_FILE, json.dumps(record, indent=1).encode())
    # Older generations, and temporary files left by a writer that was killed mid-write.
    stale = [*directory.glob("checkpoint-*.npz"), *directory.glob(f".{STATE_FILE}.*"), *directory.glob(".checkpoint-*")]
    for old in stale:
        if old.name != name:
            old.unlink(missing_ok=True)
    return directory / STATE_FILE


def load_state(directory: str | os.PathLike) -> dict | None:
    path = Path(directory) / STATE_FILE
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise ConfigError(f"cannot read checkpoint {path}: {e}") from e
    if not isinstance(record, dict) or record.get("format") != FORMAT or record.get("version") != VERSION:
        raise ConfigError(f"{path} is not an anytime-snn optimizer checkpoint of version {VERSION}")
    return record


def load(directory: str | os.PathLike) -> tuple[dict, dict[str, np.ndarray]] | None:
    """(state, arrays) of the newest checkpoint, or None when there is none. Raises ConfigError if corrupt."""
    record = load_state(directory)
    if record is None:
        return None
    name = record.get("arrays")
    if not isinstance(name, str) or not re.fullmatch(r"checkpoint-\d{6,}\.npz", name):
        raise ConfigError(f"checkpoint names arrays file {name!r}; expected checkpoint-<generation>.npz in its directory")
    path = Path(directory) / name
    if path.is_symlink() or (path.exists() and not path.is_file()):
        raise ConfigError(f"checkpoint arrays {path} must be a regular file, not a link or special file")
    try:
        data = path.read_bytes()
    except OSError as e:
        raise ConfigError(f"checkpoint arrays {path} are missing: {e}") from e
    if hashlib.sha256(data).hexdigest() != record.get("arrays_sha256"):
        raise ConfigError(f"checkpoint arrays {path} do not match the digest in {STATE_FILE}")
    with np.load(io.BytesIO(data), allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    return record, arrays
