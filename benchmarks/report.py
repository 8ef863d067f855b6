"""Write ``benchmarks/README.md`` from the result files: nothing in it is typed by hand.

``greffier bench report`` (or ``python -m benchmarks.report``) reads every
``benchmarks/results/*.json``, recognises what produced it (``asr``, ``streaming``, the
settings sweep, ``capacity``, ``live``, ``diarization``; anything else is listed with its
headline figures), and writes: how to run each benchmark, one section per result with its
machine, date, conditions, model, the command that produced it, its summary table and its
plots (relative links), what each peer is and how it was run, the data-set layouts and the
metric definitions. The output depends only on the result files (sorted, no clock), so running
it twice gives the same file.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent

ORDER = ("asr", "streaming", "streaming_sweep", "capacity", "live", "live_hard", "diarization")
"""Sections in this order first, then any other result file by name."""

RUN = """\
Every command runs from the repository root after `./scripts/setup`; `greffier bench <kind>
--help` lists the options. Common options: `--model` (tiny.en, base, a faster-whisper id or a
local CTranslate2 folder), `--language`, `--device auto|cpu|cuda`, `--set` (`shared`, `hard`, a
manifest TSV, a LibriSpeech-style folder, a Common Voice / MLS TSV or an AMI-style folder),
`--out` (output folder), `--limit`, `--conditions` (written into the results: say whether the
machine was quiet). Each run writes `<name>.json` (configuration, model and SHA-256, device,
library versions, machine, date, every per-clip figure), `<name>.md` and PNG plots into
`benchmarks/results/`; then `greffier bench report` rewrites this file.

