"""Weight package integrity: every byte mutation is refused or provably harmless; derived counts are cross-checked;
an interrupted write leaves nothing behind."""

from __future__ import annotations

import json
import struct
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from host.package import PackageError, load_package, package_digest, write_package

LAYER = "encoder.blocks.0.mlp.2"


def _split(raw: bytes):
    (hlen,) = struct.unpack("<Q", raw[:8])
    return json.loads(raw[8 : 8 + hlen]), raw[8 + hlen :]


def _join(header: dict, data: bytes, redigest: bool) -> bytes:
    if redigest:
        header["__metadata__"]["digest"] = json.dumps(package_digest(header, data))
    blob = json.dumps(header).encode()
    return struct.pack("<Q", len(blob)) + blob + data


def _edit_meta(path: Path, key: str, edit, redigest: bool = True) -> Path:
    """Rewrite the package with ``metadata[key] = edit(metadata[key])`` (digest recomputed unless told)."""
    header, data = _split(path.read_bytes())
    meta = header["__metadata__"]
    meta[key] = json.dumps(edit(json.loads(meta[key])) if key in meta else edit(None))
    out = path.with_name("edited.sasp")
    out.write_bytes(_join(header, data, redigest))
    return out


def _same(a, b) -> bool:
    """Loaded packages equal in every array and every metadata value."""
    if a.metadata != b.metadata or a.weights.config != b.weights.config or a.weights.vocab != b.weights.vocab:
        return False
    if (a.weights.suppress_ids, a.weights.suppress_ids_begin) != (b.weights.suppress_ids, b.weights.suppress_ids_begin):
        return False
    if a.weights.params.keys() != b.weights.params.keys() or a.layers.keys() != b.layers.keys():
        return False
    if not all(np.array_equal(a.weights.params[k], b.weights.params[k]) for k in a.weights.params):
        return False
    for name, qa in a.layers.items():
        qb, wa, wb = b.layers[name], qa.weights, b.layers[name].weights
        pairs = (
            (wa.tiles, wb.tiles),
            (wa.colptr, wb.colptr),
            (wa.kidx, wb.kidx),
            (qa.scale, qb.scale),
            (qa.bias, qb.bias),
        )
        if (wa.k, wa.n) != (wb.k, wb.n) or not all(np.array_equal(x, y) for x, y in pairs):
            return False
    return True


POS = st.integers(0, 2**31)
REGION = st.booleans()  # True: the 8-byte length and the JSON header; False: the data section
EDITS = st.lists(st.tuples(POS, st.integers(0, 255)), min_size=1, max_size=4)
META_VALUES = st.sampled_from([0, 1, -1, 2.5, "x", None, [1], {}])
MUTATION = st.one_of(
    st.tuples(st.just("xor"), REGION, EDITS.filter(lambda e: all(v for _, v in e))),
    st.tuples(st.just("set"), REGION, EDITS),
    st.tuples(st.just("insert"), REGION, st.tuples(POS, st.binary(min_size=1, max_size=8))),
    st.tuples(st.just("delete"), REGION, st.tuples(POS, st.integers(1, 64))),
    st.tuples(st.just("truncate"), REGION, POS),
    st.tuples(st.just("meta"), REGION, st.tuples(POS, META_VALUES)),
)


def _mutate(raw: bytes, mutation) -> bytes:
    """Apply one mutation; the flag picks the header (True) or the data section (False) as the target region."""
    kind, in_header, arg = mutation
    (hlen,) = struct.unpack("<Q", raw[:8])
    lo, hi = (0, 8 + hlen) if in_header else (8 + hlen, len(raw))
    out = bytearray(raw)
    if kind in ("xor", "set"):
        for pos, val in arg:
            i = lo + pos % (hi - lo)
            out[i] = out[i] ^ val if kind == "xor" else val
    elif kind == "insert":
        i = lo + arg[0] % (hi - lo)
        out[i:i] = arg[1]
    elif kind == "delete":
        i = lo + arg[0] % (hi - lo)
        del out[i : i + arg[1]]
    elif kind == "truncate":
        del out[lo + arg % (hi - lo) :]
    else:  # a metadata value changed as an editor would, without recomputing the digest
        header, data = _split(raw)
        meta = header["__metadata__"]
        key = sorted(meta)[arg[0] % len(meta)]
        if key != "digest":
            meta[key] = json.dumps(arg[1])
        return _join(header, data, redigest=False)
    return bytes(out)


