"""Live captions through the real LiveKit server: latency, WER and CPU.

A bot publishes every visible clip in turn (2 s of silence between clips) at real-time pace;
a greffier worker captions it; a listener receives the captions. Per clip:

* final latency: arrival at the listener of the clip's last final, minus the wall time at which
  the clip's last speech (Silero VAD on the clip) left the publisher;
* first interim latency: arrival of the clip's first caption minus the wall time of its first
  speech;
* per caption: each final's arrival minus the end of its last word on the worker's clock
  (``meeting_started_at + end``).

Run: ``.venv/bin/python -m benchmarks.live [--model base] [--languages en,fr]``.
Writes ``benchmarks/results/live.json`` and ``live.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import psutil

from benchmarks.common import (
    Clip,
    fmt,
    machine,
    percentile,
    speech_bounds,
    transcript_clips,
    write_results,
)
from greffier.core.audio import SAMPLE_RATE
from greffier.core.config import Settings
from greffier.core.text import word_error_rate
from greffier.rtc import server as lk_server
from greffier.rtc.worker_process import WorkerProcess

GAP_S = 2.0


@dataclass
class ClipRun:
    clip: Clip
    speech_start_wall: float = 0.0
    speech_end_wall: float = 0.0
    finals: list[Any] = field(default_factory=list)
    first_caption_at: float | None = None


async def run(settings: Settings, clips: list[Clip]) -> dict[str, Any]:
    from greffier.rtc.client import (
        CaptionCollector,
        PublishedAudio,
        connect,
        dispatch_agent,
        list_participants,
        publish_audio,
    )

    lk = settings.livekit
    agent_name = f"greffier-bench-{uuid.uuid4().hex[:6]}"
    room = f"bench-{uuid.uuid4().hex[:6]}"
    worker = WorkerProcess({"GREFFIER_AGENT__NAME": agent_name,
                            "GREFFIER_ASR__MODEL": settings.asr.model,
                            "GREFFIER_ASR__LANGUAGE": settings.asr.language})
    worker.start()
    proc = psutil.Process(worker.pid)
    try:
        listener = await connect(lk, identity="bench-listener", room=room)
        collector = CaptionCollector(listener)
        await dispatch_agent(lk, room, agent_name)
        for _ in range(100):
            if any(p.attributes.get("greffier.role") == "captioner"
                   for p in await list_participants(lk, room)):
                break
            await asyncio.sleep(0.2)
        # One participant per language (each stream detects its language once, as people do
        # not switch languages mid-meeting), one after the other; each publishes its clips
        # separated by silence.
        runs: list[ClipRun] = []
        audio_s = 0.0
        cpu0 = proc.cpu_times()
        t0 = time.monotonic()
        for lang in sorted({c.language for c in clips}, key=lambda x: x != "en"):
            bot = await connect(lk, identity=f"bench-speaker-{lang}", room=room,
                                name=f"Speaker {lang}", auto_subscribe=False)
            gap = np.zeros(int(GAP_S * SAMPLE_RATE), np.float32)
            parts, mine, offset = [gap], [], GAP_S
            for clip in (c for c in clips if c.language == lang):
                audio = clip.audio()
                start, end = speech_bounds(audio)
                r = ClipRun(clip)
                r.speech_start_wall, r.speech_end_wall = offset + start, offset + end
                mine.append(r)
                parts += [audio, gap]
                offset += audio.size / SAMPLE_RATE + GAP_S
            audio = np.concatenate(parts)
            audio_s += audio.size / SAMPLE_RATE
            published = PublishedAudio()
            await publish_audio(bot, audio, SAMPLE_RATE, published=published, unpublish=False)
            await asyncio.sleep(4.0)
            await bot.disconnect()
            for r in mine:
                r.speech_start_wall += published.started_at
                r.speech_end_wall += published.started_at
            runs += mine
        wall = time.monotonic() - t0
        cpu1 = proc.cpu_times()
        rss_mb = proc.memory_info().rss / 2**20
        await listener.disconnect()
    finally:
        worker.stop()

    data = [c for c in collector.via("data") if c.message is not None]
    per_caption: list[float] = []
    unassigned = 0  # captions more than 1 s away from every clip's speech: a timeline error
    for c in data:
        m = c.message
        mid = m.meeting_started_at + (m.start + m.end) / 2
        # the clip whose speech is nearest the caption's middle (meeting time)
        owner = min(runs, key=lambda r: max(r.speech_start_wall - mid, mid - r.speech_end_wall,
                                            0.0), default=None)
        if owner is None or max(owner.speech_start_wall - mid, mid - owner.speech_end_wall) > 1.0:
            unassigned += 1
            continue
        if owner.first_caption_at is None and c.text:
            owner.first_caption_at = c.received_at
        if c.final and c.text:
            owner.finals.append(c)
            per_caption.append(c.received_at - (m.meeting_started_at + m.end))

    final_lat = [max(f.received_at for f in r.finals) - r.speech_end_wall
                 for r in runs if r.finals]
    first_lat = [r.first_caption_at - r.speech_start_wall
                 for r in runs if r.first_caption_at is not None]
    by_lang: dict[str, Any] = {}
    for lang in sorted({r.clip.language for r in runs}):
        sel = [r for r in runs if r.clip.language == lang]
        w = word_error_rate([r.clip.reference for r in sel],
                            [" ".join(f.text for f in r.finals) for r in sel])
        by_lang[lang] = round(w.wer, 4)
    overall = word_error_rate([r.clip.reference for r in runs],
                              [" ".join(f.text for f in r.finals) for r in runs])
    cpu_s = (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system)
    return {
        "model": settings.asr.model,
        "language_setting": settings.asr.language,
        "clips": len(runs),
        "audio_s": round(audio_s, 1),
        "final_latency_p50_s": _r(percentile(final_lat, 50)),
        "final_latency_p95_s": _r(percentile(final_lat, 95)),
        "first_interim_latency_p50_s": _r(percentile(first_lat, 50)),
        "first_interim_latency_p95_s": _r(percentile(first_lat, 95)),
        "per_caption_final_latency_p50_s": _r(percentile(per_caption, 50)),
        "per_caption_final_latency_p95_s": _r(percentile(per_caption, 95)),
        "wer_finals": round(overall.wer, 4),
        "wer_finals_by_language": by_lang,
        "clips_without_final": [r.clip.id for r in runs if not r.finals],
        "finals": sum(len(r.finals) for r in runs),
        "captions_off_the_timeline": unassigned,
        "interims": sum(1 for c in data if not c.final),
        "worker_cpu_percent": round(100 * cpu_s / wall, 1),
        "worker_rss_mb": round(rss_mb, 1),
        "machine": machine(),
        "per_clip": [
            {"id": r.clip.id, "language": r.clip.language,
             "final_latency_s": _r(max(f.received_at for f in r.finals) - r.speech_end_wall)
             if r.finals else None,
             "first_interim_latency_s": _r(r.first_caption_at - r.speech_start_wall)
             if r.first_caption_at else None,
             "wer": round(word_error_rate([r.clip.reference],
                                          [" ".join(f.text for f in r.finals)]).wer, 4),
             "finals": [f.text for f in r.finals]}
            for r in runs
        ],
    }


def _r(v: float | None) -> float | None:
    return None if v is None else round(v, 3)


def table(res: dict[str, Any]) -> str:
    m = res["machine"]
    langs = ", ".join(f"{k}: {100 * v:.1f} %" for k, v in res["wer_finals_by_language"].items())
    return f"""# Live captions through the LiveKit server

