"""End-to-end speech recognition on the SASP accelerator (emulated, numpy reference, or a PYNQ board).

    python host/asr_demo.py                       # bundled clip, emulated kernel (C simulation of the HLS source)
    python host/asr_demo.py --wav my.flac --board ultra96-v2 --array 16 --sparsity 0.2
    python host/asr_demo.py --backend pynq --board pynq-z2 --package whisper-8x8.sasp    # on the board

Recordings of any length are transcribed in windows of at most 30 s cut at pauses; a window of silence or noise
(energy gate, then Whisper's no-speech probability) adds nothing to the transcript and is reported as skipped
(``host/longform.py``). Prints the transcript and a report: per-stage latency (emulated wall time here, measured
on a board), the modeled on-board latency and energy for the chosen board (cycle model + DMA bandwidth + CPU
work), and the MACs/tiles the pruning skipped. ``--json`` writes the same report with a label on every figure.

Without ``--package`` the weight package for ``--array``/``--sparsity`` is built once and cached by the offline
tooling, run as its own program (``python -m model.export``, which needs torch): on a board, pass ``--package``.
``--model`` builds it from other weights (an openai checkpoint or a CTranslate2 folder) and ``--rotate`` from the
weights with each attention head in its weighted SVD basis (``python -m model.rotate``, the same function; built once
and cached), cached apart by a digest of the weights: at those weights' own per-layer rates, or with ``--model-rates
default`` at the rates of the default package of the same array and sparsity (built first; ``model.export
--rates-from``), ``--permute`` reorders the weights for the tiles before pruning (``model.export --permute``) and
``--drop-dead`` prunes first the tiles whose outputs a pruned partner discards (``model.export --drop-dead``);
``--obs-tiles`` chooses the tiles at the default package's rates by the OBS order (``model.export --method obs-ls``).
``--recommended`` sets these five to what docs/pruning.md ("Which package to build, per cell") recommends without
training for the cell (``host/recommended_exports.py``, the one table of them; ``--help`` lists it).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import subprocess
import sys
import zipfile
from importlib.util import find_spec
from pathlib import Path
from typing import List, Optional, Tuple

ROOT = Path(__file__).resolve().parents[1]
if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(ROOT))

from host import cli  # noqa: E402
from host.audio import DEFAULT_TILE_AUDIO, DEMO_CLIP, demo_reference  # noqa: E402
from host.boards import board_spec  # noqa: E402
from host.cache import cache_root, file_digest  # noqa: E402
from host.code_digest import code_tag  # noqa: E402
from host.dataset import list_audio_files, read_librispeech  # noqa: E402
from host.driver import BACKENDS, Accelerator  # noqa: E402
from host.longform import (  # noqa: E402
    DEFAULT_WINDOW,
    ENERGY_GATE_DBFS,
    LOGPROB_THRESHOLD,
    NO_SPEECH_THRESHOLD,
    WINDOW_HELP,
    WINDOW_SECONDS,
    WINDOWS,
    window_name,
)
from host.package import PackageError, load_package  # noqa: E402
from host.recommended_exports import PLAIN, ExportChoice, cell_name, cells, recommended  # noqa: E402
from host.report import figure, format_table, window_report, work_summary, write_json  # noqa: E402
from host.session import Session  # noqa: E402
from host.text_normalize import normalize  # noqa: E402
from host.whisper import WhisperRuntime  # noqa: E402

BUILDER = ("-m", "model.export")  # the offline package builder, run as its own program (it needs torch)
ROTATOR = ("-m", "model.rotate")  # the offline change of basis of the attention heads (it needs torch too)
SENSITIVITY = "held-out"  # the builder's sensitivity analysis for the demo's packages (docs/pruning.md); in their name


def calibration_tag(calib: List[Path]) -> str:
    """A short name for a calibration set (its files' names and sizes): packages calibrated differently are cached
    apart."""
    h = hashlib.sha256()
    for f in list_audio_files(*calib):
        h.update(f"{f.name}:{f.stat().st_size};".encode())
    return "calib-" + h.hexdigest()[:8]


def package_audio(calib: List[Path]) -> List[Path]:
    """The audio a default package (and ``--rotate``'s basis) is calibrated on: ``calib``, else the bundled sets
    (host/assets/calib for the rates, with host/assets/stats for the tiles, as ``model.export``)."""
    return calib or list(DEFAULT_TILE_AUDIO)


def weights_file(model: Path) -> Path:
    """The file that holds ``--model``'s weights: the checkpoint, or a CTranslate2 folder's ``model.bin``."""
    return model / "model.bin" if model.is_dir() else model


def model_tag(model: Path) -> str:
    """A short name for ``--model``'s weights (a digest of :func:`weights_file`'s bytes): packages built from other
    weights are cached apart."""
    return "model-" + file_digest(weights_file(model))[:8]


def run_offline(tool: Tuple[str, ...], args: List[str], out: Path, what: str, use: Tuple[str, str]) -> None:
    """Write ``out`` with an offline tool (``tool``: :data:`BUILDER` or :data:`ROTATOR`) in its own process, its
    output passed on to stderr; a tool that cannot run here (no torch: a board) or that fails is one ``UserError``
    line naming the command to run offline and ``use``, the option that takes its output and a placeholder for the
    file (a tool that refuses its arguments says so before anything else is printed)."""
    if find_spec("torch") is None:
        option, name = use
        raise cli.UserError(
            f"no cached {what} {out.name} and no torch here to build it: build it offline "
            f"(python {' '.join(tool + tuple(args))} --out {name}) and pass {option} {name}"
        )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, (str(ROOT), os.environ.get("PYTHONPATH"))))}
    heading = f"building {what} {out.name} (once; cached)\n"
    last = ""  # each line is passed on once the next one arrives: a failure's last line is its message
    with subprocess.Popen(
        [sys.executable, *tool, *args, "--cache-dir", str(cache_root()), "--out", str(out)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    ) as proc:
        for line in io.TextIOWrapper(proc.stdout, errors="replace", newline=""):
            if last:
                _echo(heading + last)
                heading = ""
            last = line
    if proc.returncode:
        raise cli.UserError(f"building {what} {out.name} failed: {last.strip() or proc.returncode}")
    _echo(heading + last)


def build_package(
    path: Path,
    array: int,
    sparsity: float,
    method: str,
    calib: List[Path],
    model: Optional[Path] = None,
    rates_from: Optional[Path] = None,
    choice: ExportChoice = PLAIN,
) -> None:
    """Write the package ``path`` with the offline builder (``python -m model.export``, :func:`run_offline`), at
    the per-layer rates of the package ``rates_from`` if given (else allocated by the sensitivity analysis), with
    ``choice``'s reordering, dead tiles and tile selection (its rates are what ``rates_from`` carries; ``method`` is
    the rates' method, which ``choice`` may replace for the tiles)."""
    args = ["--tile", str(array), "--sparsity", str(sparsity), "--method", choice.method(method)]
    args += ["--rates-from", str(rates_from)] if rates_from else ["--sensitivity", SENSITIVITY] if sparsity > 0 else []
    args += (["--model", str(model)] if model else []) + choice.export_flags()
    args += ["--calib", *map(str, calib)] if calib else []
    run_offline(BUILDER, args, path, "weight package", ("--package", "PKG"))


def rotated_name(model: Optional[Path], audio: List[Path]) -> str:
    """The cached rotated model's file name: by source weights, audio and the rotation's code (:func:`code_tag`)."""
    source = model_tag(model) if model else "tiny.en"
    return f"whisper-{source}-rotated-{calibration_tag(audio)}-{code_tag(ROTATOR[1])}.pt"


def rotated_model(model: Optional[Path], audio: List[Path]) -> Path:
    """Build (once) and cache ``model``'s weights (default: the pip-installed Whisper tiny.en) with each attention
    head in its weighted SVD basis (``python -m model.rotate``, the same function), weighted by ``audio``'s
    statistics, named by both and by the rotation's code (:func:`rotated_name`); a cached file that is not an
    intact checkpoint (every member's CRC, read without torch) is rebuilt."""
    path = cache_root() / "models" / rotated_name(model, audio)
    if path.is_file():
        try:
            with zipfile.ZipFile(path) as z:
                bad = z.testzip()
            if bad is None:
                return path
            problem = f"member {bad} fails its CRC"
        except (zipfile.BadZipFile, OSError) as e:
            problem = str(e)
        print(f"rebuilding the cached rotated model {path.name}: {problem}", file=sys.stderr)
    args = ["--audio", *map(str, audio)] + (["--model", str(model)] if model else [])
    run_offline(ROTATOR, args, path, "rotated model", ("--model", "rotated.pt"))
    return path


def _echo(text: str) -> None:
    """Write ``text`` to stderr at once (a progress bar's line may end in a carriage return)."""
    sys.stderr.write(text)
    sys.stderr.flush()


def default_package(
    array: int,
    sparsity: float,
    method: str,
    calib: List[Path],
    model: Optional[Path] = None,
    choice: ExportChoice = PLAIN,
) -> Path:
    """Build (once) and cache a package for ``array`` and ``sparsity`` from ``model``'s weights (default: the
    pip-installed Whisper tiny.en), calibrated on ``calib`` (default: the bundled real-speech sets,
    host/assets/calib for the rates and with host/assets/stats for the tiles, as ``model.export``); other weights
    are pruned as ``choice`` says: at their own rates, or at those of the default weights' package (built first,
    named in the tag by its digest; it is not reordered), reordered for the tiles first, dead tiles first; named by
    the builder's code too (:func:`code_tag`), so that a package that other code built is built again; a cached
    package that does not load (corrupt, or an older format) is rebuilt."""
    audio = package_audio(calib)
    by_default = model and sparsity > 0 and choice.model_rates == "default"
    rates_from = default_package(array, sparsity, method, calib) if by_default else None
    rates = f"rates-{file_digest(rates_from)[:8]}" if rates_from else SENSITIVITY  # how the rates were chosen
    tag = f"s{sparsity:.2f}-{method}-{rates}{choice.tag()}-{calibration_tag(audio)}" if sparsity > 0 else "dense"
    tag += (f"-{model_tag(model)}" if model else "") + f"-{code_tag(BUILDER[1])}"
    path = cache_root() / "packages" / f"whisper-tiny.en-{array}x{array}-{tag}.sasp"
    if path.exists():
        try:
            load_package(path, expect_tile=(array, array))
            return path
        except PackageError as e:
            print(f"rebuilding the cached package: {e}", file=sys.stderr)
    build_package(path, array, sparsity, method, calib, model, rates_from=rates_from, choice=choice)
    return path


def read_reference(path: Path) -> Optional[str]:
    """The reference transcript beside an audio file (same name, ``.txt``), if there is one."""
    ref = path.with_suffix(".txt")
    if not ref.is_file():
        return None
    try:
        return ref.read_text(encoding="utf-8").strip()
    except UnicodeDecodeError as e:
        raise cli.UserError(f"{ref}: reference transcript is not UTF-8 text (byte {e.start}: {e.reason})") from None


def inputs_from_args(args: argparse.Namespace) -> List[Tuple[str, Path, Optional[str]]]:
    """``(name, audio path, reference or None)`` of every input, checked before any is transcribed."""
    if args.librispeech:
        return [(u.utt_id, u.path, u.transcript) for u in read_librispeech(args.librispeech, args.limit)]
    if args.wav:
        for p in args.wav:
            if not p.is_file():
                raise cli.UserError(f"{p}: audio file not found" if not p.exists() else f"{p}: not a file")
        return [(str(p), p, read_reference(p)) for p in args.wav]
    return [(str(DEMO_CLIP), DEMO_CLIP, demo_reference())]


def transcribe_one(
    session: Session,
    name: str,
    path: Path,
    ref: Optional[str],
    board: str,
    array: int,
    trim: bool,
    meter,
) -> dict:
    """Transcribe one recording of any length window by window (``host.session``) and report it: the whole
    transcript, each window's text, no-speech decision and timings, and the board figures modeled over the
    windows that ran the model."""
    on_board = meter is not None or session.acc.backend.on_board
    emu = "measured" if on_board else "emulated"
    rec = session.transcribe(path, trim, progress=True)
    wall = {s: sum(w.wall_s.get(s, 0.0) for w in rec.windows) for s in ("features", "encoder", "decoder")}
    latency = {
        "features": {"total_s": figure(wall["features"], "s", emu)},
        **{
            s: {
                "total_s": figure(wall[s], "s", emu),
                "accelerator_s": figure(rec.backend_s[s], "s", emu),
                "host_s": figure(wall[s] - rec.backend_s[s], "s", emu),
            }
            for s in ("encoder", "decoder")
        },
    }
    figures = rec.on_board(board, array)
    modeled = dict(figures.pruned)
    modeled["dense_total_s"] = figures.dense["total_s"]
    modeled["speedup_from_pruning"] = figures.speedup
    cycles = [sum(st["cycles"] for st in lat["stages"].values()) for lat in (figures.dense, figures.pruned)]
    modeled["kernel_cycle_speedup"] = cycles[0] / cycles[1] if rec.calls else 1.0
    energy = dict(figures.energy)
    energy["dense_joules"] = figures.dense_energy["joules"]
    text = rec.text
    total = rec.stats.total()
    out = {
        "input": name,
        "audio_s": figure(rec.seconds, "s", "counted"),
        "encoder_positions": max((w.encoder_positions for w in rec.windows), default=0),
        "transcript": text,
        "tokens": sum(w.tokens for w in rec.windows),
        "windows": [window_report(w, emu) for w in rec.windows],
        "latency": latency,
        "modeled_board": modeled,
        "energy": energy,
        "work": work_summary(rec.stats),
    }
    if total.measured_cycles:
        out["kernel_check"] = (
            f"C-sim cycle counter {total.measured_cycles} vs cycle model {total.cycles} "
            f"({'equal' if total.measured_cycles == total.cycles else 'DIFFERENT'})"
        )
    if ref is not None:
        out["reference"] = ref
        try:
            import jiwer

            out["wer"] = figure(jiwer.wer(normalize(ref), normalize(text)), "fraction", "measured (jiwer)")
        except ImportError:
            out["wer_note"] = "jiwer not installed: pip install jiwer"
    return out


def apply_recommended(ap: cli.Parser, args: argparse.Namespace) -> None:
    """Set ``--recommended``'s flags for the cell of ``--array`` (else the board's) and ``--sparsity``; it stops
    with one line where they were chosen by hand or the cell has no measured recommendation."""
    own = [f for f in ("model", "rotate", "permute", "drop_dead", "obs_tiles") if getattr(args, f)]
    own += ["model_rates"] if args.model_rates != "own" else []
    if own:
        ap.error(f"argument --recommended: sets the package's flags itself; drop --{own[0].replace('_', '-')}")
    if not args.sparsity:
        ap.error("argument --recommended: applies to --sparsity > 0")
    if args.method != "act-ls":
        ap.error("argument --recommended: measured with --method act-ls")
    array = args.array or board_spec(args.board).default_array
    try:
        recipe = recommended(array, args.sparsity)
    except ValueError as e:
        ap.error(f"argument --recommended: {e}")
    args.rotate, args.model_rates = True, recipe.choice.model_rates
    args.permute, args.drop_dead = recipe.choice.permute, recipe.choice.drop_dead
    args.obs_tiles = recipe.choice.obs
    print(
        f"--recommended at {cell_name(array, args.sparsity)}: {recipe.flags()} ({recipe.name})",
        file=sys.stderr,
    )


def parse_args(argv: Optional[List[str]]) -> argparse.Namespace:
    """The demo's options, each checked here (out-of-range values stop before any work; a ``--method`` the
    builder does not know stops it before any transcription)."""
    ap = cli.Parser(prog="python host/asr_demo.py", description=__doc__)
    src = ap.add_mutually_exclusive_group()
    src.add_argument(
        "--wav",
        type=Path,
        action="append",
        help="audio file (repeatable); a same-named .txt is taken as its reference transcript",
    )
    src.add_argument("--librispeech", type=Path, help="LibriSpeech-layout folder (reports WER)")
    ap.add_argument("--limit", type=cli.positive_int, default=None, help="with --librispeech: first N utterances")
    ap.add_argument(
        "--package",
        type=Path,
        default=None,
        help="weight package; default: build and cache one for "
        "--array/--sparsity from the pip-installed Whisper tiny.en",
    )
    ap.add_argument(
        "--backend",
        choices=BACKENDS,
        default="emulated",
        help="emulated = C simulation of the HLS kernel (default); reference = exact numpy integer "
        "path; pynq = the FPGA overlay on a board",
    )
    ap.add_argument(
        "--board", type=cli.board, default="pynq-z2", help="pynq-z2 or ultra96-v2 (for the modeled figures and pynq)"
    )
    ap.add_argument(
        "--array",
        type=cli.array_size,
        default=None,
        help="systolic array size (default: the board's, 8 on pynq-z2, 16 on ultra96-v2); must equal the "
        "package's tile",
    )
    ap.add_argument(
        "--sparsity",
        type=cli.sparsity,
        default=0.0,
        help="for the default package: fraction of prunable "
        "MACs pruned (needs calibration audio; default 0 = dense int8)",
    )
    ap.add_argument(
        "--method", default="act-ls", help="pruning method for the default package (python -m model.export --help)"
    )
    ap.add_argument(
        "--calib", type=Path, nargs="*", default=[],
        help="calibration audio for the default package (default: the bundled real-speech sets, host/assets/calib "
        "and host/assets/stats, as model.export)",
    )  # fmt: skip
    ap.add_argument(
        "--model",
        type=Path,
        default=None,
        help="Whisper weights for the default package (pruned as --model-rates says): an openai .pt (e.g. "
        "python -m model.rotate's) or a CTranslate2 folder; default: the pip package",
    )
    ap.add_argument(
        "--rotate",
        action="store_true",
        help="for the default package (--sparsity > 0): prune the weights (--model's, or the pip package's) with "
        "each attention head in its weighted SVD basis (the same function; python -m model.rotate on the "
        "calibration audio, built once and cached), as --model would; --recommended sets it",
    )
    ap.add_argument(
        "--model-rates",
        choices=("own", "default"),
        default="own",
        help="with --model or --rotate and --sparsity: prune the weights at their own per-layer rates (own, the "
        "default) or at those of the default weights' package of this array and sparsity (default: built first, then "
        "model.export --rates-from it); --recommended sets it per cell",
    )
    ap.add_argument(
        "--permute",
        action="store_true",
        help="for the default package (--sparsity > 0): reorder the weights for the tiles before pruning "
        "(model.export --permute); --recommended sets it per cell",
    )
    ap.add_argument(
        "--drop-dead",
        action="store_true",
        help="for the default package (--sparsity > 0): prune first the query, value and fc1 tiles whose outputs a "
        "key, out-projection or fc2 pruned whole discards, at the same per-layer rates (model.export --drop-dead); "
        "--recommended sets it per cell",
    )
    ap.add_argument(
        "--obs-tiles",
        action="store_true",
        help="with --model-rates default: choose the tiles by the OBS order (model.export --method obs-ls) at the "
        "default package's per-layer rates, which --method allocated; --recommended sets it per cell",
    )
    ap.add_argument(
        "--recommended",
        action="store_true",
        help="for the default package (--sparsity > 0, the pip weights, --method act-ls): set --rotate, --model-rates, "
        "--permute, --drop-dead and --obs-tiles to the flags docs/pruning.md recommends without training for "
        "--array/--sparsity, measured with the bundled calibration audio (host/recommended_exports.py): "
        + cells().replace("%", "%%"),
    )
    ap.add_argument("--window", choices=WINDOWS, default=DEFAULT_WINDOW, help=WINDOW_HELP)
    ap.add_argument(
        "--attention-on-host",
        action="store_true",
        help="keep the encoder's attention products on the CPU instead of the accelerator",
    )
    ap.add_argument("--bitfile", type=Path, default=None, help="pynq backend: overlay .bit (with its .hwh)")
    ap.add_argument(
        "--timeout", type=cli.positive_float, default=60.0, help="seconds before a stalled GEMM is an error"
    )
    ap.add_argument("--json", type=Path, default=None, help="write the report as JSON")
    args = ap.parse_args(argv)
    if args.limit is not None and not args.librispeech:
        ap.error("argument --limit: applies to --librispeech only")
    chosen = (args.sparsity, args.calib, args.model, args.rotate, args.permute, args.drop_dead, args.obs_tiles)
    if args.package is not None and (any(chosen) or args.recommended):
        ap.error(
            "arguments --sparsity/--calib/--model/--rotate/--permute/--drop-dead/--obs-tiles/--recommended: describe "
            "the default package; --package names one already built"
        )
    if args.recommended:
        apply_recommended(ap, args)
    if args.model_rates != "own" and ((args.model is None and not args.rotate) or not args.sparsity):
        ap.error("argument --model-rates: applies to --model or --rotate with --sparsity > 0")
    if args.obs_tiles and args.model_rates != "default":
        ap.error("argument --obs-tiles: applies to --model-rates default (at their own rates: --method obs-ls)")
    for flag in ("rotate", "permute", "drop_dead"):
        if getattr(args, flag) and not args.sparsity:
            ap.error(f"argument --{flag.replace('_', '-')}: applies to --sparsity > 0")
    if args.model is not None and not weights_file(args.model).is_file():
        ap.error(f"argument --model: {args.model} is neither a file nor a CTranslate2 folder with a model.bin")
    if args.json is not None and args.json.is_dir():
        ap.error(f"argument --json: {args.json} is a directory")
    return args


@cli.entry_point
def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    spec = board_spec(args.board)
    board = spec.key
    array = args.array or spec.default_array
    inputs = inputs_from_args(args)
    if args.sparsity > 0 and args.calib:
        list_audio_files(*args.calib)  # a missing or empty calibration folder stops here, not after minutes
    try:
        model = rotated_model(args.model, package_audio(args.calib)) if args.rotate else args.model
        choice = ExportChoice(args.model_rates, args.permute, args.drop_dead, args.obs_tiles)
        package_path = args.package or default_package(array, args.sparsity, args.method, args.calib, model, choice)
        package = load_package(package_path, expect_tile=(array, array))
        # the emulated kernel is the chosen board's build (its activation chunk), as the overlay would be
        kwargs = {"pynq": {"bitfile": args.bitfile, "board": board}, "emulated": {"board": board}}.get(args.backend, {})
        acc = Accelerator(package, args.backend, timeout_s=args.timeout, **kwargs)
    except (ValueError, RuntimeError) as e:
        raise cli.UserError(str(e)) from e
    session = Session(WhisperRuntime(package.weights, acc, offload_attention=not args.attention_on_host), acc)
    meter = None
    if args.backend == "pynq":
        from host.power import open_rail_meter

        meter, power_note = open_rail_meter(bool(spec.profile["power"]["sensors"]))
        print(power_note, file=sys.stderr)
    utts = []
    try:
        for name, path, ref in inputs:
            if meter is not None:
                with meter:
                    res = transcribe_one(session, name, path, ref, board, array, args.window == "trimmed", meter)
                joules, secs = meter.energy()
                res["energy_measured"] = {
                    "label": "measured",
                    "joules": joules,
                    "seconds": secs,
                    "avg_w": joules / max(secs, 1e-9),
                    "rails": meter.names,
                }
            else:
                res = transcribe_one(session, name, path, ref, board, array, args.window == "trimmed", None)
            utts.append(res)
            print(res["transcript"], flush=True)
    finally:
        acc.close()
    meta = package.metadata
    report = {
        "config": {
            "backend": args.backend,
            "board": board,
            "array": array,
            "package": str(package_path),
            "tile": f"{package.tile[0]}x{package.tile[1]}",
            "method": meta.get("method"),
            "mac_sparsity": float(meta.get("mac_sparsity", 0.0)),
            "encoder_window": window_name(args.window == "trimmed"),
            "long_form": f"windows of at most {WINDOW_SECONDS:g} s cut at pauses (host/longform.py)",
            "no_speech": (
                f"window skipped if its loudest 200 ms is below {ENERGY_GATE_DBFS:g} dBFS, or if the no-speech "
                f"probability > {NO_SPEECH_THRESHOLD} and the average log-probability <= {LOGPROB_THRESHOLD} "
                "(openai-whisper's defaults)"
            ),
            "attention": "CPU" if args.attention_on_host else "accelerator",
        },
        "utterances": utts,
        "assumptions": utts[0]["modeled_board"]["assumptions"] + utts[0]["energy"]["assumptions"] if utts else [],
    }
    print(format_table(report))
    if args.json:
        write_json(report, args.json)
        print(f"report written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
