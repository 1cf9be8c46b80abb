"""The cache's own command: what it holds, and pruning by age."""

from __future__ import annotations

import os
import time

from host import cache_usage


def _write(path, size, age_days):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x" * size)
    t = time.time() - age_days * cache_usage.DAY_S
    os.utime(path, (t, t))


def test_prune_deletes_only_entries_older_than_the_limit(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SASP_CACHE", str(tmp_path))
    _write(tmp_path / "calib" / "calib-old.npz", 300, 40)
    _write(tmp_path / "calib" / "calib-new.npz", 200, 1)
    _write(tmp_path / "kernels" / "k8" / "kernel.so", 100, 40)
    assert cache_usage.usage(tmp_path) == {"calib": (2, 500), "kernels": (1, 100)}
    assert cache_usage.main(["--prune-days", "30"]) == 0
    out = capsys.readouterr().out
    assert "deleted 2 cache files" in out and "written more than 30 days ago" in out
    assert [p.name for p in tmp_path.rglob("*") if p.is_file()] == ["calib-new.npz"]
    assert cache_usage.usage(tmp_path) == {"calib": (1, 200)}


def test_listing_an_empty_or_missing_cache_and_a_bad_limit(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SASP_CACHE", str(tmp_path / "none"))
    assert cache_usage.main([]) == 0
    assert "empty" in capsys.readouterr().out
    for bad in ("-1", "0", "nan"):
        try:
            code = cache_usage.main(["--prune-days", bad])
        except SystemExit as e:  # argparse rejects the value with its one-line error
            code = e.code
        assert code == 2
