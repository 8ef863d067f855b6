"""Feed recordings to an open streaming-Whisper peer at real-time pace; log what it displays.

Run it with the peer's own interpreter (see ``setup.sh``); it does not import greffier::

    ~/.cache/greffier/peers/whisperlivekit/venv/bin/python benchmarks/peers/run_peer.py \\
        --system whisperlivekit --model-dir DIR --language en \\
        --audio a.wav --audio b.wav --out out.jsonl

Both peers run in this process through their Python API (no network server), with
faster-whisper on the given CTranslate2 directory, ``device=cpu``, ``compute_type=int8``, and the
given language; everything else is the peer's own default. Per clip: a fresh session; the clip
(16 kHz mono WAV) then ``--tail-silence`` s (3) of digital silence are fed in ``--chunk-ms``
(20 ms) chunks, each chunk at ``start + k * chunk`` on the monotonic clock (a late chunk is sent
at once, so pacing catches up and never drifts); then the stream is closed as the peer's own
client closes it, and the runner waits for the last output (``--final-timeout``: 15 s for
WhisperLiveKit, 60 s for WhisperLive, see below).

Output, one JSON object a line (``t``: seconds on the monotonic clock since the clip's first
sample was fed):

* ``{"clip", "event": "start", "system", "version", "load_s", "compute_type", ...}`` first for
  each clip. ``load_s`` is the time spent loading before this clip's session could start: the
  model load (and the peer's warm-up) for the first clip, ~0 for the next ones (the model is
  shared across sessions, as in each peer's server).
* ``{"clip", "t", "committed", "tentative"}`` for every update the peer emits whose displayed
  text differs from the previous one (WhisperLive resends identical messages on every decoding
  pass; those repeats are dropped, WhisperLiveKit already sends only changes). ``committed`` is
  the text the peer will not revise, for the whole clip so far; ``tentative`` is the part still
  subject to change. Whitespace is collapsed.
* ``{"clip", "event": "end", "t", "committed", "tentative", "timed_out", "fed_t",
  "max_feed_lag_s"}``: the displayed state when the session was closed (``timed_out``: the peer
  had not settled when ``--final-timeout`` ran out); ``fed_t``: when the last chunk (silence
  included) was handed over, ~ clip + tail silence; ``max_feed_lag_s``: the worst lateness of a
  chunk against its real-time slot (pacing check).
* ``{"event": "rss_mb", "rss_mb"}`` once at the end: peak RSS of this process
  (``resource.getrusage``), model and both runtimes included.

Committed / tentative mapping
-----------------------------
WhisperLiveKit (``whisperlivekit``, LocalAgreement policy): each update is a ``FrontData``.
``committed`` = the texts of its ``lines`` (segments built from tokens that LocalAgreement-2 has
validated: confirmed by two successive decoding passes, or flushed at a pause or at the end of
the stream), silence segments skipped, joined with spaces; ``tentative`` =
``buffer_transcription`` (the hypothesis tail not yet confirmed). Session driven the way its
``/asr`` WebSocket endpoint does: ``AudioProcessor(transcription_engine=...)``,
``create_tasks()``, ``process_audio(pcm_bytes)`` per chunk, ``process_audio(b"")`` to end the
stream; the update stream ends by itself once the final flush is out.

WhisperLive (``whisperlive``, faster_whisper backend): the server's ``ServeClientFasterWhisper``
is fed ``add_frames()`` exactly as its WebSocket server does for each received frame; the
messages it would send on the socket are taken in memory. A message carries up to the last 10
segments plus the segment being decoded. ``committed`` = the segments sent with
``"completed": true``, accumulated over messages the way WhisperLive's own client keeps its
transcript (a completed segment is kept when it starts at or after the end of the last kept one),
joined with spaces; ``tentative`` = the text of the last segment when it is not completed. At the
end, WhisperLive's client stops sending audio and waits for the server to go quiet before sending
END_OF_AUDIO (which makes the server drop the session at once): here the runner waits until
nothing is tentative any more and the peer has been quiet for 1 s (or ``--final-timeout``), then
does what the server does on END_OF_AUDIO (``cleanup()``). WhisperLive completes its last
segment only after it has decoded the same text ``same_output_threshold`` (10) more times, i.e.
~11 decoding passes over the pending audio after the speech ends (1-3 s each for base on a busy
2-core CPU: 12-36 s were seen), hence its longer default timeout. If it is still tentative at
close, it is left in ``tentative`` (the ``end`` event shows it, ``timed_out`` true), not
promoted; WhisperLive's own client, when it closes, writes the completed segments plus that
pending one to its SRT, so "what its client ends up with" is the ``end`` event's committed +
tentative.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import resource
import sys
import threading
import time
import wave
from pathlib import Path
from typing import Any

# Nothing may come from a model hub, and everything runs on the CPU.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ["CUDA_VISIBLE_DEVICES"] = ""

import numpy as np  # noqa: E402

SAMPLE_RATE = 16000
DEVICE = "cpu"
COMPUTE_TYPE = "int8"
# WhisperLive commits its last segment only after ~11 more decoding passes (see above).
FINAL_TIMEOUT_S = {"whisperlivekit": 15.0, "whisperlive": 60.0}
QUIET_S = 1.0  # WhisperLive: how long the peer must be silent, with nothing tentative, to close

log = logging.getLogger("run_peer")


def read_wav(path: Path) -> np.ndarray:
    """16 kHz WAV as int16 samples (channels averaged)."""
    with wave.open(str(path), "rb") as w:
        rate, channels, width = w.getframerate(), w.getnchannels(), w.getsampwidth()
        raw = w.readframes(w.getnframes())
    if rate != SAMPLE_RATE:
        raise SystemExit(f"{path}: {rate} Hz, expected {SAMPLE_RATE} Hz")
    if width == 2:
        x = np.frombuffer(raw, dtype="<i2").astype(np.float32)
    elif width == 4:
        x = np.frombuffer(raw, dtype="<i4").astype(np.float32) / 65536.0
    elif width == 1:
        x = (np.frombuffer(raw, dtype=np.uint8).astype(np.float32) - 128.0) * 256.0
    else:
        raise SystemExit(f"{path}: unsupported sample width {width}")
    if channels > 1:
        x = x.reshape(-1, channels).mean(axis=1)
    return np.clip(np.round(x), -32768, 32767).astype(np.int16)


def clean(text: str | None) -> str:
    return " ".join((text or "").split())


class Recorder:
    """Writes the JSONL log; keeps one clip's last displayed state (thread-safe)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._f = path.open("w", encoding="utf-8")
        self._lock = threading.Lock()
        self.clip = ""
        self.t0: float | None = None
        self.last: tuple[str, str] = ("", "")
        self.last_change = 0.0
        self.max_feed_lag, self.fed_t = 0.0, 0.0

    def write(self, obj: dict[str, Any]) -> None:
        with self._lock:
            self._f.write(json.dumps(obj, ensure_ascii=False) + "\n")
            self._f.flush()

    def begin(self, clip: str, **fields: Any) -> None:
        self.clip, self.t0, self.last = clip, None, ("", "")
        self.write({"clip": clip, "event": "start", **fields})

    def start_clock(self) -> float:
        self.t0 = time.monotonic()
        self.last_change = self.t0
        self.max_feed_lag, self.fed_t = 0.0, 0.0
        return self.t0

    def now(self) -> float:
        return round(time.monotonic() - (self.t0 or time.monotonic()), 4)

    def snapshot(self, committed: str, tentative: str) -> None:
        state = (clean(committed), clean(tentative))
        with self._lock:
            if state == self.last:
                return
            self.last = state
            self.last_change = time.monotonic()
        self.write(
            {"clip": self.clip, "t": self.now(), "committed": state[0], "tentative": state[1]}
        )

    def fed(self, k: int, chunk_s: float) -> None:
        """Called after chunk k was handed over: tracks how late the feeding ran."""
        lag = time.monotonic() - (self.t0 or 0.0) - k * chunk_s
        self.max_feed_lag = max(self.max_feed_lag, lag)
        self.fed_t = self.now()

    def end(self, timed_out: bool, **fields: Any) -> None:
        self.write(
            {
                "clip": self.clip,
                "event": "end",
                "t": self.now(),
                "committed": self.last[0],
                "tentative": self.last[1],
                "timed_out": timed_out,
                "fed_t": self.fed_t,
                "max_feed_lag_s": round(self.max_feed_lag, 4),
                **fields,
            }
        )

    def close(self) -> None:
        self._f.close()


