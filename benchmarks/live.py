"""Live captions through the real LiveKit server: latency, WER, lost and repeated captions.

Bots publish a set's clips at real-time pace; a greffier worker (default settings) captions
them; a listener receives the captions. The clips of one variant and language go out through
one participant, 2 s of silence between clips, one participant after the other; clips of one
``group`` (two overlapping voices) go out at once, each through its own participant.

Per utterance (a clip, or each utterance of a chained monologue or long recording; see
:mod:`benchmarks.hardset`):

* final latency: arrival at the listener of the first final covering the utterance's end,
  minus the wall time at which that end (Silero VAD on the source clip) left the publisher
  (:func:`benchmarks.metrics.utterance_final_latency`), reported by utterance length;

per clip:

* first interim latency: arrival of the clip's first caption minus the wall time of its first
  speech;
* WER of the finals (the project's normaliser, and Whisper's / the French standard one when
  ``greffier.evaluation`` is there), against offline faster-whisper on the same clips, same
  model, language given;
* clips without a final, retracted segments (interims shown, final empty), repeated phrases
  (:func:`benchmarks.metrics.repeated_phrases`);
* per caption: each final's arrival minus the end of its last word on the worker's clock.

Each clip's finals keep their timing in the JSON (``final_times_s``: start and end of their
words, and arrival, in seconds from the clip's first sample).

Run: ``.venv/bin/python -m benchmarks.live --set shared|hard|<manifest.tsv> [--runs 3]``
(the figures are the median of the runs; each run's are kept). Writes
``benchmarks/results/live.json`` (shared) or ``live_hard.json`` (hard), a Markdown table and
a PNG of the latency distributions beside it.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shlex
import sys
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import psutil

from benchmarks.common import (
    RESULTS,
    Clip,
    fmt,
    load_set,
    normalised_wer,
    offline_transcripts,
    percentile,
    progress,
    run_metadata,
    set_label,
    wer,
    write_results,
)
from benchmarks.metrics import (
    LENGTH_BUCKETS,
    CaptionEvent,
    TimedFinal,
    latency_by_length,
    median_of_runs,
    repeated_phrases,
    retracted_segments,
    utterance_final_latency,
)
from greffier.core.audio import SAMPLE_RATE
from greffier.core.config import Settings
from greffier.core.text import normalize_text
from greffier.livekit import server as lk_server
from greffier.livekit.worker_process import WorkerProcess

GAP_S = 2.0
TAIL_S = 4.0
FRAME_S = 0.02
OFF_TIMELINE_S = 1.0
ATTRIBUTION_WINDOW_S = 3.0
"""A segment is attributed to a clip of its speaker whose speech lies within this many
seconds of it (meeting time); of several, the one whose reference shares most of its words."""
SUMMARY_KEYS = (
    "final_latency_p50_s", "final_latency_p95_s", "first_interim_latency_p50_s",
    "first_interim_latency_p95_s", "clip_final_latency_p50_s", "clip_final_latency_p95_s",
    "per_caption_final_latency_p50_s", "per_caption_final_latency_p95_s",
    "final_latency_by_utterance_length", "wer_finals", "wer_finals_by_language",
    "wer_finals_normalised", "wer_finals_normalised_by_language", "retracted_segments",
    "segments_left_interim", "clips_without_final", "utterances_without_final",
    "repeated_phrases", "finals", "interims", "captions_off_the_timeline",
    "worker_cpu_percent", "worker_rss_mb", "by_variant", "wall_s", "publisher_lag_max_s",
    "captions_unattributed",
)


@dataclass
class Row:
    """One clip in one run: where it sits in its participant's track, what came back."""

    clip: Clip
    identity: str
    utterances: list[tuple[float, float]]
    offset: float
    """Seconds into the participant's track at which the clip begins."""
    duration: float = 0.0
    """Seconds of audio in the clip."""
    started_at: float = 0.0
    """Wall time of the track's first sample (used when ``frame_times`` is not known)."""
    frame_times: np.ndarray | None = None
    """Wall time at which each 20 ms frame of the track was handed to LiveKit."""
    captions: list[Any] = field(default_factory=list)

    def wall(self, t: float) -> float:
        """Wall time at which clip time ``t`` left the publisher."""
        x = self.offset + t
        if self.frame_times is None or not self.frame_times.size:
            return self.started_at + x
        k = min(max(int(x / FRAME_S), 0), self.frame_times.size - 1)
        return float(self.frame_times[k]) + (x - k * FRAME_S)

    @property
    def speech_start(self) -> float:
        return self.wall(min(s for s, _ in self.utterances))

    @property
    def speech_end(self) -> float:
        return self.wall(max(e for _, e in self.utterances))


