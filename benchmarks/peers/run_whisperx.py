"""Transcribe recordings with WhisperX (batched faster-whisper behind its own VAD); time each one.

Run it with WhisperX's own interpreter (see ``setup_whisperx.sh``); it does not import greffier::

    ~/.cache/greffier/peers/whisperx/venv/bin/python benchmarks/peers/run_whisperx.py \\
        --model-dir DIR --language en --audio a.wav --audio b.wav --out out.json

What runs is ``whisperx.load_model(DIR, "cpu", compute_type="int8", language=...)`` and then
``model.transcribe(audio, batch_size=...)`` per file: WhisperX's transcription stage, i.e. its
VAD cuts the file into speech chunks of up to 30 s, merged, which are decoded in batches by
CTranslate2 (beam 5, no timestamps, no conditioning on previous text: its defaults). Alignment
(wav2vec2) and diarization (pyannote community pipeline) are off: both need hub models.

Choices, each WhisperX's own default unless said:

* VAD: ``vad_method="pyannote"``, its default; the segmentation checkpoint it uses ships inside
  the wheel (``whisperx/assets/pytorch_model.bin``), so it runs offline. (Its ``silero`` option
  calls ``torch.hub.load("snakers4/silero-vad")``, which needs GitHub.)
* ``--batch-size`` 8: the default of its ``whisperx`` command (its Python API's default, None,
  decodes one chunk at a time).
* ``--threads``: CTranslate2 CPU threads; default ``os.cpu_count()``, what greffier uses (its
  command's default is 4, more than this machine's cores).
* ``device="cpu"``, ``compute_type="int8"``; ``CUDA_VISIBLE_DEVICES`` is emptied and
  ``HF_HUB_OFFLINE`` set, so nothing is fetched.

Audio is read here from 16 kHz mono 16-bit WAV files (WhisperX's ``load_audio`` would spawn
ffmpeg) and passed as float32 arrays. A warm-up transcription of ``--warmup`` (first file by
default) runs once, untimed, after the load.

Output (one JSON object): ``version``s, ``load_s`` (model + VAD load), ``warmup_s``, and per file
and repeat ``wall_s`` and the text (segments joined with spaces), ``vad_s`` (its VAD stage
alone, timed in a separate call after the timed runs) and ``vad_chunks``, plus ``rss_mb``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
import wave

os.environ["CUDA_VISIBLE_DEVICES"] = ""
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("PYANNOTE_METRICS_ENABLED", "0")

import numpy as np  # noqa: E402


def read_wav(path: str) -> np.ndarray:
    with wave.open(path, "rb") as w:
        if w.getframerate() != 16000 or w.getnchannels() != 1 or w.getsampwidth() != 2:
            raise SystemExit(f"{path}: expected 16 kHz mono 16-bit WAV")
        data = w.readframes(w.getnframes())
    return np.frombuffer(data, dtype="<i2").astype(np.float32) / 32768.0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model-dir", required=True, help="local CTranslate2 Whisper directory")
    ap.add_argument("--language", required=True)
    ap.add_argument("--audio", action="append", required=True, help="16 kHz mono WAV (repeat)")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--warmup", default=None, help="WAV transcribed once, untimed")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()

    import importlib.metadata as md

    import torch

    started = time.perf_counter()
    import whisperx

    model = whisperx.load_model(
        args.model_dir, "cpu", compute_type="int8", language=args.language,
        threads=args.threads, local_files_only=True,
    )
    load_s = time.perf_counter() - started
    print(f"[whisperx] loaded in {load_s:.1f} s", file=sys.stderr, flush=True)

    audios = {path: read_wav(path) for path in args.audio}
    warm = read_wav(args.warmup) if args.warmup else audios[args.audio[0]]
    t0 = time.perf_counter()
    model.transcribe(warm, batch_size=args.batch_size, language=args.language)
    warmup_s = time.perf_counter() - t0

    files = []
    for path in args.audio:
        audio = audios[path]
        runs = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            result = model.transcribe(audio, batch_size=args.batch_size, language=args.language)
            wall = time.perf_counter() - t0
            text = " ".join(s["text"].strip() for s in result["segments"]).strip()
            runs.append({"wall_s": wall, "text": text, "segments": len(result["segments"])})
        # What its VAD stage alone costs (one extra, separate call; not in wall_s).
        t0 = time.perf_counter()
        vad = model.vad_model
        segments = vad({"waveform": vad.preprocess_audio(audio), "sample_rate": 16000})
        chunks = vad.merge_chunks(segments, 30, onset=model._vad_params["vad_onset"],
                                  offset=model._vad_params["vad_offset"])
        vad_s = time.perf_counter() - t0
        times = ", ".join(f"{r['wall_s']:.2f}" for r in runs)
        print(f"[whisperx] {os.path.basename(path)}: {audio.size / 16000:.1f} s of audio in "
              f"{times} s (VAD alone {vad_s:.2f} s, {len(chunks)} chunks)",
              file=sys.stderr, flush=True)
        files.append({"audio": path, "duration_s": audio.size / 16000, "runs": runs,
                      "vad_s": vad_s, "vad_chunks": len(chunks)})

    out = {
        "system": "whisperx",
        "version": md.version("whisperx"),
        "faster_whisper": md.version("faster-whisper"),
        "ctranslate2": md.version("ctranslate2"),
        "torch": torch.__version__,
        "pyannote_audio": md.version("pyannote.audio"),
        "model_dir": args.model_dir,
        "device": "cpu",
        "compute_type": "int8",
        "language": args.language,
        "batch_size": args.batch_size,
        "threads": args.threads,
        "vad": "pyannote (segmentation checkpoint shipped in the whisperx wheel)",
        "beam_size": model.options.beam_size,
        "load_s": load_s,
        "warmup_s": warmup_s,
        "files": files,
        "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump(out, f, indent=1, ensure_ascii=False)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
