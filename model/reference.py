"""Independent torch implementation of Whisper's forward pass, used to cross-check the numpy runtime.

Written with torch primitives (``conv1d``, ``torch.stft``, ``scaled_dot_product_attention``) rather than
the runtime's im2col/numpy code, so that agreement between the two means something.
"""

from __future__ import annotations

from typing import Callable, List, Optional

import numpy as np
import torch
import torch.nn.functional as F

from host.features import HOP_LENGTH, N_FFT, N_SAMPLES, mel_filters
from host.whisper_weights import WhisperWeights


class TorchWhisper:
    """Float32 (or float64) torch Whisper with greedy decoding that mirrors openai-whisper."""

    def __init__(self, weights: WhisperWeights, dtype: torch.dtype = torch.float32, device: str = "cpu"):
        self.w = weights
        self.dtype = dtype
        self.device = torch.device(device)
        # copies: training one model (the student) must never write into the arrays of another (the teacher)
        self.p = {k: torch.tensor(np.asarray(v), dtype=dtype, device=self.device) for k, v in weights.params.items()}
        self.cfg = weights.config
        #: called with (GEMM layer name, its input rows ``[..., K]``) before every weight GEMM (calibration)
        self.tap: Optional[Callable[[str, torch.Tensor], None]] = None

    def log_mel(self, audio: np.ndarray | torch.Tensor) -> torch.Tensor:
        """Log-mel ``[80, 3000]`` of one clip, or ``[B, 80, 3000]`` of a batch ``[B, samples]``."""
        x = torch.as_tensor(np.asarray(audio, np.float32) if isinstance(audio, np.ndarray) else audio)
        x = x.to(self.device, torch.float32)
        x = F.pad(x, (0, max(0, N_SAMPLES - x.shape[-1])))[..., :N_SAMPLES]
        window = torch.hann_window(N_FFT, device=self.device)
        stft = torch.stft(x, N_FFT, HOP_LENGTH, window=window, return_complex=True)
        power = stft[..., :-1].abs() ** 2
        mel = torch.from_numpy(mel_filters(self.cfg["n_mels"])).to(self.device) @ power
        log_spec = torch.clamp(mel, min=1e-10).log10()
        log_spec = torch.maximum(log_spec, log_spec.amax(dim=(-2, -1), keepdim=True) - 8.0)
        return ((log_spec + 4.0) / 4.0).to(self.dtype)

    def _lin(self, x: torch.Tensor, name: str) -> torch.Tensor:
        if self.tap is not None:
            self.tap(name, x)
        return F.linear(x, self.p[f"{name}.weight"], self.p[f"{name}.bias"])

    def _conv(self, x: torch.Tensor, name: str, stride: int) -> torch.Tensor:
        """``x[B, C, T]`` -> gelu(conv1d); the tap sees the im2col rows (column ``c * 3 + j``, as the runtime)."""
        if self.tap is not None:
            cols = F.pad(x, (1, 1)).unfold(2, 3, stride)  # [B, C, T_out, 3]
            self.tap(name, cols.permute(0, 2, 1, 3).reshape(x.shape[0], cols.shape[2], -1))
        w, b = self.p[f"{name}.weight"], self.p[f"{name}.bias"]
        return F.gelu(F.conv1d(x, w, b, stride=stride, padding=1))

    def _ln(self, x: torch.Tensor, name: str) -> torch.Tensor:
        return F.layer_norm(x, x.shape[-1:], self.p[f"{name}.weight"], self.p[f"{name}.bias"], 1e-5)

    def _mha(
        self, x: torch.Tensor, kv: torch.Tensor, name: str, n_head: int, causal: bool, cache: Optional[dict] = None
    ) -> torch.Tensor:
        """Attention; ``cache`` (a dict) keeps the keys and values of ``kv`` by layer name (cross-attention while
        decoding greedily, where ``kv`` is the same encoder output at every token)."""
        q = self._lin(x, f"{name}.query")
        if cache is not None and name in cache:
            k, v = cache[name]
        else:
            k, v = self._lin(kv, f"{name}.key"), self._lin(kv, f"{name}.value")
            if cache is not None:
                cache[name] = (k, v)
        split = lambda t: t.view(*t.shape[:-1], n_head, -1).transpose(-2, -3)  # noqa: E731
        o = F.scaled_dot_product_attention(split(q), split(k), split(v), is_causal=causal)
        return self._lin(o.transpose(-2, -3).reshape(*x.shape[:-1], -1), f"{name}.out")

    @torch.no_grad()
    def encode(self, mel: torch.Tensor) -> torch.Tensor:
        """Encoder output ``[1500, 384]`` for ``mel[80, 3000]`` (no gradients)."""
        return self.encode_grad(mel)

    def encode_grad(self, mel: torch.Tensor) -> torch.Tensor:
        """The encoder with autograd (distillation trains ``self.p``): ``[80, 3000]`` or a batch ``[B, 80, 3000]``."""
        return self.encode_blocks(mel)[-1]

    def encode_blocks(self, mel: torch.Tensor) -> List[torch.Tensor]:
        """Every encoder block's output, then the final (normed) encoder output, for ``mel`` (batched or not)."""
        batched = mel.dim() == 3
        x = self._conv(self._conv(mel if batched else mel[None], "encoder.conv1", 1), "encoder.conv2", 2)
        x = x.transpose(1, 2) + self.p["encoder.positional_embedding"][: x.shape[2]]
        if not batched:
            x = x[0]
        outs = []
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
            outs.append(x)
        return outs + [self._ln(x, "encoder.ln_post")]

    @torch.no_grad()
    def logits(self, tokens: List[int], enc: torch.Tensor) -> torch.Tensor:
        """Logits for every position of ``tokens`` (no cache: the whole prefix each call)."""
        return self.logits_grad(torch.tensor(tokens, device=self.device), enc)

    def logits_grad(self, t: torch.Tensor, enc: torch.Tensor) -> torch.Tensor:
        """Teacher-forced logits with autograd.

        Tokens ``[L]`` or ``[B, L]``, encoder output ``[T, D]`` or ``[B, T, D]``.
        """
        return self.hidden(t, enc) @ self.p["decoder.token_embedding.weight"].T

    def hidden(self, t: torch.Tensor, enc: torch.Tensor, cache: Optional[dict] = None) -> torch.Tensor:
        """The decoder's final normed hidden states for tokens ``t`` (``cache``: cross-attention keys/values)."""
        x = self.p["decoder.token_embedding.weight"][t] + self.p["decoder.positional_embedding"][: t.shape[-1]]
        for i in range(self.cfg["n_text_layer"]):
            b = f"decoder.blocks.{i}"
            h = self._ln(x, f"{b}.attn_ln")
            x = x + self._mha(h, h, f"{b}.attn", self.cfg["n_text_head"], True)
            x = x + self._mha(
                self._ln(x, f"{b}.cross_attn_ln"), enc, f"{b}.cross_attn", self.cfg["n_text_head"], False, cache
            )
            h = self._ln(x, f"{b}.mlp_ln")
            x = x + self._lin(F.gelu(self._lin(h, f"{b}.mlp.0")), f"{b}.mlp.2")
        return self._ln(x, "decoder.ln")

    def greedy(
        self, enc: torch.Tensor, prompt: List[int], eot: int, suppress: np.ndarray, max_tokens: int = 224
    ) -> List[int]:
        """Greedy tokens after ``prompt`` with the same suppression rules as the numpy runtime; at most
        ``max_tokens``, and never past the text context (a small model's is short)."""
        max_tokens = min(max_tokens, self.cfg["n_text_ctx"] - len(prompt))
        out: List[int] = []
        begin = torch.tensor(self.w.suppress_ids_begin, device=self.device)
        cache: Optional[dict] = {} if self.tap is None else None  # a tap sees every key/value product
        emb = self.p["decoder.token_embedding.weight"]
        while len(out) < max_tokens:
            with torch.no_grad():
                last = self.hidden(torch.tensor(prompt + out, device=self.device), enc, cache)[-1]
                logits = (last @ emb.T).double()
            logits[torch.from_numpy(suppress).to(self.device)] = -np.inf
            if not out:
                logits[begin] = -np.inf
            token = int(logits.argmax())
            if token == eot:
                break
            out.append(token)
        return out