@dataclass
class Block:
    """What one participant publishes."""

    identity: str
    audio: np.ndarray
    rows: list[Row]


def plan(clips: list[Clip], utterances: dict[str, list[tuple[float, float]]]) -> (
    list[list[Block]]
):
    """Stages of blocks: the blocks of a stage publish at once, stages one after the other.
    English first, then French; within a language, in manifest order."""
    keys: list[tuple[str, str, str]] = []
    for c in clips:
        k = (c.language, c.variant, c.group)
        if k not in keys:
            keys.append(k)
    keys.sort(key=lambda k: k[0] != "en")
    gap = np.zeros(int(GAP_S * SAMPLE_RATE), np.float32)
    stages = []
    for lang, variant, group in keys:
        sel = [c for c in clips if (c.language, c.variant, c.group) == (lang, variant, group)]
        name = re.sub(r"[^a-z0-9]+", "-", f"{variant or 'shared'}-{group or lang}".lower())
        if group:
            batches = [[c] for c in sel]
        else:
            batches = [sel]
        stage = []
        for i, batch in enumerate(batches):
            identity = f"bench-{name}" + (f"-{i}" if group else "")
            parts, rows, offset = [gap], [], GAP_S
            for c in batch:
                audio = c.audio()
                rows.append(Row(c, identity, utterances[c.id], offset,
                                duration=audio.size / SAMPLE_RATE))
                parts += [audio, gap]
                offset += audio.size / SAMPLE_RATE + GAP_S
            stage.append(Block(identity, np.concatenate(parts), rows))
        stages.append(stage)
    return stages


