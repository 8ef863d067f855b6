"""Prometheus metrics: every family greffier exports is defined here, and nowhere else.

The worker serves them on ``GREFFIER_AGENT__METRICS_PORT`` (:func:`serve`), the service on
``/metrics`` for operators (:func:`exposition`). ``prometheus_client`` is imported on first
use, so ``import greffier`` stays light; without it every recording function is a no-op.

The module also keeps the few recent figures the worker's load is computed from (queue wait,
caption lag, streams that spoke lately: :func:`recent`), in plain Python, with or without
``prometheus_client``. Labels are fixed words (kinds, routes), never names or text.
"""

from __future__ import annotations

import ctypes
import threading
import time
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

PREFIX = "greffier_"
LATENCY_BUCKETS = (0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
"""Seconds; 2 s is the final-latency goal (p95)."""
RECENT_WINDOW_S = 15.0
"""How far back the load's queue wait and caption lag look."""
SPEAKING_WINDOW_S = 3.0
"""A stream decoded within this many seconds counts as speaking (the engine's own window)."""

FAMILIES = (
    "greffier_rooms",
    "greffier_streams",
    "greffier_speaking_streams",
    "greffier_worker_load",
    "greffier_capacity_streams",
    "greffier_engine_queue_depth",
    "greffier_engine_queue_wait_seconds",
    "greffier_engine_decode_seconds",
    "greffier_engine_decodes",
    "greffier_engine_dropped_interims",
    "greffier_skipped_interims",
    "greffier_dropped_audio_seconds",
    "greffier_caption_latency_seconds",
    "greffier_retracted_segments",
    "greffier_store_errors",
    "greffier_http_requests",
    "greffier_http_request_duration_seconds",
    "greffier_gpu_memory_used_bytes",
    "greffier_gpu_memory_total_bytes",
)
"""Names of the families as ``text_string_to_metric_families`` reports them (counters
without their ``_total`` suffix)."""


class _Recent:
    """Values observed in the last ``window_s`` seconds (thread-safe)."""

    def __init__(self, window_s: float) -> None:
        self.window_s = window_s
        self._values: deque[tuple[float, float]] = deque()
        self._lock = threading.Lock()

    def observe(self, value: float, now: float) -> None:
        with self._lock:
            self._values.append((now, value))
            self._trim(now)

    def _trim(self, now: float) -> None:
        while self._values and now - self._values[0][0] > self.window_s:
            self._values.popleft()

    def p90(self, now: float) -> float:
        """The 90th percentile of the window's values (0 when empty)."""
        with self._lock:
            self._trim(now)
            values = sorted(v for _, v in self._values)
        return values[int(0.9 * (len(values) - 1))] if values else 0.0


@dataclass(frozen=True, slots=True)
class Recent:
    """What the worker's load reads (see ``greffier.agents.load``)."""

    speaking_streams: int
    queue_wait_s: float
    caption_lag_s: float


_queue_wait = _Recent(RECENT_WINDOW_S)
_caption_lag = _Recent(RECENT_WINDOW_S)
_last_decode: dict[str, float] = {}
_recent_lock = threading.Lock()


def recent(now: float | None = None) -> Recent:
    """Speaking streams, p90 queue wait and p90 final caption lag of the last seconds."""
    now = time.monotonic() if now is None else now
    with _recent_lock:
        for sid, t in list(_last_decode.items()):
            if now - t > SPEAKING_WINDOW_S:
                del _last_decode[sid]
        speaking = len(_last_decode)
    return Recent(speaking, _queue_wait.p90(now), _caption_lag.p90(now))


class _Families:
    """The registry and its metric objects (built once, on first use)."""

    def __init__(self, pc: Any) -> None:
        self.pc = pc
        reg = self.registry = pc.CollectorRegistry(auto_describe=True)

        def gauge(name: str, doc: str, labels: Sequence[str] = ()) -> Any:
            return pc.Gauge(PREFIX + name, doc, labels, registry=reg)

        def counter(name: str, doc: str, labels: Sequence[str] = ()) -> Any:
            return pc.Counter(PREFIX + name, doc, labels, registry=reg)

        def histogram(name: str, doc: str, labels: Sequence[str] = ()) -> Any:
            return pc.Histogram(PREFIX + name, doc, labels, registry=reg, buckets=LATENCY_BUCKETS)

        self.rooms = gauge("rooms", "Rooms this worker captions.")
        self.streams = gauge("streams", "Microphone tracks being captioned.")
        self.speaking = gauge(
            "speaking_streams", f"Streams decoded in the last {SPEAKING_WINDOW_S:g} s."
        )
        self.speaking.set_function(lambda: recent().speaking_streams)
        self.load = gauge("worker_load", "Load reported to LiveKit (0 to 1).")
        self.capacity = gauge("capacity_streams", "Streams the engine holds in real time.")
        self.depth = gauge("engine_queue_depth", "Decode requests waiting for the model.")
        self.wait = histogram(
            "engine_queue_wait_seconds", "Time a decode request waited for the model.", ["kind"]
        )
        self.decode = histogram("engine_decode_seconds", "Time one batch took to decode.", ["kind"])
        self.decodes = counter("engine_decodes", "Decode requests completed.", ["kind"])
        self.dropped = counter(
            "engine_dropped_interims", "Interims dropped because they waited too long (overload)."
        )
        self.skipped = counter(
            "skipped_interims",
            "Interims not asked for because their stream was behind the live audio (overload).",
        )
        self.dropped_audio = counter(
            "dropped_audio_seconds",
            "Audio dropped unheard because a stream's input backlog passed its bound.",
        )
        self.latency = histogram(
            "caption_latency_seconds",
            "Caption latency: kind=final is a final's publication after its speech ended, "
            "kind=first_interim a segment's first interim after its speech began.",
            ["kind"],
        )
        self.retracted = counter(
            "retracted_segments", "Segments whose interims were shown but whose final is empty."
        )
        self.store_errors = counter("store_errors", "Failed writes to the transcript store.")
        self.requests = counter(
            "http_requests", "HTTP requests answered by the service.", ["method", "route", "status"]
        )
        self.duration = histogram(
            "http_request_duration_seconds", "Time the service took to answer.", ["route"]
        )
        reg.register(_GpuMemory(pc))


class _GpuMemory:
    """GPU memory from NVML (the driver's library), when a GPU is present; else nothing."""

    def __init__(self, pc: Any) -> None:
        self.pc = pc
        self._nvml: Any = None
        self._tried = False

    def _lib(self) -> Any:
        if not self._tried:
            self._tried = True
            try:
                lib = ctypes.CDLL("libnvidia-ml.so.1")
                if lib.nvmlInit_v2() == 0:
                    self._nvml = lib
            except OSError:
                self._nvml = None
        return self._nvml

    def describe(self) -> list[Any]:
        return []  # collected lazily: no NVML call at registration

    def collect(self) -> Iterator[Any]:
        lib = self._lib()
        if lib is None:
            return
        used = self.pc.core.GaugeMetricFamily(
            PREFIX + "gpu_memory_used_bytes", "GPU memory in use (NVML).", labels=["gpu"]
        )
        total = self.pc.core.GaugeMetricFamily(
            PREFIX + "gpu_memory_total_bytes", "GPU memory (NVML).", labels=["gpu"]
        )

        class Memory(ctypes.Structure):
            _fields_ = [
                ("total", ctypes.c_ulonglong),
                ("free", ctypes.c_ulonglong),
                ("used", ctypes.c_ulonglong),
            ]

        count = ctypes.c_uint(0)
        if lib.nvmlDeviceGetCount_v2(ctypes.byref(count)) != 0:
            return
        for i in range(count.value):
            handle = ctypes.c_void_p()
            memory = Memory()
            if lib.nvmlDeviceGetHandleByIndex_v2(i, ctypes.byref(handle)) != 0:
                continue
            if lib.nvmlDeviceGetMemoryInfo(handle, ctypes.byref(memory)) != 0:
                continue
            used.add_metric([str(i)], float(memory.used))
            total.add_metric([str(i)], float(memory.total))
        yield used
        yield total


_families: _Families | None = None
_families_lock = threading.Lock()
_missing = False


def _get() -> _Families | None:
    global _families, _missing
    if _families is None and not _missing:
        with _families_lock:
            if _families is None and not _missing:
                try:
                    import prometheus_client
                except ImportError:
                    _missing = True
                    return None
                _families = _Families(prometheus_client)
    return _families


def registry() -> Any:
    """The process's ``CollectorRegistry`` (None without ``prometheus_client``)."""
    f = _get()
    return None if f is None else f.registry


# -- recording (each a no-op without prometheus_client, except the recent figures) ----------


def set_rooms(n: int) -> None:
    if (f := _get()) is not None:
        f.rooms.set(n)


def stream_opened() -> None:
    if (f := _get()) is not None:
        f.streams.inc()


def stream_closed() -> None:
    if (f := _get()) is not None:
        f.streams.dec()


def set_load(load: float, capacity: int) -> None:
    if (f := _get()) is not None:
        f.load.set(load)
        f.capacity.set(capacity)


def engine_batch(
    kind: str, decode_s: float, waits: Sequence[tuple[str, float]], depth: int
) -> None:
    """One decoded batch: its ``kind`` (final/interim), decode time, each request's
    (stream id, queue wait) and the requests still queued."""
    now = time.monotonic()
    with _recent_lock:
        for stream_id, _ in waits:
            _last_decode[stream_id] = now
    for _, wait in waits:
        _queue_wait.observe(wait, now)
    if (f := _get()) is not None:
        f.decode.labels(kind).observe(decode_s)
        f.decodes.labels(kind).inc(len(waits))
        for _, wait in waits:
            f.wait.labels(kind).observe(wait)
        f.depth.set(depth)


def dropped_interim() -> None:
    if (f := _get()) is not None:
        f.dropped.inc()


def skipped_interim() -> None:
    if (f := _get()) is not None:
        f.skipped.inc()


def dropped_audio(seconds: float) -> None:
    if (f := _get()) is not None:
        f.dropped_audio.inc(seconds)


def caption_latency(kind: str, seconds: float) -> None:
    """``final`` (after the end of speech) or ``first_interim`` (after its start)."""
    if kind == "final":
        _caption_lag.observe(seconds, time.monotonic())
    if (f := _get()) is not None:
        f.latency.labels(kind).observe(max(0.0, seconds))


def retracted_segment() -> None:
    if (f := _get()) is not None:
        f.retracted.inc()


def store_error() -> None:
    if (f := _get()) is not None:
        f.store_errors.inc()


def http_request(method: str, route: str, status: int, seconds: float) -> None:
    """``route`` is the route's template (``/api/meetings/{meeting_id}``), never a raw path."""
    if (f := _get()) is not None:
        f.requests.labels(method, route, str(status)).inc()
        f.duration.labels(route).observe(seconds)


# -- exposition ------------------------------------------------------------------------------


def exposition() -> tuple[bytes, str]:
    """The text format and its content type (for the service's ``/metrics``)."""
    f = _get()
    if f is None:
        return b"", "text/plain; version=0.0.4; charset=utf-8"
    return f.pc.generate_latest(f.registry), f.pc.CONTENT_TYPE_LATEST


def serve(port: int, host: str = "127.0.0.1") -> Any:
    """Serve the registry over HTTP on a daemon thread (prometheus_client's own server);
    returns the server. Raises ImportError without ``prometheus_client``, OSError when the
    port is taken."""
    f = _get()
    if f is None:
        raise ImportError("prometheus_client is not installed (pip install prometheus-client)")
    server, _thread = f.pc.start_http_server(port, addr=host, registry=f.registry)
    return server
