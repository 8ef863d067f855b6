"""Background tasks never fail silently, and their failures never log transcript text: a task
started with ``core.log.spawn`` logs the class of what it raised and where, not the message."""

from __future__ import annotations

import asyncio
import logging
import re
from pathlib import Path
from typing import Any

import pytest

from greffier.core.errors import ConfigurationError
from greffier.core.log import error_summary, get_logger, spawn

pytestmark = pytest.mark.unit

SECRET = "Alice said the merger closes on Friday"
AGENTS = Path(__file__).resolve().parents[2] / "greffier" / "agents"


async def fails() -> None:
    await asyncio.sleep(0)
    raise ValueError(SECRET)


async def test_a_failing_task_logs_its_class_and_place_not_its_message(
    caplog: pytest.LogCaptureFixture,
) -> None:
    tasks: set[asyncio.Task[Any]] = set()
    logger = get_logger("test.tasks")
    with caplog.at_level(logging.ERROR, logger="greffier"):
        task = spawn(fails(), name="greffier-test-TR_1", logger=logger, tasks=tasks)
        assert task in tasks
        await asyncio.wait([task])
        await asyncio.sleep(0)  # done callbacks run on the next loop turn
    assert not tasks, "a finished task is no longer held"
    [record] = caplog.records
    assert record.name == "greffier.test.tasks"
    message = record.getMessage()
    assert "greffier-test-TR_1" in message and "ValueError" in message
    assert re.search(r"test_task_logging\.py:\d+ fails", message), message
    assert SECRET not in caplog.text and record.exc_info is None
    with pytest.raises(ValueError):  # whoever awaits it still gets the exception
        task.result()


async def test_cancelled_and_successful_tasks_log_nothing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.DEBUG, logger="greffier"):
        ok = spawn(asyncio.sleep(0, result=3), name="ok")
        waiting = spawn(asyncio.Event().wait(), name="waiting")
        await asyncio.sleep(0)
        waiting.cancel()
        await asyncio.wait([ok, waiting])
        await asyncio.sleep(0)
    assert ok.result() == 3 and waiting.cancelled()
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_error_summary_keeps_greffier_hints_and_drops_messages() -> None:
    try:
        raise ConfigurationError(f"unknown profile {SECRET!r}", hint="choose default or fr-tv")
    except ConfigurationError as e:
        summary = error_summary(e)
    assert summary.startswith("ConfigurationError (choose default or fr-tv) at test_task_logging")
    assert SECRET not in summary
    assert error_summary(KeyError(SECRET)) == "KeyError"  # never raised: no place to tell


def test_every_task_the_agents_start_goes_through_spawn() -> None:
    for path in AGENTS.glob("*.py"):
        source = path.read_text()
        assert "create_task(" not in source and "ensure_future(" not in source, path.name
