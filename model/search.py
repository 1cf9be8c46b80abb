"""Per-layer rates searched on the whole pruned model's output (``--search G``): an evolutionary search after the
allocator.

The allocator (``model.prune.allocate_rates``) adds up per-layer costs, each measured with that layer pruned alone
(``model.sensitivity``); layers pruned together compound or cancel, which a sum cannot see. This search scores
whole candidate allocations instead, as EvoPress does (Sieberling, Kuznedelev, Kurtic, Alistarh, "EvoPress:
Accurate Dynamic Model Compression via Evolutionary Search", ICML 2025, arXiv 2410.14649: a (1 + lambda)
evolutionary algorithm with level-switch mutation and multi-step selection):
- the parent is the allocator's answer; each generation makes ``OFFSPRING`` children of one to three level switches
  (one layer one rate step up, another one step down), kept only when the pruned share of the prunable MACs stays
  between the target and the target plus one step of the largest layer;
- the children are ranked on ``PRESELECT`` of the search windows, the best ``SURVIVORS`` on all of them, and the
  best child replaces the parent only when its score is lower;
- the score is the mean KL divergence of the teacher-forced next-token distributions from the dense model's (on the
  dense model's greedy transcript, so no labels), on the deployed encoder window (the audio + 1 s), with every layer
  pruned as the export prunes it (tiles and compensation on all the calibration statistics);
- the windows come from unlabelled audio that is not calibration audio: ``SEARCH_WINDOWS`` to select on and
  ``VALID_WINDOWS`` others on which the start and the end are only measured, so a search that fitted its own windows
  shows (both figures go into the package metadata, ``rate_search``).
"""

from __future__ import annotations

import json
import random
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
from tqdm import tqdm

from host.longform import load_windows
from host.package import atomic_path
from host.whisper import DenseGemm, WhisperRuntime
from host.whisper_weights import WhisperWeights
from model.calibrate import CalibStats, teacher_forced_pass
from model.prune import prune_layer
from model.sensitivity import RATES, mean_kl

OFFSPRING = 12  # children per generation
PRESELECT = 4  # search windows the children are first ranked on
SURVIVORS = 3  # children scored on every search window
SEARCH_WINDOWS = 24
VALID_WINDOWS = 16
MAX_SWITCHES = 3  # level switches per child (1, 2 or 3; one is as likely as two and three together)
SEED = 0


@dataclass(frozen=True)
class Window:
    """One scoring window: its features, deployed encoder window, the dense model's transcript and logits."""

    mel: np.ndarray
    ctx: int
    tokens: List[int]
    dense_logits: np.ndarray


@dataclass
class SearchResult:
    """The searched rates, the search score and the validation score at the start and the end, per generation the
    parent's search score."""

    rates: Dict[str, float]
    search_kl: Tuple[float, float]
    valid_kl: Tuple[float, float]
    history: List[float] = field(default_factory=list)

    def write(self, path: Path) -> None:
        """Write the result atomically (the rate search's step cache)."""
        with atomic_path(path) as tmp:
            tmp.write_text(json.dumps(asdict(self), indent=1))

    @classmethod
    def read(cls, path: Path, layers: Sequence[str]) -> Optional[SearchResult]:
        """The result cached at ``path`` for exactly the ``layers``, or ``None`` when it is missing or damaged."""
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            result = cls(
                {str(n): float(r) for n, r in data["rates"].items()},
                (float(data["search_kl"][0]), float(data["search_kl"][1])),
                (float(data["valid_kl"][0]), float(data["valid_kl"][1])),
                [float(k) for k in data["history"]],
            )
        except (OSError, ValueError, KeyError, TypeError, IndexError, AttributeError):
            return None
        scores = [*result.search_kl, *result.valid_kl, *result.history]
        whole = set(result.rates) == set(layers) and all(r in RATES for r in result.rates.values())
        return result if whole and all(np.isfinite(scores)) else None

    def metadata(self, generations: int, files: int) -> dict:
        """The package's ``rate_search`` entry."""
        return {
            "generations": generations,
            "files": files,
            "windows": [SEARCH_WINDOWS, VALID_WINDOWS],
            "search_kl": list(self.search_kl),
            "valid_kl": list(self.valid_kl),
        }


