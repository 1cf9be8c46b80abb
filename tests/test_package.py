"""Weight package: export -> load round trip, and every malformed file gives one clear PackageError."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from host.package import PackageError, load_package, package_digest


def _rewrite(path: Path, edit) -> Path:
    """Apply ``edit(header: dict, data: bytearray)`` to a package and rewrite it (digest updated)."""
    raw = path.read_bytes()
    (hlen,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + hlen])
    data = bytearray(raw[8 + hlen :])
    edit(header, data)
    header["__metadata__"]["digest"] = json.dumps(package_digest(header, bytes(data)))
    blob = json.dumps(header).encode()
    out = path.with_name("edited.sasp")
    out.write_bytes(struct.pack("<Q", len(blob)) + blob + bytes(data))
    return out


def _tensor(header: dict, data: bytearray, name: str) -> np.ndarray:
    info = header[name]
    lo, hi = info["data_offsets"]
    dtype = {"I8": np.int8, "I32": np.int32, "F32": np.float32}[info["dtype"]]
    return np.frombuffer(data, dtype=dtype, count=(hi - lo) // np.dtype(dtype).itemsize, offset=lo)


def _set(header: dict, data: bytearray, name: str, index: int, value) -> None:
    arr = _tensor(header, data, name).copy()
    arr[index] = value
    lo, _ = header[name]["data_offsets"]
    data[lo : lo + arr.nbytes] = arr.tobytes()


LAYER = "encoder.blocks.0.mlp.2"


def test_round_trip_is_bit_exact(tiny_package):
    from model.quantize import package_tensors  # noqa: F401  (the writer under test)

    pkg = load_package(tiny_package)
    raw = tiny_package.read_bytes()
    (hlen,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + hlen])
    data = bytearray(raw[8 + hlen :])
    w = pkg.layers[LAYER].weights
    np.testing.assert_array_equal(w.tiles.ravel(), _tensor(header, data, f"{LAYER}.tiles"))
    np.testing.assert_array_equal(w.kidx, _tensor(header, data, f"{LAYER}.kidx"))
    assert pkg.tile == (4, 4) and w.k == 64 and w.n == 16
    assert 0 < w.nnz_tiles < w.total_tiles  # a third of the tiles were pruned
    assert pkg.weights.vocab[-1] == "<|startoftranscript|>"


def test_expected_tile_shape_mismatch(tiny_package):
    with pytest.raises(PackageError, match="built for 4x4 tiles but the accelerator array is 8x8"):
        load_package(tiny_package, expect_tile=(8, 8))


def test_truncated(tiny_package):
    bad = tiny_package.with_name("trunc.sasp")
    bad.write_bytes(tiny_package.read_bytes()[:-100])
    with pytest.raises(PackageError, match="truncated|past the end"):
        load_package(bad)


def test_flipped_byte_fails_digest(tiny_package):
    raw = bytearray(tiny_package.read_bytes())
    raw[-5] ^= 0xFF
    bad = tiny_package.with_name("flip.sasp")
    bad.write_bytes(bytes(raw))
    with pytest.raises(PackageError, match="digest mismatch"):
        load_package(bad)


def test_index_out_of_range_names_the_layer(tiny_package):
    bad = _rewrite(tiny_package, lambda h, d: _set(h, d, f"{LAYER}.kidx", 0, 99))
    with pytest.raises(PackageError, match=rf"{LAYER}.*kidx|kidx.*{LAYER}"):
        load_package(bad)


def test_non_monotone_colptr(tiny_package):
    def edit(h, d):
        cp = _tensor(h, d, f"{LAYER}.colptr")
        _set(h, d, f"{LAYER}.colptr", 1, int(cp[2]) + 1)

    with pytest.raises(PackageError, match=LAYER):
        load_package(_rewrite(tiny_package, edit))


def test_unknown_version(tiny_package):
    def edit(h, d):
        h["__metadata__"]["version"] = "99"

    with pytest.raises(PackageError, match="unknown package version 99"):
        load_package(_rewrite(tiny_package, edit))


def test_tile_shape_in_tensors_disagrees_with_metadata(tiny_package):
    def edit(h, d):
        h["__metadata__"]["tile"] = "[2, 8]"

    with pytest.raises(PackageError, match="tile shape"):
        load_package(_rewrite(tiny_package, edit))


def test_missing_file(tmp_path):
    with pytest.raises(PackageError, match="not found"):
        load_package(tmp_path / "nope.sasp")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.integers(0, 10**9), st.integers(0, 255)), min_size=1, max_size=6), st.integers(0, 3))
def test_fuzz_mutated_packages_give_only_package_errors(tiny_package, edits, mode):
    """Random byte edits (in the header or the data), with or without a recomputed digest, or truncation."""
    raw = bytearray(tiny_package.read_bytes())
    (hlen,) = struct.unpack("<Q", raw[:8])
    for pos, val in edits:
        where = pos % (8 + hlen) if mode in (0, 1) else 8 + hlen + pos % (len(raw) - 8 - hlen)
        raw[where] = val
    if mode == 3:
        raw = raw[: edits[0][0] % len(raw)]
    bad = tiny_package.with_name("fuzz.sasp")
    bad.write_bytes(bytes(raw))
    if mode == 2:  # data edits with a valid digest: the structural checks must catch what matters
        try:
            header = json.loads(bytes(raw[8 : 8 + hlen]))
            header["__metadata__"]["digest"] = json.dumps(package_digest(header, bytes(raw[8 + hlen :])))
            blob = json.dumps(header).encode()
            bad.write_bytes(struct.pack("<Q", len(blob)) + blob + bytes(raw[8 + hlen :]))
        except (ValueError, KeyError, TypeError):
            pass
    try:
        pkg = load_package(bad)
    except PackageError as e:
        assert str(bad) in str(e)
        return
    for q in pkg.layers.values():  # whatever loads must be usable
        q.weights.gemm_int(np.ones((2, q.weights.k), np.int8))
