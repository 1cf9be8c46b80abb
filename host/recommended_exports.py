"""How the demo prunes weights other than the pip's (``ExportChoice``: one value for its ``--model-rates``,
``--permute``, ``--drop-dead`` and ``--obs-tiles``), and the choices that docs/pruning.md recommends per cell without
training, the one table of them.

Each cell (array size, sparsity) names the demo's flags of the package that won its pre-registered rule on the
genuine LibriSpeech halves (docs/pruning.md, "Which package to build, per cell", whose table is checked against
this one by ``tests/test_recommended_exports.py``). ``host/asr_demo.py --recommended`` builds it; a cell not
measured has no entry. The distilled recommendations need ``model.distill`` and are in the docs only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Tuple


@dataclass(frozen=True)
class ExportChoice:
    """How a demo package prunes weights other than the pip's (``--model`` or ``--rotate``): at their own per-layer
    rates or the default package's (``--model-rates``), reordered for the tiles first (``--permute``), the tiles a
    pruned partner makes dead first (``--drop-dead``), the tiles chosen by the OBS order (``model.export --method
    obs-ls``) instead of the activation scores, at the rates the default package's method allocated
    (``--obs-tiles``)."""

    model_rates: str = "own"  # "own", or "default": the default weights' package's per-layer rates
    permute: bool = False
    drop_dead: bool = False
    obs: bool = False

    def demo_flags(self) -> List[str]:
        """The demo's options for this choice."""
        rates = ["--model-rates", "default"] if self.model_rates == "default" else []
        return rates + self.export_flags() + ["--obs-tiles"] * self.obs

    def export_flags(self) -> List[str]:
        """``model.export``'s options for it, besides the rates (``--rates-from`` names the default's package) and
        the method (:meth:`method`)."""
        return ["--permute"] * self.permute + ["--drop-dead"] * self.drop_dead

    def method(self, rates_method: str) -> str:
        """``model.export --method`` for the package's tiles, given the method its rates were allocated with."""
        return "obs-ls" if self.obs else rates_method

    def tag(self) -> str:
        """Its part of a cached package's name (the rates are named apart, by the rates package's digest)."""
        return "-permute" * self.permute + "-dropdead" * self.drop_dead + "-obs" * self.obs


PLAIN = ExportChoice()  # the weights' own rates, not reordered, dead tiles not first


@dataclass(frozen=True)
class Recipe:
    """One cell's recommended package: the rotated weights (``--rotate``) pruned by ``choice``."""

    name: str  # the package's name in docs/pruning.md
    choice: ExportChoice = PLAIN

    def flags(self) -> str:
        """The demo's flags, as the docs' table writes them."""
        return " ".join(["--rotate", *self.choice.demo_flags()])


_FPX = ExportChoice("default", permute=True, drop_dead=True)
_FPXO = ExportChoice("default", permute=True, drop_dead=True, obs=True)

RECOMMENDED: Dict[Tuple[int, float], Recipe] = {
    (8, 0.10): Recipe("R8-10"),
    (8, 0.20): Recipe("R8-20FXO", ExportChoice("default", drop_dead=True, obs=True)),
    (8, 0.25): Recipe("R8-25FPXO", _FPXO),
    (8, 0.30): Recipe("R8-30FPXO", _FPXO),
    (16, 0.10): Recipe("R16-10F", ExportChoice("default")),
    (16, 0.20): Recipe("R16-20FPX", _FPX),
    (16, 0.25): Recipe("R16-25FPX", _FPX),
    (16, 0.30): Recipe("R16-30FPX", _FPX),
}


def cell_name(array: int, sparsity: float) -> str:
    """A cell as the docs write it: ``8x8 / 20 %``."""
    return f"{array}x{array} / {sparsity * 100:g} %"


def cells() -> str:
    """Every cell with its flags, for help texts: ``8x8 / 10 %: --rotate; ...``."""
    return "; ".join(f"{cell_name(*cell)}: {r.flags()}" for cell, r in RECOMMENDED.items())


def recommended(array: int, sparsity: float) -> Recipe:
    """The recommended recipe of a cell; ``ValueError`` naming the measured cells for one that was not measured."""
    key = (array, round(sparsity, 4))
    if key not in RECOMMENDED:
        measured = ", ".join(cell_name(*cell) for cell in RECOMMENDED)
        raise ValueError(f"no recommendation for {cell_name(array, sparsity)} (measured: {measured})")
    return RECOMMENDED[key]
