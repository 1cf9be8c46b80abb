"""Whisper forward pass in numpy: conv frontend + encoder, decoder with a KV cache, greedy decoding.

Every weight GEMM (both convs as im2col, every linear layer, the vocabulary projection) is one call to
``gemm.matmul(x, layer)`` so the same runtime runs on float weights, the int8 kernel emulator or the FPGA.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Protocol, Tuple

import numpy as np
from scipy.special import erf

from host.features import HOP_LENGTH, N_SAMPLES, log_mel_spectrogram
from host.tokenizer import Tokenizer
from host.whisper_layers import LOGITS_LAYER
from host.whisper_weights import WhisperWeights

TRIM_MARGIN = 50  # extra encoder positions (1 s) after the audio when the window is trimmed
# A trimmed window is one of a few lengths (seconds of the 30-s window), so the kernel, the cycle model and the
# distillation see a handful of shapes: 3, 6, 10, 15, 20 and 30 s = 150, 300, 500, 750, 1000, 1500 positions.
WINDOW_BUCKETS_S = (3, 6, 10, 15, 20, 30)


class Gemm(Protocol):
    """What the runtime needs from a backend: ``y[M, N] = x[M, K] @ W_layer[K, N] + bias``."""

    def matmul(self, x: np.ndarray, layer: str) -> np.ndarray: ...


def window_buckets(n_audio_ctx: int) -> Tuple[int, ...]:
    """The trimmed windows' encoder lengths: :data:`WINDOW_BUCKETS_S` of the full window's 30 s."""
    return tuple(sorted({max(1, round(n_audio_ctx * s / 30)) for s in WINDOW_BUCKETS_S}))


def trimmed_ctx(n_samples: int, n_audio_ctx: int, margin: int = TRIM_MARGIN) -> int:
    """Encoder positions of a window trimmed to ``n_samples`` of audio plus ``margin`` positions (20 ms each),
    rounded up to the next of :func:`window_buckets`."""
    need = min(n_audio_ctx, -(-n_samples // (2 * HOP_LENGTH)) + margin)
    return next(b for b in window_buckets(n_audio_ctx) if b >= need)


def gemm_operands(weights: WhisperWeights) -> Dict[str, tuple]:
    """``{layer: (W[K, N] float32, bias[N] float32)}`` for every weight GEMM, convs flattened for im2col."""
    out = {}
    for name in weights.linear_names():
        w = weights.params[f"{name}.weight"]
        w2 = w.reshape(w.shape[0], -1)  # conv [out, in, k] -> [out, in*k], matching im2col column order
        out[name] = (np.ascontiguousarray(w2.T), weights.params[f"{name}.bias"])
    emb = weights.params["decoder.token_embedding.weight"]
    out[LOGITS_LAYER] = (np.ascontiguousarray(emb.T), np.zeros(emb.shape[0], np.float32))
    return out


class DenseGemm:
    """Float32 numpy GEMMs on the (possibly pruned) weights: the accuracy reference."""

    def __init__(self, weights: WhisperWeights):
        self.ops = gemm_operands(weights)

    def matmul(self, x: np.ndarray, layer: str) -> np.ndarray:
        w, b = self.ops[layer]
        return x @ w + b


def gelu(x: np.ndarray) -> np.ndarray:
    return 0.5 * x * (1.0 + erf(x / np.sqrt(2.0)))


def layer_norm(x: np.ndarray, w: np.ndarray, b: np.ndarray, eps: float = 1e-5) -> np.ndarray:
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * w + b


def softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def im2col_1d(x: np.ndarray, kernel: int, stride: int, pad: int) -> np.ndarray:
    """``x[T, C]`` (time-major) -> ``[T_out, C * kernel]`` with column index ``c * kernel + j``."""
    xp = np.pad(x, ((pad, pad), (0, 0)))
    t_out = (xp.shape[0] - kernel) // stride + 1
    cols = np.stack([xp[j : j + stride * (t_out - 1) + 1 : stride] for j in range(kernel)], axis=2)
    return cols.reshape(t_out, -1)


def attention(
    q: np.ndarray,
    k: np.ndarray,
    v: np.ndarray,
    n_head: int,
    causal_offset: Optional[int],
    amm: Optional[Callable[[List[Tuple[np.ndarray, np.ndarray]], str], List[np.ndarray]]] = None,
    name: str = "",
) -> np.ndarray:
    """Multi-head scaled dot-product attention; ``causal_offset`` = cache length for decoder self-attention.

    ``amm(pairs, name)`` computes the activation x activation products of all heads (``[Q_h K_h^T]``, then
    ``[P_h V_h]``; independent, so they may run concurrently) when given, so they can run on the accelerator;
    otherwise numpy does.
    """
    m, d = q.shape
    dh = d // n_head
    qh = q.reshape(m, n_head, dh).transpose(1, 0, 2)
    kh = k.reshape(-1, n_head, dh).transpose(1, 0, 2)
    vh = v.reshape(-1, n_head, dh).transpose(1, 0, 2)
    if amm is None:
        scores = qh @ kh.transpose(0, 2, 1)
    else:
        scores = np.stack(amm([(qh[h], kh[h].T) for h in range(n_head)], f"{name}.qk"))
    scores = scores * (dh**-0.5)
    if causal_offset is not None and m > 1:
        mask = np.triu(np.ones((m, kh.shape[1]), bool), k=causal_offset + 1)
        scores = np.where(mask, -np.inf, scores)
    probs = softmax(scores)
    out = probs @ vh if amm is None else np.stack(amm([(probs[h], vh[h]) for h in range(n_head)], f"{name}.pv"))
    return out.transpose(1, 0, 2).reshape(m, d)


def choose_token(logits: np.ndarray, temperature: float, rng: Optional[np.random.Generator]) -> int:
    """The argmax at ``temperature`` 0, else a draw from ``softmax(logits / temperature)`` by Gumbel-max
    (``argmax(logits / T + G)``, ``G`` standard Gumbel noise from ``rng``); ``-inf`` logits are never drawn."""
    if temperature == 0:
        return int(np.argmax(logits))
    return int(np.argmax(logits / temperature + rng.gumbel(size=logits.shape)))


@dataclass
class Transcript:
    """A decoding's text and tokens, with openai-whisper's two figures for its no-speech check:
    ``no_speech_prob``, the probability of the no-speech token at the first decoding step (after
    ``<|startoftranscript|>``; ``None`` if the vocabulary has no such token), and ``avg_logprob``, the mean
    log-probability of the chosen tokens, end-of-text included."""

    text: str
    tokens: List[int]
    no_speech_prob: Optional[float] = None
    avg_logprob: float = 0.0


@dataclass
class DecoderCache:
    """Per decoder block: self-attention keys/values so far, cross-attention keys/values of the audio."""

    self_k: List[np.ndarray] = field(default_factory=list)
    self_v: List[np.ndarray] = field(default_factory=list)
    cross_k: List[np.ndarray] = field(default_factory=list)
    cross_v: List[np.ndarray] = field(default_factory=list)


class WhisperRuntime:
    """Numpy Whisper: ``transcribe(audio)`` = features -> encoder -> greedy decoder -> text."""

    def __init__(self, weights: WhisperWeights, gemm: Optional[Gemm] = None, offload_attention: bool = True):
        """``offload_attention``: the encoder's ``Q K^T`` and ``P V`` go to ``gemm.matmul_dynamic`` if it has one."""
        self.w = weights
        self.p = weights.params
        self.cfg = weights.config
        self.gemm = gemm if gemm is not None else DenseGemm(weights)
        self.tokenizer = Tokenizer(weights.vocab)
        self.amm = getattr(self.gemm, "matmul_dynamic", None) if offload_attention else None
        self._suppress = self._suppress_mask()
        # openai-whisper's tokenizer.no_speech: "<|nospeech|>" in its newer vocabularies, "<|nocaptions|>" (id 50361
        # in tiny.en, just before <|notimestamps|>) in the one the .en models were trained with
        index = self.tokenizer.index
        self.no_speech: Optional[int] = index.get("<|nospeech|>", index.get("<|nocaptions|>"))

    def _suppress_mask(self) -> np.ndarray:
        mask = np.zeros(self.cfg["n_vocab"], bool)
        mask[list(self.w.suppress_ids)] = True
        mask[self.tokenizer.no_timestamps :] = True  # no timestamps, no special tokens after them
        mask[self.tokenizer.sot] = True
        return mask

    def _ln(self, x: np.ndarray, name: str) -> np.ndarray:
        return layer_norm(x, self.p[f"{name}.weight"], self.p[f"{name}.bias"])

    def features(self, audio: np.ndarray) -> np.ndarray:
        return log_mel_spectrogram(audio, self.cfg["n_mels"], N_SAMPLES)

    def encode(self, mel: np.ndarray, audio_ctx: Optional[int] = None) -> np.ndarray:
        """``mel[80, 3000]`` -> encoder states ``[1500, 384]`` (or the first ``audio_ctx`` positions only).

        ``audio_ctx`` trims the encoder's window to the audio (2 mel frames per position), as whisper.cpp's
        audio-context option does: the encoder's work shrinks with the clip instead of always covering 30 s.
        """
        g = self.gemm.matmul
        if audio_ctx is not None:
            mel = mel[:, : 2 * audio_ctx]
        x = gelu(g(im2col_1d(mel.T, 3, 1, 1), "encoder.conv1"))
        x = gelu(g(im2col_1d(x, 3, 2, 1), "encoder.conv2"))
        x = x + self.p["encoder.positional_embedding"][: x.shape[0]]
        n_head = self.cfg["n_audio_head"]
        for i in range(self.cfg["n_audio_layer"]):
            b = f"encoder.blocks.{i}"
            h = self._ln(x, f"{b}.attn_ln")
            q, k, v = (g(h, f"{b}.attn.{n}") for n in ("query", "key", "value"))
            x = x + g(attention(q, k, v, n_head, None, self.amm, f"{b}.attn"), f"{b}.attn.out")
            h = self._ln(x, f"{b}.mlp_ln")
            x = x + g(gelu(g(h, f"{b}.mlp.0")), f"{b}.mlp.2")
        return self._ln(x, "encoder.ln_post").astype(np.float32)

    def prefill(self, encoded: np.ndarray) -> DecoderCache:
        """A decoder cache for the encoder output ``encoded``: every block's cross-attention keys and values."""
        g = self.gemm.matmul
        cache = DecoderCache()
        for i in range(self.cfg["n_text_layer"]):
            b = f"decoder.blocks.{i}.cross_attn"
            cache.cross_k.append(g(encoded, f"{b}.key"))
            cache.cross_v.append(g(encoded, f"{b}.value"))
        return cache

    def step(self, tokens: List[int], offset: int, cache: DecoderCache, all_positions: bool = False) -> np.ndarray:
        """Logits of the last new position (or of every new position) after feeding ``tokens`` at ``offset``."""
        g = self.gemm.matmul
        n_head = self.cfg["n_text_head"]
        x = (
            self.p["decoder.token_embedding.weight"][tokens]
            + self.p["decoder.positional_embedding"][offset : offset + len(tokens)]
        )
        for i in range(self.cfg["n_text_layer"]):
            b = f"decoder.blocks.{i}"
            h = self._ln(x, f"{b}.attn_ln")
            q, k, v = (g(h, f"{b}.attn.{n}") for n in ("query", "key", "value"))
            if len(cache.self_k) <= i:
                cache.self_k.append(k)
                cache.self_v.append(v)
            else:
                cache.self_k[i] = np.concatenate([cache.self_k[i], k])
                cache.self_v[i] = np.concatenate([cache.self_v[i], v])
            x = x + g(attention(q, cache.self_k[i], cache.self_v[i], n_head, offset), f"{b}.attn.out")
            h = self._ln(x, f"{b}.cross_attn_ln")
            q = g(h, f"{b}.cross_attn.query")
            x = x + g(attention(q, cache.cross_k[i], cache.cross_v[i], n_head, None), f"{b}.cross_attn.out")
            h = self._ln(x, f"{b}.mlp_ln")
            x = x + g(gelu(g(h, f"{b}.mlp.0")), f"{b}.mlp.2")
        if all_positions:
            return g(self._ln(x, "decoder.ln"), LOGITS_LAYER)
        return g(self._ln(x[-1:], "decoder.ln"), LOGITS_LAYER)[0]

    def decode(
        self,
        encoded: np.ndarray,
        max_tokens: Optional[int] = None,
        temperature: float = 0.0,
        rng: Optional[np.random.Generator] = None,
    ) -> Transcript:
        """Decoding without timestamps, Whisper's token suppression, KV cache: greedy at ``temperature`` 0,
        otherwise each token drawn from ``softmax(logits / temperature)`` (openai-whisper's sampling; Gumbel-max
        with ``rng``, so a seed fixes the draw)."""
        if temperature < 0 or (temperature > 0 and rng is None):
            raise ValueError(f"temperature {temperature}: must be >= 0, and > 0 needs an rng")
        cache = self.prefill(encoded)
        prompt = self.tokenizer.initial_tokens()
        max_tokens = max_tokens or self.cfg["n_text_ctx"] // 2
        out: List[int] = []
        no_speech_prob, sum_logprob = None, 0.0
        pending, offset = prompt, 0
        while len(out) < max_tokens:
            if offset == 0:  # the prompt: also the logits after <|startoftranscript|>, for the no-speech check
                all_logits = self.step(pending, offset, cache, all_positions=True).astype(np.float64)
                logits = all_logits[-1]
                if self.no_speech is not None:
                    at_sot = softmax(all_logits[prompt.index(self.tokenizer.sot)])
                    no_speech_prob = float(at_sot[self.no_speech])
            else:
                logits = self.step(pending, offset, cache).astype(np.float64)
            offset += len(pending)
            logits[self._suppress] = -np.inf
            if not out:
                logits[list(self.w.suppress_ids_begin)] = -np.inf
            token = choose_token(logits, temperature, rng)
            sum_logprob -= float(np.log(np.exp(logits - logits[token]).sum()))  # log-softmax of the argmax
            if token == self.tokenizer.eot:
                break
            out.append(token)
            pending = [token]
        text = self.tokenizer.decode(out).strip()
        return Transcript(text, out, no_speech_prob, sum_logprob / (len(out) + 1))

    def transcribe(self, audio: np.ndarray, trim: bool = False) -> Transcript:
        """Text of up to 30 s of 16-kHz mono audio (longer: ``host.longform``); ``trim`` runs the encoder on the
        audio's length only."""
        return self.decode(self.encode(self.features(audio), self.audio_ctx(len(audio)) if trim else None))

    def audio_ctx(self, n_samples: int, margin: int = TRIM_MARGIN) -> int:
        """Encoder positions that cover ``n_samples`` of audio plus ``margin`` positions (20 ms each), bucketed."""
        return trimmed_ctx(n_samples, self.cfg["n_audio_ctx"], margin)
