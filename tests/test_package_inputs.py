"""A package records its inputs by content (``inputs``), and ``model.package_inputs`` names where two builds part."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import make_tiny_whisper, random_stats

from host.package import load_package, read_tensors, write_package
from model.export import export_package
from model.package_inputs import compare, input_digests, main, rates_digest, stats_digest
from model.pipeline import ExportConfig

QK = r"\.attn\.(query|key)$"


def export(tmp_path, name: str, seed: int = 3, **kwargs):
    cfg = ExportConfig((4, 4), 0.5, "magnitude", uniform=True, cache_dir=None, **kwargs)
    return export_package(tmp_path / f"{name}.sasp", make_tiny_whisper(d=32, seed=seed), cfg)


def export_permuted(tmp_path, monkeypatch, name: str, stats_seed: int = 0):
    """An ``act-ls --permute`` export of the tiny model whose statistics are ``random_stats`` of ``stats_seed``."""
    from model import export as export_module

    monkeypatch.setattr(export_module, "calibration", lambda w, cfg: (random_stats(w, seed=stats_seed), []))
    cfg = ExportConfig((4, 4), 0.5, "act-ls", calib=(tmp_path,), uniform=True, permute=True, cache_dir=None)
    return export_package(tmp_path / f"{name}.sasp", make_tiny_whisper(d=32, seed=3), cfg)


def test_an_export_records_its_inputs(tmp_path):
    meta = load_package(export(tmp_path, "a")).metadata
    weights = make_tiny_whisper(d=32, seed=3)
    rates = {n: i["rate"] for n, i in meta["layers"].items() if i["rate"] > 0}
    assert meta["inputs"]["weights"] == input_digests(weights, None, {}, None)["weights"]
    assert meta["inputs"]["calibration"] is None and meta["inputs"]["statistics"] is None  # magnitude: none used
    assert len(rates) > 0 and set(meta["inputs"]) == {"weights", "calibration", "rates", "statistics"}


def test_the_same_export_twice_is_the_same_in_every_input(tmp_path):
    lines = compare([export(tmp_path, "a"), export(tmp_path, "b")])
    layers = len(load_package(tmp_path / "a.sasp").layers)
    assert "every recorded input is the same" in lines and lines[-1].endswith(f": {layers} of {layers}")


@pytest.mark.parametrize(
    "other, where",
    [({"seed": 4}, "weights pruned"), ({"prune_only": QK}, "per-layer rates")],
)
def test_the_first_input_where_two_builds_part_is_named(tmp_path, other, where):
    lines = compare([export(tmp_path, "a"), export(tmp_path, "b", **other)])
    assert f"first input where they part: {where}" in lines
    assert lines[-2] == ("export options that differ: none" if "seed" in other else
                         f"export options that differ: prune_only (- / {QK})")  # fmt: skip
    kept = int(lines[-1].split(": ")[1].split(" of ")[0])
    assert kept < len(load_package(tmp_path / "a.sasp").layers)


def test_digests_follow_the_content():
    weights = make_tiny_whisper(d=32, seed=3)
    a, b = random_stats(weights, seed=0), random_stats(weights, seed=0)
    assert stats_digest(a) == stats_digest(b) != stats_digest(random_stats(weights, seed=1))
    b.rows[next(iter(b.rows))] += 1  # one more row counted, Gram matrices the same
    assert stats_digest(a) != stats_digest(b)
    assert rates_digest({"x": 0.25, "y": 0.5}) == rates_digest({"y": 0.5, "x": 0.25})
    assert rates_digest({"x": 0.25}) != rates_digest({"x": np.nextafter(0.25, 1.0)})
    both = input_digests(weights, a, {}, a)
    assert both["calibration"] == both["statistics"] == stats_digest(a)


def test_a_package_without_them_is_said_so(tmp_path, capsys):
    new = export(tmp_path, "new")
    tensors, meta = read_tensors(new)
    old = write_package(tmp_path / "old.sasp", dict(tensors), {k: v for k, v in meta.items() if k != "inputs"})
    assert main([str(old), str(new)]) == 0
    out = capsys.readouterr().out
    assert f"inputs not recorded in {old}" in out and "same tiles" in out


def test_a_missing_package_is_one_line_and_exit_2(tmp_path, capsys):
    built = export(tmp_path, "a")
    capsys.readouterr()  # the export's progress bar
    assert main([str(tmp_path / "none.sasp"), str(built)]) == 2
    err = capsys.readouterr().err
    assert "weight package not found" in err and err.count("\n") == 1


def test_reordered_groups_with_the_same_unit_order_are_counted(tmp_path, monkeypatch):
    """``--permute`` packages: the groups whose unit order is the same in both (all of them for one build twice,
    fewer for other statistics); packages without a reordering print no such line."""
    made = {name: export_permuted(tmp_path, monkeypatch, name, seed) for name, seed in (("a", 0), ("b", 0), ("c", 1))}
    groups = len(load_package(made["a"]).metadata["permutation"])
    same = [line for line in compare([made["a"], made["b"]]) if line.startswith("unit orders")]
    assert groups > 0 and same == [f"unit orders (--permute): {groups} of {groups} reordered groups the same"]
    other = next(line for line in compare([made["a"], made["c"]]) if line.startswith("unit orders"))
    assert int(other.split(": ")[1].split(" of ")[0]) < groups
    assert not any(line.startswith("unit orders") for line in compare([export(tmp_path, "p"), export(tmp_path, "q")]))


def test_the_order_search_each_package_used_is_named(tmp_path, monkeypatch):
    """The search's record (proposals, seed, margin) is printed once when both packages agree, both and DIFFERENT
    when not, and a package exported before the record existed says so."""
    from model.permute import MARGIN, SEED, SWAPS

    new = export_permuted(tmp_path, monkeypatch, "new")
    tensors, meta = read_tensors(new)
    old = write_package(tmp_path / "old.sasp", dict(tensors), {k: v for k, v in meta.items() if k != "permute_search"})
    record = f"swaps {SWAPS:g}, seed {SEED:g}, margin {MARGIN:g}"
    line = [x for x in compare([new, new]) if x.startswith("order search")]
    assert line == [f"order search (--permute): {record}"]
    line = next(x for x in compare([new, old]) if x.startswith("order search"))
    assert line == f"order search (--permute): {record} / not recorded (exported before session 56)  DIFFERENT"
    plain = next(x for x in compare([export(tmp_path, "p"), new]) if x.startswith("order search"))
    assert plain.startswith("order search (--permute): none (no --permute) / swaps")
