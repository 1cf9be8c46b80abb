"""The demo's ``--model`` and ``--rotate``: the default package is built from the given (or rotated) weights and
cached apart by them."""

from __future__ import annotations

import re
import zipfile
from pathlib import Path

import pytest

import host.asr_demo as demo
from host import cli
from host.recommended_exports import PLAIN, ExportChoice

AT_DEFAULT = ExportChoice("default")  # the default package's per-layer rates
PERMUTED = ExportChoice("default", permute=True)


def test_packages_from_other_weights_are_cached_apart_and_built_from_them(monkeypatch, tmp_path):
    built = []
    monkeypatch.setattr(demo, "cache_root", lambda: tmp_path)
    monkeypatch.setattr(demo, "build_package", lambda path, *a, **k: built.append((path, a[-1])))
    weights = tmp_path / "rotated.pt"
    weights.write_bytes(b"one set of weights")
    plain = demo.default_package(16, 0.2, "act-ls", [])
    rotated = demo.default_package(16, 0.2, "act-ls", [], weights)
    assert "model-" not in plain.name and demo.model_tag(weights) in rotated.name
    weights.write_bytes(b"another set of weights")  # the same path, other weights: another package
    assert demo.default_package(16, 0.2, "act-ls", [], weights) not in (plain, rotated)
    assert [m for _, m in built] == [None, weights, weights]
    dense = demo.default_package(16, 0.0, "act-ls", [], weights)
    assert dense.name.startswith("whisper-tiny.en-16x16-dense-model-")


def fake_builder(monkeypatch, tmp_path) -> list:
    """Builds of the demo's packages, recorded as (name, weights, rates_from, permute) and, when asked, the dead
    tiles first; each writes a file that names itself, so a package's digest follows its name."""
    built = []

    def build(path, *a, rates_from=None, choice=PLAIN):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"package of " + path.name.encode())
        built.append((path.name, a[-1], rates_from, choice.permute) + (("drop-dead",) if choice.drop_dead else ()))

    monkeypatch.setattr(demo, "cache_root", lambda: tmp_path)
    monkeypatch.setattr(demo, "load_package", lambda *a, **k: None)
    monkeypatch.setattr(demo, "build_package", build)
    return built


def test_the_default_packages_rates_are_built_first_and_named(monkeypatch, tmp_path):
    built = fake_builder(monkeypatch, tmp_path)
    weights = tmp_path / "rotated.pt"
    weights.write_bytes(b"rotated weights")
    own = demo.default_package(8, 0.2, "act-ls", [], weights)
    at_default = demo.default_package(8, 0.2, "act-ls", [], weights, AT_DEFAULT)
    plain = demo.default_package(8, 0.2, "act-ls", [])
    assert at_default not in (own, plain) and demo.model_tag(weights) in at_default.name
    assert f"rates-{demo.file_digest(plain)[:8]}" in at_default.name
    # own rates: no package of rates; the default's: the plain package is built first and handed over
    assert built == [
        (own.name, weights, None, False),
        (plain.name, None, None, False),
        (at_default.name, weights, plain, False),
    ]
    assert demo.default_package(8, 0.0, "act-ls", [], weights, AT_DEFAULT).name.startswith("whisper-tiny.en-8x8-dense")


def test_the_builder_is_given_the_weights(monkeypatch, tmp_path):
    monkeypatch.setattr(demo, "find_spec", lambda name: None)  # no torch: the message names the whole command
    with pytest.raises(cli.UserError, match=f"--model {tmp_path / 'r.pt'} --out PKG"):
        demo.build_package(tmp_path / "p.sasp", 16, 0.2, "act-ls", [], tmp_path / "r.pt")
    with pytest.raises(cli.UserError, match="--rates-from d.sasp --model r.pt --out PKG") as e:
        demo.build_package(Path("p.sasp"), 16, 0.2, "act-ls", [], Path("r.pt"), rates_from=Path("d.sasp"))
    assert "--sensitivity" not in str(e.value)  # rates from a package: no sensitivity analysis