def paced_chunks(samples: np.ndarray, chunk_ms: float, tail_silence_s: float) -> list[np.ndarray]:
    step = max(1, int(round(SAMPLE_RATE * chunk_ms / 1000.0)))
    padded = np.concatenate([samples, np.zeros(int(SAMPLE_RATE * tail_silence_s), dtype=np.int16)])
    return [padded[i : i + step] for i in range(0, padded.size, step)]


def quiet_logs(verbose: bool) -> None:
    if verbose:
        return
    for h in logging.getLogger().handlers:
        h.setLevel(logging.WARNING)
    for name in ("whisperlivekit", "faster_whisper", "whisper_live"):
        logging.getLogger(name).setLevel(logging.WARNING)


# --------------------------------------------------------------------------------------------
# WhisperLiveKit
# --------------------------------------------------------------------------------------------


def _force_cpu_int8_faster_whisper() -> None:
    """WhisperLiveKit builds ``faster_whisper.WhisperModel(path, device="auto",
    compute_type="auto")``; pin the device and compute type the comparison requires."""
    import faster_whisper

    base = faster_whisper.WhisperModel

    class CpuInt8WhisperModel(base):  # type: ignore[misc, valid-type]
        def __init__(self, model_size_or_path: str, *args: Any, **kwargs: Any) -> None:
            kwargs.update(device=DEVICE, compute_type=COMPUTE_TYPE, local_files_only=True)
            super().__init__(model_size_or_path, *args, **kwargs)

    faster_whisper.WhisperModel = CpuInt8WhisperModel


