"""``greffier bench``: the arguments, and where each sub-command runs.

``asr`` runs here (``evaluation.asr_bench``). ``streaming``, ``live``, ``diarization`` and
``capacity`` run the repository's benchmark modules (``python -m benchmarks.<name>`` from the
clone's root), which are not part of the installed package. They receive the model, language
and device as ``GREFFIER_ASR__MODEL``/``__LANGUAGE``/``__DEVICE`` in their environment, and
flags only for the options the user gave, named as the module declares them (``TRANSLATION``:
``--set``; ``--out`` -> ``--results-dir``; ``--runs`` -> ``--runs`` or ``--repeats``;
``--limit``; ``--conditions``; ``--language xx`` -> ``--languages xx`` for streaming and live;
``streaming --sweep``); a data set that is not a manifest is first written as one (``--set``
then names that manifest). Arguments after ``--`` are passed on unchanged. ``asr --set hard``
builds the hard set with the repository's ``benchmarks.hardset``. ``report`` regenerates
``benchmarks/README.md`` from the result files (``benchmarks.report``).
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from greffier.core.config import Settings
from greffier.core.errors import ConfigurationError
from greffier.core.text import language_code

SUBCOMMANDS = {
    "asr": "offline faster-whisper through greffier's offline path, WER/CER/RTF per clip",
    "streaming": "the streaming engine replayed in real time, beside offline Whisper and peers",
    "live": "live captions through the real LiveKit server: latency, WER, CPU",
    "diarization": "DER/JER, cpWER and speed of the diarization",
    "capacity": "how many real-time streams one engine holds",
}
REPORT_HELP = "write benchmarks/README.md from the result files (no benchmark is run)"
NAMED_SETS = ("shared", "hard")

DATA_HELP = (
    "data set: 'shared' (the shared clips), 'hard' (variants built from them at run time by "
    "the repository's benchmarks.hardset), a greffier manifest TSV, a LibriSpeech-style "
    "folder (*.trans.txt beside the audio), "
    "a Common Voice TSV (audio in clips/), an MLS split (transcripts.txt, audio/), or an "
    "AMI-style folder (*.rttm, audio named after the recording, optional .uem/.txt/.stm)"
)


def add_bench_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add ``bench`` and its sub-commands to the ``greffier`` parser."""
    bench = sub.add_parser(
        "bench", help="benchmarks: accuracy, latency, diarization, capacity", description=__doc__
    )
    kinds = bench.add_subparsers(dest="bench", required=True)
    for name, help_text in SUBCOMMANDS.items():
        p = kinds.add_parser(name, help=help_text, description=help_text)
        p.add_argument("--model", help="tiny.en, base, a faster-whisper id or a local directory")
        p.add_argument(
            "--language", help="force a language (en, fr...) or 'auto'; default: each clip's own"
        )
        p.add_argument("--device", choices=["auto", "cpu", "cuda"])
        p.add_argument("--set", "--data", dest="data", default=None, help=DATA_HELP)
        p.add_argument(
            "--out",
            type=Path,
            help="output folder (default: the repository's "
            "benchmarks/results, else ./bench-results)",
        )
        p.add_argument("--runs", type=int, help="repetitions (asr: timed runs per clip, median)")
        p.add_argument("--limit", type=int, help="only the first N items")
        p.add_argument(
            "--conditions",
            help="how the machine was during the run, written into the results "
            "('quiet machine', 'shared machine')",
        )
        if name == "streaming":
            p.add_argument(
                "--sweep",
                action="store_true",
                help="only the settings sweep (latency/WER trade-off) on a few clips",
            )
        if name == "diarization":
            p.add_argument(
                "--collar",
                type=float,
                help="DER/JER: seconds forgiven each side of a reference boundary (default 0.25)",
            )
        if name == "asr":
            p.add_argument("--name", default="asr", help="result file names: <name>.json/.md")
            p.add_argument("--no-progress", action="store_true")
        else:
            p.add_argument(
                "passthrough",
                nargs=argparse.REMAINDER,
                help="after --: arguments for the benchmark module itself",
            )
    report = kinds.add_parser("report", help=REPORT_HELP, description=REPORT_HELP)
    report.add_argument(
        "--results", type=Path, help="folder of the result JSON (default benchmarks/results)"
    )
    report.add_argument("--readme", type=Path, help="file to write (default benchmarks/README.md)")


def find_repository() -> Path | None:
    """The greffier clone holding ``benchmarks/`` (next to the package, else the current
    folder), or None when greffier is installed without it."""
    import greffier

    candidates = [Path(greffier.__file__).resolve().parents[1], Path.cwd()]
    for root in candidates:
        if (root / "benchmarks" / "__init__.py").is_file() and (root / "greffier").is_dir():
            return root
    return None


def _require_repository() -> Path:
    root = find_repository()
    if root is None:
        raise ConfigurationError(
            "the benchmarks/ folder of the greffier repository was not found",
            hint="run greffier bench from a clone of the repository (pip install -e . there); "
            "'greffier bench asr' works without it",
        )
    return root


def _default_out(root: Path | None) -> Path:
    return root / "benchmarks" / "results" if root is not None else Path("bench-results")


_OPTION = re.compile(r"""add_argument\(\s*["'](--[\w-]+)["']""")

TRANSLATION = {
    "data": ("--set",),
    "out": ("--results-dir", "--out"),
    "runs": ("--runs", "--repeats"),
    "limit": ("--limit",),
    "languages": ("--languages",),
    "conditions": ("--conditions",),
    "sweep": ("--sweep",),
    "collar": ("--collar",),
}
"""Our option -> the benchmark module's, first one it accepts."""