class RateSearch:
    """Scores whole allocations of the layers ``macs`` names (rates from ``RATES``) against the dense model."""

    def __init__(
        self,
        weights: WhisperWeights,
        stats: CalibStats,
        macs: Dict[str, float],
        tile: Tuple[int, int],
        method: str,
        damp: float,
    ) -> None:
        self.weights, self.stats, self.macs = weights, stats, macs
        self.tile, self.method, self.damp = tile, method, damp
        self.gemm = DenseGemm(weights)
        self.runtime = WhisperRuntime(weights, self.gemm)
        self.dense = {n: self.gemm.ops[n] for n in macs}
        self.pruned: Dict[Tuple[str, float], np.ndarray] = {}  # (layer, rate) -> weight, as the export prunes it

    def windows(self, files: Sequence[Path], count: int, progress: bool = True) -> List[Window]:
        """The first ``count`` 30-s windows of ``files`` (``host.longform.load_windows``) with the dense model's
        transcript and logits on the deployed encoder window."""
        for name, op in self.dense.items():
            self.gemm.ops[name] = op
        out: List[Window] = []
        with tqdm(total=count, desc="search windows", unit="window", disable=not progress) as bar:
            for f in files:
                for audio in load_windows(f):
                    if len(out) == count:
                        return out
                    ctx = self.runtime.audio_ctx(len(audio))  # as transcribe(trim=True) runs it
                    mel = self.runtime.features(audio)
                    enc = self.runtime.encode(mel, ctx)
                    tokens = self.runtime.decode(enc).tokens
                    out.append(Window(mel, ctx, tokens, teacher_forced_pass(self.runtime, enc, tokens)))
                    bar.update()
        return out

    def weight(self, name: str, rate: float) -> np.ndarray:
        if rate <= 0:
            return self.dense[name][0]
        key = (name, rate)
        if key not in self.pruned:
            self.pruned[key] = prune_layer(
                self.dense[name][0], self.tile, rate, self.method, self.stats.gram[name], self.damp
            ).weight
        return self.pruned[key]

    def kl(self, rates: Dict[str, float], windows: Sequence[Window]) -> float:
        """Mean KL at the model's output over ``windows`` with every layer pruned at ``rates``."""
        for name, (_, bias) in self.dense.items():
            self.gemm.ops[name] = (self.weight(name, rates[name]), bias)
        return float(
            np.mean(
                [
                    mean_kl(
                        w.dense_logits, teacher_forced_pass(self.runtime, self.runtime.encode(w.mel, w.ctx), w.tokens)
                    )
                    for w in windows
                ]
            )
        )

    def share(self, rates: Dict[str, float]) -> float:
        """Pruned fraction of the layers' MACs."""
        return sum(self.macs[n] * rates[n] for n in self.macs) / sum(self.macs.values())

    def mutate(self, rates: Dict[str, float], target: float, rng: random.Random) -> Dict[str, float]:
        """A child of ``rates``: one to ``MAX_SWITCHES`` level switches, its pruned share in ``[target, target +
        one step of the largest layer]`` (drawn again until it is)."""
        step = RATES[1] - RATES[0]
        slack = step * max(self.macs.values()) / sum(self.macs.values())
        names = sorted(self.macs)
        for _ in range(10_000):
            child = dict(rates)
            for _ in range(rng.choice([1] * (MAX_SWITCHES - 1) + list(range(2, MAX_SWITCHES + 1)))):
                up = rng.choice([n for n in names if child[n] < RATES[-1]])
                down = rng.choice([n for n in names if child[n] > 0 and n != up])
                child[up] = RATES[RATES.index(child[up]) + 1]
                child[down] = RATES[RATES.index(child[down]) - 1]
            if child != rates and target - 1e-9 <= self.share(child) <= target + slack + 1e-9:
                return child
        raise RuntimeError("no child within the MAC budget: too few prunable layers for a level switch")

    def run(
        self,
        start: Dict[str, float],
        target: float,
        generations: int,
        search: Sequence[Window],
        valid: Sequence[Window],
        progress: bool = True,
    ) -> SearchResult:
        """``generations`` of the (1 + lambda) search from ``start``; deterministic (fixed seed)."""
        rng = random.Random(SEED)
        parent, score = dict(start), self.kl(start, search)
        start_score = score
        valid_start, history = self.kl(start, valid), []
        bar = tqdm(range(generations), desc="rate search", unit="generation", disable=not progress)
        for _ in bar:
            children = [self.mutate(parent, target, rng) for _ in range(OFFSPRING)]
            few = rng.sample(list(search), min(PRESELECT, len(search)))
            ranked = sorted(range(len(children)), key=lambda i: self.kl(children[i], few))[:SURVIVORS]
            best_score, best = min((self.kl(children[i], search), i) for i in ranked)
            if best_score < score:
                parent, score = children[best], best_score
            history.append(score)
            bar.set_postfix(kl=f"{score:.4f}")
        return SearchResult(parent, (start_score, score), (valid_start, self.kl(parent, valid)), history)


def search_rates(
    search: RateSearch,
    start: Dict[str, float],
    target: float,
    generations: int,
    files: Sequence[Path],
    progress: bool = True,
) -> SearchResult:
    """``search`` from the allocator's ``start`` rates on windows of the unlabelled ``files`` (shuffled with a fixed
    seed: the first ``SEARCH_WINDOWS`` windows select, the next ``VALID_WINDOWS`` validate)."""
    order = list(files)
    random.Random(SEED).shuffle(order)
    windows = search.windows(order, SEARCH_WINDOWS + VALID_WINDOWS, progress=progress)
    if len(windows) < SEARCH_WINDOWS + VALID_WINDOWS:
        raise ValueError(
            f"the rate search needs {SEARCH_WINDOWS + VALID_WINDOWS} windows of search audio, got {len(windows)}"
        )
    return search.run(start, target, generations, windows[:SEARCH_WINDOWS], windows[SEARCH_WINDOWS:], progress)
