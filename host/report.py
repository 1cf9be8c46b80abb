"""The demo's report: every figure carries a label (measured / emulated / modeled / counted) and a unit."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, List, Optional

from host.driver import AcceleratorStats
from host.longform import Window
from host.system_model import STAGES, summarize


def figure(value: float, unit: str, label: str, note: Optional[str] = None) -> Dict[str, object]:
    out: Dict[str, object] = {"value": value, "unit": unit, "label": label}
    if note:
        out["note"] = note
    return out


def work_summary(stats: AcceleratorStats) -> Dict[str, Dict[str, object]]:
    """Tiles skipped and MACs done vs dense, over the weight GEMMs and the attention products."""
    weight = [s for n, s in stats.layers.items() if not (n.endswith(".qk") or n.endswith(".pv"))]
    attn = [s for n, s in stats.layers.items() if n.endswith(".qk") or n.endswith(".pv")]
    done = sum(s.macs_done for s in weight)
    dense = sum(s.macs_dense for s in weight)
    return {
        "weight_macs_done": figure(done, "MAC", "counted"),
        "weight_macs_dense": figure(dense, "MAC", "counted"),
        "weight_mac_reduction": figure(1 - done / dense if dense else 0.0, "fraction", "counted"),
        "tiles_skipped": figure(sum(s.tiles_skipped for s in weight), "tile-visits", "counted"),
        "tiles_total": figure(sum(s.tiles_total for s in weight), "tile-visits", "counted"),
        "attention_macs": figure(sum(s.macs_done for s in attn), "MAC", "counted"),
        "accelerator_calls": figure(sum(s.calls for s in stats.layers.values()), "calls", "counted"),
    }


def window_report(win: Window, label: str) -> Dict[str, object]:
    """One window of a recording: span, level, no-speech figures, text or why it was skipped, and its wall time
    per stage (``label``: emulated on this machine, measured on a board)."""
    out: Dict[str, object] = {
        "start_s": round(win.start_s, 3),
        "end_s": round(win.end_s, 3),
        "loudest_dbfs": round(win.loudest_dbfs, 1),
        "encoder_positions": win.encoder_positions,
        "text": win.text,
        "skipped": win.skipped,
    }
    if win.fallback:
        out["fallback"] = win.fallback
    if win.no_speech_prob is not None:
        out["no_speech_prob"] = round(win.no_speech_prob, 4)
    if win.avg_logprob is not None:
        out["avg_logprob"] = round(win.avg_logprob, 4)
    if win.discarded_text:
        out["discarded_text"] = win.discarded_text
    out["latency"] = {s: figure(t, "s", label) for s, t in win.wall_s.items()}
    return out


def format_table(report: dict) -> str:
    """Human-readable summary of one report."""
    lines: List[str] = []
    cfg = report["config"]
    lines.append(
        f"backend {cfg['backend']}, board {cfg['board']}, array {cfg['array']}x{cfg['array']}, package "
        f"{cfg['package']} (tile {cfg['tile']}, {cfg['method']}, {100 * cfg['mac_sparsity']:.1f}% of "
        f"prunable MACs pruned); encoder window {cfg['encoder_window']}"
    )
    for utt in report["utterances"]:
        lines.append("")
        lines.append(
            f"{utt['input']}  ({utt['audio_s']['value']:.2f} s of audio, encoder window "
            f"{utt['encoder_positions']} positions)"
        )
        lines.append(f"  transcript: {utt['transcript']}")
        wins = utt["windows"]
        for w in wins:
            if w.get("fallback"):
                lines.append(f"    window {w['start_s']:.2f}-{w['end_s']:.2f} s: {w['fallback']}")
        if len(wins) > 1 or any(w["skipped"] for w in wins):
            for w in wins:
                where = f"    window {w['start_s']:7.2f}-{w['end_s']:7.2f} s"
                if w["skipped"]:
                    lines.append(f"{where}: skipped ({w['skipped']})")
                else:
                    took = sum(f["value"] for f in w["latency"].values())
                    label = next(iter(w["latency"].values()))["label"]
                    lines.append(f"{where}: {took:6.2f} s ({label}), {w['encoder_positions']} positions: {w['text']}")
        if "wer" in utt:
            lines.append(f"  reference:  {utt['reference']}")
            lines.append(f"  WER {100 * utt['wer']['value']:.1f}% ({utt['wer']['label']})")
        lat = utt["latency"]
        lines.append("  latency on this machine (emulated: host wall time):")
        for s in STAGES:
            st = lat[s]
            extra = ""
            if "accelerator_s" in st:
                extra = (
                    f"  [accelerator backend {st['accelerator_s']['value'] * 1e3:8.1f} ms, host "
                    f"{st['host_s']['value'] * 1e3:8.1f} ms]"
                )
            lines.append(f"    {s:<9}{st['total_s']['value'] * 1e3:9.1f} ms{extra}")
        mb = utt["modeled_board"]
        lines.append(
            f"  on-board latency ({mb['label']}, {mb['board']}): {mb['total_s'] * 1e3:.1f} ms;"
            f" dense int8 on the same array: {mb['dense_total_s'] * 1e3:.1f} ms;"
            f" speedup from pruning {mb['speedup_from_pruning']:.2f}x"
        )
        lines.append("    where the time goes, per stage and class (ms):")
        lines.extend("  " + ln for ln in summarize(mb))
        en = utt["energy"]
        lines.append(f"  energy ({en['label']}): {en['joules']:.2f} J, average {en['avg_w']:.2f} W")
        w = utt["work"]
        lines.append(
            f"  weight MACs {w['weight_macs_done']['value'] / 1e9:.3f} G done of "
            f"{w['weight_macs_dense']['value'] / 1e9:.3f} G dense "
            f"({100 * w['weight_mac_reduction']['value']:.1f}% skipped); tiles skipped "
            f"{w['tiles_skipped']['value']} of {w['tiles_total']['value']} tile visits"
        )
        if utt.get("kernel_check"):
            lines.append(f"  kernel check: {utt['kernel_check']}")
    lines.append("")
    lines.append("assumptions of the modeled figures:")
    lines.extend(f"  - {a}" for a in report["assumptions"])
    return "\n".join(lines)


def write_json(report: dict, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2, default=float))
