"""Decoding yields the CPU to the threads that move audio and captions.

On a saturated machine the LiveKit SDK's threads (they receive every track's audio and send
the captions) and decoding compete for the same cores; a caption stuck behind a decode is late
for everyone, while a decode that waits a few milliseconds costs little. So the threads that
decode (the engine's scheduler and the model's own) run at a lower priority (Linux
niceness). Measured on 2 cores with 20 tracks: see ``benchmarks/results/reliability.json``.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator
from pathlib import Path

from greffier.core.log import get_logger

logger = get_logger("core.priority")

DECODE_NICENESS = 5
"""How far below the process's other threads decoding runs."""

_TASKS = Path("/proc/self/task")


def lower_thread_priority(tid: int | None = None, niceness: int = DECODE_NICENESS) -> bool:
    """Lower one thread's priority (the calling thread by default); whether it could."""
    try:
        os.setpriority(os.PRIO_PROCESS, tid or threading.get_native_id(), niceness)
    except (AttributeError, OSError) as e:  # not Linux, or not allowed: as before
        logger.info("a decoding thread keeps the default priority (%s)", type(e).__name__)
        return False
    return True


def _thread_ids() -> set[int]:
    try:
        return {int(t) for t in os.listdir(_TASKS)}
    except OSError:
        return set()


@contextlib.contextmanager
def new_threads_lowered(niceness: int = DECODE_NICENESS) -> Iterator[None]:
    """Lower the priority of the threads started inside the block (a model's own)."""
    before = _thread_ids()
    yield
    for tid in sorted(_thread_ids() - before):
        lower_thread_priority(tid, niceness)
