"""Bundle manifests as JSON: strict parsing, the manifest digest, and typed field access whose errors
name the field path."""

from __future__ import annotations

import hashlib
import json

from ..errors import BundleError


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


def parse_json(data: bytes):
    """Strict JSON: UTF-8, no NaN/Infinity, no duplicate keys (raises ValueError or UnicodeDecodeError)."""
    return json.loads(data.decode("utf-8"), parse_constant=_reject_constant, object_pairs_hook=_unique_keys)


def manifest_digest(manifest: dict) -> str:
    """sha256 of the manifest's canonical JSON without its own digest: detects edits and corruption."""
    body = {k: v for k, v in manifest.items() if k != "manifest_sha256"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


class Fields:
    """Typed access to a JSON object with error messages that name the field path."""

    def __init__(self, obj: dict, path: str, prefix: str = ""):
        self.obj, self.path, self.prefix = obj, path, prefix

    def name(self, key: str) -> str:
        return f"{self.prefix}.{key}" if self.prefix else key

    def fail(self, message: str, key: str):
        raise BundleError(message, path=self.path, field=self.name(key))

    def get(self, key: str, types):
        if key not in self.obj:
            self.fail("missing", key)
        value = self.obj[key]
        types = types if isinstance(types, tuple) else (types,)
        ok = isinstance(value, types) and not (isinstance(value, bool) and bool not in types)
        if not ok:
            names = " or ".join(t.__name__ for t in types)
            self.fail(f"expected {names}, got {type(value).__name__} {value!r:.60}", key)
        return value

    def get_choice(self, key: str, choices):
        value = self.get(key, str)
        if value not in choices:
            self.fail(f"{value!r} is not one of {list(choices)}", key)
        return value

    def get_list(self, key: str, types) -> list:
        value = self.get(key, list)
        child = Fields({str(i): v for i, v in enumerate(value)}, self.path, self.name(key))
        return [child.get(str(i), types) for i in range(len(value))]

    def sub(self, key: str, _type) -> "Fields":
        return Fields(self.get(key, dict), self.path, self.name(key))

    def child(self, label: str, obj) -> "Fields":
        return Fields(obj, self.path, label)
