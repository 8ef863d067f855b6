"""The worker's load, from what limits captions: the inference engine.

LiveKit's dispatcher prefers the least loaded worker and sends nothing to one whose load is at
or above its threshold (``GREFFIER_AGENT__LOAD_THRESHOLD``), so rooms spread over workers by
how close each engine is to losing real time, not by how many rooms each holds.
"""

from __future__ import annotations

from greffier.core import metrics

QUEUE_WAIT_BUDGET_S = 1.0
"""A decode request waiting this long means the engine is full (interims are dropped at 1 s)."""
LAG_BUDGET_S = 2.0
"""Finals published this long after the end of speech mean full (the p95 goal)."""

CPU_CAPACITY_STREAMS = 6
"""Measured: 7 real-time streams with final p95 <= 2 s, ``base`` int8 on 2 cores, the median
of three runs per count (``greffier bench capacity --runs 3``, tested up to 7;
``benchmarks/results/capacity.json`` holds each run). One less than measured: the worker
also decodes, resamples and publishes each stream's audio and captions, which that
in-process benchmark does not."""
GPU_CAPACITY_STREAMS = 16
"""A guess, not measured: the batch of 8 decoded twice per interim interval on a CUDA GPU
(``benchmarks/gpu.sh`` is to measure it)."""


SERVER_TARGET_LOAD = 0.7
"""livekit-server's ``agents.target_load`` default: it sends no job to a worker reporting this
load or more, and drops (does not queue) a dispatch that no worker can take."""


def reported_load(load: float, threshold: float) -> float:
    """What the worker reports to LiveKit. With a threshold of 1 or more (a worker told never
    to refuse, e.g. a lone one), the load is scaled to stay under :data:`SERVER_TARGET_LOAD`
    so the server never drops its rooms (and still prefers the less loaded of such workers);
    below 1, the load itself, so the server and the threshold refuse as configured."""
    if threshold >= 1.0:
        return load * SERVER_TARGET_LOAD * 0.9
    return load


def default_capacity(device: str) -> int:
    """Streams one engine holds in real time on ``device`` (``cpu`` or ``cuda``)."""
    return GPU_CAPACITY_STREAMS if device == "cuda" else CPU_CAPACITY_STREAMS


def worker_load(active_streams: int, capacity: int, queue_wait_s: float, lag_s: float) -> float:
    """Load in [0, 1]: the largest of the share of ``capacity`` the speaking streams use, the
    queue wait against :data:`QUEUE_WAIT_BUDGET_S` and the caption lag against
    :data:`LAG_BUDGET_S` (any one of them full makes the worker full). With no stream speaking
    the engine is idle: the load is 0, whatever the lag of the last minutes (LiveKit's
    dispatcher sends nothing to a worker at load 1, so an idle worker reporting its past lag
    would keep rooms waiting)."""
    if capacity < 1:
        raise ValueError(f"capacity must be at least 1 stream, not {capacity}")
    if active_streams <= 0:
        return 0.0
    load = max(
        active_streams / capacity, queue_wait_s / QUEUE_WAIT_BUDGET_S, lag_s / LAG_BUDGET_S, 0.0
    )
    return min(1.0, load)


def current_load(capacity: int, rooms: int = 0, max_rooms: int = 0) -> float:
    """The process's load now (from :func:`greffier.core.metrics.recent`), at least the share
    of ``max_rooms`` in use when that limit is set; also exported as a metric."""
    now = metrics.recent()
    load = worker_load(now.speaking_streams, capacity, now.queue_wait_s, now.caption_lag_s)
    if max_rooms:
        load = max(load, min(1.0, rooms / max_rooms))
    metrics.set_load(load, capacity)
    return load