def test_byte_mutations_are_refused_or_harmless(tiny_package, tmp_path, record_property, capsys):
    """Header and data mutations (hypothesis): each one is refused with a PackageError naming the file, or loads to
    exactly the arrays and metadata of the original (a whitespace change in the header, a no-op edit)."""
    original = load_package(tiny_package)
    raw = tiny_package.read_bytes()
    bad = tmp_path / "mutated.sasp"
    seen = Counter()

    @settings(max_examples=600, deadline=None, derandomize=True, database=None)
    @given(MUTATION)
    def check(mutation):
        mutated = _mutate(raw, mutation)
        bad.write_bytes(mutated)
        seen["tried"] += 1
        try:
            pkg = load_package(bad)
        except PackageError as e:
            assert str(bad) in str(e) and "\n" not in str(e)
            seen["refused"] += 1
            return
        assert _same(pkg, original), f"mutation {mutation} loaded with different content"
        seen["harmless" if mutated != raw else "no-op"] += 1

    check()
    with capsys.disabled():
        print(f"\npackage mutations: {seen['tried']} tried, {seen['refused']} refused, "
              f"{seen['harmless']} harmless (identical arrays and metadata), {seen['no-op']} no-op")  # fmt: skip
    for k, v in seen.items():
        record_property(f"mutations_{k}", v)
    assert seen["tried"] >= 500 and seen["refused"] >= 0.9 * seen["tried"]


@pytest.mark.parametrize(
    ("key", "edit"),
    [
        ("config", lambda c: {**c, "n_audio_head": 1}),  # the n_audio_head 6 -> 3: same shapes
        ("mac_sparsity", lambda v: 0.5),  # the report would claim 50% pruned
        ("method", lambda v: "act-ls"),
        ("tile", lambda v: [2, 8]),
    ],
)
def test_header_edits_without_a_new_digest_are_refused(tiny_package, key, edit):
    edited = _edit_meta(tiny_package, key, edit, redigest=False)
    with pytest.raises(PackageError, match="digest mismatch"):
        load_package(edited)


@pytest.mark.parametrize(
    ("key", "edit", "fault"),
    [
        ("layers", lambda ls: {**ls, LAYER: {**ls[LAYER], "tiles_kept": ls[LAYER]["tiles_kept"] + 1}}, "tiles kept"),
        ("layers", lambda ls: {**ls, LAYER: {**ls[LAYER], "rate": 0.0}}, "tiles kept"),
        ("layers", lambda ls: {**ls, LAYER: {**ls[LAYER], "tiles_total": 99}}, "tiles kept"),
        ("mac_sparsity", lambda v: 0.5, "MAC sparsity 0.5 but the tensors give"),
        ("config", lambda c: {**c, "n_audio_state": 32}, "config"),
        ("config", lambda c: {**c, "n_vocab": 13}, "config"),
        ("config", lambda c: {**c, "n_audio_head": 3}, "not a multiple of n_audio_head"),
        ("config", lambda c: {**c, "n_text_layer": 2}, "missing"),
        ("config", lambda c: {k: v for k, v in c.items() if k != "n_mels"}, "n_mels"),
        ("prunable", lambda v: "(", "malformed"),
    ],
)
def test_derived_counts_are_cross_checked(tiny_package, key, edit, fault):
    """Even with a valid digest (a writer bug, a hand-made package) every stated count must match the tensors."""
    with pytest.raises(PackageError, match=fault):
        load_package(_edit_meta(tiny_package, key, edit))


def test_stated_mac_sparsity_is_the_counted_one(tiny_package):
    pkg = load_package(tiny_package)
    counted = pkg.metadata["mac_sparsity"]
    assert 0.25 < counted < 0.4  # a third of the tiles of every layer, the logits layer not counted
    assert load_package(_edit_meta(tiny_package, "mac_sparsity", lambda v: counted)).metadata["mac_sparsity"] == counted


def test_old_format_is_refused_with_how_to_rebuild(tiny_package):
    with pytest.raises(PackageError, match="version 1 is no longer read.*rebuild it with python -m model.export"):
        load_package(_edit_meta(tiny_package, "version", lambda v: 1, redigest=False))


class _Interrupt(Exception):
    pass


def test_interrupted_write_leaves_nothing(tiny_package, tmp_path, monkeypatch):
    tensors = {"a": np.arange(1000, dtype=np.float32)}
    target = tmp_path / "out" / "p.sasp"
    target.parent.mkdir()
    real_open = Path.open

    class Failing:
        """A file whose third write (the data section, after the length and the header) is interrupted."""

        def __init__(self, f):
            self.f, self.writes = f, 0

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

        def write(self, b):
            self.writes += 1
            if self.writes == 3:
                raise _Interrupt()
            return self.f.write(b)

    def failing_open(self, *args, **kwargs):
        return Failing(real_open(self, *args, **kwargs))

    monkeypatch.setattr(Path, "open", failing_open)
    with pytest.raises(_Interrupt):
        write_package(target, tensors, {"format": "x"})
    monkeypatch.undo()
    assert list(target.parent.iterdir()) == []
    # an existing package is left as it was
    target.write_bytes(tiny_package.read_bytes())
    monkeypatch.setattr(Path, "open", failing_open)
    with pytest.raises(_Interrupt):
        write_package(target, tensors, {"format": "x"})
    monkeypatch.undo()
    assert list(target.parent.iterdir()) == [target] and target.read_bytes() == tiny_package.read_bytes()
