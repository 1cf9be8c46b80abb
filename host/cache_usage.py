"""What the cache (``host.cache.cache_root()``) holds, and pruning it by age.

    python -m host.cache_usage                     # each kind of cache entry: files and size
    python -m host.cache_usage --prune-days DAYS   # delete the entries written more than DAYS days ago

Cache keys are content hashes, so a change of code or inputs leaves the old entries behind, unread (calibration
statistics of the full model are ~100-200 MB each). Every entry is recomputed when it is next needed, so pruning
by age loses nothing but the time to recompute it; an entry's age is the time it was written (reading it does not
renew it).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from host import cli
from host.cache import cache_root

DAY_S = 86_400.0


def _entries(root: Path) -> Dict[str, List[Path]]:
    """The files under ``root`` by kind (the folder below the root; ``.`` for files at its top)."""
    kinds: Dict[str, List[Path]] = {}
    for path in sorted(root.rglob("*")) if root.is_dir() else ():
        if path.is_file() and not path.is_symlink():
            rel = path.relative_to(root).parts
            kinds.setdefault(rel[0] if len(rel) > 1 else ".", []).append(path)
    return kinds


def usage(root: Path) -> Dict[str, Tuple[int, int]]:
    """``{kind: (files, bytes)}`` of the cache at ``root``."""
    return {k: (len(files), sum(f.stat().st_size for f in files)) for k, files in _entries(root).items()}


def prune(root: Path, days: float, now: Optional[float] = None) -> Tuple[int, int]:
    """Delete the cache files written more than ``days`` days before ``now``; ``(files, bytes)`` deleted."""
    cutoff = (time.time() if now is None else now) - days * DAY_S
    count = size = 0
    for files in _entries(root).values():
        for f in files:
            st = f.stat()
            if st.st_mtime < cutoff:
                f.unlink()
                count, size = count + 1, size + st.st_size
    return count, size


def _mib(n: int) -> str:
    return f"{n / 2**20:.1f} MiB"


@cli.entry_point
def main(argv: Optional[List[str]] = None) -> int:
    ap = cli.Parser(prog="python -m host.cache_usage", description=__doc__)
    ap.add_argument("--prune-days", type=cli.positive_float, default=None, help="delete entries older than this")
    args = ap.parse_args(argv)
    root = cache_root()
    if args.prune_days is not None:
        count, size = prune(root, args.prune_days)
        print(f"deleted {count} cache files ({_mib(size)}) written more than {args.prune_days:g} days ago")
    kinds = usage(root)
    for kind, (count, size) in kinds.items():
        print(f"{kind:12s} {count:6d} files {_mib(size):>12s}")
    print(f"{root}: {_mib(sum(s for _, s in kinds.values()))}" if kinds else f"{root}: empty")
    return 0


if __name__ == "__main__":
    sys.exit(main())