def run_whisperlivekit(args: argparse.Namespace, rec: Recorder) -> None:
    import importlib.metadata

    _force_cpu_int8_faster_whisper()
    from whisperlivekit import AudioProcessor, TranscriptionEngine, WhisperLiveKitConfig

    quiet_logs(args.verbose)
    warmup = args.warmup_file
    if warmup is None:  # its default warm-up clip is jfk.wav, downloaded; use a local copy
        local = [Path(a).with_name("jfk.wav") for a in args.audio]
        warmup = next((str(p) for p in local if p.exists()), "")
    config = WhisperLiveKitConfig(
        # SimulStreaming (the default policy) decodes with PyTorch Whisper weights and its
        # AlignAtt cross-attention; a CTranslate2 directory only serves its encoder. The
        # faster-whisper backend runs the whole model only under the LocalAgreement policy.
        backend_policy="localagreement",
        backend="faster-whisper",
        model_dir=args.model_dir,
        lan=args.language,
        pcm_input=True,  # its --pcm-input: s16le straight in, no ffmpeg decoding of webm
        warmup_file=warmup,
        log_level="WARNING",
    )
    t = time.monotonic()
    engine = TranscriptionEngine(config=config)
    load_s = time.monotonic() - t
    compute = getattr(getattr(engine.asr, "model", None), "model", None)
    info = {
        "system": "whisperlivekit",
        "version": importlib.metadata.version("whisperlivekit"),
        "policy": config.backend_policy,
        "backend": getattr(engine.asr, "backend_choice", None),
        "compute_type": getattr(compute, "compute_type", None),
        "warmup_file": warmup or None,
    }
    for path in args.audio:
        samples = read_wav(Path(path))
        rec.begin(Path(path).stem, load_s=round(load_s, 3), **info)
        load_s = 0.0
        asyncio.run(_wlk_clip(AudioProcessor, engine, samples, args, rec))


