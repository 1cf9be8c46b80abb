"""Whisper (GPT-2 byte-level BPE) detokenization and the special token ids of the English-only models."""

from __future__ import annotations

from functools import lru_cache
from typing import Dict, Iterable, List


@lru_cache(maxsize=1)
def _unicode_to_byte() -> Dict[str, int]:
    """Inverse of GPT-2's reversible byte -> printable unicode map."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    printable += list(range(ord("®"), ord("ÿ") + 1))
    mapping, extra = {}, 0
    for b in range(256):
        if b in printable:
            mapping[chr(b)] = b
        else:
            mapping[chr(256 + extra)] = b
            extra += 1
    return mapping


class Tokenizer:
    """Maps token ids to text for a vocabulary given as the list of BPE token strings."""

    def __init__(self, vocab: List[str]):
        self.vocab = vocab
        self.index = {t: i for i, t in enumerate(vocab)}
        self.eot = self.index["<|endoftext|>"]
        self.sot = self.index["<|startoftranscript|>"]
        self.no_timestamps = self.index["<|notimestamps|>"]
        self.timestamp_begin = self.no_timestamps + 1
        self.multilingual = "<|en|>" in self.index and len(vocab) >= 51865

    def initial_tokens(self) -> List[int]:
        """Start sequence: ``<|startoftranscript|>`` (+ ``<|en|><|transcribe|>`` if multilingual), no timestamps."""
        tokens = [self.sot]
        if self.multilingual:
            tokens += [self.index["<|en|>"], self.index["<|transcribe|>"]]
        return tokens + [self.no_timestamps]

    def decode(self, ids: Iterable[int]) -> str:
        """Text of the ordinary (non-special) tokens in ``ids``."""
        table = _unicode_to_byte()
        data = bytearray()
        for i in ids:
            if i >= self.eot:
                continue
            data.extend(table[c] for c in self.vocab[i])
        return data.decode("utf-8", errors="replace")
