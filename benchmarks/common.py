"""What every benchmark shares: the clips, the machine, percentiles, and result files."""

from __future__ import annotations

import csv
import datetime as dt
import json
import os
import platform
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from greffier.core.audio import SAMPLE_RATE, FloatArray, read_audio
from greffier.core.config import Settings

RESULTS = Path(__file__).resolve().parent / "results"


@dataclass(frozen=True)
class Clip:
    id: str
    audio_path: Path
    reference: str
    language: str

    def audio(self) -> FloatArray:
        return read_audio(self.audio_path)


def transcript_clips(
    settings: Settings | None = None, languages: tuple[str, ...] = ("en", "fr")
) -> list[Clip]:
    """The shared recordings that have reference transcripts (the "visible clips")."""
    root = (settings or Settings()).speech_data
    with (root / "manifest.tsv").open(encoding="utf-8") as f:
        rows = [r for r in csv.DictReader(f, delimiter="\t") if r["kind"] == "transcript"]
    return [
        Clip(r["id"], root / r["audio"], (root / r["reference"]).read_text().strip(), r["language"])
        for r in rows
        if r["language"] in languages
    ]


def speech_bounds(audio: FloatArray) -> tuple[float, float]:
    """First and last speech (Silero VAD, 32 ms windows) of a clip, in seconds."""
    from greffier.asr.vad import WINDOW_S, SileroVad

    probs = SileroVad.shared().stream().process(audio)
    idx = np.flatnonzero(probs >= 0.5)
    if idx.size == 0:
        return 0.0, audio.size / SAMPLE_RATE
    return float(idx[0] * WINDOW_S), float((idx[-1] + 1) * WINDOW_S)


def percentile(values: list[float], q: float) -> float | None:
    return float(np.percentile(values, q)) if values else None


def machine() -> dict[str, Any]:
    """Where the figures were measured."""
    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        mem = int(Path("/proc/meminfo").read_text().split()[1]) // 1024
    except (OSError, ValueError, IndexError):
        mem = 0
    gpu = ""
    try:
        gpu = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        pass
    return {
        "cpu": cpu, "cores": os.cpu_count(), "memory_mb": mem, "gpu": gpu or None,
        "python": platform.python_version(), "os": platform.platform(),
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }


def write_results(name: str, data: dict[str, Any], table: str) -> tuple[Path, Path]:
    """Write ``results/<name>.json`` and ``results/<name>.md``."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    js = RESULTS / f"{name}.json"
    md = RESULTS / f"{name}.md"
    js.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
    md.write_text(table.rstrip() + "\n")
    return js, md


def fmt(v: float | None, unit: str = "", digits: int = 2) -> str:
    return "-" if v is None else f"{v:.{digits}f}{unit}"
