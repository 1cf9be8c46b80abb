"""Audio folders: LibriSpeech layout (``<spk>/<chapter>/*.flac`` + ``<spk>-<chapter>.trans.txt``) or plain."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, TypeVar

AUDIO_SUFFIXES = (".flac", ".wav", ".ogg", ".mp3")
T = TypeVar("T")


class DatasetError(ValueError):
    """A malformed dataset file or a bad selection from it; the message names the file or value."""


def _check_limit(limit: int | None) -> None:
    if limit is not None and limit < 1:
        raise DatasetError(f"limit must be a positive number of utterances, got {limit}")


@dataclass(frozen=True)
class Utterance:
    utt_id: str
    path: Path
    transcript: str


def read_librispeech(root: str | Path, limit: int | None = None) -> List[Utterance]:
    """Every labelled utterance under ``root`` (searched recursively), sorted by id; the first ``limit``."""
    _check_limit(limit)
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: not a directory")
    utts: List[Utterance] = []
    for trans in sorted(root.rglob("*.trans.txt")):
        try:
            text_lines = trans.read_text(encoding="utf-8").splitlines()
        except UnicodeDecodeError as e:
            raise DatasetError(f"{trans}: transcript file is not UTF-8 text (byte {e.start}: {e.reason})") from None
        for line_no, line in enumerate(text_lines, 1):
            if not line.strip():
                continue
            utt_id, _, text = line.strip().partition(" ")
            audio = next(
                (trans.parent / f"{utt_id}{s}" for s in AUDIO_SUFFIXES if (trans.parent / f"{utt_id}{s}").exists()),
                None,
            )
            if audio is None:
                raise FileNotFoundError(f"{trans}:{line_no}: no audio file for utterance {utt_id}")
            utts.append(Utterance(utt_id, audio, text))
    if not utts:
        raise FileNotFoundError(f"{root}: no *.trans.txt files (expected LibriSpeech layout)")
    utts.sort(key=lambda u: u.utt_id)
    return utts[:limit] if limit else utts


def evenly_spaced(utts: List[T], limit: int | None) -> List[T]:
    """At most ``limit`` items (utterances, files) spread evenly over ``utts`` (all of them without a limit)."""
    _check_limit(limit)
    return utts[:: max(1, len(utts) // limit)][:limit] if limit else utts


def join_chapters(utts: List[Utterance], out_dir: str | Path) -> List[Utterance]:
    """One recording per chapter (ids ``<speaker>-<chapter>-<n>``): its utterances in id order end to end, written
    as 16-bit FLAC under ``out_dir`` one utterance at a time, with their transcripts joined (long-form checks)."""
    import soundfile as sf

    from host.audio import SAMPLE_RATE, load_audio

    chapters: Dict[str, List[Utterance]] = {}
    for u in sorted(utts, key=lambda u: u.utt_id):
        chapters.setdefault(u.utt_id.rsplit("-", 1)[0], []).append(u)
    out = []
    for chapter, parts in chapters.items():
        path = Path(out_dir) / f"{chapter}.flac"
        with sf.SoundFile(str(path), "w", SAMPLE_RATE, 1, subtype="PCM_16") as f:
            for u in parts:
                f.write(load_audio(u.path, max_seconds=None))
        out.append(Utterance(chapter, path, " ".join(u.transcript for u in parts)))
    return out


def list_audio_files(*roots: str | Path) -> List[Path]:
    """Every audio file under the given folders (recursively) or the files themselves, sorted by absolute path
    (links by their target): the order, which makes the calibration's held-out folds, does not depend on how the
    folders are spelled (relative or absolute) or listed."""
    files: List[Path] = []
    for root in map(Path, roots):
        if root.is_file():
            files.append(root)
        elif root.is_dir():
            files.extend(p for p in root.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES)
        else:
            raise FileNotFoundError(f"{root}: no such file or directory")
    if not files:
        raise FileNotFoundError(f"no audio files under {', '.join(map(str, roots))}")
    return sorted(files, key=lambda f: str(f.resolve()))
