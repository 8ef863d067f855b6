"""The ``greffier`` command line. The top of the import graph: it alone imports ``agents``
and ``service``, lazily, per subcommand."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from greffier.core.config import Settings
from greffier.core.errors import GreffierError
from greffier.core.log import configure_logging


def _settings(args: argparse.Namespace) -> Settings:
    """Settings from the environment, with command-line overrides applied on top."""
    overrides = {
        "GREFFIER_ASR__MODEL": getattr(args, "model", None),
        "GREFFIER_ASR__LANGUAGE": getattr(args, "language", None),
        "GREFFIER_ASR__DEVICE": getattr(args, "device", None),
        "GREFFIER_AGENT__NAME": getattr(args, "agent_name", None),
        "GREFFIER_LIVEKIT__URL": getattr(args, "url", None),
        "GREFFIER_DIARIZATION__ENABLED": ("true" if getattr(args, "diarize", False) else None),
    }
    for key, value in overrides.items():
        if value is not None:
            os.environ[key] = str(value)
    return Settings()


def _add_asr_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", help="tiny.en, base, a faster-whisper id or a local directory")
    p.add_argument("--language", help="auto, or a language code such as fr or en")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"])


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="greffier", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="live captions of a recording through a local LiveKit room")
    demo.add_argument(
        "audio",
        nargs="?",
        type=Path,
        help="audio file to publish (default: pyannote.audio's sample.wav)",
    )
    demo.add_argument("--reference", type=Path, help="reference transcript for the WER")
    demo.add_argument("--worker-log", type=Path, help="write the worker's log to this file")
    demo.add_argument(
        "--shared-microphone",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="diarize the published track (default: on for the default "
        "two-speaker recording, off for a file given)",
    )
    _add_asr_args(demo)

    worker = sub.add_parser("worker", help="run the LiveKit agent worker")
    _add_asr_args(worker)
    worker.add_argument("--agent-name", help="agent name for explicit dispatch")
    worker.add_argument("--url", help="LiveKit server URL (ws://...)")
    worker.add_argument(
        "--diarize", action="store_true", help="split shared microphones into speakers"
    )

    models = sub.add_parser("models", help="Whisper models")
    models.add_argument("action", choices=["list"])

    lk = sub.add_parser("livekit-server", help="the local LiveKit server (loopback)")
    lk.add_argument("action", choices=["install", "start", "stop", "status"])

    tr = sub.add_parser("transcribe", help="transcribe recordings into minutes and subtitles")
    tr.add_argument("files", nargs="+", type=Path)
    tr.add_argument("--diarize", action="store_true", help="tell speakers apart")
    tr.add_argument(
        "--format", default="md,srt,vtt,json,rttm", help="comma-separated: md, srt, vtt, json, rttm"
    )
    tr.add_argument("--output-dir", type=Path, help="default: next to each input")
    tr.add_argument("--profile", default="default", help="caption line rules: default or fr-tv")
    _add_asr_args(tr)

    serve = sub.add_parser("serve", help="the HTTP service: minutes, transcription, caption page")
    serve.add_argument(
        "--host",
        default="127.0.0.1",
        help="beyond loopback only with GREFFIER_SERVICE__API_KEYS set and the "
        "deployment's LiveKit secret (refused otherwise)",
    )
    serve.add_argument("--port", type=int, default=8000)

    from greffier.evaluation.command import add_bench_parser

    add_bench_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = _settings(args)
        configure_logging(settings.log_level if args.command != "demo" else "WARNING")
        return _dispatch(args, settings)
    except GreffierError as e:
        print(f"greffier: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def _dispatch(args: argparse.Namespace, settings: Settings) -> int:
    if args.command == "models":
        from greffier.models.registry import list_models

        rows = list_models(settings.cache_dir)
        print(f"{'model':22} {'languages':13} {'available':9}  source / location")
        for row in rows:
            print(
                f"{row.name:22} {row.languages:13} {'yes' if row.available else 'no':9}  "
                f"{row.source}\n{'':46}{row.location}"
            )
        return 0
    if args.command == "livekit-server":
        from greffier.livekit import server

        cfg = server.ServerConfig(cache_dir=settings.cache_dir)
        if args.action == "install":
            print(server.install(cfg))
        elif args.action == "start":
            server.start(cfg)
            print(server.status(cfg))
        elif args.action == "stop":
            print("stopped" if server.stop(cfg) else "not running")
        else:
            print(server.status(cfg))
        return 0
    if args.command == "worker":
        from greffier.agents.worker import run_worker

        return run_worker(settings)
    if args.command == "demo":
        from greffier.demo import run_demo

        return asyncio.run(
            run_demo(
                settings,
                args.audio,
                reference=args.reference,
                worker_log=args.worker_log,
                shared_microphone=args.shared_microphone,
            )
        )
    if args.command == "transcribe":
        from greffier.recordings import run_transcribe

        return run_transcribe(
            settings,
            args.files,
            formats=args.format.split(","),
            diarize=args.diarize,
            output_dir=args.output_dir,
            profile=args.profile,
        )
    if args.command == "bench":
        from greffier.evaluation.command import run_bench

        return run_bench(args, settings)
    if args.command == "serve":
        from greffier.service.app import serve

        return serve(settings, host=args.host, port=args.port)
    raise AssertionError(args.command)
