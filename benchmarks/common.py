"""What every benchmark shares: the clips, the machine, percentiles, and result files."""

from __future__ import annotations

import csv
import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from greffier.core.audio import SAMPLE_RATE, FloatArray, read_audio
from greffier.core.config import Settings
from greffier.evaluation.resources import machine as _machine

RESULTS = Path(__file__).resolve().parent / "results"


@dataclass(frozen=True)
class Clip:
    id: str
    audio_path: Path
    reference: str
    language: str
    variant: str = ""
    """Hard-set variant (``chained``, ``quiet``, ...); empty for the shared clips."""
    group: str = ""
    """Clips of one group are published at once, each by its own participant."""
    utterances_path: Path | None = None
    """JSON of per-utterance ``start``/``end`` (seconds in the clip); none: one utterance,
    the clip's speech (Silero VAD)."""

    def audio(self) -> FloatArray:
        return read_audio(self.audio_path)

    def utterances(self) -> list[tuple[float, float]]:
        """``(start, end)`` of each utterance's speech, seconds in the clip."""
        if self.utterances_path is None:
            return [speech_bounds(self.audio())]
        data = json.loads(self.utterances_path.read_text(encoding="utf-8"))
        return [(float(u["start"]), float(u["end"])) for u in data["utterances"]]


def read_manifest(path: Path, languages: tuple[str, ...] = ("en", "fr")) -> list[Clip]:
    """The clips with reference transcripts of a manifest TSV (the shared one's columns, and
    optionally ``variant``, ``group`` and ``utterances``); paths relative to the manifest."""
    root = path.parent
    with path.open(encoding="utf-8") as f:
        rows = [r for r in csv.DictReader(f, delimiter="\t") if r["kind"] == "transcript"]
    return [
        Clip(r["id"], root / r["audio"],
             (root / r["reference"]).read_text(encoding="utf-8").strip(), r["language"],
             variant=r.get("variant") or "", group=r.get("group") or "",
             utterances_path=root / r["utterances"] if r.get("utterances") else None)
        for r in rows
        if r["language"] in languages
    ]


def transcript_clips(
    settings: Settings | None = None, languages: tuple[str, ...] = ("en", "fr")
) -> list[Clip]:
    """The shared recordings that have reference transcripts (the "visible clips")."""
    return read_manifest((settings or Settings()).speech_data / "manifest.tsv", languages)


def load_set(
    name: str, settings: Settings | None = None, languages: tuple[str, ...] = ("en", "fr")
) -> tuple[list[Clip], Path]:
    """The clips of ``shared`` (the shared recordings), ``hard`` (built by
    :mod:`benchmarks.hardset`) or a manifest path, and the manifest they came from."""
    settings = settings or Settings()
    if name == "shared":
        path = settings.speech_data / "manifest.tsv"
    elif name == "hard":
        from benchmarks.hardset import build

        path = build(settings)
    else:
        path = Path(name)
        if not path.is_file():
            raise SystemExit(f"--set: {name} is neither shared, hard nor a manifest file")
    return read_manifest(path, languages), path


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
    """Where the figures were measured (``greffier.evaluation.resources.machine``), and when."""
    return {**_machine(), "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds")}


def write_results(
    name: str, data: dict[str, Any], table: str, folder: Path | None = None
) -> tuple[Path, Path]:
    """Write ``results/<name>.json`` and ``results/<name>.md`` (or into ``folder``)."""
    folder = folder or RESULTS
    folder.mkdir(parents=True, exist_ok=True)
    js = folder / f"{name}.json"
    md = folder / f"{name}.md"
    js.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
    md.write_text(table.rstrip() + "\n")
    return js, md


def fmt(v: float | None, unit: str = "", digits: int = 2) -> str:
    return "-" if v is None else f"{v:.{digits}f}{unit}"


def wer(references: list[str], hypotheses: list[str]) -> float:
    """Corpus WER with the project's own normaliser (``greffier.core.text``): the "raw" WER,
    comparable with the figures published before the standard normalisers."""
    from greffier.core.text import word_error_rate

    return round(word_error_rate(references, hypotheses).wer, 4)