@pytest.mark.parametrize(
    "argv, words",
    [
        (["--package", "p.sasp", "--model", "r.pt"], "--package names one already built"),
        (["--model", "missing.pt"], "missing.pt is neither a file nor a CTranslate2 folder"),
        (["--model-rates", "default", "--sparsity", "0.2"], "applies to --model or --rotate with --sparsity > 0"),
        (["--model", "r.pt", "--model-rates", "default"], "applies to --model or --rotate with --sparsity > 0"),
        (["--rotate", "--model-rates", "default"], "applies to --model or --rotate with --sparsity > 0"),
        (["--rotate"], "argument --rotate: applies to --sparsity > 0"),
        (["--package", "p.sasp", "--rotate"], "--package names one already built"),
        (["--permute"], "argument --permute: applies to --sparsity > 0"),
        (["--package", "p.sasp", "--permute"], "--package names one already built"),
        (["--drop-dead"], "argument --drop-dead: applies to --sparsity > 0"),
        (["--package", "p.sasp", "--drop-dead"], "--package names one already built"),
        (["--recommended"], "argument --recommended: applies to --sparsity > 0"),
        (["--recommended", "--sparsity", "0.2", "--rotate"], "sets the package's flags itself; drop --rotate"),
        (["--recommended", "--sparsity", "0.2", "--drop-dead"], "drop --drop-dead"),
        (["--recommended", "--sparsity", "0.2", "--model", "r.pt"], "drop --model"),
        (["--recommended", "--sparsity", "0.2", "--method", "obs-ls"], "measured with --method act-ls"),
        (["--recommended", "--sparsity", "0.15"], "no recommendation for 8x8 / 15 %"),
        (["--recommended", "--array", "32", "--sparsity", "0.2"], "no recommendation for 32x32 / 20 %"),
        (["--recommended", "--package", "p.sasp"], "--package names one already built"),
        (["--package", "p.sasp", "--obs-tiles"], "--package names one already built"),
        (["--sparsity", "0.2", "--rotate", "--obs-tiles"], "argument --obs-tiles: applies to --model-rates default"),
        (["--obs-tiles"], "argument --obs-tiles: applies to --model-rates default"),
        (["--recommended", "--sparsity", "0.2", "--obs-tiles"], "drop --obs-tiles"),
    ],
)
def test_model_option_errors(tmp_path, monkeypatch, capsys, argv, words):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "r.pt").write_bytes(b"x")
    with pytest.raises(SystemExit) as exit_:
        demo.parse_args(argv)
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and words in err and err.count("\n") == 1


def test_permute_is_handed_to_the_builder_and_names_the_package(monkeypatch, tmp_path):
    built = fake_builder(monkeypatch, tmp_path)
    weights = tmp_path / "rotated.pt"
    weights.write_bytes(b"rotated weights")
    at_default = demo.default_package(16, 0.2, "act-ls", [], weights, AT_DEFAULT)
    permuted = demo.default_package(16, 0.2, "act-ls", [], weights, PERMUTED)
    assert permuted != at_default and "-permute-" in permuted.name and "-permute" not in at_default.name
    plain = tmp_path / "packages" / built[0][0]
    # the package of rates is the plain default, built once and not reordered; only the last build reorders
    assert built == [
        (plain.name, None, None, False),
        (at_default.name, weights, plain, False),
        (permuted.name, weights, plain, True),
    ]


def test_a_package_that_other_code_built_is_built_again(monkeypatch, tmp_path):
    """A cached package is named by the builder's code (``model.export``'s, with ``code_tag``): after that code
    changes, the demo builds a new one instead of using the old code's, the package of rates too."""
    built = fake_builder(monkeypatch, tmp_path)
    weights = tmp_path / "rotated.pt"
    weights.write_bytes(b"rotated weights")
    code = {"model.export": "code-old"}
    monkeypatch.setattr(demo, "code_tag", lambda module: code[module])
    old = demo.default_package(16, 0.2, "act-ls", [], weights, PERMUTED)
    assert demo.default_package(16, 0.2, "act-ls", [], weights, PERMUTED) == old and len(built) == 2
    code["model.export"] = "code-new"
    new = demo.default_package(16, 0.2, "act-ls", [], weights, PERMUTED)
    assert old.exists() and old.name.endswith("-code-old.sasp") and new.name.endswith("-code-new.sasp")
    rates_old, rates_new = built[0][0], built[2][0]  # the package of rates is built again too
    assert [b[0] for b in built] == [rates_old, old.name, rates_old.replace("-code-old", "-code-new"), new.name]
    assert rates_new != rates_old and f"rates-{demo.file_digest(tmp_path / 'packages' / rates_new)[:8]}" in new.name


