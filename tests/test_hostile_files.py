"""Hostile bundle files beyond tests/test_bundle.py: symlinks out of the bundle, FIFOs and devices,
huge or deeply nested or ambiguous (duplicate-key) JSON, safetensors headers that lie about offsets.

Each must be refused with a BundleError naming the problem, before any tensor is allocated (peak
traced allocation stays far below what the file claims) and without hanging.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import struct
import tracemalloc
from contextlib import contextmanager
from pathlib import Path

import pytest

from anytime_snn.errors import BundleError
from anytime_snn.model import load_bundle, save_bundle
from anytime_snn.model.io import MANIFEST, TENSORS, _manifest_digest
from anytime_snn.testing import dense_bundle


@pytest.fixture
def saved(tmp_path) -> Path:
    return save_bundle(dense_bundle((12, 6, 3), seed=2), tmp_path / "b")


class Hang(Exception):
    pass


@contextmanager
def deadline(seconds: int):
    """Fail instead of hanging (SIGALRM; the exception is not an OSError, so nothing swallows it)."""
    def fire(*_):
        raise Hang(f"no answer within {seconds} s")

    old = signal.signal(signal.SIGALRM, fire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def refused(path: Path, *fragments: str, max_alloc: int = 16 << 20) -> str:
    """Load must raise BundleError containing every fragment, quickly and allocating at most max_alloc."""
    tracemalloc.start()
    try:
        with deadline(10), pytest.raises(BundleError) as info:
            load_bundle(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message, message
    assert peak < max_alloc, f"{peak} bytes allocated before refusing"
    return message


def resign(path: Path, m: dict) -> None:
    m["manifest_sha256"] = _manifest_digest(m)
    (path / MANIFEST).write_text(json.dumps(m))


def split_tensors(path: Path) -> tuple[dict, bytes]:
    blob = (path / TENSORS).read_bytes()
    (n,) = struct.unpack("<Q", blob[:8])
    return json.loads(blob[8:8 + n]), blob[8 + n:]


def write_tensors(path: Path, header: dict | str, data: bytes) -> None:
    """Write a tensor file and update the manifest's digests, so that only the header's own checks can fire."""
    text = header if isinstance(header, str) else json.dumps(header)
    blob = struct.pack("<Q", len(text.encode())) + text.encode() + data
    (path / TENSORS).write_bytes(blob)
    m = json.loads((path / MANIFEST).read_text())
    m["tensor_sha256"] = hashlib.sha256(blob).hexdigest()
    resign(path, m)


# ----------------------------------------------------------------------------- the file system


@pytest.mark.parametrize("name", [MANIFEST, TENSORS])
def test_symlink_out_of_the_bundle_is_refused_even_to_a_valid_file(saved, tmp_path, name):
    other = save_bundle(dense_bundle((12, 6, 3), seed=2), tmp_path / "other")  # identical, valid content
    (saved / name).unlink()
    (saved / name).symlink_to(other / name)
    refused(saved, "symbolic link", "outside the bundle directory", str(other / name))


@pytest.mark.parametrize("target", ["/etc/passwd", "/dev/zero", "/dev/urandom", "/proc/1/mem"])
def test_symlink_to_system_files_and_devices_is_refused(saved, target):
    (saved / TENSORS).unlink()
    (saved / TENSORS).symlink_to(target)
    refused(saved, "symbolic link", target)


def test_symlink_inside_the_bundle_directory_is_allowed(saved):
    (saved / TENSORS).rename(saved / "tensors-v1.safetensors")
    (saved / TENSORS).symlink_to("tensors-v1.safetensors")
    assert load_bundle(saved).labels == ["0", "1", "2"]


def test_symlink_loop_is_refused(saved):
    (saved / MANIFEST).unlink()
    (saved / MANIFEST).symlink_to(MANIFEST)
    refused(saved, "cannot read manifest")


@pytest.mark.parametrize("name", [MANIFEST, TENSORS])
def test_fifo_does_not_hang_the_loader(saved, name):
    (saved / name).unlink()
    os.mkfifo(saved / name)  # open() of a FIFO without a writer would block forever
    refused(saved, "not a regular file")


def test_directory_in_place_of_the_tensor_file(saved):
    (saved / TENSORS).unlink()
    (saved / TENSORS).mkdir()
    refused(saved, "tensor file is not a regular file")


def test_nul_byte_in_the_tensor_file_name(saved):
    m = json.loads((saved / MANIFEST).read_text())
    m["tensor_file"] = "a\x00.safetensors"
    resign(saved, m)
    refused(saved, "cannot read tensor file", "null byte")


# ----------------------------------------------------------------------------- the manifest


def test_huge_manifest_is_refused_by_its_size_without_reading_it(saved):
    with open(saved / MANIFEST, "r+b") as f:
        f.truncate(64 << 20)  # sparse: claims 64 MiB, costs nothing
    refused(saved, "more than the", "allowed", max_alloc=1 << 20)


def test_deeply_nested_json_inside_a_field_is_refused(saved):
    """(Deep nesting at the top level: tests/test_bundle.py.)"""
    text = (saved / MANIFEST).read_text().rstrip().rstrip("}")
    (saved / MANIFEST).write_text(text + ', "deep": ' + "{\"a\": " * 100_000 + "1" + "}" * 100_000 + "}")
    refused(saved, "not valid", "recursion")


def test_duplicate_keys_in_the_manifest_are_refused_even_when_signed(saved):
    """Two `timesteps`: parsers disagree on which counts (Python takes the last), so neither is trusted."""
    text = (saved / MANIFEST).read_text().rstrip().rstrip("}")
    m = json.loads(text + "}")
    dup = text + f', "timesteps": 7, "manifest_sha256": "{_manifest_digest({**m, "timesteps": 7})}"}}'
    (saved / MANIFEST).write_text(dup.replace(f'"manifest_sha256": "{m["manifest_sha256"]}",', "", 1))
    refused(saved, "duplicate key", "timesteps")


@pytest.mark.parametrize("field,value,fragment", [
    ("timesteps", "1" + "0" * 5000, "not valid"),  # over Python's int digit limit
    ("timesteps", "1e400", "timesteps"),  # a float (inf), not an integer
])
def test_extreme_numbers_in_the_manifest(saved, field, value, fragment):
    m = json.loads((saved / MANIFEST).read_text())
    text = json.dumps(m).replace(f'"{field}": {m[field]}', f'"{field}": {value}')
    assert text != json.dumps(m)
    (saved / MANIFEST).write_text(text)
    refused(saved, fragment)


def test_infinite_mean_from_an_overflowing_literal(saved):
    m = json.loads((saved / MANIFEST).read_text())
    text = json.dumps(m).replace('"mean": 0.0', '"mean": 1e400')
    (saved / MANIFEST).write_text(text)
    refused(saved, "mean must be finite")


# ----------------------------------------------------------------------------- safetensors headers that lie


def _entries(header: dict) -> list[str]:
    return sorted((k for k in header if k != "__metadata__"), key=lambda k: header[k]["data_offsets"][0])


def test_overlapping_tensors_are_refused(saved):
    header, data = split_tensors(saved)
    keys = [k for k in _entries(header) if header[k]["shape"] == []]  # the scalar v0s: 4 bytes each
    a, b = keys[0], keys[1]
    header[b]["data_offsets"] = list(header[a]["data_offsets"])  # b reads a's bytes
    write_tensors(saved, header, data)
    refused(saved, "overlaps the previous tensor")


def test_gap_between_tensors_is_refused(saved):
    header, data = split_tensors(saved)
    for k in _entries(header):
        header[k]["data_offsets"] = [o + 8 for o in header[k]["data_offsets"]]
    write_tensors(saved, header, b"\0" * 8 + data)  # sizes add up, but 8 bytes belong to no tensor
    refused(saved, "leaves a gap of 8 bytes")


def test_offsets_beyond_the_file_are_refused(saved):
    header, data = split_tensors(saved)
    last = _entries(header)[-1]
    n = header[last]["data_offsets"][1] - header[last]["data_offsets"][0]
    header[last]["data_offsets"] = [1 << 40, (1 << 40) + n]
    write_tensors(saved, header, data)
    refused(saved, "gap")


@pytest.mark.parametrize("offsets", [[-4, 0], [0.0, 4.0], ["0", "4"], [0], [0, 4, 8]])
def test_malformed_offsets(saved, offsets):
    header, data = split_tensors(saved)
    header[_entries(header)[0]]["data_offsets"] = offsets
    write_tensors(saved, header, data)
    refused(saved, "tensors[")


def test_unhashable_dtype_is_refused(saved):
    """Found while writing the fuzz harness: a list as dtype raised TypeError (unhashable) in the lookup."""
    header, data = split_tensors(saved)
    header[_entries(header)[0]]["dtype"] = ["F32"]
    write_tensors(saved, header, data)
    refused(saved, "unsupported dtype")


def test_duplicate_tensor_names_in_the_header_are_refused(saved):
    """Python's JSON keeps the last entry, the Rust safetensors parser may keep another: refuse both."""
    header, data = split_tensors(saved)
    first = _entries(header)[0]
    text = json.dumps(header)
    forged = text[:-1] + ", " + json.dumps({first: {"dtype": "F32", "shape": [1 << 28],
                                                     "data_offsets": [0, 1 << 30]}})[1:]
    write_tensors(saved, forged, data)
    refused(saved, "duplicate key", first)


def test_many_tensors_together_claiming_gigabytes_are_refused_before_allocation(saved):
    """Each tensor under the limit, their sum over it: refused from the header, nothing allocated."""
    n = 100 << 20  # floats: 400 MiB each, 3 of them
    header = {f"t{i}": {"dtype": "F32", "shape": [n], "data_offsets": [4 * n * i, 4 * n * (i + 1)]} for i in range(3)}
    write_tensors(saved, header, b"")
    refused(saved, "byte limit", max_alloc=4 << 20)


def test_header_length_that_lies_by_one_byte(saved):
    blob = (saved / TENSORS).read_bytes()
    (n,) = struct.unpack("<Q", blob[:8])
    (saved / TENSORS).write_bytes(struct.pack("<Q", n - 1) + blob[8:])
    refused(saved, "tensor header is not valid JSON")


def test_nan_payload_behind_a_valid_header_and_digest_is_caught(saved):
    """The header checks pass and the digests match: the values themselves are still checked."""
    header, data = split_tensors(saved)
    write_tensors(saved, header, data[:-4] + b"\xff\xff\xff\x7f")  # NaN in the last tensor, digests updated
    refused(saved, "NaN or infinite")
