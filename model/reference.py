"""Independent torch implementation of Whisper's forward pass, used to cross-check the numpy runtime.

Written with torch primitives (``conv1d``, ``torch.stft``, ``scaled_dot_product_attention``) rather than
the runtime's im2col/numpy code, so that agreement between the two means something.
"""

from __future__ import annotations

from typing import List

import numpy as np
import torch
import torch.nn.functional as F

from host.features import HOP_LENGTH, N_FFT, N_SAMPLES, mel_filters
from host.whisper_weights import WhisperWeights


class TorchWhisper:
    """Float32 (or float64) torch Whisper with greedy decoding that mirrors openai-whisper."""

    def __init__(self, weights: WhisperWeights, dtype: torch.dtype = torch.float32):
        self.w = weights
        self.dtype = dtype
        self.p = {k: torch.from_numpy(np.asarray(v)).to(dtype) for k, v in weights.params.items()}
        self.cfg = weights.config

    def log_mel(self, audio: np.ndarray) -> torch.Tensor:
        x = torch.from_numpy(np.asarray(audio, np.float32))
        x = F.pad(x, (0, max(0, N_SAMPLES - x.shape[0])))[:N_SAMPLES]
        stft = torch.stft(x, N_FFT, HOP_LENGTH, window=torch.hann_window(N_FFT), return_complex=True)
        power = stft[..., :-1].abs() ** 2
        mel = torch.from_numpy(mel_filters(self.cfg["n_mels"])) @ power
        log_spec = torch.clamp(mel, min=1e-10).log10()
        log_spec = torch.maximum(log_spec, log_spec.max() - 8.0)
        return ((log_spec + 4.0) / 4.0).to(self.dtype)

    def _lin(self, x: torch.Tensor, name: str) -> torch.Tensor:
        return F.linear(x, self.p[f"{name}.weight"], self.p[f"{name}.bias"])

    def _ln(self, x: torch.Tensor, name: str) -> torch.Tensor:
        return F.layer_norm(x, x.shape[-1:], self.p[f"{name}.weight"], self.p[f"{name}.bias"], 1e-5)

    def _mha(self, x: torch.Tensor, kv: torch.Tensor, name: str, n_head: int, causal: bool) -> torch.Tensor:
        q, k, v = self._lin(x, f"{name}.query"), self._lin(kv, f"{name}.key"), self._lin(kv, f"{name}.value")
        split = lambda t: t.view(t.shape[0], n_head, -1).transpose(0, 1)  # noqa: E731
        o = F.scaled_dot_product_attention(split(q), split(k), split(v), is_causal=causal)
        return self._lin(o.transpose(0, 1).reshape(x.shape[0], -1), f"{name}.out")

    @torch.no_grad()
    def encode(self, mel: torch.Tensor) -> torch.Tensor:
        """Encoder output ``[1500, 384]`` for ``mel[80, 3000]`` (no gradients)."""
        return self.encode_grad(mel)

    def encode_grad(self, mel: torch.Tensor) -> torch.Tensor:
        """The encoder with autograd (distillation trains the parameters in ``self.p``)."""
        x = F.gelu(
            F.conv1d(mel[None], self.p["encoder.conv1.weight"], self.p["encoder.conv1.bias"], padding=1)
        )
        x = F.gelu(
            F.conv1d(x, self.p["encoder.conv2.weight"], self.p["encoder.conv2.bias"], stride=2, padding=1)
        )
        x = x[0].T + self.p["encoder.positional_embedding"][: x.shape[2]]
        for i in range(self.cfg["n_audio_layer"]):
            b = f"encoder.blocks.{i}"
            x = x + self._mha(
                self._ln(x, f"{b}.attn_ln"),
                self._ln(x, f"{b}.attn_ln"),
                f"{b}.attn",
                self.cfg["n_audio_head"],
                False,
            )
            h = self._ln(x, f"{b}.mlp_ln")
            x = x + self._lin(F.gelu(self._lin(h, f"{b}.mlp.0")), f"{b}.mlp.2")
        return self._ln(x, "encoder.ln_post")

    @torch.no_grad()
    def logits(self, tokens: List[int], enc: torch.Tensor) -> torch.Tensor:
        """Logits for every position of ``tokens`` (no cache: the whole prefix each call)."""
        t = torch.tensor(tokens)
        x = (
            self.p["decoder.token_embedding.weight"][t]
            + self.p["decoder.positional_embedding"][: len(tokens)]
        )
        for i in range(self.cfg["n_text_layer"]):
            b = f"decoder.blocks.{i}"
            h = self._ln(x, f"{b}.attn_ln")
            x = x + self._mha(h, h, f"{b}.attn", self.cfg["n_text_head"], True)
            x = x + self._mha(
                self._ln(x, f"{b}.cross_attn_ln"), enc, f"{b}.cross_attn", self.cfg["n_text_head"], False
            )
            h = self._ln(x, f"{b}.mlp_ln")
            x = x + self._lin(F.gelu(self._lin(h, f"{b}.mlp.0")), f"{b}.mlp.2")
        return self._ln(x, "decoder.ln") @ self.p["decoder.token_embedding.weight"].T

    def greedy(
        self, enc: torch.Tensor, prompt: List[int], eot: int, suppress: np.ndarray, max_tokens: int = 224
    ) -> List[int]:
        """Greedy tokens after ``prompt`` with the same suppression rules as the numpy runtime."""
        out: List[int] = []
        begin = torch.tensor(self.w.suppress_ids_begin)
        while len(out) < max_tokens:
            logits = self.logits(prompt + out, enc)[-1].double()
            logits[torch.from_numpy(suppress)] = -np.inf
            if not out:
                logits[begin] = -np.inf
            token = int(logits.argmax())
            if token == eot:
                break
            out.append(token)
        return out
