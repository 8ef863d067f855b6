"""greffier's streaming engine side by side with offline Whisper and two open peers.

Same audio (the visible clips with transcripts), same local model directory (``base``, int8,
CPU), every system fed at real-time pace and scored by ``benchmarks/snapshots.py``:

* ``greffier``: the exact streaming code (``asr.replay``, real-time clock, default settings);
* ``greffier, accuracy profile``: the same with the settings of ``ACCURACY_PROFILE`` (longer
  segments, beam 5 finals, a last decode at sentence cuts): closer to offline, later finals;
* ``faster-whisper offline``: ``WhisperModel.transcribe`` on the whole clip (beam 5, VAD), the
  accuracy reference (no latency: it needs the whole recording);
* ``whisperlivekit`` and ``whisperlive``: driven by ``benchmarks/peers/run_peer.py`` inside their
  own virtual environments (``benchmarks/peers/setup.sh``), with the same model directory.

Then greffier's capacity: N streams at once, in real time, on one engine, for N = 1, 2, ...
until the p95 final latency passes 2 s; memory per added stream.

``--set`` picks the clips: ``shared`` (the shared recordings), ``hard`` (the hard set of
:mod:`benchmarks.hardset`; each track of an overlap replayed on its own) or a manifest path.
For greffier's runs it also reports the final latency per utterance and by utterance length,
retracted segments, clips without a final and repeated phrases (:mod:`benchmarks.metrics`).

``--sweep`` runs only the settings sweep (:data:`SWEEP`: the default and accuracy profiles,
final beam 5, 300 and 700 ms endpoints) on ``--sweep-clips`` clips of 3-12 s: the latency/WER
trade-off. ``--capacity-only`` runs only the capacity (``greffier bench capacity``).

Run: ``.venv/bin/python -m benchmarks.streaming [--set shared] [--skip-peers]
[--languages en,fr] [--conditions 'shared machine']``. Writes ``benchmarks/results/streaming.json``
(configuration, model and checksum, device, libraries, machine, every clip of every system),
``streaming.md``, ``streaming_latency.png`` (latency CDFs per system), ``streaming_wer.png`` (WER
per clip) and ``streaming_capacity.png`` (``streaming_hard`` for the hard set); ``--sweep``:
``streaming_sweep.{json,md,png}``; ``--capacity-only --output capacity``: ``capacity.*``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import statistics
import subprocess
import tempfile
import threading
from pathlib import Path
from typing import Any

import numpy as np
import psutil

from benchmarks.common import (
    RESULTS,
    Clip,
    command_line,
    fmt,
    load_set,
    normalised_wer,
    offline_transcripts,
    percentile,
    progress,
    run_metadata,
    set_label,
    speech_bounds,
    write_results,
)
from benchmarks.metrics import (
    CaptionEvent,
    TimedFinal,
    latency_by_length,
    repeated_phrases,
    retracted_segments,
    utterance_final_latency,
)
from benchmarks.snapshots import Snapshot, score, snapshots_from_replay
from greffier.asr.engine import InferenceEngine, engine_for
from greffier.asr.replay import ReplayResult, replay
from greffier.asr.streaming import StreamingOptions, StreamingTranscriber
from greffier.asr.whisper import WhisperDecoder
from greffier.core.audio import SAMPLE_RATE
from greffier.core.config import Settings
from greffier.core.text import word_error_rate
from greffier.core.types import TranscriptEventType

PEERS_DIR = Path(__file__).resolve().parent / "peers"
PEER_VENVS = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "greffier" / "peers"
PEER_SYSTEMS = ("whisperlivekit", "whisperlive")
CAPACITY_TARGET_S = 2.0
ACCURACY_PROFILE = {"trim_after_s": 10.0, "final_beam_size": 5, "cut_decode": True}
"""Settings that trade latency for the offline WER (GREFFIER_ASR__TRIM_AFTER_S=10,
GREFFIER_ASR__FINAL_BEAM_SIZE=5, GREFFIER_ASR__CUT_DECODE=true)."""
ACCURACY_NOTE = "trim_after_s 10, final beam 5, cut_decode"


def clip_row(clip: Clip, final_text: str, **figures: Any) -> dict[str, Any]:
    """One clip's figures: its reference and hypothesis, raw and normalised WER, and the
    figures given (latencies, rewrites)."""
    from greffier.evaluation.metrics import word_errors
    from greffier.evaluation.normalize import normalizer_for

    raw = word_error_rate([clip.reference], [final_text]).wer
    norm = word_errors(clip.reference, final_text, normalizer_for(clip.language)).rate
    return {"id": clip.id, "language": clip.language, "variant": clip.variant or None,
            "reference": clip.reference, "hypothesis": final_text,
            "wer_raw": round(raw, 4), "wer": None if norm is None else round(norm, 4),
            **{k: (_r(v) if isinstance(v, float) else v) for k, v in figures.items()}}


def summarize(name: str, clips: list[Clip], snaps: dict[str, list[Snapshot]],
              bounds: dict[str, tuple[float, float]]) -> dict[str, Any]:
    """WER (project normaliser: ``wer``, ``wer_by_language``; standard normalisers:
    ``wer_normalised_by_language``), latency percentiles, flicker and one row per clip."""
    scores = {c.id: score(snaps.get(c.id, []), *bounds[c.id]) for c in clips}
    first = [s.first_interim_latency for s in scores.values() if s.first_interim_latency is not None]
    final = [s.final_latency for s in scores.values() if s.final_latency is not None]
    out: dict[str, Any] = {
        "wer": round(word_error_rate([c.reference for c in clips],
                                     [scores[c.id].final_text for c in clips]).wer, 4),
        "wer_by_language": {},
        "first_interim_latency_p50_s": _r(percentile(first, 50)),
        "final_latency_p50_s": _r(percentile(final, 50)),
        "final_latency_p95_s": _r(percentile(final, 95)),
        "flicker": round(sum(s.rewrites for s in scores.values())
                         / max(1, sum(s.final_words for s in scores.values())), 3),
        "clips_without_output": [cid for cid, s in scores.items() if not s.final_text],
    }
    for lang in sorted({c.language for c in clips}):
        sel = [c for c in clips if c.language == lang]
        out["wer_by_language"][lang] = round(word_error_rate(
            [c.reference for c in sel], [scores[c.id].final_text for c in sel]).wer, 4)
    out["wer_normalised_by_language"] = {
        lang: normalised_wer([c.reference for c in clips if c.language == lang],
                             [scores[c.id].final_text for c in clips if c.language == lang],
                             lang)
        for lang in sorted({c.language for c in clips})}
    out["wer_normalised"] = normalised_wer([c.reference for c in clips],
                                           [scores[c.id].final_text for c in clips],
                                           [c.language for c in clips])
    out["per_clip"] = [
        clip_row(c, scores[c.id].final_text, speech_s=bounds[c.id][1] - bounds[c.id][0],
                 first_interim_latency_s=scores[c.id].first_interim_latency,
                 final_latency_s=scores[c.id].final_latency,
                 rewrites=scores[c.id].rewrites, final_words=scores[c.id].final_words)
        for c in clips]
    print(f"{name}: WER {out['wer']:.3f} (normalised {out['wer_normalised']}) first "
          f"{out['first_interim_latency_p50_s']} final {out['final_latency_p50_s']}/"
          f"{out['final_latency_p95_s']} flicker {out['flicker']}", flush=True)
    return out


def _r(v: float | None) -> float | None:
    return None if v is None else round(v, 3)


async def run_greffier(engine: InferenceEngine, clips: list[Clip], settings: Settings,
                       replays: dict[str, ReplayResult] | None = None,
                       desc: str = "greffier") -> dict[str, list[Snapshot]]:
    """Replay each clip in real time (3 s of silence after it) through the streaming code."""
    out = {}
    bar = progress(len(clips), desc)
    try:
        for clip in clips:
            opts = StreamingOptions.from_settings(settings.asr, settings.vad,
                                                  language=clip.language)
            result = await replay(clip.audio(), lambda o=opts: StreamingTranscriber(engine, o),
                                  realtime=True, tail_silence_s=3.0)
            out[clip.id] = snapshots_from_replay(result)
            if replays is not None:
                replays[clip.id] = result
            bar.update(1)
    finally:
        bar.close()
    return out


def replay_figures(clips: list[Clip], replays: dict[str, ReplayResult],
                   utterances: dict[str, list[tuple[float, float]]],
                   rows: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """Per-utterance latency, lost and repeated captions of greffier's replays (each clip's
    utterance latencies also go into its row of ``rows``)."""
    samples: list[tuple[float, float | None]] = []
    retracted = left = 0
    without_final: list[str] = []
    repeated: dict[str, list[str]] = {}
    for clip in clips:
        result = replays[clip.id]
        finals = [TimedFinal(e.event.start, e.event.end, e.time) for e in result.finals
                  if e.event.text]
        clip_samples = [(e - s, utterance_final_latency(finals, s, e))
                        for s, e in utterances[clip.id]]
        samples += clip_samples
        if rows is not None and clip.id in rows:
            rows[clip.id]["utterance_final_latencies_s"] = [_r(v) for _, v in clip_samples]
        r, lf = retracted_segments(
            CaptionEvent(str(e.event.segment_index),
                         e.event.type is TranscriptEventType.FINAL, e.event.text)
            for e in result.events
            if e.event.type in (TranscriptEventType.INTERIM, TranscriptEventType.FINAL))
        retracted += len(r)
        left += len(lf)
        if not finals:
            without_final.append(clip.id)
        phrases = repeated_phrases(clip.reference, result.final_text())
        if phrases:
            repeated[clip.id] = phrases
    lat = [v for _, v in samples if v is not None]
    return {
        "utterance_final_latency_p50_s": _r(percentile(lat, 50)),
        "utterance_final_latency_p95_s": _r(percentile(lat, 95)),
        "final_latency_by_utterance_length": latency_by_length(samples),
        "retracted_segments": retracted, "segments_left_interim": left,
        "clips_without_final": len(without_final), "clips_without_final_ids": without_final,
        "repeated_phrases": sum(len(v) for v in repeated.values()),
        "repeated_phrases_by_clip": repeated,
    }


def run_offline(clips: list[Clip], settings: Settings) -> dict[str, Any]:
    """Offline faster-whisper on each whole clip (beam 5, language given): the accuracy
    reference (``common.offline_transcripts``, cached per audio file and model)."""
    hyps = offline_transcripts(clips, settings)
    res: dict[str, Any] = {
        "wer": round(word_error_rate([c.reference for c in clips],
                                    [hyps[c.id] for c in clips]).wer, 4),
        "wer_by_language": {},
        "first_interim_latency_p50_s": None, "final_latency_p50_s": None,
        "final_latency_p95_s": None, "flicker": 0.0,
        "note": "whole-clip decoding: no live output, accuracy reference",
    }
    for lang in sorted({c.language for c in clips}):
        sel = [c for c in clips if c.language == lang]
        res["wer_by_language"][lang] = round(word_error_rate(
            [c.reference for c in sel], [hyps[c.id] for c in sel]).wer, 4)
    res["wer_normalised_by_language"] = {
        lang: normalised_wer([c.reference for c in clips if c.language == lang],
                             [hyps[c.id] for c in clips if c.language == lang], lang)
        for lang in sorted({c.language for c in clips})}
    res["wer_normalised"] = normalised_wer([c.reference for c in clips],
                                           [hyps[c.id] for c in clips],
                                           [c.language for c in clips])
    res["per_clip"] = [clip_row(c, hyps[c.id]) for c in clips]
    print(f"offline: WER {res['wer']:.3f}", flush=True)
    return res


def run_peer(system: str, clips: list[Clip], model_dir: str,
             bounds: dict[str, tuple[float, float]] | None = None) -> dict[str, Any]:
    python = PEER_VENVS / system / "venv" / "bin" / "python"
    if not python.is_file():
        return {"error": f"not installed: run benchmarks/peers/setup.sh ({python} missing)"}
    snaps: dict[str, list[Snapshot]] = {}
    meta: dict[str, Any] = {}
    for lang in sorted({c.language for c in clips}):
        sel = [c for c in clips if c.language == lang]
        with tempfile.NamedTemporaryFile(suffix=".jsonl", delete=False) as tmp:
            out_path = Path(tmp.name)
        cmd = [str(python), str(PEERS_DIR / "run_peer.py"), "--system", system,
               "--model-dir", model_dir, "--language", lang, "--out", str(out_path)]
        for c in sel:
            cmd += ["--audio", str(c.audio_path)]
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=3600)
        if proc.returncode != 0:
            return {"error": f"{system} failed: {proc.stderr.strip()[-800:]}"}
        for line in out_path.read_text().splitlines():
            row = json.loads(line)
            if "t" in row and "clip" in row and row.get("event") in (None, "end"):
                snaps.setdefault(row["clip"], []).append(
                    Snapshot(float(row["t"]), row.get("committed", ""), row.get("tentative", "")))
            elif row.get("event") == "rss_mb":
                meta["rss_mb"] = max(meta.get("rss_mb", 0), row.get("value", row.get("rss_mb", 0)))
            elif row.get("event") == "start" and row.get("load_s") is not None:
                meta.setdefault("load_s", row["load_s"])
            elif row.get("event") == "version":
                meta["version"] = row.get("version")
        out_path.unlink()
    by_id = {c.audio_path.stem: c.id for c in clips}
    snaps = {by_id.get(k, k): v for k, v in snaps.items()}
    bounds = bounds or {c.id: speech_bounds(c.audio()) for c in clips}
    res = summarize(system, clips, snaps, bounds)
    res.update(meta)
    return res


async def capacity(engine: InferenceEngine, clips: list[Clip], settings: Settings,
                   max_streams: int = 8, min_streams: int = 3, runs_per_count: int = 1,
                   ) -> dict[str, Any]:
    """Streams at once, in real time: p95 final latency and memory, N = 1, 2, ... until the
    p95 final passes the target, but at least up to ``min_streams`` (a curve to plot); the
    capacity is the largest N such that every count up to it met the target. With
    ``runs_per_count`` > 1 each N is run that many times and its figures are the medians
    (each run's figures are kept under ``each_run``)."""
    english = [c for c in clips if c.language == "en"][:8]
    gap = np.zeros(SAMPLE_RATE, np.float32)
    audios = [c.audio() for c in english]
    proc = psutil.Process()
    runs = []
    best = previous = 0
    baseline_rss = proc.memory_info().rss / 2**20
    counts = list(range(1, max_streams + 1))
    if max_streams > 8:  # a GPU: 1, 2, 4, 8, ... to stay within one short run
        counts = [2**k for k in range(0, max_streams.bit_length()) if 2**k <= max_streams]

    async def one_run(n: int) -> dict[str, Any]:
        tracks = []
        for i in range(n):  # each stream speaks the clips in another order, 45 s or so
            order = audios[i % len(audios):] + audios[: i % len(audios)]
            parts, total = [np.zeros(int(0.37 * i * SAMPLE_RATE), np.float32)], 0.0
            for a in order:
                parts += [a, gap]
                total += a.size / SAMPLE_RATE + 1
                if total > 45:
                    break
            tracks.append(np.concatenate(parts))
        peak = [proc.memory_info().rss / 2**20]
        stop = threading.Event()

        def sample(peak: list[float] = peak, stop: threading.Event = stop) -> None:
            while not stop.wait(0.5):
                peak.append(proc.memory_info().rss / 2**20)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        before = engine.stats()
        opts = StreamingOptions.from_settings(settings.asr, settings.vad, language="en")
        results = await asyncio.gather(*[
            replay(t, lambda o=opts: StreamingTranscriber(engine, o), realtime=True)
            for t in tracks
        ])
        stop.set()
        sampler.join()
        after = engine.stats()
        lat = [x for r in results for x in r.final_latencies()]
        return {
            "streams": n, "final_latency_p50_s": _r(percentile(lat, 50)),
            "final_latency_p95_s": _r(percentile(lat, 95)), "finals": len(lat),
            "interims_dropped": after.dropped_interims - before.dropped_interims,
            "interims_superseded": after.superseded_interims - before.superseded_interims,
            "interims_shown": sum(len(r.interims) for r in results),
            "peak_rss_mb": round(max(peak), 1),
        }

    for n in counts:
        each = [await one_run(n) for _ in range(max(1, runs_per_count))]
        row: dict[str, Any] = {"streams": n}
        for key in each[0]:
            if key == "streams":
                continue
            values = [r[key] for r in each if r[key] is not None]
            row[key] = _r(float(statistics.median(values))) if values else None
        if len(each) > 1:
            row["each_run"] = each
        runs.append(row)
        print(f"capacity: {row}", flush=True)
        p95 = row["final_latency_p95_s"]
        ok = p95 is not None and p95 <= CAPACITY_TARGET_S
        if ok and best == previous:  # every smaller count met the target too
            best = n
        if not ok and n >= min_streams:
            break
        previous = n
    per_stream = None
    if len(runs) >= 2:
        xs = np.array([r["streams"] for r in runs], float)
        ys = np.array([r["peak_rss_mb"] for r in runs], float)
        per_stream = round(float(np.polyfit(xs, ys, 1)[0]), 1)
    return {"max_realtime_streams": best, "rss_per_stream_mb": per_stream,
            "baseline_rss_mb": round(baseline_rss, 1), "runs": runs}


def table(res: dict[str, Any]) -> str:
    m = res["machine"]
    rows = []
    g = res["systems"].get("greffier", {})
    for name, s in res["systems"].items():
        if "error" in s:
            rows.append(f"| {name} | - | - | - | - | - | - | {s['error']} |")
            continue
        langs = ", ".join(f"{k} {100 * v:.1f}" for k, v in s.get("wer_by_language", {}).items())
        nlangs = ", ".join(f"{k} {100 * v:.1f}" for k, v in
                           (s.get("wer_normalised_by_language") or {}).items() if v is not None)
        normalised = ("-" if s.get("wer_normalised") is None
                      else f"{100 * s['wer_normalised']:.1f} % ({nlangs})")
        note = s.get("version", s.get("note", ""))
        if s.get("carried_over"):
            co = s["carried_over"]
            note = (f"{note}; measured {co['date']} on {co['clips']} clips, not re-run "
                    "(see below)").lstrip("; ")
        rows.append(
            f"| {name} | {100 * s['wer']:.1f} % ({langs}) | {normalised} "
            f"| {fmt(s['first_interim_latency_p50_s'], ' s')} "
            f"| {fmt(s['final_latency_p50_s'], ' s')} | {fmt(s['final_latency_p95_s'], ' s')} "
            f"| {fmt(s.get('flicker'), '', 3)} | {note} |")
    goals = []
    off = res["systems"].get("faster-whisper offline", {})
    if g and off and "wer" in off:
        ratio = g["wer"] / off["wer"] if off["wer"] else None
        goals.append(f"| WER of streamed finals / offline | {fmt(ratio, 'x')} | <= 1.05x |")
    for peer in PEER_SYSTEMS:
        p = res["systems"].get(peer, {})
        if g and p and "error" not in p and not p.get("carried_over"):
            for key, label in (("first_interim_latency_p50_s", "first interim p50"),
                               ("final_latency_p50_s", "final p50")):
                if p.get(key) and g.get(key) is not None:
                    goals.append(f"| greffier / {peer} {label} | {g[key] / p[key]:.2f}x "
                                 f"| <= 0.5x at equal or better WER ({100 * g['wer']:.1f} % vs {100 * p['wer']:.1f} %) |")
    cap = res.get("capacity", {})
    if cap:
        goals.append(f"| real-time streams with p95 final <= 2 s | {cap.get('max_realtime_streams')} | >= 4 |")
        goals.append(f"| memory per added stream | {fmt(cap.get('rss_per_stream_mb'), ' MB', 1)} | <= 20 MB |")
    notes = []
    acc = res["systems"].get("greffier, accuracy profile", {})
    if g and off and off.get("wer") and g["wer"] / off["wer"] > 1.05:
        line = (f"- WER goal missed by the default (latency) settings: "
                f"{g['wer'] / off['wer']:.2f}x for 1.05x: finals of cut sentences come from their "
                "confirmed words and every final is decoded with beam 1, to keep the final p50 "
                "under 1 s on 2 cores.")
        if acc and "wer" in acc:
            line += (f" The accuracy profile ({ACCURACY_NOTE}) scores "
                     f"{acc['wer'] / off['wer']:.2f}x offline, with finals "
                     f"{fmt(acc['final_latency_p50_s'], ' s')} / "
                     f"{fmt(acc['final_latency_p95_s'], ' s')} (p50 / p95).")
        notes.append(line)
    if cap.get("max_realtime_streams") is not None and cap["max_realtime_streams"] < 4:
        notes.append(f"- Capacity goal missed: {cap['max_realtime_streams']} streams; the next "
                     "count's p95 final passed 2 s (table below).")
    carried = [n for n, sy in res["systems"].items() if sy.get("carried_over")]
    if carried:
        notes.append(f"- Not re-run in this run (`--skip-peers`): {', '.join(carried)}; their "
                     "rows are carried over from the previous result file, measured on the "
                     "date and clips given, with the scoring of that time: not comparable "
                     "with this run's rows when the clips differ (no goal ratio is computed "
                     "against them). Re-run them with "
                     "`benchmarks/peers/setup.sh` then this command without `--skip-peers` "
                     "(each peer needs about the clips' duration plus its end-of-stream "
                     "timeouts: 15-25 minutes on 2 cores).")
    gpu = Path(__file__).resolve().parent / "results" / "streaming_gpu.json"
    notes.append("- GPU: `benchmarks/gpu.sh` (one prepared run, under 10 minutes) writes "
                 "`results/streaming_gpu.{json,md}`; " + (
                     "see there." if gpu.is_file() else
                     "not run yet: the task that built this was lent no GPU machine."))
    notes.append("- Flicker: displayed words later rewritten, per final word. WhisperLive's "
                 "finals are late because it commits a segment only once its buffer has moved "
                 "on (the clip's last segment at its end-of-stream timeout).")
    held = []
    for name, sy in res["systems"].items():
        if "retracted_segments" not in sy:
            continue
        b = sy["final_latency_by_utterance_length"]
        held.append(
            f"| {name} | {fmt(sy['utterance_final_latency_p50_s'], ' s')} / "
            f"{fmt(sy['utterance_final_latency_p95_s'], ' s')} | "
            + " | ".join(f"{fmt(b[k]['p50_s'], ' s')} / {fmt(b[k]['p95_s'], ' s')} "
                         f"({b[k]['utterances']})" for k in ("<3s", "3-8s", ">8s"))
            + f" | {sy['retracted_segments']} | {sy['clips_without_final']} "
            f"| {sy['repeated_phrases']} |")
    pngs = "\n".join(f"![{alt}]({png})" for alt, png in res.get("plots", {}).items())
    cap_part = f"\n{capacity_section(cap)}" if cap.get("runs") else ""
    return f"""# Streaming engine: greffier against offline Whisper and open peers

Model `{res['model']}` ({res['device']}) for every system, the same {res['clips']} clips
({', '.join(f'{k}: {v}' for k, v in res['clips_by_language'].items())}) fed in real time;
{m['cores']} cores ({m['cpu']}), {m['date']}. Conditions: **{res.get('conditions') or 'not recorded'}**.
Produced by (manifest `{res.get('manifest', 'manifest.tsv')}`):

    {res.get('command') or 'python -m benchmarks.streaming --set ' + res.get('set', 'shared')}

Scoring in `benchmarks/snapshots.py` (latencies from the clip's first/last speech by Silero
VAD). WER: the project's normaliser (case and punctuation), then "normalised": Whisper's English
normaliser and the documented French one (`greffier.evaluation.normalize`), through jiwer.

| system | WER | WER normalised | first interim p50 | final p50 | final p95 | flicker | version / note |
|---|---|---|---|---|---|---|---|
{chr(10).join(rows)}

Captions held (greffier; `benchmarks/metrics.py`): final after the end of each utterance,
p50 / p95 (utterances), by utterance length; segments retracted (interims shown, final empty),
clips without a final, repeated phrases.

| system | final per utterance | < 3 s | 3-8 s | > 8 s | retracted | without final | repeated |
|---|---|---|---|---|---|---|---|
{chr(10).join(held)}

| goal | measured | target |
|---|---|---|
{chr(10).join(goals)}

{chr(10).join(notes)}

{pngs}
{cap_part}"""


def capacity_section(cap: dict[str, Any]) -> str:
    """The capacity table (N streams at once on one engine)."""
    rows = "\n".join(
        f"| {r['streams']} | {fmt(r['final_latency_p50_s'], ' s')} | {fmt(r['final_latency_p95_s'], ' s')} "
        f"| {r['interims_shown']} | {r['interims_dropped']} + {r['interims_superseded']} | {r['peak_rss_mb']} MB |"
        for r in cap.get("runs", []))
    return f"""Capacity (greffier, N speakers at once on one engine, real time, ~45 s each; interims thin out
above 2 speakers, see `InferenceEngine.interim_spacing`): {cap.get('max_realtime_streams')} real-time
streams with the p95 final <= {CAPACITY_TARGET_S:g} s; {fmt(cap.get('rss_per_stream_mb'), ' MB', 1)} per added stream.

| streams | final p50 | final p95 | interims shown | interims dropped + superseded | peak RSS |
|---|---|---|---|---|---|
{rows}
"""


def capacity_table(res: dict[str, Any]) -> str:
    """Markdown of a capacity-only run (``greffier bench capacity``)."""
    m = res["machine"]
    pngs = "\n".join(f"![{alt}]({png})" for alt, png in res.get("plots", {}).items())
    return f"""# Capacity: real-time streams on one engine

Model `{res['model']}` ({res['device']}), English clips of the {res.get('set', 'shared')} set
chained into ~45 s per stream, each stream starting 0.37 s after the previous one; N = 1, 2, ...
until the p95 final passes {CAPACITY_TARGET_S:g} s. {m['cores']} cores ({m['cpu']}), {m['date']}.
Conditions: **{res.get('conditions') or 'not recorded'}**. Produced by:

    {res.get('command', '')}

{capacity_section(res['capacity'])}
{pngs}
"""


SWEEP: tuple[tuple[str, dict[str, Any], dict[str, Any]], ...] = (
    ("default", {}, {}),
    ("accuracy profile", ACCURACY_PROFILE, {}),
    ("final beam 5", {"final_beam_size": 5}, {}),
    ("endpoint 300 ms", {}, {"min_silence_ms": 300}),
    ("endpoint 700 ms", {}, {"min_silence_ms": 700}),
)
"""The latency/WER trade-off: (label, AsrSettings changes, VadSettings changes)."""


def sweep_clips(clips: list[Clip], count: int, durations: dict[str, float]) -> list[Clip]:
    """``count`` clips of 3-12 s, taken in turn from each language, in manifest order (a few
    minutes per setting in real time)."""
    by_lang: dict[str, list[Clip]] = {}
    for c in clips:
        if 3.0 <= durations[c.id] <= 12.0:
            by_lang.setdefault(c.language, []).append(c)
    chosen: list[Clip] = []
    while len(chosen) < count and any(by_lang.values()):
        for lang in sorted(by_lang):
            if by_lang[lang] and len(chosen) < count:
                chosen.append(by_lang[lang].pop(0))
    return chosen


def run_sweep(engine: InferenceEngine, clips: list[Clip], settings: Settings,
              bounds: dict[str, tuple[float, float]]) -> list[dict[str, Any]]:
    """Each setting of :data:`SWEEP` replayed over ``clips``: one point of the trade-off."""
    points = []
    for label, asr_update, vad_update in SWEEP:
        tuned = settings.model_copy(update={
            "asr": settings.asr.model_copy(update=asr_update),
            "vad": settings.vad.model_copy(update=vad_update)})
        snaps = asyncio.run(run_greffier(engine, clips, tuned, desc=f"sweep: {label}"))
        summary = summarize(label, clips, snaps, bounds)
        points.append({"label": label, "asr": asr_update, "vad": vad_update, **summary})
    return points


def sweep_table(res: dict[str, Any]) -> str:
    m = res["machine"]
    rows = "\n".join(
        f"| {p['label']} | {', '.join(f'{k}={v}' for k, v in {**p['asr'], **p['vad']}.items()) or '-'} "
        f"| {fmt(None if p['wer_normalised'] is None else 100 * p['wer_normalised'], ' %', 1)} "
        f"| {100 * p['wer']:.1f} % | {fmt(p['first_interim_latency_p50_s'], ' s')} "
        f"| {fmt(p['final_latency_p50_s'], ' s')} | {fmt(p['final_latency_p95_s'], ' s')} "
        f"| {fmt(p['flicker'], '', 3)} |"
        for p in res["points"])
    pngs = "\n".join(f"![{alt}]({png})" for alt, png in res.get("plots", {}).items())
    return f"""# Streaming settings: the latency / WER trade-off

greffier's streaming replay (real time) with each setting below, on the same {res['clips']} clips
of the {res.get('set', 'shared')} set ({', '.join(res['clip_ids'])}); model `{res['model']}`
({res['device']}). {m['cores']} cores ({m['cpu']}), {m['date']}.
Conditions: **{res.get('conditions') or 'not recorded'}**. Produced by:

    {res.get('command', '')}

Few clips: a point is one short run, so differences under ~0.2 s or ~2 WER points are noise.

| setting | changes | WER normalised | WER | first interim p50 | final p50 | final p95 | flicker |
|---|---|---|---|---|---|---|---|
{rows}

{pngs}
"""


def carry_over_peers(previous: Path, systems: dict[str, Any]) -> None:
    """Copy the peers' rows of a previous result file into ``systems``, marked with their
    date and clip count (used with ``--skip-peers``: peers take long to run)."""
    try:
        old = json.loads(previous.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return
    for peer in PEER_SYSTEMS:
        row = old.get("systems", {}).get(peer)
        if not row or "error" in row:
            continue
        co = row.get("carried_over") or {"date": old.get("machine", {}).get("date"),
                                         "clips": old.get("clips")}
        systems[peer] = {**row, "carried_over": co}


def streaming_plots(res: dict[str, Any], folder: Path, name: str) -> dict[str, str]:
    """Latency CDFs per system and WER per clip; returns alt text -> file name."""
    from benchmarks import plots

    series: dict[str, dict[str, list[float]]] = {}
    wers: dict[str, dict[str, float | None]] = {}
    for system, sy in res["systems"].items():
        rows = sy.get("per_clip") or []
        if not rows:
            continue
        wers[system] = {r["id"]: r["wer"] for r in rows}
        lat = {"first interim": [r["first_interim_latency_s"] for r in rows
                                 if r.get("first_interim_latency_s") is not None],
               "final (clip)": [r["final_latency_s"] for r in rows
                                if r.get("final_latency_s") is not None],
               "final (utterance)": [v for r in rows
                                     for v in r.get("utterance_final_latencies_s") or []
                                     if v is not None]}
        if any(lat.values()):
            series[system] = lat
    out = {}
    title = f"{res['set']} set, model {res['model']}, {res['clips']} clips"
    if plots.latency_cdfs(series, folder / f"{name}_latency.png", f"Latency CDFs: {title}"):
        out["latency CDFs per system"] = f"{name}_latency.png"
    if plots.wer_per_clip(wers, folder / f"{name}_wer.png", f"WER per clip: {title}"):
        out["WER per clip"] = f"{name}_wer.png"
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", default="shared",
                        help="shared, hard, or the path of a manifest TSV")
    parser.add_argument("--only", help="regular expression on clip ids (smoke runs)")
    parser.add_argument("--languages", default="en,fr")
    parser.add_argument("--skip-peers", action="store_true",
                        help="do not run the peers (their rows of the previous result file "
                             "are kept, marked with their date)")
    parser.add_argument("--skip-capacity", action="store_true")
    parser.add_argument("--skip-accuracy-profile", action="store_true")
    parser.add_argument("--limit", type=int, default=0)
    parser.add_argument("--capacity-only", action="store_true",
                        help="only the capacity run (greffier bench capacity; a GPU machine)")
    parser.add_argument("--max-streams", type=int, default=8)
    parser.add_argument("--runs", type=int, default=1,
                        help="capacity: runs per stream count, figures are their medians")
    parser.add_argument("--min-streams", type=int, default=3,
                        help="capacity: measure at least up to this many streams (the curve), "
                             "even past the latency target")
    parser.add_argument("--sweep", action="store_true",
                        help="only the settings sweep (latency/WER trade-off) on a few clips")
    parser.add_argument("--sweep-clips", type=int, default=6,
                        help="clips of 3-12 s in the sweep (default 6, about a minute each "
                             "setting)")
    parser.add_argument("--conditions", default="quiet machine",
                        help="how the machine was during the run (written into the results)")
    parser.add_argument("--output",
                        help="results/<name>.json and .md (default streaming, streaming_hard "
                             "for the hard set; streaming_gpu on a GPU machine; "
                             "<name>_sweep with --sweep)")
    parser.add_argument("--results-dir", type=Path, default=None)
    args = parser.parse_args(argv)
    settings = Settings()
    languages = tuple(args.languages.split(","))
    label = set_label(args.set, settings)
    clips, manifest = load_set(label, settings, languages)
    if args.only:
        clips = [c for c in clips if re.search(args.only, c.id)]
    if args.limit:
        clips = clips[: args.limit]
    output = args.output or {"shared": "streaming", "hard": "streaming_hard"}.get(
        label, f"streaming_{Path(label).stem}")
    folder = args.results_dir or RESULTS
    folder.mkdir(parents=True, exist_ok=True)
    decoder = WhisperDecoder.load(settings.asr, settings.cache_dir)
    engine = engine_for(decoder, settings.asr.max_batch_size)
    batch = engine.max_batch_size
    meta = run_metadata(settings, decoder, conditions=args.conditions,
                        command=command_line("streaming", argv),
                        configuration={"set": label, "languages": list(languages),
                                       "only": args.only, "limit": args.limit or None})
    base = {
        "set": label,
        "manifest": manifest.name if label in ("shared", "hard") else str(manifest),
        "model": settings.asr.model,
        "device": f"{decoder.device.device}/{decoder.device.compute_type}, batch {batch}",
        **meta,
    }
    if args.capacity_only:
        capacity_clips = clips if label == "shared" else load_set("shared", settings)[0]
        cap = asyncio.run(capacity(engine, capacity_clips, settings, max_streams=args.max_streams,
                                   min_streams=args.min_streams, runs_per_count=args.runs))
        engine.close()
        from benchmarks import plots

        res = {**base, "benchmark": "capacity", "capacity": cap,
               "max_realtime_streams": cap.get("max_realtime_streams"),
               "rss_per_stream_mb": cap.get("rss_per_stream_mb"), "plots": {}}
        if plots.capacity(cap["runs"], folder / f"{output}.png",
                          f"Streams against final latency, model {res['model']}, "
                          f"{decoder.device.device}", CAPACITY_TARGET_S):
            res["plots"]["streams against final latency"] = f"{output}.png"
        js, md = write_results(output, res, capacity_table(res), folder)
        print(capacity_table(res))
        print(f"written: {js} {md}")
        return 0
    if args.sweep:
        durations = {c.id: c.audio().size / SAMPLE_RATE for c in clips}
        chosen = sweep_clips(clips, args.sweep_clips, durations)
        bounds = {c.id: speech_bounds(c.audio()) for c in chosen}
        points = run_sweep(engine, chosen, settings, bounds)
        engine.close()
        from benchmarks import plots

        name = args.output or f"{output}_sweep"
        res = {**base, "benchmark": "streaming sweep", "clips": len(chosen),
               "clip_ids": [c.id for c in chosen], "points": points, "plots": {}}
        if plots.tradeoff(points, folder / f"{name}.png",
                          f"Latency / WER trade-off, model {res['model']}, {len(chosen)} clips"):
            res["plots"]["latency / WER trade-off"] = f"{name}.png"
        js, md = write_results(name, res, sweep_table(res), folder)
        print(sweep_table(res))
        print(f"written: {js} {md}")
        return 0
    capacity_clips = clips if label == "shared" else load_set("shared", settings)[0]
    utterances = {c.id: c.utterances() for c in clips}
    bounds = {c.id: (min(s for s, _ in utterances[c.id]), max(e for _, e in utterances[c.id]))
              for c in clips}
    systems: dict[str, Any] = {}
    replays: dict[str, ReplayResult] = {}
    snaps = asyncio.run(run_greffier(engine, clips, settings, replays))
    systems["greffier"] = summarize("greffier", clips, snaps, bounds)
    rows = {r["id"]: r for r in systems["greffier"]["per_clip"]}
    systems["greffier"].update(replay_figures(clips, replays, utterances, rows))
    if not args.skip_accuracy_profile:
        accurate = settings.model_copy(update={"asr": settings.asr.model_copy(
            update=ACCURACY_PROFILE)})
        replays = {}
        snaps = asyncio.run(run_greffier(engine, clips, accurate, replays,
                                         desc="greffier, accuracy profile"))
        acc = summarize("greffier, accuracy profile", clips, snaps, bounds)
        rows = {r["id"]: r for r in acc["per_clip"]}
        acc.update(replay_figures(clips, replays, utterances, rows))
        acc["note"] = ACCURACY_NOTE
        systems["greffier, accuracy profile"] = acc
    systems["faster-whisper offline"] = run_offline(clips, settings)
    if not args.skip_peers:
        for peer in PEER_SYSTEMS:
            systems[peer] = run_peer(peer, clips, decoder.resolved.location, bounds)
    else:
        carry_over_peers(folder / f"{output}.json", systems)
    cap = {} if args.skip_capacity else asyncio.run(
        capacity(engine, capacity_clips, settings, max_streams=args.max_streams,
                 min_streams=args.min_streams))
    engine.close()
    offline = systems.get("faster-whisper offline", {})
    res = {
        **base,
        "benchmark": "streaming",
        "clips": len(clips),
        "clips_by_language": {lang: sum(c.language == lang for c in clips)
                              for lang in sorted({c.language for c in clips})},
        "systems": systems,
        "offline_wer_by_language": offline.get("wer_by_language"),
        "max_realtime_streams": cap.get("max_realtime_streams"),
        "rss_per_stream_mb": cap.get("rss_per_stream_mb"),
        "capacity": cap,
    }
    res["plots"] = streaming_plots(res, folder, output)
    if cap.get("runs"):
        from benchmarks import plots

        if plots.capacity(cap["runs"], folder / f"{output}_capacity.png",
                          f"Streams against final latency, model {res['model']}",
                          CAPACITY_TARGET_S):
            res["plots"]["streams against final latency"] = f"{output}_capacity.png"
    js, md = write_results(output, res, table(res), folder)
    print(table(res))
    print(f"written: {js} {md}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
