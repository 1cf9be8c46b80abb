"""Trimmed encoder windows come in a few bucketed lengths that always cover the audio plus the margin."""

from __future__ import annotations

from host.features import HOP_LENGTH
from host.whisper import TRIM_MARGIN, trimmed_ctx, window_buckets


def test_buckets_of_the_full_window():
    assert window_buckets(1500) == (150, 300, 500, 750, 1000, 1500)


def test_trimmed_window_covers_the_audio_and_is_a_bucket():
    seen = set()
    prev = 0
    for n in range(0, 30 * 16000 + 1, 1600):  # every 0.1 s up to 30 s
        ctx = trimmed_ctx(n, 1500)
        need = -(-n // (2 * HOP_LENGTH)) + TRIM_MARGIN
        assert ctx >= min(1500, need) and ctx in window_buckets(1500) and ctx >= prev
        prev = ctx
        seen.add(ctx)
    assert seen == set(window_buckets(1500))
    assert trimmed_ctx(int(4.03 * 16000), 1500) == 300  # the demo clip: a 6-s window
