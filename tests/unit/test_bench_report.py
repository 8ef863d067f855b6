"""benchmarks/README.md is generated from the result files: small fixtures, known output."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from benchmarks.report import kind_of, main, render

pytestmark = pytest.mark.unit

MACHINE = {"cpu": "Test CPU", "cores": 2, "gpu": None, "date": "2026-12-01T10:00:00+00:00"}


def write(folder: Path, name: str, data: dict[str, Any], *pngs: str) -> None:
    (folder / f"{name}.json").write_text(json.dumps(data))
    (folder / f"{name}.md").write_text("# table\n")
    for png in pngs:
        (folder / png).write_bytes(b"\x89PNG")


def fixtures(folder: Path) -> None:
    folder.mkdir()
    write(folder, "asr", {
        "benchmark": "asr (offline, greffier.asr.offline)", "created": "2026-12-01T09:00:00+00:00",
        "conditions": "shared machine", "machine": {"cpu": "Test CPU", "cores": 2},
        "model": {"name": "base", "sha256": "d01c3014881c9c6f"},
        "command": ".venv/bin/greffier bench asr --data shared",
        "summary": {"all": {"clips": 3, "wer": 0.1, "wer_raw": 0.2, "cer": 0.05, "rtf": 0.123,
                            "cpu_s_per_audio_s": 0.2},
                    "by_language": {"en": {"clips": 3, "wer": 0.1, "wer_raw": 0.2, "cer": 0.05,
                                           "rtf": 0.123, "cpu_s_per_audio_s": 0.2}}},
        "plots": {"WER per clip": "asr_wer.png"}}, "asr_wer.png")
    write(folder, "streaming", {
        "benchmark": "streaming", "set": "shared", "machine": MACHINE,
        "conditions": "shared machine", "model": "base",
        "model_info": {"name": "base", "sha256": "abcdef0123456789"},
        "command": "flock /tmp/greffier-heavy.lock .venv/bin/python -m benchmarks.streaming",
        "systems": {
            "greffier": {"wer": 0.116, "wer_normalised": 0.101,
                         "first_interim_latency_p50_s": 0.72, "final_latency_p50_s": 0.78,
                         "final_latency_p95_s": 1.26},
            "whisperlive": {"wer": 0.123, "first_interim_latency_p50_s": 1.69,
                            "final_latency_p50_s": 14.01, "final_latency_p95_s": 19.56,
                            "carried_over": {"date": "2026-11-28T19:02:01+00:00", "clips": 32}},
            "whisperlivekit": {"error": "not installed"}},
        "plots": {"latency CDFs per system": "streaming_latency.png",
                  "missing": "streaming_gone.png"}}, "streaming_latency.png")
    write(folder, "streaming_sweep", {
        "benchmark": "streaming sweep", "set": "shared", "machine": MACHINE, "clips": 2,
        "clip_ids": ["jfk", "fleurs-fr-003"],
        "points": [{"label": "default", "wer": 0.12, "wer_normalised": 0.1,
                    "first_interim_latency_p50_s": 0.7, "final_latency_p50_s": 0.8,
                    "final_latency_p95_s": 1.2}]})
    write(folder, "capacity", {
        "benchmark": "capacity", "machine": MACHINE, "systems": {},
        "capacity": {"max_realtime_streams": 2, "rss_per_stream_mb": 6.7,
                     "runs": [{"streams": 1, "final_latency_p50_s": 0.8,
                               "final_latency_p95_s": 1.3, "peak_rss_mb": 370.0}]}},
          "capacity.png")
    write(folder, "live", {"set": "shared", "runs": [{}], "machine": MACHINE, "clips": 35,
                           "final_latency_p50_s": 1.62, "final_latency_p95_s": 2.94,
                           "wer_finals": 0.146}, "live.png")
    write(folder, "live_hard", {"set": "hard", "runs": [{}], "machine": MACHINE}, "live_hard.png")
    write(folder, "diarization", {"der_live": {"mean": 0.2683, "per_file": {}}, "run_s": 196,
                                  "machine": MACHINE})
    (folder / "broken.json").write_text("{not json")


def test_the_readme_is_rendered_from_the_result_files(tmp_path: Path) -> None:
    folder = tmp_path / "results"
    fixtures(folder)
    text = render(folder)
    # sections in the documented order, with machine, date, conditions and the command
    order = [text.index(f"(`{n}`)") for n in
             ("asr", "streaming", "streaming_sweep", "capacity", "live", "live_hard",
              "diarization")]
    assert order == sorted(order)
    assert "Measured 2026-12-01T09:00:00+00:00 on 2 cores (Test CPU); conditions: " \
        "**shared machine**; model `base` (sha256 d01c3014881c)." in text
    assert "    .venv/bin/greffier bench asr --data shared" in text
    # tables from the figures
    assert "| en | 3 | 10.0 % | 20.0 % | 5.0 % | 0.123 | 0.200 |" in text
    assert "| greffier | 11.6 % | 10.1 % | 0.72 s | 0.78 s | 1.26 s |  |" in text
    assert "measured 2026-11-28T19:02:01+00:00 on 32 clips, not re-run" in text
    assert "| whisperlivekit | - | - | - | - | - | not installed |" in text
    assert "| default | 10.0 % | 12.0 % | 0.70 s | 0.80 s | 1.20 s |" in text
    assert "streams with the p95 final <= 2 s: **2**" in text
    assert "| der_live (mean) | 0.2683 |" in text and "| run_s | 196 |" in text
    # plots: relative links, only files that exist, each PNG under its own result
    assert "![latency CDFs per system](results/streaming_latency.png)" in text
    assert "streaming_gone.png" not in text
    assert "![WER per clip](results/asr_wer.png)" in text
    assert "![capacity](results/capacity.png)" in text
    assert text.count("](results/live_hard.png)") == 1
    assert "![live](results/live.png)" in text
    # how to run, and the peers
    assert "`greffier bench streaming --set shared --sweep`" in text
    assert "`whisper-live` 0.10.0" in text and "peers/README.md" in text


def test_the_generator_is_deterministic(tmp_path: Path) -> None:
    folder = tmp_path / "results"
    fixtures(folder)
    readme = tmp_path / "README.md"
    assert main(["--results", str(folder), "--readme", str(readme)]) == 0
    first = readme.read_bytes()
    assert main(["--results", str(folder), "--readme", str(readme)]) == 0
    assert readme.read_bytes() == first == render(folder).encode()


def test_kinds() -> None:
    assert kind_of("x", {"benchmark": "asr (offline)"}) == "asr"
    assert kind_of("streaming_gpu", {"systems": {}, "capacity": {"runs": []}}) == "capacity"
    assert kind_of("streaming", {"systems": {"greffier": {}}}) == "streaming"
    assert kind_of("live_x", {"runs": []}) == "live"
    assert kind_of("misc", {"a": 1}) == "other"
