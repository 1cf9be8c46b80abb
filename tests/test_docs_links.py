"""Links between the docs resolve: each relative Markdown link names a file that exists and, with an anchor, a
heading of that file (GitHub's anchors: lower case, punctuation dropped, spaces to hyphens); and every section of
docs/pruning-log.md is listed in docs/pruning.md's contents, which is how a reader of pruning.md finds it."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LINK = re.compile(r"\]\(([^)\s#]+\.md)(?:#([^)\s]+))?\)")


def anchor(heading: str) -> str:
    """GitHub's anchor for a heading's text."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def headings(path: Path) -> list[str]:
    """The text of each Markdown heading of a file."""
    return [line.lstrip("#").strip() for line in path.read_text().splitlines() if re.match(r"#{1,6} ", line)]


def test_anchor_follows_github() -> None:
    assert anchor("The CPU recipe at 8x8 / 20 %, and `--permute` (session 42)") == (
        "the-cpu-recipe-at-8x8--20--and---permute-session-42"
    )


def test_every_link_resolves() -> None:
    docs = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    checked = 0
    for doc in docs:
        for target, frag in LINK.findall(doc.read_text()):
            path = (doc.parent / target).resolve()
            assert path.is_file(), f"{doc.name}: link to missing {target}"
            if frag:
                assert frag in {anchor(h) for h in headings(path)}, f"{doc.name}: no heading #{frag} in {target}"
            checked += 1
    assert checked > 0


def test_log_sections_listed_in_pruning_md() -> None:
    log = ROOT / "docs" / "pruning-log.md"
    listed = {frag for target, frag in LINK.findall((ROOT / "docs" / "pruning.md").read_text()) if target == log.name}
    sections = [h for line in log.read_text().splitlines() if line.startswith("## ") for h in [line[3:]]]
    assert sections, "pruning-log.md has no sections"
    missing = [h for h in sections if anchor(h) not in listed]
    assert not missing, f"sections of pruning-log.md not listed in pruning.md: {missing}"