def test_the_builder_is_asked_to_permute(monkeypatch, tmp_path):
    monkeypatch.setattr(demo, "find_spec", lambda name: None)
    with pytest.raises(cli.UserError, match="--sensitivity held-out --permute --out PKG"):
        demo.build_package(Path("p.sasp"), 8, 0.2, "act-ls", [], choice=ExportChoice(permute=True))
    with pytest.raises(cli.UserError, match="--sensitivity held-out --permute --drop-dead --out PKG"):
        demo.build_package(Path("p.sasp"), 8, 0.2, "act-ls", [], choice=ExportChoice(permute=True, drop_dead=True))


def test_drop_dead_is_handed_to_the_builder_and_names_the_package(monkeypatch, tmp_path):
    built = fake_builder(monkeypatch, tmp_path)
    weights = tmp_path / "rotated.pt"
    weights.write_bytes(b"rotated weights")
    permuted = demo.default_package(16, 0.2, "act-ls", [], weights, PERMUTED)
    dropped = demo.default_package(16, 0.2, "act-ls", [], weights, ExportChoice("default", True, True))
    assert dropped != permuted and "dropdead" not in permuted.name
    assert "-permute-dropdead-" in dropped.name
    plain = tmp_path / "packages" / built[0][0]
    assert built[1:] == [(permuted.name, weights, plain, True), (dropped.name, weights, plain, True, "drop-dead")]


def test_obs_tiles_build_the_tiles_by_obs_at_the_act_ls_defaults_rates(monkeypatch, tmp_path):
    """``--obs-tiles``: the package of rates is the plain act-ls default; the rotated package is built with
    ``--method obs-ls`` from those rates and cached apart from the one with activation-scored tiles."""
    build_package = demo.build_package
    built = fake_builder(monkeypatch, tmp_path)
    weights = tmp_path / "rotated.pt"
    weights.write_bytes(b"rotated weights")
    scored = demo.default_package(8, 0.2, "act-ls", [], weights, ExportChoice("default", drop_dead=True))
    obs = demo.default_package(8, 0.2, "act-ls", [], weights, ExportChoice("default", drop_dead=True, obs=True))
    assert obs != scored and obs.name.count("-act-ls-rates-") == 1 and "-dropdead-obs-" in obs.name
    plain = tmp_path / "packages" / built[0][0]
    assert "-act-ls-" in plain.name and [b[2] for b in built[1:]] == [plain, plain]
    monkeypatch.setattr(demo, "find_spec", lambda name: None)
    with pytest.raises(cli.UserError, match="--method obs-ls --rates-from d.sasp --model r.pt --out PKG"):
        build_package(Path("p.sasp"), 8, 0.2, "act-ls", [], Path("r.pt"), Path("d.sasp"), ExportChoice(obs=True))


def fake_rotator(monkeypatch, tmp_path) -> list:
    """Runs of the offline rotation, recorded as their arguments; each writes a small zip archive (as torch.save
    does) that names its output."""
    runs = []

    def run(tool, args, out, what, use):
        assert tool == demo.ROTATOR and use == ("--model", "rotated.pt")
        out.parent.mkdir(parents=True, exist_ok=True)  # as model.rotate's atomic write does
        with zipfile.ZipFile(out, "w") as z:
            z.writestr("archive/data.pkl", out.name)
        runs.append(args)

    monkeypatch.setattr(demo, "cache_root", lambda: tmp_path)
    monkeypatch.setattr(demo, "run_offline", run)
    return runs


