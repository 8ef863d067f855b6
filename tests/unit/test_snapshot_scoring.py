from __future__ import annotations

import pytest

from benchmarks.snapshots import Snapshot, score

pytestmark = pytest.mark.unit


def test_latencies_and_flicker_from_snapshots() -> None:
    snaps = [
        Snapshot(1.2, "", "hello"),
        Snapshot(1.7, "", "hello word"),
        Snapshot(2.2, "", "hello world again"),  # "word" rewritten: 1
        Snapshot(3.1, "hello world again."),
        Snapshot(3.5, "hello world again.", "x"),
        Snapshot(4.0, "hello world again."),
    ]
    s = score(snaps, speech_start=1.0, speech_end=2.6)
    assert s.first_interim_latency == pytest.approx(0.2)
    assert s.final_latency == pytest.approx(0.5)
    assert s.final_text == "hello world again."
    assert s.rewrites == 1 + 1 and s.final_words == 3  # "word", then the "x" removed


def test_nothing_displayed() -> None:
    s = score([], 0.0, 1.0)
    assert s.first_interim_latency is None and s.final_latency is None and s.final_text == ""