async def publish_tracked(room: Any, samples: np.ndarray) -> np.ndarray:
    """Publish a recording at real-time pace, as ``greffier.livekit.client.publish_audio`` does,
    and return the wall time at which each 20 ms frame was handed to the track: on a busy
    machine the publisher falls behind its schedule, and latencies count from these times."""
    from livekit import rtc

    from greffier.core.audio import float32_to_pcm16

    source = rtc.AudioSource(SAMPLE_RATE, 1, queue_size_ms=100)
    track = rtc.LocalAudioTrack.create_audio_track("microphone", source)
    options = rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE)
    await room.local_participant.publish_track(track, options)
    per = int(SAMPLE_RATE * FRAME_S)
    pcm = float32_to_pcm16(np.asarray(samples, dtype=np.float32))
    n = -(-pcm.size // per)
    pcm = np.concatenate([pcm, np.zeros(n * per - pcm.size, np.int16)])
    times = np.zeros(n)
    await asyncio.sleep(0.3)  # let the subscription settle before the first word
    start = time.time()
    for k in range(n):
        delay = start + k * FRAME_S - time.time()
        if delay > 0:
            await asyncio.sleep(delay)
        await source.capture_frame(rtc.AudioFrame(pcm[k * per : (k + 1) * per].tobytes(),
                                                  SAMPLE_RATE, 1, per))
        times[k] = time.time()
    await source.wait_for_playout()
    await source.aclose()
    return times


async def run(settings: Settings, stages: list[list[Block]]) -> tuple[list[Row], list[Any],
                                                                      dict[str, Any]]:
    """One live run: the worker, the listener, every stage published; what was received."""
    from greffier.livekit.client import (
        CaptionCollector,
        connect,
        dispatch_agent,
        list_participants,
    )

    lk = settings.livekit
    agent_name = f"greffier-bench-{uuid.uuid4().hex[:6]}"
    room = f"bench-{uuid.uuid4().hex[:6]}"
    worker = WorkerProcess({"GREFFIER_AGENT__NAME": agent_name,
                            "GREFFIER_ASR__MODEL": settings.asr.model,
                            "GREFFIER_ASR__LANGUAGE": settings.asr.language})
    worker.start()
    proc = psutil.Process(worker.pid)
    rows: list[Row] = []
    lags: list[float] = []
    try:
        listener = await connect(lk, identity="bench-listener", room=room)
        collector = CaptionCollector(listener)
        await dispatch_agent(lk, room, agent_name)
        for _ in range(100):
            if any(p.attributes.get("greffier.role") == "captioner"
                   for p in await list_participants(lk, room)):
                break
            await asyncio.sleep(0.2)
        audio_s = 0.0
        cpu0 = proc.cpu_times()
        t0 = time.monotonic()
        bar = progress(round(sum(max(b.audio.size for b in st) / SAMPLE_RATE + TAIL_S
                                 for st in stages)), "live", unit="s")
        for stage in stages:
            bots = [await connect(lk, identity=b.identity, room=room, name=b.identity,
                                  auto_subscribe=False) for b in stage]
            published = await asyncio.gather(*[
                publish_tracked(bot, b.audio) for bot, b in zip(bots, stage, strict=True)])
            await asyncio.sleep(TAIL_S)
            for bot in bots:
                await bot.disconnect()
            audio_s += max(b.audio.size for b in stage) / SAMPLE_RATE
            bar.update(round(max(b.audio.size for b in stage) / SAMPLE_RATE + TAIL_S))
            for b, times in zip(stage, published, strict=True):
                lags.append(float(np.max(times - times[0] - FRAME_S * np.arange(times.size))))
                for r in b.rows:
                    r.started_at = float(times[0])
                    r.frame_times = times
                rows += b.rows
        bar.close()
        wall = time.monotonic() - t0
        cpu1 = proc.cpu_times()
        rss_mb = proc.memory_info().rss / 2**20
        await listener.disconnect()
    finally:
        worker.stop()
    cpu_s = (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system)
    stats = {"audio_s": round(audio_s, 1), "wall_s": round(wall, 1),
             "publisher_lag_max_s": round(max(lags, default=0.0), 3),
             "worker_cpu_percent": round(100 * cpu_s / wall, 1),
             "worker_rss_mb": round(rss_mb, 1)}
    return rows, collector.captions, stats


def analyse(rows: list[Row], captions: list[Any], stats: dict[str, Any]) -> dict[str, Any]:
    """One run's figures from what the listener received (data channel)."""
    data = [c for c in captions if c.via == "data" and c.message is not None]
    by_identity: dict[str, list[Row]] = {}
    for r in rows:
        by_identity.setdefault(r.identity, []).append(r)
    segments: dict[str, list[Any]] = {}
    for c in data:
        segments.setdefault(f"{c.speaker_identity}/{c.segment_id}", []).append(c)
    unassigned = off_timeline = 0
    owner_of_segment: dict[str, Row] = {}
    strays: list[dict[str, Any]] = []
    for key, caps in segments.items():
        owner, distance = attribute(caps, by_identity.get(caps[0].speaker_identity, []))
        if owner is None:
            unassigned += len(caps)
            strays.append(_stray(key, caps, by_identity.get(caps[0].speaker_identity, [])))
            continue
        off_timeline += len(caps) if distance > OFF_TIMELINE_S else 0
        owner.captions.extend(caps)
        owner_of_segment[key] = owner
    for r in rows:
        r.captions.sort(key=lambda c: c.received_at)
    per_caption = [c.received_at - (c.message.meeting_started_at + c.message.end)
                   for r in rows for c in r.captions if c.final and c.text]
    retracted, left = retracted_segments(
        CaptionEvent(f"{c.speaker_identity}/{c.segment_id}", c.final, c.text) for c in data)

    per_clip = []
    for r in rows:
        finals = [c for c in r.captions if c.final and c.text]
        timed = [TimedFinal(c.message.meeting_started_at + c.message.start,
                            c.message.meeting_started_at + c.message.end, c.received_at)
                 for c in finals]
        utts = [{"duration_s": round(e - s, 3),
                 "final_latency_s": _r(utterance_final_latency(timed, r.wall(s), r.wall(e)))}
                for s, e in r.utterances]
        first = min((c.received_at for c in r.captions if c.text), default=None)
        hyp = " ".join(c.text for c in finals)
        per_clip.append({
            "id": r.clip.id, "language": r.clip.language, "variant": r.clip.variant or "shared",
            "participant": r.identity,
            "clip_final_latency_s": _r(max(c.received_at for c in finals) - r.speech_end)
            if finals else None,
            "first_interim_latency_s": _r(first - r.speech_start) if first else None,
            "wer": wer([r.clip.reference], [hyp]),
            "retracted_segments": sum(owner_of_segment.get(s) is r for s in retracted),
            "segments_left_interim": sum(owner_of_segment.get(s) is r for s in left),
            "repeated_phrases": repeated_phrases(r.clip.reference, hyp),
            "utterances": utts,
            "finals": [c.text for c in finals],
            "final_times_s": [[round(f.start - r.wall(0), 2), round(f.end - r.wall(0), 2),
                               round(f.arrived - r.wall(0), 2)] for f in timed],
        })
    out = summarize(rows, per_clip)
    out.update(stats)
    out.update({
        "retracted_segments": len(retracted),
        "segments_left_interim": len(left),
        "per_caption_final_latency_p50_s": _r(percentile(per_caption, 50)),
        "per_caption_final_latency_p95_s": _r(percentile(per_caption, 95)),
        "finals": sum(1 for c in data if c.final and c.text),
        "interims": sum(1 for c in data if not c.final),
        "captions_off_the_timeline": off_timeline + unassigned,
        "captions_unattributed": unassigned,
        "unattributed_segments": strays,
        "per_clip": per_clip,
    })
    out["by_variant"] = {
        v: summarize([r for r, p in zip(rows, per_clip, strict=True) if p["variant"] == v],
                      [p for p in per_clip if p["variant"] == v], brief=True)
        for v in dict.fromkeys(p["variant"] for p in per_clip)
    }
    return out


def attribute(caps: list[Any], rows: list[Row]) -> tuple[Row | None, float]:
    """The clip a segment's captions belong to, and how far (meeting time) its words lie from
    that clip's speech: the clips of its speaker whose audio lies within
    :data:`ATTRIBUTION_WINDOW_S` (speech the VAD missed still belongs to its clip); of several,
    the one whose reference shares most of the segment's words (a caption placed a little late
    on a busy machine still goes to the clip it transcribes), then the nearest."""
    shown = [c for c in caps if c.text]
    decisive = next((c for c in reversed(shown) if c.final), shown[-1] if shown else caps[-1])
    m = decisive.message
    mid = m.meeting_started_at + (m.start + m.end) / 2

    def distance(r: Row) -> float:
        return max(r.speech_start - mid, mid - r.speech_end, 0.0)

    def outside(r: Row) -> float:
        return max(r.wall(0.0) - mid, mid - r.wall(max(r.duration, 0.0)), 0.0)

    near = [r for r in rows if min(outside(r), distance(r)) <= ATTRIBUTION_WINDOW_S]
    if not near:
        return None, float("inf")
    words = Counter(normalize_text(decisive.text).split())

    def shared(r: Row) -> float:
        if not words:
            return 0.0
        ref = Counter(normalize_text(r.clip.reference).split())
        return sum((words & ref).values()) / sum(words.values())

    owner = max(near, key=lambda r: (round(shared(r), 2), -outside(r), -distance(r)))
    return owner, distance(owner)


def _stray(key: str, caps: list[Any], rows: list[Row]) -> dict[str, Any]:
    """What a segment no clip could claim looked like (for the JSON: find the timeline error)."""
    last = caps[-1]
    m = last.message
    start, end = m.meeting_started_at + m.start, m.meeting_started_at + m.end
    nearest = min(rows, key=lambda r: min(abs(r.speech_start - start), abs(r.speech_end - end)),
                  default=None)
    return {
        "segment": key, "captions": len(caps), "final": last.final, "text": last.text,
        "nearest_clip": nearest.clip.id if nearest else None,
        "start_s": round(start - nearest.wall(0), 2) if nearest else None,
        "end_s": round(end - nearest.wall(0), 2) if nearest else None,
        "arrived_s": round(last.received_at - nearest.wall(0), 2) if nearest else None,
    }


def summarize(rows: list[Row], per_clip: list[dict[str, Any]], brief: bool = False) -> (
    dict[str, Any]
):
    """Figures over some clips of one run."""
    utts = [u for p in per_clip for u in p["utterances"]]
    lat = [u["final_latency_s"] for u in utts if u["final_latency_s"] is not None]
    first = [p["first_interim_latency_s"] for p in per_clip
             if p["first_interim_latency_s"] is not None]
    refs = [r.clip.reference for r in rows]
    hyps = [" ".join(p["finals"]) for p in per_clip]
    langs = [r.clip.language for r in rows]
    out: dict[str, Any] = {
        "clips": len(rows), "utterances": len(utts),
        "final_latency_p50_s": _r(percentile(lat, 50)),
        "final_latency_p95_s": _r(percentile(lat, 95)),
        "first_interim_latency_p50_s": _r(percentile(first, 50)),
        "wer_finals": wer(refs, hyps),
        "clips_without_final": sum(1 for p in per_clip if not p["finals"]),
        "utterances_without_final": len(utts) - len(lat),
        "retracted_segments": sum(p["retracted_segments"] for p in per_clip),
        "repeated_phrases": sum(len(p["repeated_phrases"]) for p in per_clip),
    }
    if brief:
        return out
    clip_lat = [p["clip_final_latency_s"] for p in per_clip
                if p["clip_final_latency_s"] is not None]
    out.update({
        "first_interim_latency_p95_s": _r(percentile(first, 95)),
        "clip_final_latency_p50_s": _r(percentile(clip_lat, 50)),
        "clip_final_latency_p95_s": _r(percentile(clip_lat, 95)),
        "final_latency_by_utterance_length": latency_by_length(
            (u["duration_s"], u["final_latency_s"]) for u in utts),
        "wer_finals_by_language": {
            lang: wer([a for a, g in zip(refs, langs, strict=True) if g == lang],
                      [h for h, g in zip(hyps, langs, strict=True) if g == lang])
            for lang in sorted(set(langs))},
        "wer_finals_normalised": normalised_wer(refs, hyps, langs),
        "wer_finals_normalised_by_language": {
            lang: normalised_wer([a for a, g in zip(refs, langs, strict=True) if g == lang],
                                 [h for h, g in zip(hyps, langs, strict=True) if g == lang],
                                 lang)
            for lang in sorted(set(langs))},
        "clips_without_final_ids": [p["id"] for p in per_clip if not p["finals"]],
        "utterance_final_latencies_s": [u["final_latency_s"] for u in utts],
        "first_interim_latencies_s": first,
    })
    return out


def offline_figures(clips: list[Clip], settings: Settings) -> dict[str, Any]:
    """WER of offline faster-whisper on the same clips (same model, language given)."""
    hyps = offline_transcripts(clips, settings)
    langs = sorted({c.language for c in clips})

    def sel(lang: str) -> tuple[list[str], list[str]]:
        chosen = [c for c in clips if c.language == lang]
        return [c.reference for c in chosen], [hyps[c.id] for c in chosen]

    return {
        "offline_wer": wer([c.reference for c in clips], [hyps[c.id] for c in clips]),
        "offline_wer_by_language": {lang: wer(*sel(lang)) for lang in langs},
        "offline_wer_normalised_by_language": {
            lang: normalised_wer(*sel(lang), lang) for lang in langs},
        "offline_wer_by_variant": {
            v: wer([c.reference for c in clips if (c.variant or "shared") == v],
                   [hyps[c.id] for c in clips if (c.variant or "shared") == v])
            for v in dict.fromkeys(c.variant or "shared" for c in clips)},
    }


def _r(v: float | None) -> float | None:
    return None if v is None else round(v, 3)


def plot(res: dict[str, Any], path: Path) -> None:
    """Latency distributions: CDFs per run, and final latency by utterance length."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    for i, run in enumerate(res["runs"], 1):
        for key, style, label in (("utterance_final_latencies_s", "-", "final after end"),
                                  ("first_interim_latencies_s", "--", "first interim")):
            xs = np.sort([v for v in run[key] if v is not None])
            if xs.size:
                ax1.step(xs, np.arange(1, xs.size + 1) / xs.size, style, where="post",
                         label=f"{label}, run {i}")
    for x in (1.0, 2.0):
        ax1.axvline(x, color="grey", lw=0.6, ls=":")
    ax1.set_xlabel("seconds")
    ax1.set_ylabel("fraction of utterances / clips")
    ax1.set_title("latency CDF")
    ax1.legend(fontsize=7)
    groups: dict[str, list[float]] = {name: [] for name, _, _ in LENGTH_BUCKETS}
    for run in res["runs"]:
        for p in run["per_clip"]:
            for u in p["utterances"]:
                if u["final_latency_s"] is not None:
                    groups[_bucket(u["duration_s"])].append(u["final_latency_s"])
    names = list(groups)
    ax2.boxplot([groups[n] or [np.nan] for n in names], whis=(5, 95), showfliers=True)
    ax2.set_xticks(range(1, len(names) + 1),
                   [f"{n}\n(n={len(groups[n])})" for n in names])
    ax2.axhline(1.0, color="grey", lw=0.6, ls=":")
    ax2.axhline(2.0, color="grey", lw=0.6, ls=":")
    ax2.set_ylabel("final after the end of the utterance (s)")
    ax2.set_title("by utterance length (all runs)")
    fig.suptitle(f"Live captions, {res['set']} set, model {res['model']}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _bucket(duration: float) -> str:
    from benchmarks.metrics import length_bucket

    return length_bucket(duration)


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{100 * v:.1f} %"


def table(res: dict[str, Any], png: str) -> str:
    m = res["machine"]
    langs = sorted(res["wer_finals_by_language"])
    wer_rows = "\n".join(
        f"| {lang} | {_pct(res['wer_finals_by_language'].get(lang))} "
        f"| {_pct((res.get('wer_finals_normalised_by_language') or {}).get(lang))} "
        f"| {_pct(res['offline_wer_by_language'].get(lang))} "
        f"| {_pct((res.get('offline_wer_normalised_by_language') or {}).get(lang))} "
        f"| {fmt(res['wer_ratio_to_offline_by_language'].get(lang), 'x')} |"
        for lang in langs)
    buckets = "\n".join(
        f"| {name} | {b['utterances']} | {fmt(b['p50_s'], ' s')} | {fmt(b['p95_s'], ' s')} "
        f"| {b['without_final']} |"
        for name, b in res["final_latency_by_utterance_length"].items())
    off_var = res.get("offline_wer_by_variant", {})
    variants = "\n".join(
        f"| {v} | {s['clips']} / {s['utterances']} | {fmt(s['final_latency_p50_s'], ' s')} "
        f"| {fmt(s['final_latency_p95_s'], ' s')} | {fmt(s['first_interim_latency_p50_s'], ' s')} "
        f"| {_pct(s['wer_finals'])} | {_pct(off_var.get(v))} | {s['clips_without_final']} "
        f"| {s['retracted_segments']} | {s['repeated_phrases']} |"
        for v, s in res["by_variant"].items())
    problems = []
    for i, run in enumerate(res["runs"], 1):
        for p in run["per_clip"]:
            what = []
            if not p["finals"]:
                what.append("no final")
            if p["retracted_segments"]:
                what.append(f"{p['retracted_segments']} retracted")
            if p["repeated_phrases"]:
                what.append("repeated: " + " / ".join(f"\"{x}\"" for x in p["repeated_phrases"]))
            if what:
                problems.append(f"- run {i}, `{p['id']}`: {'; '.join(what)}")
    runs = ", ".join(f"{r['wall_s']:.0f} s" for r in res["runs"])
    per_run = max(r["wall_s"] for r in res["runs"]) + 20
    rerun = (f"flock /tmp/greffier-heavy.lock .venv/bin/python -m benchmarks.live --set "
             f"{res['set']} --runs 3 --conditions 'quiet machine'")
    return f"""# Live captions through the LiveKit server: {res['set']} set

Model `{res['model']}` (language setting `{res['language_setting']}`), {res['clips']} clips,
{res['utterances']} utterances, {res['audio_s']} s of audio published in real time per run;
median of {len(res['runs'])} run(s) (each run's figures in the JSON). Measured on
{m['cores']} cores ({m['cpu']}), {m['date']}. Conditions: **{res['conditions']}**.

Produced by (publishing wall time per run: {runs}; whole command {res['command_wall_s']:.0f} s):

    {res['command']}

Manifest: `{res['manifest_name']}`{res['set_note']}. The median of three runs on a quiet
machine (about {3 * per_run / 60:.0f} minutes, plus offline Whisper once when not cached):

    {rerun}

| measure | p50 | p95 | target |
|---|---|---|---|
| final after the end of each utterance (publisher clock) | {fmt(res['final_latency_p50_s'], ' s')} | {fmt(res['final_latency_p95_s'], ' s')} | p50 <= 1.0 s, p95 <= 2.0 s |
| last final of a clip after its last speech | {fmt(res['clip_final_latency_p50_s'], ' s')} | {fmt(res['clip_final_latency_p95_s'], ' s')} | |
| first interim after the start of speech | {fmt(res['first_interim_latency_p50_s'], ' s')} | {fmt(res['first_interim_latency_p95_s'], ' s')} | |
| each final after its last word (worker clock) | {fmt(res['per_caption_final_latency_p50_s'], ' s')} | {fmt(res['per_caption_final_latency_p95_s'], ' s')} | |

| utterance length | utterances | final p50 | final p95 | without a final |
|---|---|---|---|---|
{buckets}

| language | WER of the finals | normalised | offline faster-whisper | offline, normalised | streamed / offline |
|---|---|---|---|---|---|
{wer_rows}

| measure | value | target |
|---|---|---|
| WER of the finals (all) | {_pct(res['wer_finals'])} (normalised {_pct(res.get('wer_finals_normalised'))}) | |
| retracted segments (interims shown, final empty) | {res['retracted_segments']} | 0 |
| segments left as interims (no final) | {res['segments_left_interim']} | 0 |
| clips without a final | {res['clips_without_final']} | 0 |
| utterances without a final | {res['utterances_without_final']} | |
| repeated phrases | {res['repeated_phrases']} | 0 |
| captions more than 1 s off their clip's speech (meeting time) | {res['captions_off_the_timeline']} | 0 |
| publisher behind its real-time schedule (max; latencies count from the real send times) | {fmt(res.get('publisher_lag_max_s'), ' s')} | |
| finals / interim updates received | {res['finals']} / {res['interims']} | |
| worker CPU (of one core) / memory | {res['worker_cpu_percent']} % / {res['worker_rss_mb']} MB | |

| variant | clips / utterances | final p50 | final p95 | first interim p50 | WER | offline WER | without final | retracted | repeated |
|---|---|---|---|---|---|---|---|---|---|
{variants}

![latency distributions]({png})

{chr(10).join(problems) if problems else "No clip lost its final, no segment was retracted, no phrase repeated."}

WER: "WER" uses the project's normaliser (`greffier/core/text.py`: case and punctuation only);
"normalised" uses Whisper's English normaliser and the documented French one
(`greffier.evaluation`), through `jiwer`. Offline: faster-whisper on each whole clip, the same
model, the clip's language given, beam 5. Latency per utterance: the first final whose words
reach the utterance's end (0.4 s tolerance), see `benchmarks/metrics.py`.
"""


def select(clips: list[Clip], only: str | None, languages: tuple[str, ...]) -> list[Clip]:
    """The clips matching ``only`` (a regular expression on ids; a group is kept whole)."""
    if not only:
        return clips
    pattern = re.compile(only)
    groups = {c.group for c in clips if c.group and pattern.search(c.id)}
    return [c for c in clips if pattern.search(c.id) or (c.group and c.group in groups)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", default="shared",
                        help="shared, hard, or the path of a manifest TSV")
    parser.add_argument("--runs", type=int, default=1, help="runs; figures are their median")
    parser.add_argument("--model")
    parser.add_argument("--language")
    parser.add_argument("--languages", default="en,fr")
    parser.add_argument("--only", help="regular expression on clip ids (smoke runs)")
    parser.add_argument("--limit", type=int, default=0, help="only the first N clips")
    parser.add_argument("--conditions", default="quiet machine",
                        help="how the machine was during the run (written into the results)")
    parser.add_argument("--output", help="result name (default live / live_hard / live_<stem>)")
    parser.add_argument("--results-dir", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    t_start = time.monotonic()
    command = "flock /tmp/greffier-heavy.lock .venv/bin/python -m benchmarks.live " + \
        " ".join(shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv))
    if args.model:
        os.environ["GREFFIER_ASR__MODEL"] = args.model
    if args.language:
        os.environ["GREFFIER_ASR__LANGUAGE"] = args.language
    settings = Settings()
    languages = tuple(args.languages.split(","))
    label = set_label(args.set, settings)
    clips, manifest = load_set(label, settings, languages)
    clips = select(clips, args.only, languages)
    if args.limit:
        clips = clips[: args.limit]
    name = args.output or {"shared": "live", "hard": "live_hard"}.get(
        label, f"live_{Path(label).stem}")
    utterances = {c.id: c.utterances() for c in clips}
    cfg = lk_server.ServerConfig(cache_dir=settings.cache_dir)
    started = lk_server.start(cfg)
    runs = []
    try:
        for i in range(args.runs):
            rows, captions, stats = asyncio.run(run(settings, plan(clips, utterances)))
            runs.append(analyse(rows, captions, stats))
            r = runs[-1]
            print(f"run {i + 1}/{args.runs}: {r['wall_s']:.0f} s, final "
                  f"{r['final_latency_p50_s']}/{r['final_latency_p95_s']} s, WER "
                  f"{r['wer_finals']}, no final {r['clips_without_final']}, retracted "
                  f"{r['retracted_segments']}, repeated {r['repeated_phrases']}", flush=True)
    finally:
        if started:
            lk_server.stop(cfg)
    offline = offline_figures(clips, settings)
    res: dict[str, Any] = {
        "set": label, "manifest_name": manifest.name if label in ("shared", "hard")
        else str(manifest),
        "set_note": " (built by `python -m benchmarks.hardset` into the cache, "
                    "nothing copied into the repository)" if label == "hard" else "",
        "conditions": args.conditions, "command": command,
        "model": settings.asr.model, "language_setting": settings.asr.language,
        "runs_count": len(runs),
        **median_of_runs([{k: r[k] for k in SUMMARY_KEYS if k in r} for r in runs]),
        "clips": len(clips), "utterances": runs[0]["utterances"],
        "audio_s": runs[0]["audio_s"],
    }
    res.update(offline)
    res["wer_ratio_to_offline_by_language"] = {
        lang: round(v / res["offline_wer_by_language"][lang], 2)
        if res["offline_wer_by_language"].get(lang) else None
        for lang, v in res["wer_finals_by_language"].items()}
    res["runs"] = runs
    res.update(run_metadata(settings, conditions=args.conditions, command=command,
                            configuration={"set": label, "languages": list(languages),
                                           "runs": args.runs, "only": args.only,
                                           "limit": args.limit or None}))
    res["command_wall_s"] = round(time.monotonic() - t_start, 1)
    png = f"{name}.png"
    args.results_dir.mkdir(parents=True, exist_ok=True)
    plot(res, args.results_dir / png)
    res["plots"] = {"latency distributions": png}
    text = table(res, png)
    js, md = write_results(name, res, text, args.results_dir)
    print(text)
    print(f"written: {js} {md} {args.results_dir / png}; whole command "
          f"{res['command_wall_s']:.0f} s (runs: "
          f"{', '.join(str(r['wall_s']) for r in runs)} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