Model `{res['model']}` (language setting `{res['language_setting']}`), {res['clips']} clips,
{res['audio_s']} s of audio published in real time (one participant per language, one after
the other); measured on
{m['cores']} cores ({m['cpu']}), {m['date']}. Produced by `python -m benchmarks.live`.

| measure | p50 | p95 | target |
|---|---|---|---|
| final after the end of the utterance (publisher clock) | {fmt(res['final_latency_p50_s'], ' s')} | {fmt(res['final_latency_p95_s'], ' s')} | p50 <= 1.0 s, p95 <= 2.0 s |
| first interim after the start of speech | {fmt(res['first_interim_latency_p50_s'], ' s')} | {fmt(res['first_interim_latency_p95_s'], ' s')} | |
| each final after its last word (worker clock) | {fmt(res['per_caption_final_latency_p50_s'], ' s')} | {fmt(res['per_caption_final_latency_p95_s'], ' s')} | |

| measure | value |
|---|---|
| WER of the finals | {100 * res['wer_finals']:.1f} % ({langs}) |
| captions more than 1 s off their clip's speech (meeting time) | {res['captions_off_the_timeline']} |
| finals / interim updates received | {res['finals']} / {res['interims']} |
| worker CPU (of one core) | {res['worker_cpu_percent']} % |
| worker memory (RSS) | {res['worker_rss_mb']} MB |
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model")
    parser.add_argument("--language")
    parser.add_argument("--languages", default="en,fr")
    parser.add_argument("--limit", type=int, default=0, help="only the first N clips")
    args = parser.parse_args()
    if args.model:
        os.environ["GREFFIER_ASR__MODEL"] = args.model
    if args.language:
        os.environ["GREFFIER_ASR__LANGUAGE"] = args.language
    settings = Settings()
    clips = transcript_clips(settings, tuple(args.languages.split(",")))
    if args.limit:
        clips = clips[: args.limit]
    cfg = lk_server.ServerConfig(cache_dir=settings.cache_dir)
    started = lk_server.start(cfg)
    try:
        res = asyncio.run(run(settings, clips))
    finally:
        if started:
            lk_server.stop(cfg)
    js, md = write_results("live", res, table(res))
    print(table(res))
    print(f"written: {js} {md}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
