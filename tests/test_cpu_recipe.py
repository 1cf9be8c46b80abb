"""``python -m model.cpu_recipe``: the per-cell table's CPU distillation recipe, then the report sets, in one
command. The real run takes over an hour, so the two steps are stood in for here and their arguments checked
against the recipe that ``docs/pruning.md`` gives."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from model import cpu_recipe

DOCS = Path(__file__).resolve().parents[1] / "docs" / "pruning.md"


def speech_tree(root: Path, clips: int = cpu_recipe.READ_CLIPS) -> Path:
    """A ``shared/speech`` stand-in: the recipe's folders with ``clips`` empty .wav names between them."""
    for i in range(clips):
        folder = root / cpu_recipe.READ_AUDIO[i % len(cpu_recipe.READ_AUDIO)]
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"clip{i}.wav").write_bytes(b"")
    (root / "librispeech").mkdir()
    return root


@pytest.fixture
def calls(monkeypatch):
    """The argv each step was called with (each returns 0)."""
    seen = {}
    for name, module in (("distill", cpu_recipe.distill), ("report_sets", cpu_recipe.report_sets)):
        monkeypatch.setattr(module, "main", lambda argv, name=name: seen.update({name: argv}) or 0)
    return seen


def test_the_command_runs_the_docs_recipe_then_the_report_sets(tmp_path, calls):
    speech = speech_tree(tmp_path / "speech")
    start, model = tmp_path / "start.sasp", tmp_path / "rot.pt"
    start.write_bytes(b"x")
    model.write_bytes(b"x")
    out = tmp_path / "RD"
    argv = ["--start", str(start), "--model", str(model), "--seed", "1", "--out", str(out), "--speech", str(speech)]
    assert cpu_recipe.main(argv) == 0
    d = calls["distill"]
    audio = d[d.index("--audio") + 1 : d.index("--audio") + 1 + len(cpu_recipe.READ_AUDIO)]
    assert audio == [str(speech / name) for name in cpu_recipe.READ_AUDIO]
    assert d[d.index("--package") + 1] == str(start) and d[d.index("--model") + 1] == str(model)
    assert d[d.index("--seed") + 1] == "1" and d[d.index("--out") + 1] == str(tmp_path / "RD.sasp")
    text = " ".join(DOCS.read_text().split())  # the distilled column's command, as the docs give it
    command = re.search(
        r"`python -m model\.distill --package START\.sasp \[--model rotated\.pt\] --audio READ\.\.\. (.+?)`", text
    )
    assert list(cpu_recipe.RECIPE) == command.group(1).replace("--seed 0 ", "").split()
    at = d.index(cpu_recipe.RECIPE[0])
    assert d[at : at + len(cpu_recipe.RECIPE)] == list(cpu_recipe.RECIPE)
    folders = re.search(r"`unlabelled` and `unlabelled-extra`'s `([a-z_ ]+)`", text).group(1).split()
    assert ["unlabelled"] + [f"unlabelled-extra/{f}" for f in folders] == list(cpu_recipe.READ_AUDIO)
    assert calls["report_sets"] == ["--package", str(tmp_path / "RD.sasp"), "--out", str(out), "--halves",
                                    str(speech / "librispeech"), "--speakers"]  # fmt: skip


def test_a_failed_distillation_stops_before_the_evaluation(tmp_path, monkeypatch):
    speech = speech_tree(tmp_path / "speech")
    (tmp_path / "start.sasp").write_bytes(b"x")
    evaluated = []
    monkeypatch.setattr(cpu_recipe.distill, "main", lambda argv: 2)
    monkeypatch.setattr(cpu_recipe.report_sets, "main", lambda argv: evaluated.append(argv) or 0)
    argv = ["--start", str(tmp_path / "start.sasp"), "--out", str(tmp_path / "RD"), "--speech", str(speech)]
    assert cpu_recipe.main(argv) == 2 and not evaluated


@pytest.mark.parametrize(
    "change, message",
    [
        ("no start", "--start"),
        ("no model", "--model"),
        ("no out folder", "does not exist"),
        ("a folder missing", "training audio is missing"),
        ("a clip more", "55 clips, not the recipe's 54"),
        ("no halves", "no librispeech folder"),
    ],
)
def test_bad_input_is_a_one_line_error(tmp_path, calls, capsys, change, message):
    speech = speech_tree(tmp_path / "speech", cpu_recipe.READ_CLIPS + (change == "a clip more"))
    if change == "a folder missing":
        for f in (speech / cpu_recipe.READ_AUDIO[-1]).iterdir():
            f.unlink()
        (speech / cpu_recipe.READ_AUDIO[-1]).rmdir()
    if change == "no halves":
        (speech / "librispeech").rmdir()
    start = tmp_path / "start.sasp"
    if change != "no start":
        start.write_bytes(b"x")
    argv = ["--start", str(start), "--out", str(tmp_path / ("nowhere/RD" if change == "no out folder" else "RD"))]
    argv += ["--speech", str(speech)] + (["--model", str(tmp_path / "none.pt")] if change == "no model" else [])
    assert cpu_recipe.main(argv) == 2 and not calls
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_the_shared_read_clips_are_the_recipes_54():
    if not cpu_recipe.SPEECH.is_dir():
        pytest.skip("shared/speech not available")
    assert len(cpu_recipe.read_audio(cpu_recipe.SPEECH)) == len(cpu_recipe.READ_AUDIO)


def test_model_distill_takes_the_recipes_arguments(tmp_path, monkeypatch, capsys):
    """The real ``model.distill`` parses the command's arguments and gets as far as reading the start (here not a
    package: its own one-line error, not an argparse one)."""
    speech = speech_tree(tmp_path / "speech")
    (tmp_path / "start.sasp").write_bytes(b"x")
    monkeypatch.setattr(cpu_recipe.report_sets, "main", lambda argv: pytest.fail("evaluated after a failure"))
    argv = ["--start", str(tmp_path / "start.sasp"), "--out", str(tmp_path / "RD"), "--speech", str(speech)]
    assert cpu_recipe.main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {tmp_path / 'start.sasp'}: ") and "usage" not in err
