"""Save and load bundles: ``manifest.json`` plus ``tensors.safetensors`` in one directory.

Loading never executes code (JSON and safetensors only), checks the safetensors header against
the file size and a byte budget *before* reading any tensor, and validates every field. Errors are
:class:`~anytime_snn.errors.BundleError` naming the file and the field.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import stat
import struct
from pathlib import Path
from typing import Any

import numpy as np
from safetensors.numpy import load as st_load
from safetensors.numpy import save as st_save

from ..errors import BundleError
from ..fsutil import atomic_write
from .bundle import FORMAT_NAME, SCHEMA_VERSION, Bundle, Calibration, InputSpec
from .layers import (KINDS, RESERVED_KINDS, WEIGHTED_KINDS, Layer, NeuronConfig, output_shape, skip_index,
                     spiking_origin)

MANIFEST = "manifest.json"
TENSORS = "tensors.safetensors"
MAX_MANIFEST_BYTES = 16 << 20
MAX_TENSOR_BYTES = 1 << 30  # 1 GiB: far above any model we ship, far below what would hurt a robot
MAX_NEURONS = 50_000_000
MAX_STEPS = 1_000_000
_ST_DTYPES = {"F32": (np.float32, 4)}


# ----------------------------------------------------------------------------- save


def save_bundle(bundle: Bundle, path: str | os.PathLike) -> Path:
    """Write ``bundle`` to directory ``path`` (created if needed). Validates first; files replaced atomically."""
    path = Path(path)
    validate_bundle(bundle, str(path))
    tensors: dict[str, np.ndarray] = {}
    layers = []
    for layer in bundle.layers:
        entry: dict[str, Any] = {"name": layer.name, "kind": layer.kind}
        if layer.kind == "zero_pad2d":
            entry["pad"] = [list(map(int, p)) for p in layer.pad]
        elif layer.kind == "max_pool2d":
            entry.update(pool_size=list(map(int, layer.pool_size)), strides=list(map(int, layer.strides)),
                         padding=layer.padding)
        if layer.weighted and layer.skip is not None:
            tensors[f"{layer.name}/skip_weights"] = np.array(layer.skip_weights, np.float32, order="C")
            entry.update(skip=layer.skip, skip_weights=f"{layer.name}/skip_weights")
        if layer.weighted:
            for key in ("weights", "bias", "v0"):
                tensors[f"{layer.name}/{key}"] = np.array(getattr(layer, key), np.float32, order="C")  # keeps 0-d
                entry[key] = f"{layer.name}/{key}"
            entry.update(
                strides=list(layer.strides),
                padding=layer.padding,
                output=layer.output,
                neuron={
                    "threshold": float(layer.neuron.threshold),
                    "reset": layer.neuron.reset,
                    "refractory_steps": int(layer.neuron.refractory_steps),
                    "delay_steps": int(layer.neuron.delay_steps),
                },
            )
        layers.append(entry)
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


def _manifest_digest(manifest: dict) -> str:
    """sha256 of the manifest's canonical JSON without its own digest: detects edits and corruption."""
    body = {k: v for k, v in manifest.items() if k != "manifest_sha256"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


# ----------------------------------------------------------------------------- load


def load_bundle(path: str | os.PathLike, *, max_tensor_bytes: int = MAX_TENSOR_BYTES) -> Bundle:
    """Load and validate the bundle in directory ``path`` (or the path of its manifest)."""
    path = Path(path)
    if path.is_file() and path.name == MANIFEST:
        path = path.parent
    mpath = path / MANIFEST
    manifest = _read_manifest(mpath)
    m = _Fields(manifest, str(mpath))

    fmt = m.get("format", str)
    if fmt != FORMAT_NAME:
        raise BundleError(f"not an anytime-snn bundle (format {fmt!r})", path=str(mpath), field="format")
    version = m.get("schema_version", int)
    if not 1 <= version <= SCHEMA_VERSION:
        newer = " (written by a newer anytime-snn; upgrade)" if version > SCHEMA_VERSION else ""
        raise BundleError(f"schema version {version} is not supported, expected {SCHEMA_VERSION}{newer}",
                          path=str(mpath), field="schema_version")
    tensor_name = m.get("tensor_file", str)
    if tensor_name != Path(tensor_name).name or tensor_name in ("", ".", "..") or not tensor_name.endswith(".safetensors"):
        raise BundleError(f"tensor file must be a .safetensors file name inside the bundle directory, got {tensor_name!r}",
                          path=str(mpath), field="tensor_file")
    tpath = path / tensor_name
    tensors, tensor_bytes = _read_tensors(tpath, max_tensor_bytes)

    used: set[str] = set()

    def tensor(key_field: str, f: _Fields) -> np.ndarray:
        key = f.get(key_field, str)
        if key not in tensors:
            raise BundleError(f"tensor {key!r} is not in {tensor_name}", path=str(mpath), field=f.name(key_field))
        used.add(key)
        arr = tensors[key]
        if not np.all(np.isfinite(arr)):
            raise BundleError(f"tensor {key!r} contains NaN or infinite values", path=str(tpath), field=f.name(key_field))
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
    layers = []
    for i, raw in enumerate(m.get_list("layers", dict)):
        f = m.child(f"layers[{i}]", raw)
        kind = f.get_choice("kind", KINDS)
        name = f.get("name", str)
        if kind in RESERVED_KINDS:
            raise BundleError(f"layer kind {kind!r} is reserved but not supported by this version",
                              path=str(mpath), field=f.name("kind"))
        if kind in ("zero_pad2d", "max_pool2d") and version < 2:
            raise BundleError(f"layer kind {kind!r} needs schema version 2", path=str(mpath), field=f.name("kind"))
        if kind == "zero_pad2d":
            rows = f.get_list("pad", list)
            pad = tuple(tuple(f.child(f"{f.name('pad')}[{k}]", {"v": r}).get_list("v", int)) for k, r in enumerate(rows))
            if len(pad) != 2 or any(len(p) != 2 for p in pad):
                raise BundleError("must be [[top, bottom], [left, right]]", path=str(mpath), field=f.name("pad"))
            layers.append(Layer(name=name, kind=kind, pad=pad))
            continue
        if kind == "max_pool2d":
            layers.append(Layer(name=name, kind=kind, pool_size=tuple(f.get_list("pool_size", int)),
                                strides=tuple(f.get_list("strides", int)),
                                padding=f.get_choice("padding", ("same", "valid"))))
            continue
        if kind not in WEIGHTED_KINDS:
            layers.append(Layer(name=name, kind=kind))
            continue
        skip, skip_weights = None, None
        if "skip" in raw:
            if version < 2:
                raise BundleError("residual inputs need schema version 2", path=str(mpath), field=f.name("skip"))
            skip, skip_weights = f.get("skip", str), tensor("skip_weights", f)
        nf = f.sub("neuron", dict)
        layers.append(Layer(
            skip=skip,
            skip_weights=skip_weights,
            name=name,
            kind=kind,
            weights=tensor("weights", f),
            bias=tensor("bias", f),
            v0=tensor("v0", f),
            strides=tuple(f.get_list("strides", int)),
            padding=f.get_choice("padding", ("same", "valid")),
            output=f.get("output", bool),
            neuron=NeuronConfig(
                threshold=float(nf.get("threshold", (int, float))),
                reset=nf.get_choice("reset", ("subtract", "zero")),
                refractory_steps=nf.get("refractory_steps", int),
                delay_steps=nf.get("delay_steps", int),
            ),
        ))
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


def _reject_constant(name: str):
    raise ValueError(f"{name} is not valid JSON")


def _unique_keys(pairs: list) -> dict:
    """JSON object hook: a key given twice is refused (readers could disagree on which one counts)."""
    out = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"duplicate key {key!r}")
        out[key] = value
    return out


