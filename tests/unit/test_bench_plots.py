"""The benchmark pictures: each writes a PNG from figures as stored in the result JSON."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks import plots

pytestmark = pytest.mark.unit

PNG = b"\x89PNG\r\n\x1a\n"


def test_every_plot_writes_a_png(tmp_path: Path) -> None:
    cdf = plots.latency_cdfs(
        {"greffier": {"first interim": [0.5, 0.7], "final": [0.8, 1.2, 1.9]},
         "peer": {"first interim": [1.6], "final": [3.0, 7.0]}},
        tmp_path / "cdf.png", "latency")
    wer = plots.wer_per_clip({"greffier": {"a": 0.1, "b": None}, "offline": {"a": 0.05}},
                             tmp_path / "wer.png", "wer")
    trade = plots.tradeoff(
        [{"label": "default", "wer": 0.11, "final_latency_p50_s": 0.8,
          "final_latency_p95_s": 1.3},
         {"label": "accuracy", "wer": 0.10, "final_latency_p50_s": 0.9,
          "final_latency_p95_s": None}],
        tmp_path / "trade.png", "trade-off")
    cap = plots.capacity([{"streams": 1, "final_latency_p50_s": 0.8, "final_latency_p95_s": 1.2},
                          {"streams": 2, "final_latency_p50_s": 1.1, "final_latency_p95_s": 2.4}],
                         tmp_path / "cap.png", "capacity")
    for path in (cdf, wer, trade, cap):
        assert path is not None and path.read_bytes()[:8] == PNG


def test_nothing_to_draw_writes_nothing(tmp_path: Path) -> None:
    assert plots.latency_cdfs({"greffier": {"final": []}}, tmp_path / "a.png", "t") is None
    assert plots.tradeoff([{"label": "x", "wer": None}], tmp_path / "b.png", "t") is None
    assert plots.capacity([], tmp_path / "c.png", "t") is None
    assert not list(tmp_path.iterdir())