| benchmark | command | about |
|---|---|---|
| offline ASR | `greffier bench asr --set shared` | greffier's offline path (`greffier transcribe`): WER/CER raw and normalised, RTF, CPU s per audio s, peak memory |
| streaming replay | `greffier bench streaming --set shared` | the streaming engine fed in real time, beside offline Whisper and the peers (`-- --skip-peers` keeps the peers' previous rows) |
| settings sweep | `greffier bench streaming --set shared --sweep` | the latency / WER trade-off: default and accuracy profiles, final beam 5, 300 / 700 ms endpoints, on 6 clips (about 6 minutes) |
| capacity | `greffier bench capacity` | N real-time streams on one engine until the p95 final passes 2 s; memory per stream |
| live | `greffier bench live --set shared --runs 3` (and `--set hard`) | captions through the real LiveKit server, worker CPU and memory (about 10 minutes a run on the shared clips) |
| diarization | `greffier bench diarization` | DER/JER (pyannote.metrics), cpWER (meeteval), transcription speed against WhisperX |
| GPU | `bash benchmarks/gpu.sh` | capacity with float16 batching on a CUDA machine (`streaming_gpu.*`) |
| this file | `greffier bench report` | rewrites `benchmarks/README.md` from `benchmarks/results/*.json` |

On a shared machine run each heavy command under the project's lock
(`flock /tmp/greffier-heavy.lock ...`), one at a time."""

PEERS = """\
The peers are open streaming-Whisper systems run side by side with greffier by
`benchmarks/streaming.py`, each in its own virtual environment outside the repository
(`bash benchmarks/peers/setup.sh`, pinned versions), driven in-process by
`benchmarks/peers/run_peer.py` with the same CTranslate2 model folder, CPU int8, the clip's
language, each clip fed in 20 ms chunks at real-time pace then 3 s of silence; what each
displays over time is scored by `benchmarks/snapshots.py` exactly as greffier's output is.
Details, differences from their defaults and caveats: [`peers/README.md`](peers/README.md).

| peer | package | how it is driven |
|---|---|---|
| WhisperLiveKit (QuentinFuxa/WhisperLiveKit) | `whisperlivekit` 0.2.26 | its `AudioProcessor` session as its `/asr` WebSocket endpoint drives it; LocalAgreement policy with faster-whisper (its SimulStreaming default needs PyTorch weights) |
| WhisperLive (collabora/WhisperLive) | `whisper-live` 0.10.0 | its server's `ServeClientFasterWhisper` fed `add_frames()` as its WebSocket server does, with its client's default options |
| WhisperX (m-bain/whisperX) | `whisperx` 3.8.6 | recordings only (`benchmarks/peers/run_whisperx.py`): the speed reference of `greffier transcribe` in the diarization benchmark |"""

DATASETS = """\
`--set` takes `shared` (the shared clips, `../shared/data/speech/manifest.tsv`), `hard` (built
at run time from the shared clips by `benchmarks/hardset.py`: chained monologues, continuous and
spontaneous speech, -40 dBFS, phone band, two overlapping voices), or a path: a greffier
manifest TSV, a LibriSpeech-style folder (`*.trans.txt` beside the audio), a Common Voice TSV
(audio in `clips/`), an MLS split (`transcripts.txt`, `audio/`), or an AMI-style folder (`*.rttm`,
audio named after the recording, optional `.uem`, `.txt`/`.stm`). Readers:
`greffier/evaluation/datasets.py`. `python -m benchmarks.hardset --from <data set>` builds the
hard variants (quiet, phone band, chained, overlap) of any of them."""

METRICS = """\
- **WER / CER**: (S + D + I) / N, corpus level, through `jiwer`. "Normalised": after Whisper's
  English normaliser (`whisper-normalizer`, pinned), greffier's documented French normaliser
  (case, punctuation, apostrophes, numbers, ligatures), Whisper's basic one otherwise
  (`greffier/evaluation/normalize.py`). The plain "WER" of the streaming and live results uses
  the project's own normaliser (case and punctuation only: the figures published before); the
  "WER raw" of `asr` scores the texts as written (only whitespace collapsed).
- **Latency**: first interim = first caption minus the first speech (Silero VAD); final = the
  last change of the final text minus the last speech of the clip, or, per utterance, the first
  final covering the utterance's end (`benchmarks/snapshots.py`, `benchmarks/metrics.py`).
- **Flicker**: displayed words later rewritten, per final word.
- **RTF**: wall seconds per audio second; **CPU s / audio s**: process CPU time per audio second.
- **DER / JER**: `pyannote.metrics` (collar and overlap options in the diarization result);
  **cpWER**: `meeteval`."""


def _f(v: Any, unit: str = "", digits: int = 2) -> str:
    return "-" if v is None else f"{v:.{digits}f}{unit}"


def _pct(v: Any) -> str:
    return "-" if v is None else f"{100 * v:.1f} %"


def _cell(v: Any) -> str:
    return str(v).replace("|", "\\|").replace("\n", " ")


def kind_of(name: str, data: dict[str, Any]) -> str:
    """What produced a result file: asr, streaming, sweep, capacity, live, diarization, other."""
    bench = str(data.get("benchmark", ""))
    if bench.startswith("asr"):
        return "asr"
    if bench in ("streaming sweep", "capacity", "streaming"):
        return {"streaming sweep": "sweep"}.get(bench, bench)
    if "points" in data:
        return "sweep"
    if "systems" in data:
        return "capacity" if not data["systems"] and data.get("capacity") else "streaming"
    if name.startswith("live") and "runs" in data:
        return "live"
    if name.startswith("diarization") or any(k.startswith("der_") for k in data):
        return "diarization"
    return "other"


def where(data: dict[str, Any]) -> str:
    """Machine, date and conditions of a result, in one line."""
    m = data.get("machine") or {}
    date = m.get("date") or data.get("created") or "date not recorded"
    gpu = f", GPU {m['gpu']}" if m.get("gpu") else ""
    cond = data.get("conditions") or "not recorded"
    model = data.get("model_info") or data.get("model")
    if isinstance(model, dict):
        sha = (model.get("sha256") or "")[:12]
        model_text = f"`{model.get('name')}`" + (f" (sha256 {sha})" if sha else "")
    else:
        model_text = f"`{model}`" if model else "-"
    return (f"Measured {date} on {m.get('cores', '?')} cores ({m.get('cpu', '?')}{gpu}); "
            f"conditions: **{cond}**; model {model_text}.")


def _asr(data: dict[str, Any]) -> list[str]:
    rows = ["| language | clips | WER normalised | WER raw | CER normalised | RTF | CPU s / audio s |",
            "|---|---|---|---|---|---|---|"]
    summary = data.get("summary", {})
    for lang, s in [*summary.get("by_language", {}).items(), ("all", summary.get("all", {}))]:
        rows.append(f"| {lang} | {s.get('clips')} | {_pct(s.get('wer'))} | {_pct(s.get('wer_raw'))} "
                    f"| {_pct(s.get('cer'))} | {_f(s.get('rtf'), '', 3)} "
                    f"| {_f(s.get('cpu_s_per_audio_s'), '', 3)} |")
    return rows


def _streaming(data: dict[str, Any]) -> list[str]:
    rows = ["| system | WER | WER normalised | first interim p50 | final p50 | final p95 | note |",
            "|---|---|---|---|---|---|---|"]
    for name, s in data.get("systems", {}).items():
        if "error" in s:
            rows.append(f"| {name} | - | - | - | - | - | {_cell(s['error'])[:120]} |")
            continue
        note = s.get("version") or s.get("note") or ""
        co = s.get("carried_over")
        if co:
            note = (f"{note}; measured {co.get('date')} on {co.get('clips')} clips, "
                    "not re-run").lstrip("; ")
        rows.append(f"| {name} | {_pct(s.get('wer'))} | {_pct(s.get('wer_normalised'))} "
                    f"| {_f(s.get('first_interim_latency_p50_s'), ' s')} "
                    f"| {_f(s.get('final_latency_p50_s'), ' s')} "
                    f"| {_f(s.get('final_latency_p95_s'), ' s')} | {_cell(note)} |")
    return rows


def _sweep(data: dict[str, Any]) -> list[str]:
    rows = [f"{data.get('clips')} clips: {', '.join(data.get('clip_ids', []))}.", "",
            "| setting | WER normalised | WER | first interim p50 | final p50 | final p95 |",
            "|---|---|---|---|---|---|"]
    for p in data.get("points", []):
        rows.append(f"| {p.get('label')} | {_pct(p.get('wer_normalised'))} | {_pct(p.get('wer'))} "
                    f"| {_f(p.get('first_interim_latency_p50_s'), ' s')} "
                    f"| {_f(p.get('final_latency_p50_s'), ' s')} "
                    f"| {_f(p.get('final_latency_p95_s'), ' s')} |")
    return rows


def _capacity(data: dict[str, Any]) -> list[str]:
    cap = data.get("capacity") or {}
    rows = [f"Real-time streams with the p95 final <= 2 s: **{cap.get('max_realtime_streams')}**; "
            f"memory per added stream: {_f(cap.get('rss_per_stream_mb'), ' MB', 1)}.", "",
            "| streams | final p50 | final p95 | peak RSS |", "|---|---|---|---|"]
    for r in cap.get("runs", []):
        rows.append(f"| {r.get('streams')} | {_f(r.get('final_latency_p50_s'), ' s')} "
                    f"| {_f(r.get('final_latency_p95_s'), ' s')} "
                    f"| {_f(r.get('peak_rss_mb'), ' MB', 1)} |")
    return rows


def _live(data: dict[str, Any]) -> list[str]:
    return [
        f"{data.get('clips')} clips, {data.get('utterances')} utterances, "
        f"{data.get('runs_count', len(data.get('runs', [])))} run(s) (median).", "",
        "| measure | value |", "|---|---|",
        f"| final after the end of each utterance, p50 / p95 | {_f(data.get('final_latency_p50_s'), ' s')} / {_f(data.get('final_latency_p95_s'), ' s')} |",
        f"| first interim after the start of speech, p50 | {_f(data.get('first_interim_latency_p50_s'), ' s')} |",
        f"| WER of the finals (normalised) | {_pct(data.get('wer_finals'))} ({_pct(data.get('wer_finals_normalised'))}) |",
        f"| offline faster-whisper WER, same model | {_pct(data.get('offline_wer'))} |",
        f"| clips without a final / retracted segments / repeated phrases | {data.get('clips_without_final')} / {data.get('retracted_segments')} / {data.get('repeated_phrases')} |",
        f"| worker CPU (of one core) / memory | {data.get('worker_cpu_percent')} % / {data.get('worker_rss_mb')} MB |",
    ]


def _headline(data: dict[str, Any]) -> list[str]:
    """Top-level numbers of a result this module does not know in detail."""
    items: list[tuple[str, Any]] = []
    for k, v in data.items():
        if isinstance(v, dict) and isinstance(v.get("mean"), int | float):
            k, v = f"{k} (mean)", v["mean"]
        if isinstance(v, int | float) and not isinstance(v, bool):
            items.append((k, v))
    if not items:
        return []
    return ["| figure | value |", "|---|---|",
            *(f"| {k} | {v:.4g} |" if isinstance(v, float) else f"| {k} | {v} |"
              for k, v in items)]


TITLES = {
    "asr": "Offline ASR",
    "streaming": "Streaming replay: greffier, offline Whisper and peers",
    "sweep": "Streaming settings: latency / WER trade-off",
    "capacity": "Capacity: real-time streams on one engine",
    "live": "Live captions through the LiveKit server",
    "diarization": "Diarization and recordings",
    "other": "Other result",
}
RENDER: dict[str, Callable[[dict[str, Any]], list[str]]] = {
    "asr": _asr, "streaming": _streaming, "sweep": _sweep, "capacity": _capacity,
    "live": _live, "diarization": _headline, "other": _headline,
}


def _plots(name: str, data: dict[str, Any], folder: Path, stems: list[str],
           rel: str) -> list[str]:
    """The result's plots: those it names, else the PNGs named after it (``<name>.png``,
    ``<name>_*.png``) that no longer result name claims."""
    named = data.get("plots")
    if isinstance(named, dict) and named:
        return [f"![{alt}]({rel}/{png})" for alt, png in named.items()
                if (folder / png).is_file()]
    out = []
    for png in sorted(folder.glob("*.png")):
        owners = [s for s in stems if png.stem == s or png.stem.startswith(s + "_")]
        if owners and max(owners, key=len) == name:
            out.append(f"![{png.stem}]({rel}/{png.name})")
    return out


def title_of(name: str, data: dict[str, Any]) -> str:
    kind = kind_of(name, data)
    title = TITLES[kind]
    if data.get("set") and kind in ("streaming", "live", "sweep"):
        title += f", {data['set']} set"
    return title


def section(name: str, data: dict[str, Any], folder: Path, stems: list[str],
            rel: str = "results") -> str:
    kind = kind_of(name, data)
    title = title_of(name, data)
    lines = [f"### {title} (`{name}`)", "", where(data), ""]
    command = data.get("command")
    if command:
        lines += ["Produced by:", "", f"    {command}", ""]
    lines += RENDER[kind](data)
    md = folder / f"{name}.md"
    lines += ["", f"Full table: [`{rel}/{name}.md`]({rel}/{name}.md)" if md.is_file()
              else f"Data: `{rel}/{name}.json`"]
    pics = _plots(name, data, folder, stems, rel)
    if pics:
        lines += ["", *pics]
    return "\n".join(lines)


def render(folder: Path, base: Path | None = None) -> str:
    """The README for the result files in ``folder``, its links relative to ``base`` (the
    README's folder; default: ``folder``'s parent)."""
    rel = Path(os.path.relpath(folder, base or folder.parent)).as_posix()
    results: dict[str, dict[str, Any]] = {}
    for path in sorted(folder.glob("*.json")):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except ValueError:
            continue
        if isinstance(data, dict):
            results[path.stem] = data
    names = [n for n in ORDER if n in results] + sorted(n for n in results if n not in ORDER)
    stems = list(results)
    sections = [section(n, results[n], folder, stems, rel) for n in names]
    index = "\n".join(f"| `{n}` | {title_of(n, results[n])} "
                      f"| {(results[n].get('machine') or {}).get('date') or results[n].get('created') or '-'} "
                      f"| {results[n].get('conditions') or 'not recorded'} |" for n in names)
    return f"""# greffier benchmarks

<!-- Generated by `greffier bench report` (benchmarks/report.py) from benchmarks/results/*.json.
Do not edit by hand: re-run the benchmark, then the report. -->

Figures measured on real audio by `greffier bench`. Latency figures depend on the machine and
on what else ran on it: each result says where, when and in what conditions it was measured.

## How to run

{RUN}

## Results

| result | what | measured | conditions |
|---|---|---|---|
{index}

{chr(10).join(s + chr(10) for s in sections)}
## Peers

{PEERS}

## Data sets

{DATASETS}

## Metrics

{METRICS}
"""


def write(folder: Path, readme: Path) -> Path:
    readme.write_text(render(folder, readme.parent), encoding="utf-8")
    return readme


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, default=HERE / "results")
    parser.add_argument("--readme", type=Path, default=HERE / "README.md")
    args = parser.parse_args(argv)
    print(write(args.results, args.readme))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
