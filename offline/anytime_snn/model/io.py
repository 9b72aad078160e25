"""Save and load bundles: ``manifest.json`` plus ``tensors.safetensors`` in one directory.

Loading never executes code (JSON and safetensors only), checks the safetensors header against
the file size and a byte budget *before* reading any tensor (safe_read.py), and validates every field
(validate.py). Per-kind layer fields and tensors come from the kind table (kinds.py). Errors are
:class:`~anytime_snn.errors.BundleError` naming the file and the field.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Callable

import numpy as np
from safetensors.numpy import save as st_save

from ..errors import BundleError
from ..fsutil import atomic_write
from .bundle import FORMAT_NAME, SCHEMA_VERSION, Bundle, Calibration, InputSpec
from .kinds import KINDS, SPECS
from .layers import Layer
from .safe_read import MAX_MANIFEST_BYTES, MAX_TENSOR_BYTES, read_manifest, read_tensors
from .schema import Fields
from .schema import manifest_digest as _manifest_digest
from .validate import MAX_NEURONS, MAX_STEPS, validate_bundle

__all__ = ["MANIFEST", "TENSORS", "MAX_MANIFEST_BYTES", "MAX_TENSOR_BYTES", "MAX_NEURONS", "MAX_STEPS",
           "load_bundle", "save_bundle", "validate_bundle"]

MANIFEST = "manifest.json"
TENSORS = "tensors.safetensors"


# ----------------------------------------------------------------------------- save


def save_bundle(bundle: Bundle, path: str | os.PathLike) -> Path:
    """Write ``bundle`` to directory ``path`` (created if needed). Validates first; files replaced atomically."""
    path = Path(path)
    validate_bundle(bundle, str(path))
    tensors: dict[str, np.ndarray] = {}
    layers = [_layer_entry(layer, tensors) for layer in bundle.layers]
    manifest: dict[str, Any] = {
        "format": FORMAT_NAME,
        "schema_version": bundle.schema_version,
        "tensor_file": TENSORS,
        "input": {
            "shape": list(bundle.input.shape),
            "value_range": list(bundle.input.value_range),
            "mean": bundle.input.mean,
            "std": bundle.input.std,
            "color": bundle.input.color,
            "encoding": bundle.input.encoding,
        },
        "labels": list(bundle.labels),
        "timesteps": bundle.timesteps,
        "layers": layers,
        "calibration": None,
        "provenance": bundle.provenance,
    }
    if bundle.calibration is not None:
        tensors["calibration/inv_temperature"] = np.asarray(bundle.calibration.inv_temperature, np.float32)
        manifest["calibration"] = {"inv_temperature": "calibration/inv_temperature"}
    blob = st_save(tensors)
    manifest["tensor_sha256"] = hashlib.sha256(blob).hexdigest()
    manifest["manifest_sha256"] = _manifest_digest(manifest)
    path.mkdir(parents=True, exist_ok=True)
    atomic_write(path / TENSORS, blob)
    atomic_write(path / MANIFEST, json.dumps(manifest, indent=1, allow_nan=False).encode())
    return path


def _layer_entry(layer: Layer, tensors: dict[str, np.ndarray]) -> dict[str, Any]:
    """The manifest entry of ``layer`` (its kind's fields, optional ones only when set); adds its tensors."""
    spec = SPECS[layer.kind]
    entry: dict[str, Any] = {"name": layer.name, "kind": layer.kind}
    for f in spec.fields:
        value = getattr(layer, f.name)
        if value is not None or not f.optional:
            entry[f.name] = f.type.write(value)
    for t in spec.present_tensors(layer):
        key = f"{layer.name}/{t.name}"
        tensors[key] = np.array(getattr(layer, t.name), np.float32, order="C")  # keeps 0-d
        entry[t.name] = key
    return entry


# ----------------------------------------------------------------------------- load


def load_bundle(path: str | os.PathLike, *, max_tensor_bytes: int = MAX_TENSOR_BYTES) -> Bundle:
    """Load and validate the bundle in directory ``path`` (or the path of its manifest)."""
    path = Path(path)
    if path.is_file() and path.name == MANIFEST:
        path = path.parent
    mpath = path / MANIFEST
    manifest = read_manifest(mpath)
    m = Fields(manifest, str(mpath))

    fmt = m.get("format", str)
    if fmt != FORMAT_NAME:
        raise BundleError(f"not an anytime-snn bundle (format {fmt!r})", path=str(mpath), field="format")
    version = m.get("schema_version", int)
    if not 1 <= version <= SCHEMA_VERSION:
        newer = " (written by a newer anytime-snn; upgrade)" if version > SCHEMA_VERSION else ""
        raise BundleError(f"schema version {version} is not supported, expected {SCHEMA_VERSION}{newer}",
                          path=str(mpath), field="schema_version")
    tensor_name = m.get("tensor_file", str)
    if (tensor_name != Path(tensor_name).name or tensor_name in ("", ".", "..")
            or not tensor_name.endswith(".safetensors")):
        raise BundleError("tensor file must be a .safetensors file name inside the bundle directory, "
                          f"got {tensor_name!r}", path=str(mpath), field="tensor_file")
    tpath = path / tensor_name
    tensors, tensor_bytes = read_tensors(tpath, max_tensor_bytes)

    used: set[str] = set()

    def tensor(key_field: str, f: Fields) -> np.ndarray:
        key = f.get(key_field, str)
        if key not in tensors:
            raise BundleError(f"tensor {key!r} is not in {tensor_name}", path=str(mpath), field=f.name(key_field))
        used.add(key)
        arr = tensors[key]
        if not np.all(np.isfinite(arr)):
            raise BundleError(f"tensor {key!r} contains NaN or infinite values", path=str(tpath),
                              field=f.name(key_field))
        return arr

    inp = m.sub("input", dict)
    shape = tuple(inp.get_list("shape", int))
    vr = inp.get_list("value_range", (int, float))
    if len(vr) != 2:
        raise BundleError("must be [low, high]", path=inp.path, field=inp.name("value_range"))
    input_spec = InputSpec(
        shape=shape,
        value_range=(float(vr[0]), float(vr[1])),
        mean=float(inp.get("mean", (int, float))),
        std=float(inp.get("std", (int, float))),
        color=inp.get_choice("color", ("mono", "rgb", "raw")),
        encoding=inp.get_choice("encoding", ("analog",)),
    )
    layers = [_read_layer(m.child(f"layers[{i}]", raw), version, tensor)
              for i, raw in enumerate(m.get_list("layers", dict))]
    calibration = None
    if manifest.get("calibration") is not None:
        calibration = Calibration(inv_temperature=tensor("inv_temperature", m.sub("calibration", dict)))
    unused = sorted(set(tensors) - used)
    if unused:
        raise BundleError(f"tensors not referenced by the manifest: {unused[:5]}", path=str(tpath), field="tensors")
    provenance = manifest.get("provenance", {})
    if not isinstance(provenance, dict):
        raise BundleError("must be an object", path=str(mpath), field="provenance")
    bundle = Bundle(
        input=input_spec,
        layers=layers,
        labels=m.get_list("labels", str),
        timesteps=m.get("timesteps", int),
        calibration=calibration,
        provenance=provenance,
    )
    validate_bundle(bundle, str(mpath))
    # Checksums last, so that a hand-edited field gets its specific message first.
    if hashlib.sha256(tensor_bytes).hexdigest() != m.get("tensor_sha256", str):
        raise BundleError("tensor file does not match the checksum in the manifest (corrupted or modified)",
                          path=str(tpath), field="tensor_sha256")
    if _manifest_digest(manifest) != m.get("manifest_sha256", str):
        raise BundleError("manifest does not match its checksum (corrupted, or edited by hand: load and save "
                          "it with anytime_snn.model to re-sign)", path=str(mpath), field="manifest_sha256")
    return bundle


def _read_layer(f: Fields, version: int, tensor: Callable[[str, Fields], np.ndarray]) -> Layer:
    """One layer entry, read as its kind's spec says; refuses kinds and fields newer than ``version``."""
    kind = f.get_choice("kind", KINDS)
    name = f.get("name", str)
    spec = SPECS[kind]
    if spec.reserved:
        f.fail(f"layer kind {kind!r} is reserved but not supported by this version", "kind")
    if version < spec.since:
        f.fail(f"layer kind {kind!r} needs schema version {spec.since}", "kind")
    values: dict[str, Any] = {}
    for field in spec.fields:
        if field.optional and field.name not in f.obj:
            continue
        if version < field.since:
            f.fail(f"field {field.name!r} needs schema version {field.since}", field.name)
        values[field.name] = field.type.read(f, field.name)
    values.update((t.name, tensor(t.name, f)) for t in spec.tensors if t.given_with in (None, *values))
    return Layer(name=name, kind=kind, **values)
