"""The pictures written beside the benchmark results (PNG, matplotlib's Agg backend).

matplotlib is imported inside each function, so importing this module costs nothing. Each
function takes plain figures (as stored in the result JSON) and a path, writes the PNG and
returns the path, or None when there is nothing to draw.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

LATENCY_AXIS_S = (2.0, 4.0)
"""CDF x axis: from at most 2 s before zero, to the 98th percentile or at least 4 s (outliers
are counted in the legend, not drawn off the scale)."""
WER_AXIS = 1.0
"""WER bars are cut at 100 % (the value is written beside a longer bar)."""
TARGETS_S = (1.0, 2.0)
"""Latency targets drawn as dotted lines (final p50 <= 1 s, p95 <= 2 s)."""


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(plt: Any, fig: Any, ax: Any, title: str, path: Path) -> Path:
    """Title, legend, layout, then the PNG written and the figure closed."""
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _cdf(values: Sequence[float]) -> tuple[list[float], list[float]]:
    xs = sorted(v for v in values if v is not None)
    return xs, [(i + 1) / len(xs) for i in range(len(xs))]


def latency_cdfs(
    series: Mapping[str, Mapping[str, Sequence[float]]], path: Path, title: str
) -> Path | None:
    """One panel per measure (``first interim``, ``final``...), one CDF per system.

    ``series``: system -> measure -> latencies in seconds."""
    measures = list(dict.fromkeys(m for per in series.values() for m in per))
    measures = [m for m in measures if any(per.get(m) for per in series.values())]
    if not measures:
        return None
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(measures), figsize=(5.2 * len(measures), 4), squeeze=False)
    for ax, measure in zip(axes[0], measures, strict=True):
        every = sorted(v for per in series.values() for v in per.get(measure) or [])
        lo = max(every[0], -LATENCY_AXIS_S[0]) if every else 0.0
        hi = min(every[-1], max(LATENCY_AXIS_S[1], every[int(0.98 * (len(every) - 1))]))
        for system, per in series.items():
            xs, ys = _cdf(per.get(measure) or [])
            if xs:
                off = sum(x < lo or x > hi for x in xs)
                note = f", {off} off the axis" if off else ""
                ax.step(xs, ys, where="post", label=f"{system} (n={len(xs)}{note})")
        ax.set_xlim(lo - 0.1, hi + 0.1)
        for x in TARGETS_S:
            ax.axvline(x, color="grey", lw=0.6, ls=":")
        ax.set_xlabel(f"{measure} latency (s)")
        ax.set_ylabel("fraction")
        ax.set_ylim(0, 1.02)
        ax.set_title(measure, fontsize=9)
        ax.legend(fontsize=7, loc="lower right")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def wer_per_clip(
    values: Mapping[str, Mapping[str, float | None]], path: Path, title: str
) -> Path | None:
    """Grouped horizontal bars: each clip's WER (%) for each system.

    ``values``: system -> clip id -> WER (fraction, None when not scored)."""
    clips = list(dict.fromkeys(c for per in values.values() for c in per))
    if not clips:
        return None
    plt = _pyplot()
    systems = list(values)
    height = 0.8 / max(1, len(systems))
    fig, ax = plt.subplots(figsize=(8, 1.5 + 0.22 * len(clips) * max(1, len(systems)) ** 0.5))
    for k, system in enumerate(systems):
        ys = [i - 0.4 + height * (k + 0.5) for i in range(len(clips))]
        raw = [values[system].get(c) or 0.0 for c in clips]
        ax.barh(ys, [100 * min(v, WER_AXIS) for v in raw], height=height, label=system)
        for y, v in zip(ys, raw, strict=True):
            if v > WER_AXIS:
                ax.text(100 * WER_AXIS, y, f" {100 * v:.0f} %", va="center", fontsize=6)
    ax.set_yticks(range(len(clips)), [c[:40] for c in clips], fontsize=6)
    ax.invert_yaxis()
    ax.set_xlim(0, 100 * WER_AXIS * 1.12)
    ax.set_xlabel("WER (%), normalised (cut at 100 %)")
    return _save(plt, fig, ax, title, path)


def tradeoff(points: Sequence[Mapping[str, Any]], path: Path, title: str) -> Path | None:
    """WER against final latency, one point per setting: the p50 as a dot, a line to the p95.

    ``points``: dicts with ``label``, ``wer_normalised`` (fraction; else ``wer``),
    ``final_latency_p50_s`` and ``final_latency_p95_s``."""

    def wer(p: Mapping[str, Any]) -> Any:
        return p["wer_normalised"] if p.get("wer_normalised") is not None else p.get("wer")

    pts = [p for p in points if wer(p) is not None and p.get("final_latency_p50_s")]
    if not pts:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for p in pts:
        x50, x95, y = p["final_latency_p50_s"], p.get("final_latency_p95_s"), 100 * wer(p)
        (dot,) = ax.plot([x50], [y], "o", label=p["label"])
        if x95 is not None:
            ax.plot([x50, x95], [y, y], "-", color=dot.get_color(), lw=1, alpha=0.6)
            ax.plot([x95], [y], "|", color=dot.get_color(), ms=10)
    for x in TARGETS_S:
        ax.axvline(x, color="grey", lw=0.6, ls=":")
    ax.set_xlabel("final after the end of speech (s): dot p50, bar to p95")
    ax.set_ylabel("WER (%), normalised")
    ax.margins(y=0.3)
    return _save(plt, fig, ax, title, path)


def capacity(runs: Sequence[Mapping[str, Any]], path: Path, title: str,
             target_s: float = 2.0) -> Path | None:
    """Concurrent streams against the final latency p50 and p95."""
    rows = [r for r in runs if r.get("final_latency_p50_s") is not None]
    if not rows:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    xs = [r["streams"] for r in rows]
    ax.plot(xs, [r["final_latency_p50_s"] for r in rows], "o-", label="final p50")
    ax.plot(xs, [r["final_latency_p95_s"] for r in rows], "s--", label="final p95")
    ax.axhline(target_s, color="grey", lw=0.8, ls=":", label=f"p95 target {target_s:g} s")
    ax.set_xticks(xs)
    ax.set_xlabel("real-time streams on one engine")
    ax.set_ylabel("final after the end of speech (s)")
    return _save(plt, fig, ax, title, path)