def normalised_wer(
    references: list[str], hypotheses: list[str], language: str | list[str]
) -> float | None:
    """Corpus WER (``jiwer``, ``greffier.evaluation.metrics.word_errors``) after the standard
    normaliser of each pair's language (Whisper's English one, the documented French one:
    ``greffier.evaluation.normalize``); ``None`` when that package is missing."""
    try:
        from greffier.evaluation.metrics import ErrorCounts, word_errors
        from greffier.evaluation.normalize import normalizer_for
    except ImportError:
        return None
    langs = [language] * len(references) if isinstance(language, str) else language
    total = ErrorCounts()
    for lang in dict.fromkeys(langs):
        pairs = [(r, h) for r, h, g in zip(references, hypotheses, langs, strict=True)
                 if g == lang]
        total += word_errors([r for r, _ in pairs], [h for _, h in pairs],
                             normalizer_for(lang))
    return round(float(total.rate), 4) if references else None


def set_label(name: str, settings: Settings | None = None) -> str:
    """``shared``, ``hard`` or the manifest path: a path naming the shared or hard set's
    manifest counts as that set (``greffier bench`` passes paths)."""
    if name in ("shared", "hard"):
        return name
    settings = settings or Settings()
    path = Path(name).resolve()
    if path == (settings.speech_data / "manifest.tsv").resolve():
        return "shared"
    from benchmarks.hardset import hardset_dir

    if path == (hardset_dir(settings) / "manifest.tsv").resolve():
        return "hard"
    return name


def offline_transcripts(
    clips: list[Clip], settings: Settings, beam_size: int = 5
) -> dict[str, str]:
    """Offline faster-whisper (``WhisperDecoder.transcribe``, the same model, the clip's
    language given, beam 5) on each clip: the accuracy reference. Cached per audio file,
    language and model under ``<cache>/bench-offline``."""
    import hashlib

    cache = settings.cache_dir / "bench-offline"
    cache.mkdir(parents=True, exist_ok=True)
    out: dict[str, str] = {}
    decoder = None
    for clip in clips:
        key = hashlib.sha256(clip.audio_path.read_bytes())
        key.update(f"|{clip.language}|{settings.asr.model}|{beam_size}".encode())
        path = cache / f"{key.hexdigest()[:24]}.txt"
        if path.is_file():
            out[clip.id] = path.read_text(encoding="utf-8")
            continue
        if decoder is None:
            from greffier.asr.whisper import WhisperDecoder

            decoder = WhisperDecoder.load(settings.asr, settings.cache_dir)
        text = " ".join(h.text.strip() for h in decoder.transcribe(
            clip.audio(), language=clip.language, beam_size=beam_size))
        path.write_text(text, encoding="utf-8")
        out[clip.id] = text
    return out


def run_metadata(settings: Settings, decoder: Any | None = None, *, conditions: str = "",
                 command: str = "", configuration: dict[str, Any] | None = None) -> dict[str, Any]:
    """What a result needs to be reproduced and compared: the configuration, the model (name,
    where it came from, SHA-256 of its ``model.bin``), the device, library versions, the
    machine (with the date), the conditions and the command line."""
    from greffier.evaluation.asr_bench import model_checksum
    from greffier.evaluation.resources import library_versions

    model: dict[str, Any] = {"name": settings.asr.model}
    device: dict[str, Any] = {"requested": settings.asr.device}
    if decoder is not None:
        resolved = decoder.resolved
        device.update({"device": decoder.device.device,
                       "compute_type": decoder.device.compute_type})
    else:  # the model runs in another process (the live worker): resolve it, do not load it
        from greffier.models.registry import resolve_whisper_model

        resolved = resolve_whisper_model(settings.asr.model, settings.cache_dir)
    sha, source = model_checksum(resolved, settings.cache_dir)
    model.update({"source": resolved.source, "location": resolved.location,
                  "sha256": sha, "sha256_source": source})
    return {
        "configuration": {"asr": settings.asr.model_dump(mode="json"),
                          "vad": settings.vad.model_dump(mode="json"), **(configuration or {})},
        "model_info": model,
        "device_info": device,
        "libraries": library_versions(),
        "machine": machine(),
        "conditions": conditions,
        "command": command,
    }


def command_line(module: str, argv: list[str] | None) -> str:
    """The command that reproduces this run (under the heavy lock, as the rules ask)."""
    import shlex
    import sys

    args = sys.argv[1:] if argv is None else argv
    return (f"flock /tmp/greffier-heavy.lock .venv/bin/python -m benchmarks.{module} "
            + " ".join(shlex.quote(a) for a in args)).strip()


def progress(total: int, desc: str, unit: str = "clip") -> Any:
    """A tqdm bar on stderr (silent when stderr is not a terminal and ``total`` is small);
    call ``.update(n)`` and ``.close()``."""
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit=unit, mininterval=1.0, dynamic_ncols=True,
                disable=None if total < 20 else False)
