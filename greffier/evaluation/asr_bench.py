"""``greffier bench asr``: offline transcription of a data set, scored clip by clip.

Each recording goes through greffier's own offline path (``asr.offline.transcribe_recording``
with the hallucination guard, as ``greffier transcribe`` does: VAD chunks, batched short
windows, beam ``recording_beam_size``), after one untimed warm-up decode. Scores: raw and
normalised WER and CER (``evaluation.metrics``, ``evaluation.normalize``), real-time factor and
CPU seconds per audio second (median over ``runs``), peak memory. Writes ``<name>.json``
(configuration, model and checksum, device, library versions, machine, every clip),
``<name>.md`` and ``<name>_wer.png`` (WER per clip) into the output folder.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shlex
import statistics
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from greffier.core.config import Settings
from greffier.core.text import language_code
from greffier.evaluation.datasets import DatasetError, Utterance
from greffier.evaluation.metrics import ErrorCounts, char_errors, word_errors
from greffier.evaluation.normalize import NORMALIZER_NAMES, normalizer_for
from greffier.evaluation.resources import (
    ResourceMeter,
    library_versions,
    machine,
    peak_rss_mb,
)
from greffier.models.registry import SHIPPED_MODELS, ResolvedModel, sha256_file

if TYPE_CHECKING:
    from greffier.asr.whisper import WhisperDecoder


@dataclass(frozen=True, slots=True)
class AsrBenchOptions:
    data: str
    """What ``--data`` named (for the result file)."""
    out_dir: Path
    name: str = "asr"
    language: str | None = None
    """Forced language for every clip (None: each clip's own; ``auto``: detect)."""
    runs: int = 1
    limit: int = 0
    progress: bool = True
    conditions: str = ""
    """How the machine was during the run (``quiet machine``, ``shared machine``)."""


def model_checksum(resolved: ResolvedModel, cache_dir: Path) -> tuple[str | None, str]:
    """SHA-256 of the model's ``model.bin`` and how it was obtained: ``pinned`` (a shipped
    model, verified at load), ``computed`` (a local or downloaded directory) or ``unknown``."""
    if resolved.name in SHIPPED_MODELS:
        return SHIPPED_MODELS[resolved.name].sha256, "pinned"
    location: Path | None = Path(resolved.location) if resolved.is_local else None
    if location is None:
        try:
            from faster_whisper.utils import download_model

            location = Path(
                download_model(
                    resolved.name, local_files_only=True, cache_dir=str(cache_dir / "hub")
                )
            )
        except (ImportError, OSError, ValueError, RuntimeError):
            return None, "unknown"
    model_bin = location / "model.bin"
    if not model_bin.is_file():
        return None, "unknown"
    return sha256_file(model_bin), "computed"


def _load_decoder(settings: Settings) -> WhisperDecoder:
    from greffier.asr.whisper import WhisperDecoder

    asr = settings.asr
    if asr.cpu_threads == 0:  # not live: every core decodes, as greffier transcribe does
        asr = asr.model_copy(update={"cpu_threads": os.cpu_count() or 1})
    return WhisperDecoder.load(asr, settings.cache_dir)


def transcribe_clip(
    decoder: WhisperDecoder, audio: Any, language: str | None, beam_size: int
) -> tuple[str, str | None, int]:
    """Offline transcript of one clip: (text, language decoded, segments the guard rejected)."""
    from greffier.asr.guards import HallucinationGuard
    from greffier.asr.offline import ChunkingOptions, transcribe_recording
    from greffier.core.audio import SAMPLE_RATE

    if audio.size < SAMPLE_RATE // 10:
        return "", language, 0
    batch = 16 if decoder.device.device == "cuda" else 4
    guard = HallucinationGuard()
    texts: list[str] = []
    rejected = 0
    decoded_language = language
    for hyp in transcribe_recording(
        decoder,
        audio,
        language=language,
        beam_size=beam_size,
        options=ChunkingOptions(batch_size=batch),
    ):
        decoded_language = decoded_language or hyp.language
        verdict = guard.check(hyp)
        if verdict.rejected or not verdict.words:
            rejected += 1
            continue
        texts.append(verdict.text.strip())
    return " ".join(t for t in texts if t), decoded_language, rejected


def _language_of(requested: str | None, utterance: Utterance) -> str | None:
    if requested:
        return language_code(requested)
    return utterance.language


def command_line(options: AsrBenchOptions) -> str:
    """The ``greffier bench asr`` command that reproduces a run with these options."""
    parts = [".venv/bin/greffier", "bench", "asr", "--data", options.data]
    if options.language:
        parts += ["--language", options.language]
    if options.runs != 1:
        parts += ["--runs", str(options.runs)]
    if options.limit:
        parts += ["--limit", str(options.limit)]
    if options.name != "asr":
        parts += ["--name", options.name]
    if options.conditions:
        parts += ["--conditions", options.conditions]
    return " ".join(shlex.quote(p) for p in parts)


def _summary(clips: list[dict[str, Any]]) -> dict[str, Any]:
    refs = [c["reference"] for c in clips]
    hyps = [c["hypothesis"] for c in clips]
    raw_w = word_errors(refs, hyps)
    raw_c = char_errors(refs, hyps)
    norm_w = ErrorCounts()
    norm_c = ErrorCounts()
    for c in clips:
        norm = normalizer_for(c["scored_language"])
        norm_w += word_errors(c["reference"], c["hypothesis"], norm)
        norm_c += char_errors(c["reference"], c["hypothesis"], norm)
    audio_s = sum(c["duration_s"] for c in clips)
    proc_s = sum(c["processing_s"] for c in clips)
    cpu_s = sum(c["cpu_s"] for c in clips)
    return {
        "clips": len(clips),
        "audio_s": round(audio_s, 2),
        "wer": norm_w.rate,
        "wer_raw": raw_w.rate,
        "cer": norm_c.rate,
        "cer_raw": raw_c.rate,
        "words": norm_w.as_dict(),
        "words_raw": raw_w.as_dict(),
        "processing_s": round(proc_s, 3),
        "rtf": proc_s / audio_s if audio_s else None,
        "cpu_s_per_audio_s": cpu_s / audio_s if audio_s else None,
    }


def run_asr_bench(
    settings: Settings, utterances: Sequence[Utterance], options: AsrBenchOptions
) -> tuple[Path, Path]:
    """Transcribe and score ``utterances`` (those with a reference); returns the JSON and
    Markdown paths. Raises DatasetError when no utterance has a reference transcript."""
    from greffier.core.audio import SAMPLE_RATE, read_audio

    items = [u for u in utterances if u.reference is not None]
    skipped = len(utterances) - len(items)
    if options.limit:
        items = items[: options.limit]
    if not items:
        raise DatasetError(
            f"{options.data}: no item with a reference transcript to score",
            hint="greffier bench diarization scores RTTM-only data sets",
        )
    runs = max(1, options.runs)
    load_meter = ResourceMeter()
    with load_meter:
        decoder = _load_decoder(settings)
    beam = settings.asr.recording_beam_size
    sha, sha_source = model_checksum(decoder.resolved, settings.cache_dir)

    first = read_audio(items[0].audio_path)[: 3 * SAMPLE_RATE]
    transcribe_clip(
        decoder,
        first,
        _language_of(options.language, items[0]) or ("en" if not decoder.multilingual else None),
        beam,
    )  # warm-up, untimed

    durations: dict[str, float] = {}
    results: dict[int, dict[str, Any]] = {}
    wer_by_run: list[float] = []
    bar = None
    if options.progress:
        from tqdm import tqdm

        bar = tqdm(
            total=len(items) * runs,
            desc="bench asr",
            unit="clip",
            file=sys.stderr,
            disable=None,
            mininterval=0.5,
        )
    try:
        for _ in range(runs):
            run_refs: list[str] = []
            run_hyps: list[str] = []
            run_norms: ErrorCounts = ErrorCounts()
            for i, utt in enumerate(items):
                audio = read_audio(utt.audio_path)
                durations[utt.id] = audio.size / SAMPLE_RATE
                language = _language_of(options.language, utt)
                if not decoder.multilingual:
                    language = "en"  # an English-only model decodes nothing else
                with ResourceMeter() as meter:
                    text, decoded, rejected = transcribe_clip(decoder, audio, language, beam)
                usage = meter.usage
                assert usage is not None
                scored = utt.language or decoded
                reference = utt.reference or ""
                run_refs.append(reference)
                run_hyps.append(text)
                run_norms += word_errors(reference, text, normalizer_for(scored))
                row = results.setdefault(
                    i,
                    {
                        "id": utt.id,
                        "audio": str(utt.audio_path),
                        "language": utt.language,
                        "decoded_language": decoded,
                        "scored_language": scored,
                        "duration_s": round(durations[utt.id], 3),
                        "reference": reference,
                        "hypothesis": text,
                        "rejected_segments": rejected,
                        "runs_processing_s": [],
                        "runs_cpu_s": [],
                    },
                )
                row["runs_processing_s"].append(round(usage.wall_s, 4))
                row["runs_cpu_s"].append(round(usage.cpu_s, 4))
                if bar is not None:
                    bar.update(1)
            wer_by_run.append(run_norms.rate)
    finally:
        if bar is not None:
            bar.close()

    clips = []
    for i in range(len(items)):
        row = results[i]
        norm = normalizer_for(row["scored_language"])
        w = word_errors(row["reference"], row["hypothesis"], norm)
        row["processing_s"] = statistics.median(row["runs_processing_s"])
        row["cpu_s"] = statistics.median(row["runs_cpu_s"])
        dur = row["duration_s"]
        row.update(
            {
                "wer": w.rate,
                "wer_raw": word_errors(row["reference"], row["hypothesis"]).rate,
                "cer": char_errors(row["reference"], row["hypothesis"], norm).rate,
                "cer_raw": char_errors(row["reference"], row["hypothesis"]).rate,
                "words": w.as_dict(),
                "reference_normalised": norm(row["reference"]),
                "hypothesis_normalised": norm(row["hypothesis"]),
                "rtf": row["processing_s"] / dur if dur else None,
                "cpu_s_per_audio_s": row["cpu_s"] / dur if dur else None,
            }
        )
        clips.append(row)
    languages = sorted({str(c["scored_language"]) for c in clips})
    result = {
        "benchmark": "asr (offline, greffier.asr.offline)",
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "conditions": options.conditions,
        "command": command_line(options),
        "configuration": {
            "data": options.data,
            "items": len(items),
            "skipped_without_reference": skipped,
            "language": options.language or "per clip",
            "beam_size": beam,
            "runs": runs,
            "limit": options.limit or None,
            "cpu_threads": settings.asr.cpu_threads or os.cpu_count(),
            "requested_device": settings.asr.device,
            "compute_type": settings.asr.compute_type,
        },
        "model": {
            "name": settings.asr.model,
            "source": decoder.resolved.source,
            "location": decoder.resolved.location,
            "sha256": sha,
            "sha256_source": sha_source,
            "multilingual": decoder.multilingual,
            "load_s": round(load_meter.usage.wall_s, 2) if load_meter.usage else None,
        },
        "device": {"device": decoder.device.device, "compute_type": decoder.device.compute_type},
        "libraries": library_versions(),
        "machine": machine(),
        "normalisers": NORMALIZER_NAMES,
        "metric_definitions": {
            "wer": "(S+D+I)/N over words after the language's normaliser (jiwer), corpus-level",
            "wer_raw": "the same on the texts as written (only whitespace collapsed)",
            "cer": "(S+D+I)/N over characters, spaces included (jiwer)",
            "rtf": "wall seconds of transcription per audio second (median over runs)",
            "cpu_s_per_audio_s": "process CPU seconds per audio second (median over runs)",
        },
        "summary": {
            "all": _summary(clips),
            "by_language": {
                lang: _summary([c for c in clips if str(c["scored_language"]) == lang])
                for lang in languages
            },
        },
        "wer_by_run": wer_by_run,
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "clips": clips,
    }
    options.out_dir.mkdir(parents=True, exist_ok=True)
    js = options.out_dir / f"{options.name}.json"
    md = options.out_dir / f"{options.name}.md"
    js.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    png = plot_wer_per_clip(result, options.out_dir / f"{options.name}_wer.png")
    if png is not None:
        result["plots"] = {"WER per clip": png.name}
        js.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    md.write_text(markdown_table(result), encoding="utf-8")
    return js, md


def plot_wer_per_clip(result: dict[str, Any], path: Path) -> Path | None:
    """A bar chart of each clip's normalised and raw WER (None without matplotlib)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    clips = result["clips"]
    fig, ax = plt.subplots(figsize=(8, 1.5 + 0.28 * len(clips)))
    ys = list(range(len(clips)))
    ax.barh(
        [y + 0.2 for y in ys],
        [100 * c["wer_raw"] for c in clips],
        height=0.4,
        label="raw",
        color="#bbbbbb",
    )
    ax.barh(
        [y - 0.2 for y in ys],
        [100 * c["wer"] for c in clips],
        height=0.4,
        label="normalised",
        color="#1f77b4",
    )
    ax.set_yticks(ys, [str(c["id"])[:40] for c in clips], fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("WER (%)")
    ax.set_title(f"{result['model']['name']}: WER per clip", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{100 * v:.1f} %"


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _num(v: float | None, digits: int = 3) -> str:
    return "-" if v is None else f"{v:.{digits}f}"


def markdown_table(result: dict[str, Any]) -> str:
    """The result as Markdown: a summary by language, then one row per clip."""
    m, d, cfg = result["model"], result["device"], result["configuration"]
    lines = [
        f"# Offline ASR: {m['name']} on {_cell(cfg['data'])}",
        "",
        f"Model `{m['name']}` (sha256 {(m['sha256'] or 'unknown')[:12]}, {m['source']}), "
        f"{d['device']}/{d['compute_type']}, beam {cfg['beam_size']}, {cfg['runs']} run(s); "
        f"{result['machine']['cpu']}, {result['machine']['cores']} cores. WER/CER normalised "
        "(Whisper's English normaliser, greffier's French one, Whisper's basic one otherwise) "
        "and raw (as written). Conditions: "
        f"**{result.get('conditions') or 'not recorded'}**; "
        f"{result.get('created', '')}. Produced by:",
        "",
        f"    {result.get('command', '')}",
        "",
        "| language | clips | audio | WER | WER raw | CER | CER raw | RTF | CPU s / audio s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    rows = [*result["summary"]["by_language"].items(), ("all", result["summary"]["all"])]
    for lang, s in rows:
        lines.append(
            f"| {lang} | {s['clips']} | {s['audio_s']:.1f} s | {_pct(s['wer'])} | "
            f"{_pct(s['wer_raw'])} | {_pct(s['cer'])} | {_pct(s['cer_raw'])} | "
            f"{_num(s['rtf'])} | {_num(s['cpu_s_per_audio_s'])} |"
        )
    lines += [
        "",
        "| clip | language | duration | WER | WER raw | CER | S / D / I of N | RTF |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for c in result["clips"]:
        w = c["words"]
        lines.append(
            f"| {_cell(c['id'])} | {c['scored_language']} | {c['duration_s']:.1f} s | "
            f"{_pct(c['wer'])} | {_pct(c['wer_raw'])} | {_pct(c['cer'])} | {w['substitutions']} / "
            f"{w['deletions']} / {w['insertions']} of {w['reference_length']} | "
            f"{_num(c['rtf'])} |"
        )
    for alt, png in result.get("plots", {}).items():
        lines += ["", f"![{alt}]({png})"]
    return "\n".join(lines) + "\n"