def accepted_options(root: Path, module: str) -> set[str] | None:
    """The ``--options`` a benchmark module declares (read from its source), or None when
    its source cannot be read."""
    try:
        source = (root / "benchmarks" / f"{module}.py").read_text(encoding="utf-8")
    except OSError:
        return None
    return set(_OPTION.findall(source))


def module_arguments(
    args: argparse.Namespace, root: Path, manifest: Path | None = None
) -> list[str]:
    """The command line that runs ``args.bench`` from the repository (see the module
    docstring for the translation). Raises ConfigurationError for an option the module does
    not take."""
    module = args.bench
    extra: list[str] = []
    if module == "capacity" and not (root / "benchmarks" / "capacity.py").is_file():
        module, extra = "streaming", ["--capacity-only", "--skip-peers", "--output", "capacity"]
    accepted = accepted_options(root, module)
    lang = (args.language or "").strip().lower()
    given = {
        "data": str(manifest) if manifest is not None else args.data,
        "out": None if args.out is None else str(args.out),
        "runs": None if args.runs is None else str(args.runs),
        "limit": None if args.limit is None else str(args.limit),
        "languages": lang if lang and lang != "auto" and module in ("streaming", "live") else None,
        "conditions": getattr(args, "conditions", None),
        "sweep": "" if getattr(args, "sweep", False) else None,
        "collar": None if getattr(args, "collar", None) is None else str(args.collar),
    }
    cmd = [sys.executable, "-m", f"benchmarks.{module}", *extra]
    for key, value in given.items():
        if value is None:
            continue
        names = TRANSLATION[key]
        flag = names[0] if accepted is None else next((n for n in names if n in accepted), None)
        if flag is None:
            option = {"data": "--set", "languages": "--language"}.get(key, f"--{key}")
            raise ConfigurationError(
                f"benchmarks.{module} has no option for {option}",
                hint=f"run greffier bench {args.bench} without it",
            )
        cmd += [flag, value] if value else [flag]
    rest = list(getattr(args, "passthrough", []) or [])
    if rest and rest[0] == "--":
        rest = rest[1:]
    return cmd + rest


def hard_set_manifest(root: Path, env: dict[str, str] | None = None) -> Path:
    """Build (or find up to date) the hard set with the repository's ``benchmarks.hardset``
    and return its manifest."""
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks.hardset"],
        cwd=root,
        env=env or _module_env(root),
        capture_output=True,
        text=True,
        check=False,
    )
    lines = out.stdout.strip().splitlines()
    if out.returncode != 0 or not lines or not Path(lines[-1]).is_file():
        raise ConfigurationError(
            "benchmarks.hardset could not build the hard set",
            hint="run python -m benchmarks.hardset in the repository",
        )
    return Path(lines[-1])


def _module_env(root: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(root), env.get("PYTHONPATH")) if p)
    return env


def _needs_manifest(data: str | None) -> bool:
    if data is None or data in NAMED_SETS:
        return False
    from greffier.evaluation.datasets import detect_layout

    return detect_layout(Path(data).expanduser()) != "manifest"


def run_bench(args: argparse.Namespace, settings: Settings) -> int:
    """Run ``greffier bench <kind>``; returns the exit status."""
    if args.bench == "asr":
        return _run_asr(args, settings)
    root = _require_repository()
    env = _module_env(root)
    if args.bench == "report":
        cmd = [sys.executable, "-m", "benchmarks.report"]
        if args.results is not None:
            cmd += ["--results", str(args.results)]
        if args.readme is not None:
            cmd += ["--readme", str(args.readme)]
        return subprocess.run(cmd, cwd=root, env=env, check=False).returncode
    with tempfile.TemporaryDirectory(prefix="greffier-bench-") as tmp:
        manifest = None
        # benchmarks.diarization reads every layout itself (RTTM, UEM and STM kept)
        if args.bench != "diarization" and _needs_manifest(args.data):
            from greffier.evaluation.datasets import load_dataset, write_manifest

            items = load_dataset(args.data, language=_forced(args.language))
            manifest = write_manifest(items, Path(tmp) / "manifest.tsv")
        cmd = module_arguments(args, root, manifest)
        print("greffier bench: " + " ".join(cmd[1:]), file=sys.stderr)
        return subprocess.run(cmd, cwd=root, env=env, check=False).returncode


def _forced(language: str | None) -> str | None:
    return language_code(language)


def _run_asr(args: argparse.Namespace, settings: Settings) -> int:
    from greffier.evaluation.asr_bench import AsrBenchOptions, run_asr_bench
    from greffier.evaluation.datasets import load_dataset

    data = args.data or "shared"
    spec: str | Path = data
    if data == "hard":
        spec = hard_set_manifest(_require_repository())
    items = load_dataset(
        spec,
        language=_forced(args.language),
        shared_root=settings.speech_data,
        kinds=("transcript",),
    )
    out = args.out or _default_out(find_repository())
    js, md = run_asr_bench(
        settings,
        items,
        AsrBenchOptions(
            data=data,
            out_dir=out,
            name=args.name,
            language=args.language,
            runs=args.runs or 1,
            limit=args.limit or 0,
            progress=not args.no_progress,
            conditions=args.conditions or "",
        ),
    )
    print(md.read_text(encoding="utf-8"))
    print(f"written: {js} {md}")
    return 0
