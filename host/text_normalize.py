"""Text normalization for WER, applied identically to references and hypotheses.

Rules: lower case; ``&`` -> "and", ``%`` -> "percent"; titles spelled out as LibriSpeech transcribes them
(mr -> mister, mrs -> missus, dr -> doctor, st. before a capital -> saint); digits written as words
(ordinals, decimals, four-digit years as "nineteen ninety"); hyphens and all punctuation except word-internal
apostrophes become spaces; a small table maps British to American spellings; whitespace collapsed.
"""

from __future__ import annotations

import re
from typing import List

_ONES = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
    "seventeen eighteen nineteen".split()
)
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()
_ORDINAL = {
    "one": "first",
    "two": "second",
    "three": "third",
    "five": "fifth",
    "eight": "eighth",
    "nine": "ninth",
    "twelve": "twelfth",
}
_TITLES = {"mr": "mister", "mrs": "missus", "dr": "doctor", "prof": "professor", "messrs": "messieurs"}
_SPELLING = {
    "colour": "color",
    "colours": "colors",
    "coloured": "colored",
    "honour": "honor",
    "honours": "honors",
    "honoured": "honored",
    "favour": "favor",
    "favourite": "favorite",
    "neighbour": "neighbor",
    "neighbours": "neighbors",
    "neighbour's": "neighbor's",
    "neighbours'": "neighbors'",
    "neighbourhood": "neighborhood",
    "labour": "labor",
    "harbour": "harbor",
    "humour": "humor",
    "rumour": "rumor",
    "vapour": "vapor",
    "behaviour": "behavior",
    "endeavour": "endeavor",
    "grey": "gray",
    "centre": "center",
    "theatre": "theater",
    "metre": "meter",
    "travelled": "traveled",
    "travelling": "traveling",
    "realise": "realize",
    "realised": "realized",
    "recognise": "recognize",
    "recognised": "recognized",
    "organise": "organize",
    "defence": "defense",
    "offence": "offense",
    "practise": "practice",
    "jewellery": "jewelry",
    "plough": "plow",
    "mould": "mold",
    "cheque": "check",
    "armour": "armor",
    "splendour": "splendor",
    "clamour": "clamor",
    "parlour": "parlor",
    "odour": "odor",
    "ardour": "ardor",
    "valour": "valor",
    "vigour": "vigor",
    "rigour": "rigor",
    "saviour": "savior",
}


def number_to_words(n: int) -> str:
    """Cardinal English words for a non-negative integer."""
    if n < 20:
        return _ONES[n]
    if n < 100:
        return _TENS[n // 10] + ("" if n % 10 == 0 else " " + _ONES[n % 10])
    if n < 1000:
        rest = n % 100
        return _ONES[n // 100] + " hundred" + ("" if rest == 0 else " " + number_to_words(rest))
    for value, word in ((10**9, "billion"), (10**6, "million"), (1000, "thousand")):
        if n >= value:
            rest = n % value
            return number_to_words(n // value) + " " + word + ("" if rest == 0 else " " + number_to_words(rest))
    raise AssertionError("unreachable")


def _ordinal(words: str) -> str:
    head, _, last = words.rpartition(" ")
    if last in _ORDINAL:
        last = _ORDINAL[last]
    elif last.endswith("y"):
        last = last[:-1] + "ieth"
    else:
        last = last + "th"
    return (head + " " + last).strip()


def _spell_number(match: re.Match) -> str:
    digits, frac, suffix = match.group(1).replace(",", ""), match.group(2), (match.group(3) or "").lower()
    n = int(digits)
    if suffix in ("st", "nd", "rd", "th"):
        return " " + _ordinal(number_to_words(n)) + " "
    if frac is None and len(digits) == 4 and 1100 <= n <= 1999 and n % 100 != 0:
        words = number_to_words(n // 100) + " " + ("oh " + _ONES[n % 100] if n % 100 < 10 else number_to_words(n % 100))
    else:
        words = number_to_words(n)
    if frac:
        words += " point " + " ".join(_ONES[int(d)] for d in frac)
    return " " + words + (" " + suffix if suffix and suffix not in ("st", "nd", "rd", "th") else "") + " "


def normalize(text: str) -> str:
    """Normalized form of ``text`` for WER scoring (see module docstring)."""
    t = text.replace("&", " and ").replace("%", " percent ")
    t = re.sub(r"\bSt\.\s+(?=[A-Z])", "saint ", t)
    t = t.lower()
    t = re.sub(r"(\d[\d,]*\d|\d)(?:\.(\d+))?(st|nd|rd|th|s)?\b", _spell_number, t)
    t = re.sub(r"[’‘`]", "'", t)
    t = re.sub(r"[^a-z0-9' ]+", " ", t)
    t = re.sub(r"(?<![a-z])'|'(?![a-z])", " ", t)
    words: List[str] = []
    for w in t.split():
        w = _TITLES.get(w, w)
        words.append(_SPELLING.get(w, w))
    return " ".join(words)