async def _wlk_clip(
    processor_cls: Any, engine: Any, samples: np.ndarray, args: argparse.Namespace, rec: Recorder
) -> None:
    processor = processor_cls(transcription_engine=engine)
    results = await processor.create_tasks()

    async def consume() -> None:
        async for front in results:
            if getattr(front, "error", ""):
                rec.write(
                    {"clip": rec.clip, "event": "error", "t": rec.now(), "error": front.error}
                )
                continue
            committed = " ".join(
                seg.text for seg in front.lines if seg.text and not seg.is_silence()
            )
            rec.snapshot(committed, front.buffer_transcription or "")

    consumer = asyncio.create_task(consume())
    chunk_s = args.chunk_ms / 1000.0
    t0 = rec.start_clock()
    for k, chunk in enumerate(paced_chunks(samples, args.chunk_ms, args.tail_silence)):
        delay = t0 + k * chunk_s - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        await processor.process_audio(chunk.tobytes())
        rec.fed(k, chunk_s)
    await processor.process_audio(b"")  # end of stream: flush, then the update stream ends
    timed_out = False
    try:
        await asyncio.wait_for(asyncio.shield(consumer), timeout=args.final_timeout)
    except TimeoutError:
        timed_out = True
        consumer.cancel()
    rec.end(timed_out)
    await processor.cleanup()


# --------------------------------------------------------------------------------------------
# WhisperLive
# --------------------------------------------------------------------------------------------


class _InProcessSocket:
    """Stands for the WebSocket the server would send on; hands the messages to a callback."""

    def __init__(self, on_message: Any) -> None:
        self.on_message = on_message
        self.closed = False

    def send(self, data: str | bytes) -> None:
        self.on_message(json.loads(data))

    def close(self) -> None:
        self.closed = True


class _WhisperLiveView:
    """What WhisperLive's client shows: kept completed segments + the pending last one."""

    def __init__(self, rec: Recorder) -> None:
        self.rec = rec
        self.kept: list[dict[str, Any]] = []
        self.tentative = ""
        self.errors: list[str] = []

    def on_message(self, msg: dict[str, Any]) -> None:
        if msg.get("status") == "ERROR":
            self.errors.append(str(msg.get("message")))
            self.rec.write(
                {
                    "clip": self.rec.clip,
                    "event": "error",
                    "t": self.rec.now(),
                    "error": msg.get("message"),
                }
            )
            return
        segments = msg.get("segments")
        if not segments:
            return
        for seg in segments:
            if seg.get("completed") and (
                not self.kept or float(seg["start"]) >= float(self.kept[-1]["end"])
            ):
                self.kept.append(seg)
        last = segments[-1]
        self.tentative = "" if last.get("completed") else last.get("text", "")
        self.rec.snapshot(" ".join(s["text"] for s in self.kept), self.tentative)


