"""The per-cell recommendations: the code's table is the docs' table, and the demo's ``--recommended`` applies it
(its option errors: tests/test_demo_model.py)."""

import re
from pathlib import Path

import pytest

from host import asr_demo as demo
from host.recommended_exports import RECOMMENDED, ExportChoice, Recipe, recommended

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs" / "pruning.md"
SECTION = "### Which package to build, per cell"
POINTS = re.compile(r"[+-]\d+\.\d\d")


def table_rows(text: str, start: str) -> dict:
    """``{"8x8 / 10 %": [cells...]}``: the rows of the first table after ``start`` in ``text`` (indented or not)."""
    lines = iter(text[text.index(start) :].splitlines())
    table = next(line.strip() for line in lines if line.strip().startswith("|"))
    rows = {}
    while table.startswith("|"):
        cells = [c.strip() for c in table.strip("|").split("|")]
        if re.fullmatch(r"\d+x\d+ / \d+ %", cells[0]):
            rows[cells[0]] = cells[1:]
        table = next(lines, "").strip()
    return rows


def docs_cells() -> dict:
    """``{(array, sparsity): flags}`` from the first backquoted text of the no-training column of the docs' table."""
    rows = {}
    for cell, cells in table_rows(DOCS.read_text(encoding="utf-8"), SECTION).items():
        array, percent = re.fullmatch(r"(\d+)x\1 / (\d+) %", cell).groups()
        rows[(int(array), int(percent) / 100)] = re.match(r"`([^`]+)`", cells[0]).group(1)
    return rows


def test_the_readmes_summary_is_the_docs_table():
    """README's per-cell summary gives each recommendation's report half / unseen clean and speedup as the docs'
    table does (the docs' table owns them: a change there that misses README fails here)."""
    docs = table_rows(DOCS.read_text(encoding="utf-8"), SECTION)
    readme = table_rows((ROOT / "README.md").read_text(encoding="utf-8"), "- **Pruning on LibriSpeech**")
    assert len(docs) == 8 and readme.keys() == docs.keys()
    for cell, (_, plain, _, distilled, speedup) in docs.items():
        ours = readme[cell]
        assert POINTS.findall(ours[0]) == POINTS.findall(plain)[1:3], cell
        assert POINTS.findall(ours[1]) == POINTS.findall(distilled)[1:3], cell  # none: both empty
        assert re.findall(r"\d\.\d+x", ours[2]) == re.findall(r"\d\.\d+x", speedup)[:2], cell


def test_the_code_table_is_the_docs_table():
    rows = docs_cells()
    assert len(rows) == 8  # 8x8 and 16x16 at 10, 20, 25, 30 %
    assert rows == {cell: recipe.flags() for cell, recipe in RECOMMENDED.items()}


def test_flags_are_the_demos_options():
    assert Recipe("x").flags() == "--rotate"
    assert Recipe("x", ExportChoice("default", permute=True, drop_dead=True)).flags() == (
        "--rotate --model-rates default --permute --drop-dead"
    )
    assert Recipe("x", ExportChoice("default", drop_dead=True, obs=True)).flags() == (
        "--rotate --model-rates default --drop-dead --obs-tiles"
    )


def test_a_cell_without_a_measurement_names_the_measured_ones():
    with pytest.raises(ValueError, match=r"no recommendation for 8x8 / 15 % \(measured: 8x8 / 10 %, 8x8 / 20 %"):
        recommended(8, 0.15)


@pytest.mark.parametrize("board, array", [("pynq-z2", 8), ("ultra96-v2", 16)])
@pytest.mark.parametrize("sparsity", ["0.2", "0.3"])
def test_the_demo_applies_the_cell_of_its_board(board, array, sparsity):
    args = demo.parse_args(["--recommended", "--board", board, "--sparsity", sparsity])
    recipe = recommended(array, float(sparsity))
    assert ExportChoice(args.model_rates, args.permute, args.drop_dead, args.obs_tiles) == recipe.choice
    assert args.rotate


def test_the_demo_applies_the_cell_of_its_array_and_says_so(capsys):
    args = demo.parse_args(["--recommended", "--array", "16", "--sparsity", "0.1"])
    assert (args.rotate, args.model_rates, args.permute, args.drop_dead) == (True, "default", False, False)
    said = "--recommended at 16x16 / 10 %: --rotate --model-rates default (R16-10F)\n"
    assert capsys.readouterr().err == said
