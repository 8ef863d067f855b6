"""Latency and flicker bookkeeping on a scripted caption sequence (hand-computed)."""

from __future__ import annotations

import pytest

from greffier.evaluation.latency import (
    BUCKETS,
    CaptionEvent,
    CaptionKind,
    SpeechSpan,
    latency_report,
    length_bucket,
)

pytestmark = pytest.mark.unit

INT, FIN = CaptionKind.INTERIM, CaptionKind.FINAL

SPANS = [
    SpeechSpan("u1", 0.0, 2.0),    # 2 s   -> "< 3 s"
    SpeechSpan("u2", 5.0, 10.0),   # 5 s   -> "3-8 s"
    SpeechSpan("u3", 12.0, 22.0),  # 10 s  -> "> 8 s"
    SpeechSpan("u4", 25.0, 26.0),  # 1 s, interim then an empty final: retracted
    SpeechSpan("u5", 30.0, 31.0),  # 1 s, never captioned
]
EVENTS = [
    # u1: first caption 0.8 s after the start; final 2.9 - 2.0 = 0.9 s after the end.
    # Displays: [hello] -> [hello word] -> [hello world]: "word" changed, 1 word.
    CaptionEvent(0.8, "u1", INT, "hello"),
    CaptionEvent(1.5, "u1", INT, "hello word"),
    CaptionEvent(2.9, "u1", FIN, "Hello world."),
    # u2: two finals; first caption 6.0 - 5.0 = 1.0 s; the last final 11.2 - 10.0 = 1.2 s.
    # Displays grow without changes: 0 changed words; final words 3 + 3 = 6.
    CaptionEvent(9.0, "u2", INT, "on the"),  # listed out of order: events are sorted by time
    CaptionEvent(6.0, "u2", INT, "the cat"),
    CaptionEvent(8.0, "u2", FIN, "The cat sat."),
    CaptionEvent(11.2, "u2", FIN, "on the mat"),
    # u3: only a final: first caption 23.5 - 12.0 = 11.5 s, final 23.5 - 22.0 = 1.5 s.
    CaptionEvent(23.5, "u3", FIN, "long sentence"),
    # u4: "oui" shown (0.5 s), then the final came back empty: retracted, 1 word changed.
    CaptionEvent(25.5, "u4", INT, "oui"),
    CaptionEvent(26.5, "u4", FIN, ""),
    # not a scored utterance: ignored
    CaptionEvent(27.0, "other", FIN, "noise"),
]


def test_length_buckets() -> None:
    assert [length_bucket(d) for d in (0.5, 2.99, 3.0, 8.0, 8.01)] == [
        BUCKETS[0], BUCKETS[0], BUCKETS[1], BUCKETS[1], BUCKETS[2]]


def test_latency_bookkeeping_per_utterance() -> None:
    rep = latency_report(SPANS, EVENTS)
    rows = {u.utterance_id: u for u in rep.utterances}
    assert rows["u1"].first_caption_s == pytest.approx(0.8)
    assert rows["u1"].final_s == pytest.approx(0.9)
    assert rows["u1"].changed_words == 1 and rows["u1"].final_words == 2
    assert rows["u2"].first_caption_s == pytest.approx(1.0)
    assert rows["u2"].final_s == pytest.approx(1.2)
    assert rows["u2"].final_text == "The cat sat. on the mat"
    assert (rows["u2"].changed_words, rows["u2"].final_words) == (0, 6)
    assert (rows["u3"].first_caption_s, rows["u3"].final_s) == pytest.approx((11.5, 1.5))
    assert rows["u4"].retracted and rows["u4"].final_s is None
    assert rows["u4"].changed_words == 1
    assert rows["u5"].first_caption_s is None and not rows["u5"].retracted
    assert [rows[k].bucket for k in ("u1", "u2", "u3")] == list(BUCKETS)


def test_latency_summary() -> None:
    rep = latency_report(SPANS, EVENTS)
    # first captions 0.8, 1.0, 11.5, 0.5 -> median (0.8 + 1.0) / 2 = 0.9
    assert rep.first_caption.count == 4
    assert rep.first_caption.p50 == pytest.approx(0.9)
    # finals 0.9, 1.2, 1.5 -> median 1.2; p95 = 1.2 + 0.9 * (1.5 - 1.2) = 1.47 (linear)
    assert (rep.final.p50, rep.final.p95) == pytest.approx((1.2, 1.47))
    assert rep.final_by_bucket[BUCKETS[0]].p50 == pytest.approx(0.9)
    assert rep.final_by_bucket[BUCKETS[0]].count == 1  # u4 and u5 have no final
    assert rep.final_by_bucket[BUCKETS[1]].p50 == pytest.approx(1.2)
    assert rep.final_by_bucket[BUCKETS[2]].p50 == pytest.approx(1.5)
    assert rep.without_final == 2 and rep.retracted == 1
    # changed words 1 (u1) + 1 (u4) over 2 + 6 + 2 final words
    assert (rep.changed_words, rep.final_words) == (2, 10)
    assert rep.flicker == pytest.approx(0.2)


def test_no_events() -> None:
    rep = latency_report(SPANS[:1], [])
    assert rep.final.p50 is None and rep.without_final == 1 and rep.flicker == 0.0
