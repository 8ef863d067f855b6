"""What a run costs: wall time, CPU seconds, peak memory, and the machine it ran on."""

from __future__ import annotations

import os
import platform
import resource
import sys
import threading
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any


def peak_rss_mb() -> float:
    """The process's peak resident memory since it started (``getrusage``), MiB."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def _rss_mb() -> float:
    try:
        import psutil
    except ImportError:
        return peak_rss_mb()
    return float(psutil.Process().memory_info().rss) / (1024 * 1024)


@dataclass(frozen=True, slots=True)
class Usage:
    wall_s: float
    cpu_s: float
    """User + system CPU time of this process (all threads)."""
    peak_rss_mb: float
    """Highest resident memory seen while measuring (sampled every ``interval_s``)."""

    def per_audio_second(self, audio_s: float) -> dict[str, float | None]:
        """Real-time factor and CPU seconds per second of audio."""
        if audio_s <= 0:
            return {"rtf": None, "cpu_s_per_audio_s": None}
        return {"rtf": self.wall_s / audio_s, "cpu_s_per_audio_s": self.cpu_s / audio_s}


class ResourceMeter:
    """Measure a block: ``with ResourceMeter() as m: ...``, then ``m.usage``."""

    def __init__(self, interval_s: float = 0.05) -> None:
        self._interval = interval_s
        self._stop = threading.Event()
        self._peak = 0.0
        self._thread: threading.Thread | None = None
        self.usage: Usage | None = None

    def _sample(self) -> None:
        while not self._stop.wait(self._interval):
            self._peak = max(self._peak, _rss_mb())

    def __enter__(self) -> ResourceMeter:
        self._peak = _rss_mb()
        self._cpu0 = time.process_time()
        self._t0 = time.perf_counter()
        self._thread = threading.Thread(target=self._sample, name="resource-meter", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        wall = time.perf_counter() - self._t0
        cpu = time.process_time() - self._cpu0
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._peak = max(self._peak, _rss_mb())
        self.usage = Usage(wall_s=wall, cpu_s=cpu, peak_rss_mb=self._peak)


def machine() -> dict[str, Any]:
    """CPU model, cores, memory, GPU (``nvidia-smi``), Python and OS."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory_mb: int | None = None
    try:
        import psutil

        memory_mb = int(psutil.virtual_memory().total // (1024 * 1024))
    except ImportError:
        pass
    gpu = None
    try:
        import subprocess

        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
        gpu = out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_mb": memory_mb,
        "gpu": gpu,
        "python": platform.python_version(),
        "os": platform.platform(),
    }


LIBRARIES = (
    "greffier",
    "faster-whisper",
    "ctranslate2",
    "onnxruntime",
    "av",
    "numpy",
    "jiwer",
    "whisper-normalizer",
    "text2num",
    "meeteval",
    "pyannote.metrics",
    "pyannote.audio",
    "torch",
)


def library_versions(names: tuple[str, ...] = LIBRARIES) -> dict[str, str | None]:
    """Installed versions of the packages a result depends on (None: not installed)."""
    versions: dict[str, str | None] = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions
