"""Logging. Rule: transcript text and participant names or identities never go into logs;
log segment ids, track sids, counts and timings instead."""

from __future__ import annotations

import logging
import sys

_ROOT = "greffier"


def get_logger(name: str) -> logging.Logger:
    """A logger under the ``greffier`` namespace."""
    return logging.getLogger(name if name.startswith(_ROOT) else f"{_ROOT}.{name}")


def configure_logging(level: str = "INFO") -> None:
    """Plain stderr logging for command-line entry points (idempotent)."""
    root = logging.getLogger()
    if not any(getattr(h, "_greffier", False) for h in root.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        handler._greffier = True  # type: ignore[attr-defined]
        root.addHandler(handler)
    root.setLevel(level)
    for noisy in ("httpx", "httpcore", "urllib3", "asyncio"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
