"""``greffier bench``: light imports, argument translation, resource meters."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from greffier.cli import build_parser
from greffier.core.errors import ConfigurationError
from greffier.evaluation.command import find_repository, module_arguments
from greffier.evaluation.resources import ResourceMeter, library_versions, machine

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]


def test_importing_evaluation_loads_no_scoring_library_or_model() -> None:
    code = (
        "import sys, greffier.evaluation, greffier.evaluation.normalize, "
        "greffier.evaluation.metrics, greffier.evaluation.latency, greffier.evaluation.datasets, "
        "greffier.evaluation.resources, greffier.evaluation.asr_bench, "
        "greffier.evaluation.command\n"
        "heavy = [m for m in ('jiwer', 'meeteval', 'whisper_normalizer', 'text_to_num', "
        "'pyannote', 'torch', 'faster_whisper', 'ctranslate2', 'tqdm', 'av') "
        "if m in sys.modules]\n"
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def parse(*argv: str):
    return build_parser().parse_args(["bench", *argv])


def fake_benchmarks(root: Path, **modules: str) -> Path:
    (root / "benchmarks").mkdir(parents=True, exist_ok=True)
    for name, options in modules.items():
        (root / "benchmarks" / f"{name}.py").write_text("\n".join(
            f'parser.add_argument("{o}", type=int)' for o in options.split()))
    return root


def test_bench_options_reach_the_benchmark_modules(tmp_path: Path) -> None:
    root = fake_benchmarks(tmp_path, streaming="--set --results-dir --limit --languages",
                           live="--set --runs --languages", diarization="--repeats")
    args = parse("streaming", "--set", "hard", "--language", "fr", "--out", "/tmp/o",
                 "--limit", "4", "--", "--skip-peers")
    assert module_arguments(args, root) == [
        sys.executable, "-m", "benchmarks.streaming", "--set", "hard", "--results-dir", "/tmp/o",
        "--limit", "4", "--languages", "fr", "--skip-peers"]
    args = parse("live", "--data", "shared", "--model", "base", "--language", "auto",
                 "--runs", "3")
    assert module_arguments(args, root) == [sys.executable, "-m", "benchmarks.live",
                                            "--set", "shared", "--runs", "3"]
    args = parse("diarization", "--runs", "2", "--language", "en")
    assert module_arguments(args, root)[2:] == ["benchmarks.diarization", "--repeats", "2"]
    # an option the module does not declare is an error that names it
    with pytest.raises(ConfigurationError, match="benchmarks.diarization has no option for --set"):
        module_arguments(parse("diarization", "--data", "/x/ami"), root, Path("/t/m.tsv"))
    with pytest.raises(ConfigurationError, match="--runs"):
        module_arguments(parse("streaming", "--runs", "2"), root)


def test_the_real_benchmark_modules_take_the_set_option() -> None:
    args = parse("live", "--set", "hard", "--out", "/tmp/o")
    assert module_arguments(args, REPO)[3:] == ["--set", "hard", "--results-dir", "/tmp/o"]
    args = parse("streaming", "--set", "shared", "--limit", "2")
    assert module_arguments(args, REPO)[3:] == ["--set", "shared", "--limit", "2"]


def test_capacity_runs_its_own_module_or_the_streaming_one(tmp_path: Path) -> None:
    (tmp_path / "benchmarks").mkdir()
    cmd = module_arguments(parse("capacity"), tmp_path)
    assert cmd[2:] == ["benchmarks.streaming", "--capacity-only", "--skip-peers",
                       "--output", "capacity"]
    (tmp_path / "benchmarks" / "capacity.py").write_text("")
    assert module_arguments(parse("capacity"), tmp_path)[2:] == ["benchmarks.capacity"]


def test_the_repository_is_found() -> None:
    assert find_repository() == REPO


def test_asr_options() -> None:
    args = parse("asr", "--data", "x", "--runs", "2", "--device", "cpu", "--name", "asr_x")
    assert (args.bench, args.data, args.runs, args.device, args.name) == (
        "asr", "x", 2, "cpu", "asr_x")
    with pytest.raises(SystemExit):
        parse("asr", "--device", "tpu")


def test_resource_meter_counts_cpu_and_wall_time() -> None:
    with ResourceMeter() as m:
        end = time.process_time() + 0.2
        while time.process_time() < end:
            pass
        time.sleep(0.1)
    u = m.usage
    assert u is not None
    # process CPU time counts every thread (the meter's sampler too), so the busy loop can end
    # in a little less than 0.2 s of wall time: the sleep alone is certain.
    assert u.cpu_s >= 0.2 and u.wall_s >= 0.1 + 0.15 and u.peak_rss_mb > 0
    assert u.per_audio_second(2.0)["rtf"] == pytest.approx(u.wall_s / 2)


def test_machine_and_versions() -> None:
    info = machine()
    assert info["cores"] and info["memory_mb"] and info["cpu"]
    versions = library_versions()
    assert versions["jiwer"] and versions["whisper-normalizer"] == "0.1.15"
    assert library_versions(("no-such-package-xyz",)) == {"no-such-package-xyz": None}


def test_bench_runs_the_repository_module_with_a_converted_data_set(tmp_path: Path) -> None:
    chapter = tmp_path / "ls" / "1" / "2"
    chapter.mkdir(parents=True)
    (chapter / "1-2-0000.wav").write_bytes(b"")
    (chapter / "1-2.trans.txt").write_text("1-2-0000 HELLO\n")
    run = subprocess.run(
        [sys.executable, "-m", "greffier", "bench", "streaming", "--data", str(tmp_path / "ls"),
         "--", "--help"], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert "usage:" in run.stdout and "--set" in run.stdout
    command = next(line for line in run.stderr.splitlines() if line.startswith("greffier bench"))
    assert "-m benchmarks.streaming --set " in command and command.endswith("manifest.tsv --help")


def test_conditions_sweep_and_capacity_reach_the_streaming_module() -> None:
    args = parse("streaming", "--sweep", "--conditions", "shared machine")
    assert module_arguments(args, REPO)[3:] == ["--conditions", "shared machine", "--sweep"]
    args = parse("capacity", "--conditions", "quiet machine", "--out", "/tmp/o")
    assert module_arguments(args, REPO)[2:] == [
        "benchmarks.streaming", "--capacity-only", "--skip-peers", "--output", "capacity",
        "--results-dir", "/tmp/o", "--conditions", "quiet machine"]
    args = parse("live", "--conditions", "shared machine")
    assert module_arguments(args, REPO)[3:] == ["--conditions", "shared machine"]
    report = parse("report", "--results", "/r", "--readme", "/r/README.md")
    assert (report.bench, report.results, report.readme) == (
        "report", Path("/r"), Path("/r/README.md"))
