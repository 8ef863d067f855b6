"""Logging. Rule: transcript text and participant names or identities never go into logs;
log segment ids, track sids, counts and timings instead."""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import sys
import traceback
from collections.abc import Coroutine
from typing import Any, TypeVar

_ROOT = "greffier"
T = TypeVar("T")


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


def error_summary(error: BaseException, frames: int = 4) -> str:
    """An exception as logs may show it: its class and the last ``frames`` places it went
    through (file, line, function), never its message, which can quote transcript text or a
    name (a library's message included); the ``hint`` of greffier's own errors is kept."""
    stack = traceback.extract_tb(error.__traceback__)[-frames:]
    where = " < ".join(
        f"{os.path.basename(f.filename)}:{f.lineno} {f.name}" for f in reversed(stack)
    )
    hint = getattr(error, "hint", "")  # greffier's errors: what to do, in our own words
    what = (
        f"{type(error).__name__} ({hint})"
        if isinstance(hint, str) and hint
        else type(error).__name__
    )
    return f"{what} at {where}" if where else what


def log_task_exception(task: asyncio.Task[Any], logger: logging.Logger | None = None) -> None:
    """A done callback: log the exception a task ended with (:func:`error_summary`), so that no
    background task fails silently; a cancelled task is not a failure."""
    if task.cancelled():
        return
    error = task.exception()
    if error is not None:
        (logger or get_logger("tasks")).error(
            "task %s failed: %s", task.get_name(), error_summary(error)
        )


def spawn(
    coro: Coroutine[Any, Any, T],
    *,
    name: str,
    logger: logging.Logger | None = None,
    tasks: set[asyncio.Task[Any]] | None = None,
) -> asyncio.Task[T]:
    """Start ``coro`` as a task named ``name`` whose failure is logged
    (:func:`log_task_exception`); kept in ``tasks``, when given, until it ends (the event loop
    holds only weak references to tasks)."""
    task = asyncio.create_task(coro, name=name)
    task.add_done_callback(functools.partial(log_task_exception, logger=logger))
    if tasks is not None:
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    return task