def _parse_json(data: bytes):
    return json.loads(data.decode("utf-8"), parse_constant=_reject_constant, object_pairs_hook=_unique_keys)


def _open_inside(path: Path, what: str) -> int:
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


def _read_manifest(mpath: Path) -> dict:
    with os.fdopen(_open_inside(mpath, "manifest"), "rb") as f:
        size = os.fstat(f.fileno()).st_size
        if size > MAX_MANIFEST_BYTES:
            raise BundleError(f"manifest is {size} bytes, more than the {MAX_MANIFEST_BYTES} allowed",
                              path=str(mpath))
        try:
            raw = f.read(size + 1)  # size <= the limit; a larger read would preallocate it
        except OSError as e:
            raise BundleError(f"cannot read manifest: {e.strerror or e}", path=str(mpath)) from None
    try:
        manifest = _parse_json(raw)
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise BundleError(f"manifest is not valid UTF-8 JSON: {e}", path=str(mpath)) from None
    if not isinstance(manifest, dict):
        raise BundleError("manifest must be a JSON object", path=str(mpath))
    return manifest


def _read_tensors(tpath: Path, max_bytes: int) -> tuple[dict[str, np.ndarray], bytes]:
    """Check the safetensors header against the file and the byte budget, then load."""
    try:
        with os.fdopen(_open_inside(tpath, "tensor file"), "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size > max_bytes + (16 << 20):
                raise BundleError(f"tensor file is {size} bytes, over the {max_bytes} byte limit", path=str(tpath))
            head = f.read(8)
            if len(head) < 8:
                raise BundleError("tensor file is truncated (no header)", path=str(tpath))
            (hlen,) = struct.unpack("<Q", head)
            if hlen > min(size - 8, 16 << 20):
                raise BundleError(f"tensor header claims {hlen} bytes; file has {size}", path=str(tpath))
            header = _parse_json(f.read(hlen))
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
        with os.fdopen(_open_inside(tpath, "tensor file"), "rb") as f:
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


class _Fields:
    """Typed access to a JSON object with error messages that name the field path."""

    def __init__(self, obj: dict, path: str, prefix: str = ""):
        self.obj, self.path, self.prefix = obj, path, prefix

    def name(self, key: str) -> str:
        return f"{self.prefix}.{key}" if self.prefix else key

    def get(self, key: str, types):
        if key not in self.obj:
            raise BundleError("missing", path=self.path, field=self.name(key))
        value = self.obj[key]
        types = types if isinstance(types, tuple) else (types,)
        ok = isinstance(value, types) and not (isinstance(value, bool) and bool not in types)
        if not ok:
            names = " or ".join(t.__name__ for t in types)
            raise BundleError(f"expected {names}, got {type(value).__name__} {value!r:.60}", path=self.path,
                              field=self.name(key))
        return value

    def get_choice(self, key: str, choices):
        value = self.get(key, str)
        if value not in choices:
            raise BundleError(f"{value!r} is not one of {list(choices)}", path=self.path, field=self.name(key))
        return value

    def get_list(self, key: str, types) -> list:
        value = self.get(key, list)
        child = _Fields({str(i): v for i, v in enumerate(value)}, self.path, self.name(key))
        return [child.get(str(i), types) for i in range(len(value))]

    def sub(self, key: str, _type) -> "_Fields":
        return _Fields(self.get(key, dict), self.path, self.name(key))

    def child(self, label: str, obj) -> "_Fields":
        return _Fields(obj, self.path, label)


# ----------------------------------------------------------------------------- validation


def validate_bundle(bundle: Bundle, path: str | None = None) -> None:
    """Check that the bundle is complete and consistent; raise BundleError naming the field."""

    def fail(message: str, field: str):
        raise BundleError(message, path=path, field=field)

    shape = tuple(bundle.input.shape)
    if len(shape) not in (1, 3) or not all(isinstance(d, (int, np.integer)) and d > 0 for d in shape):
        fail(f"must be (N,) or (H, W, C) with positive sizes, got {shape}", "input.shape")
    if math.prod(shape) > MAX_NEURONS:
        fail(f"input of {math.prod(shape)} values is too large", "input.shape")
    lo, hi = bundle.input.value_range
    if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
        fail(f"must be finite with low < high, got {(lo, hi)}", "input.value_range")
    if not (math.isfinite(bundle.input.mean) and math.isfinite(bundle.input.std) and bundle.input.std > 0):
        fail("mean must be finite and std finite and positive", "input.std")
    if bundle.input.color == "rgb" and (len(shape) != 3 or shape[2] != 3):
        fail(f"rgb input needs shape (H, W, 3), got {shape}", "input.color")
    if bundle.input.color == "mono" and len(shape) == 3 and shape[2] != 1:
        fail(f"mono input needs 1 channel, got {shape}", "input.color")
    if not isinstance(bundle.timesteps, int) or not 1 <= bundle.timesteps <= MAX_STEPS:
        fail(f"must be an integer in [1, {MAX_STEPS}], got {bundle.timesteps!r}", "timesteps")
    if not bundle.layers:
        fail("a bundle needs at least one layer", "layers")

    names = set()
    total = 0
    shapes: list[tuple[int, ...]] = []
    for i, layer in enumerate(bundle.layers):
        field = f"layers[{i}]"
        if not isinstance(layer.name, str) or not layer.name or "/" in layer.name or layer.name in names:
            fail(f"layer names must be unique non-empty strings without '/', got {layer.name!r}", f"{field}.name")
        names.add(layer.name)
        if layer.kind not in KINDS or layer.kind in RESERVED_KINDS:
            fail(f"unsupported layer kind {layer.kind!r}", f"{field}.kind")
        if layer.weighted:
            for key in ("weights", "bias", "v0"):
                arr = getattr(layer, key)
                if not isinstance(arr, np.ndarray) or arr.dtype != np.float32:
                    fail("must be a float32 array", f"{field}.{key}")
                if not np.all(np.isfinite(arr)):
                    fail("contains NaN or infinite values", f"{field}.{key}")
            if len(layer.strides) != 2 or not all(isinstance(s, (int, np.integer)) and 1 <= s <= 64 for s in layer.strides):
                fail(f"must be two integers in [1, 64], got {layer.strides}", f"{field}.strides")
            if layer.padding not in ("same", "valid"):
                fail(f"must be 'same' or 'valid', got {layer.padding!r}", f"{field}.padding")
            n = layer.neuron
            if not (math.isfinite(n.threshold) and n.threshold > 0):
                fail(f"must be finite and positive, got {n.threshold}", f"{field}.neuron.threshold")
            if n.reset not in ("subtract", "zero"):
                fail(f"must be 'subtract' or 'zero', got {n.reset!r}", f"{field}.neuron.reset")
            for key in ("refractory_steps", "delay_steps"):
                v = getattr(n, key)
                if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or not 0 <= v <= 1000:
                    fail(f"must be an integer in [0, 1000], got {v!r}", f"{field}.neuron.{key}")
        elif not (layer.weights is None and layer.bias is None):
            fail(f"a {layer.kind} layer has no weights", f"{field}.weights")
        if not layer.weighted and layer.skip is not None:
            fail(f"only weighted layers can have a residual input, not {layer.kind}", f"{field}.skip")
        if layer.kind == "zero_pad2d":
            pad = layer.pad
            if (len(pad) != 2 or any(len(p) != 2 for p in pad)
                    or not all(isinstance(v, (int, np.integer)) and 0 <= v <= 1024 for p in pad for v in p)):
                fail(f"must be ((top, bottom), (left, right)) integers in [0, 1024], got {pad}", f"{field}.pad")
        if layer.kind == "max_pool2d":
            for key in ("pool_size", "strides"):
                v = getattr(layer, key)
                if len(v) != 2 or not all(isinstance(s, (int, np.integer)) and 1 <= s <= 64 for s in v):
                    fail(f"must be two integers in [1, 64], got {v}", f"{field}.{key}")
            if layer.padding not in ("same", "valid"):
                fail(f"must be 'same' or 'valid', got {layer.padding!r}", f"{field}.padding")
            if spiking_origin(bundle.layers, i) is None:
                fail("max_pool2d needs spikes as input: it cannot come before the first weighted layer",
                     f"{field}.kind")
        try:
            shape = output_shape(layer, shape)
        except ValueError as e:
            fail(str(e), f"{field}.weights" if layer.weighted else f"{field}.kind")
        shapes.append(shape)
        if layer.weighted and layer.skip is not None:
            try:
                j = skip_index(bundle.layers, i)
            except ValueError as e:
                fail(str(e), f"{field}.skip")
            if spiking_origin(bundle.layers, j) is None:
                fail(f"skip source {layer.skip!r} carries the analog input, not spikes; a residual input must come "
                     "from a spiking layer", f"{field}.skip")
            if shapes[j] != shape:
                fail(f"skip source {layer.skip!r} has shape {shapes[j]}, this layer's output has shape {shape}",
                     f"{field}.skip")
            sw = layer.skip_weights
            if not isinstance(sw, np.ndarray) or sw.dtype != np.float32 or sw.shape != (shape[-1],):
                fail(f"must be a float32 array of shape ({shape[-1]},)", f"{field}.skip_weights")
            if not np.all(np.isfinite(sw)):
                fail("contains NaN or infinite values", f"{field}.skip_weights")

        total += math.prod(shape)
        if total > MAX_NEURONS:
            fail("the network has too many neurons", f"{field}")
        if layer.weighted:
            channels = shape[-1]
            if layer.bias.shape != (channels,):
                fail(f"bias shape must be ({channels},), got {layer.bias.shape}", f"{field}.bias")
            if layer.v0.shape not in ((), (channels,), shape):
                fail(f"v0 shape must be (), ({channels},) or {shape}, got {layer.v0.shape}", f"{field}.v0")
        if layer.output and i != len(bundle.layers) - 1:
            fail("only the last layer can be the output layer", f"{field}.output")
    last = bundle.layers[-1]
    if not (last.weighted and last.output):
        fail("the last layer must be a weighted layer marked as the accumulate-only output", f"layers[{len(bundle.layers) - 1}].output")
    if len(shape) != 1:
        fail(f"the output layer must produce a vector of class scores, got shape {shape}", "layers[-1]")
    labels = bundle.labels
    if not isinstance(labels, list) or len(labels) != shape[0] or not all(isinstance(s, str) for s in labels):
        fail(f"need {shape[0]} string labels, one per output, got {len(labels) if isinstance(labels, list) else labels!r}", "labels")
    if bundle.calibration is not None:
        it = bundle.calibration.inv_temperature
        if not isinstance(it, np.ndarray) or it.ndim != 1 or it.size == 0 or it.size > MAX_STEPS:
            fail("must be a non-empty 1-D array", "calibration.inv_temperature")
        if not np.all(np.isfinite(it)) or np.any(it < 0):
            fail("must be finite and non-negative", "calibration.inv_temperature")
    try:
        json.dumps(bundle.provenance, allow_nan=False)
    except (TypeError, ValueError) as e:
        fail(f"must be JSON-serialisable without NaN: {e}", "provenance")
