"""Board power: measured from PYNQ's power rails where the board has sensors, modeled otherwise.

Ultra96-V2 images expose the PMIC telemetry through ``pynq.get_rails()`` (libsensors); ``pynq.DataRecorder``
samples the rails' power sensors in a background thread. The PYNQ-Z2 has no sensors: energy there is modeled
(``host.system_model.model_energy``) or read from an external meter.
"""

from __future__ import annotations

from typing import List, Optional, Tuple

import numpy as np


class RailMeter:
    """Samples every rail that has a power sensor while a ``with`` block runs; energy = integral of power."""

    def __init__(self, interval_s: float = 0.05):
        import pynq  # board only

        rails = pynq.get_rails()
        self.names: List[str] = [name for name, rail in rails.items() if getattr(rail, "power", None) is not None]
        if not self.names:
            raise RuntimeError("pynq.get_rails() found no rail with a power sensor")
        self.recorder = pynq.DataRecorder(*(rails[n].power for n in self.names))
        self.interval_s = interval_s
        self._ctx = None

    def __enter__(self) -> RailMeter:
        self._ctx = self.recorder.record(self.interval_s)
        self._ctx.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self._ctx.__exit__(*exc)

    def energy(self) -> Tuple[float, float]:
        """``(joules, seconds)`` over the recorded window (trapezoid rule over the summed rail powers)."""
        frame = self.recorder.frame
        power_cols = [c for c in frame.columns if c.endswith("_power") or c in self.names]
        t = (frame.index - frame.index[0]).total_seconds().to_numpy()
        p = frame[power_cols].to_numpy(dtype=float).sum(axis=1)
        if len(t) < 2:
            raise RuntimeError("too few power samples: run longer or sample faster")
        return float(np.trapezoid(p, t) if hasattr(np, "trapezoid") else np.trapz(p, t)), float(t[-1])


def open_rail_meter(board_has_sensors: bool) -> Tuple[Optional[RailMeter], str]:
    """A meter if the board exposes power rails, else ``(None, reason)`` for the report."""
    if not board_has_sensors:
        return None, "this board has no power sensors: energy is modeled (use an external meter to measure)"
    try:
        return RailMeter(), "measured: pynq.get_rails() power sensors, DataRecorder"
    except Exception as e:  # noqa: BLE001 - any failure falls back to the model with its reason
        return None, f"power rails unavailable ({e}): energy is modeled"