def run_whisperlive(args: argparse.Namespace, rec: Recorder) -> None:
    import importlib.metadata
    import uuid

    from whisper_live.backend.faster_whisper_backend import ServeClientFasterWhisper

    quiet_logs(args.verbose)
    version = importlib.metadata.version("whisper-live")
    for path in args.audio:
        samples = read_wav(Path(path))
        view = _WhisperLiveView(rec)
        rec.clip = Path(path).stem
        t = time.monotonic()
        # The options WhisperLive's Client sends by default (and the server's defaults for the
        # rest), as its TranscriptionServer passes them; single_model: the server's mode for a
        # custom model, one model shared by the sessions.
        client = ServeClientFasterWhisper(
            _InProcessSocket(view.on_message),
            task="transcribe",
            language=args.language,
            client_uid=str(uuid.uuid4()),
            model=args.model_dir,
            initial_prompt=None,
            vad_parameters=None,
            use_vad=True,
            single_model=True,
            send_last_n_segments=10,
            no_speech_thresh=0.45,
            clip_audio=False,
            same_output_threshold=10,
            cache_path=str(Path.home() / ".cache/whisper-live/"),
            translation_queue=None,
            hotwords=None,
            diarization=None,
            word_timestamps=False,
        )
        load_s = time.monotonic() - t
        transcriber = getattr(client, "transcriber", None)
        if transcriber is None:
            raise SystemExit(f"WhisperLive could not load {args.model_dir}: {view.errors}")
        rec.begin(
            rec.clip,
            system="whisperlive",
            version=version,
            load_s=round(load_s, 3),
            backend="faster_whisper",
            compute_type=getattr(transcriber.model, "compute_type", None),
            use_vad=True,
        )
        chunk_s = args.chunk_ms / 1000.0
        t0 = rec.start_clock()
        for k, chunk in enumerate(paced_chunks(samples, args.chunk_ms, args.tail_silence)):
            delay = t0 + k * chunk_s - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            client.add_frames(chunk.astype(np.float32) / 32768.0)  # the server's float32 frames
            rec.fed(k, chunk_s)
        deadline = time.monotonic() + args.final_timeout
        timed_out = True
        while time.monotonic() < deadline:
            if not view.tentative and view.kept and time.monotonic() - rec.last_change >= QUIET_S:
                timed_out = False
                break
            time.sleep(0.05)
        rec.end(timed_out)
        # END_OF_AUDIO: the server runs the (unset) finalizer, then cleanup() ends the session.
        client.finalize()
        client.cleanup()
        client.trans_thread.join(timeout=60)


# --------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("--system", required=True, choices=["whisperlivekit", "whisperlive"])
    p.add_argument(
        "--model-dir", required=True, help="CTranslate2 (faster-whisper) model directory"
    )
    p.add_argument("--language", required=True, help="e.g. en, fr")
    p.add_argument(
        "--audio",
        required=True,
        action="extend",
        nargs="+",
        help="16 kHz WAV; repeat or list several",
    )
    p.add_argument("--out", required=True, type=Path, help="JSONL output")
    p.add_argument("--chunk-ms", type=float, default=20.0, help="feed chunk (20-40 ms)")
    p.add_argument("--tail-silence", type=float, default=3.0, help="silence fed after each clip, s")
    p.add_argument(
        "--final-timeout",
        type=float,
        default=None,
        help="max wait for the last output after the stream is closed, s "
        f"(default {FINAL_TIMEOUT_S})",
    )
    p.add_argument(
        "--warmup-file",
        default=None,
        help="WhisperLiveKit warm-up WAV (default: a jfk.wav next to the clips, its "
        "own default clip; '' to skip)",
    )
    p.add_argument("--verbose", action="store_true", help="keep the peers' logs")
    args = p.parse_args(argv)

    model_dir = Path(args.model_dir).expanduser().resolve()
    if not (model_dir / "model.bin").is_file():
        raise SystemExit(f"{model_dir}: no model.bin (a CTranslate2 Whisper directory is needed)")
    args.model_dir = str(model_dir)
    if args.final_timeout is None:
        args.final_timeout = FINAL_TIMEOUT_S[args.system]
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        stream=sys.stderr,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
    )

    rec = Recorder(args.out)
    try:
        if args.system == "whisperlivekit":
            run_whisperlivekit(args, rec)
        else:
            run_whisperlive(args, rec)
        peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        rec.write({"event": "rss_mb", "system": args.system, "rss_mb": round(peak_kb / 1024.0, 1)})
    finally:
        rec.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
