"""Transcription speed of recordings against WhisperX (part of ``benchmarks.diarization``).

The same files, the same local CTranslate2 ``base`` directory, int8, CPU, language ``en``.
greffier: the path of ``greffier transcribe``, ``asr.offline.transcribe_recording`` (Silero VAD
chunks, short encoder windows, 4 chunks a call, beam 5, word timestamps); faster-whisper's own
long-form ``transcribe`` (30 s windows one by one, same decoder) beside it. WhisperX 3.8.6 in
its own venv (``benchmarks/peers/setup_whisperx.sh``) driven by
``benchmarks/peers/run_whisperx.py`` (its batched pipeline, batch 8, its pyannote VAD shipped in
its wheel, beam 5, no alignment, no diarization). Both run one after the other (never at once),
after one untimed warm-up; load time apart; each file ``repeats`` times, the fastest kept.
``speed_vs_whisperx`` = WhisperX seconds / greffier seconds, over all files.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from greffier.core.audio import SAMPLE_RATE, FloatArray, read_audio
from greffier.core.text import word_error_rate

PEERS_DIR = Path(__file__).resolve().parent / "peers"
PEER_VENVS = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "greffier" / "peers"
WHISPERX_PY = PEER_VENVS / "whisperx" / "venv" / "bin" / "python"
SPEED_GOAL = 1.5
"""WhisperX seconds / greffier seconds to reach."""

SpeedFile = tuple[str, Path, str]
"""(name, audio path, reference transcript)."""


def log(msg: str) -> None:
    print(f"[diarization] {msg}", flush=True)


def greffier_variants(decoder: Any) -> dict[str, Any]:
    """The timed greffier call (the path of ``greffier transcribe``), then faster-whisper's
    long-form transcription through the same decoder as a diagnostic."""
    from greffier.asr.offline import ChunkingOptions, transcribe_recording
    from greffier.recordings import CPU_BATCH_SIZE

    def text(hyps: Any) -> str:
        return " ".join(h.text.strip() for h in hyps).strip()

    def headline(audio: FloatArray) -> str:
        return text(
            transcribe_recording(
                decoder,
                audio,
                language="en",
                beam_size=5,
                options=ChunkingOptions(batch_size=CPU_BATCH_SIZE),
            )
        )

    def longform(audio: FloatArray) -> str:
        return text(list(decoder.transcribe(audio, language="en", beam_size=5)))

    return {"greffier": headline, "faster_whisper_longform": longform}


def time_greffier(
    decoder: Any, files: list[SpeedFile], warmup: Path, repeats: int
) -> dict[str, dict[str, Any]]:
    """Each variant of :func:`greffier_variants` on each file, ``repeats`` times, interleaved
    (file by file, variant after variant) so that load changes hit them alike."""
    from faster_whisper.vad import VadOptions, get_speech_timestamps

    variants = greffier_variants(decoder)
    warm = read_audio(warmup)
    for call in variants.values():
        call(warm)
    out: dict[str, dict[str, Any]] = {name: {"files": []} for name in variants}
    for name, path, _ in files:
        audio = read_audio(path)
        runs: dict[str, list[dict[str, Any]]] = {v: [] for v in variants}
        for _ in range(repeats):
            for v, call in variants.items():
                t0 = time.perf_counter()
                said = call(audio)
                runs[v].append({"wall_s": time.perf_counter() - t0, "text": said})
        # What the VAD stage alone costs (faster-whisper's Silero ONNX with the options
        # transcribe uses; one extra, separate call, not in wall_s).
        t0 = time.perf_counter()
        chunks = get_speech_timestamps(audio, VadOptions())
        vad_s = time.perf_counter() - t0
        log(
            f"greffier {name}: {audio.size / SAMPLE_RATE:.1f} s in "
            + "; ".join(
                f"{v} " + ", ".join(f"{r['wall_s']:.2f}" for r in rs) for v, rs in runs.items()
            )
            + f" s (VAD alone {vad_s:.2f} s, {len(chunks)} speech segments)"
        )
        for v, rs in runs.items():
            out[v]["files"].append(
                {"file": name, "duration_s": audio.size / SAMPLE_RATE, "runs": rs, "vad_s": vad_s}
            )
    return out


def time_whisperx(
    model_dir: str, files: list[SpeedFile], warmup: Path, repeats: int
) -> dict[str, Any]:
    if not WHISPERX_PY.exists():
        raise RuntimeError(f"{WHISPERX_PY} is missing: bash benchmarks/peers/setup_whisperx.sh")
    with tempfile.TemporaryDirectory(prefix="greffier-whisperx-") as tmp:
        out = Path(tmp) / "whisperx.json"
        cmd = [
            str(WHISPERX_PY),
            str(PEERS_DIR / "run_whisperx.py"),
            "--model-dir",
            model_dir,
            "--language",
            "en",
            "--repeats",
            str(repeats),
            "--warmup",
            str(warmup),
            "--out",
            str(out),
        ]
        for _, path, _ in files:
            cmd += ["--audio", str(path)]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
        for line in proc.stderr.splitlines():
            if line.startswith("[whisperx]"):
                log(line)
        if proc.returncode != 0:
            raise RuntimeError(
                f"run_whisperx.py failed ({proc.returncode}):\n{proc.stderr[-3000:]}"
            )
        data: dict[str, Any] = json.loads(out.read_text())
    for entry, (name, _, _) in zip(data["files"], files, strict=True):
        entry["file"] = name
    return data


def _best(entry: dict[str, Any]) -> float:
    return float(min(r["wall_s"] for r in entry["runs"]))


def _total(files: list[SpeedFile], entries: list[dict[str, Any]]) -> dict[str, Any]:
    refs = [ref for _, _, ref in files]
    duration = sum(e["duration_s"] for e in entries)
    seconds = sum(_best(e) for e in entries)
    return {
        "seconds": seconds,
        "rtf": seconds / duration,
        "vad_s": sum(e["vad_s"] for e in entries),
        "wer": word_error_rate(refs, [e["runs"][0]["text"] for e in entries]).wer,
    }


def summarize_speed(
    files: list[SpeedFile], g: dict[str, dict[str, Any]], x: dict[str, Any] | None, load_s: float
) -> dict[str, Any]:
    head = g["greffier"]["files"]
    per_file: dict[str, Any] = {}
    for i, (name, _, ref) in enumerate(files):
        row: dict[str, Any] = {
            "duration_s": head[i]["duration_s"],
            "greffier_s": _best(head[i]),
            "greffier_wer": word_error_rate([ref], [head[i]["runs"][0]["text"]]).wer,
        }
        if x is not None:
            row["whisperx_s"] = _best(x["files"][i])
            row["whisperx_wer"] = word_error_rate([ref], [x["files"][i]["runs"][0]["text"]]).wer
            row["ratio"] = row["whisperx_s"] / row["greffier_s"]
        per_file[name] = row
    out: dict[str, Any] = {
        "audio_s": sum(r["duration_s"] for r in per_file.values()),
        "greffier": {**_total(files, head), "load_s": load_s, "runs": head},
        "diagnostics": {
            v: {
                **_total(files, d["files"]),
                "recording_wer": word_error_rate(
                    [files[0][2]], [d["files"][0]["runs"][0]["text"]]
                ).wer,
                "runs": d["files"],
            }
            for v, d in g.items()
            if v != "greffier"
        },
        "per_file": per_file,
    }
    if x is not None:
        out["whisperx"] = {
            **_total(files, x["files"]),
            **{k: v for k, v in x.items() if k != "files"},
            "runs": x["files"],
        }
        out["speed_vs_whisperx"] = out["whisperx"]["seconds"] / out["greffier"]["seconds"]
        for d in out["diagnostics"].values():
            d["whisperx_over_this"] = out["whisperx"]["seconds"] / d["seconds"]
    return out


def speed_note(sp: dict[str, Any]) -> str:
    """What the measured split says about the speed goal (empty without WhisperX)."""
    if "whisperx" not in sp:
        return ""
    ratio = sp["speed_vs_whisperx"]
    g, x = sp["greffier"], sp["whisperx"]
    lf = sp["diagnostics"]["faster_whisper_longform"]
    verdict = "meets" if ratio >= SPEED_GOAL else f"misses by {SPEED_GOAL / ratio:.2f}x"
    return (
        f"greffier {verdict} the goal ({ratio:.2f}x). Where the time goes: faster-whisper's "
        f"long-form call pads every window to Whisper's 30 s ({lf['seconds']:.1f} s here); "
        "greffier encodes each VAD chunk with only its own audio plus a little padding and "
        f"decodes 4 chunks a call ({g['seconds']:.1f} s, VAD included). WhisperX batches 8 "
        f"padded 30 s windows and spends {x['vad_s']:.1f} s in its pyannote VAD."
    )


def measure_speed(
    decoder: Any, files: list[SpeedFile], warmup: Path, repeats: int, load_s: float
) -> dict[str, Any]:
    """greffier, then WhisperX when its venv is there; ``whisperx_error`` says why not."""
    g = time_greffier(decoder, files, warmup, repeats)
    x, error = None, None
    try:
        x = time_whisperx(str(decoder.resolved.location), files, warmup, repeats)
    except (RuntimeError, subprocess.SubprocessError, OSError) as e:
        error = str(e).splitlines()[0]
        log(f"WhisperX not run: {error}")
    out = summarize_speed(files, g, x, load_s)
    out["note"] = speed_note(out)
    if error:
        out["whisperx_error"] = error
    return out