def test_the_rotated_model_is_built_once_per_weights_and_audio_and_rebuilt_when_damaged(monkeypatch, tmp_path, capsys):
    runs = fake_rotator(monkeypatch, tmp_path)
    audio = [tmp_path / "a"]
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "x.wav").write_bytes(b"RIFF")
    weights = tmp_path / "w.pt"
    weights.write_bytes(b"other weights")
    plain = demo.rotated_model(None, audio)
    assert demo.rotated_model(None, audio) == plain and len(runs) == 1  # cached: not run again
    other = demo.rotated_model(weights, audio)
    assert other != plain and demo.model_tag(weights) in other.name
    assert runs == [["--audio", str(audio[0])], ["--audio", str(audio[0]), "--model", str(weights)]]
    (tmp_path / "a" / "y.wav").write_bytes(b"RIFF")  # other audio: another file
    assert demo.rotated_model(None, audio) != plain and len(runs) == 3
    (tmp_path / "a" / "y.wav").unlink()
    capsys.readouterr()
    data = bytearray(plain.read_bytes())
    data[data.index(plain.name.encode())] ^= 1  # one flipped bit in a member: its CRC fails, rebuilt
    plain.write_bytes(bytes(data))
    assert demo.rotated_model(None, audio) == plain and len(runs) == 4 and zipfile.ZipFile(plain).testzip() is None
    plain.write_bytes(b"truncated")
    demo.rotated_model(None, audio)
    err = capsys.readouterr().err.splitlines()
    assert (
        len(runs) == 5 and len(err) == 2 and all(line.startswith("rebuilding the cached rotated model") for line in err)
    )


def test_a_rotated_model_that_other_code_built_is_built_again(monkeypatch, tmp_path):
    """The cached rotated model is named by the rotation's code (``model.rotate``'s, with ``code_tag``): after
    that code changes, the demo builds a new one instead of using the old code's."""
    runs = fake_rotator(monkeypatch, tmp_path)
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "x.wav").write_bytes(b"RIFF")
    code = {"model.rotate": "code-old"}
    monkeypatch.setattr(demo, "code_tag", lambda module: code[module])
    old = demo.rotated_model(None, [tmp_path / "a"])
    assert demo.rotated_model(None, [tmp_path / "a"]) == old and len(runs) == 1
    code["model.rotate"] = "code-new"
    new = demo.rotated_model(None, [tmp_path / "a"])
    assert old.exists() and new == old.with_name(old.name.replace("-code-old.pt", "-code-new.pt")) and len(runs) == 2


def test_rotate_prunes_the_rotated_weights(monkeypatch, tmp_path, capsys):
    """``--rotate`` hands the rotated model (of ``--model``'s weights, on the calibration audio) to the package
    build, with ``--model-rates``, ``--permute`` and ``--drop-dead`` as given."""
    asked = []
    monkeypatch.setattr(demo, "rotated_model", lambda model, audio: asked.append((model, audio)) or tmp_path / "r.pt")

    def stop(*a):
        asked.append(a)
        raise cli.UserError("stop here")

    monkeypatch.setattr(demo, "default_package", stop)
    assert demo.main(["--sparsity", "0.2", "--rotate", "--model-rates", "default", "--permute", "--drop-dead"]) == 2
    assert asked == [
        (None, list(demo.DEFAULT_TILE_AUDIO)),
        (8, 0.2, "act-ls", [], tmp_path / "r.pt", ExportChoice("default", True, True)),
    ]
    assert "stop here" in capsys.readouterr().err


def test_the_rotator_is_named_where_torch_is_missing(monkeypatch, tmp_path):
    monkeypatch.setattr(demo, "find_spec", lambda name: None)
    monkeypatch.setattr(demo, "cache_root", lambda: tmp_path)
    (tmp_path / "x.wav").write_bytes(b"RIFF")
    command = f"model.rotate --audio {tmp_path} --out rotated.pt) and pass --model rotated.pt"
    with pytest.raises(cli.UserError, match=re.escape(command)):
        demo.rotated_model(None, [tmp_path])
