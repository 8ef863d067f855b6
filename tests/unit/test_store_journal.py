"""Finals on their way to the store (real SQLite files): journaled before they are published,
stored in order by each room's own writer, retried while the store fails, replayed after a
crash, never doubled, and never logged with their text, names or identities."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import sqlite3
import time
from pathlib import Path

import pytest

from greffier.agents.meeting import (
    FinalJournal,
    MeetingRecorder,
    journal_folder,
    read_journal,
    segment_of,
)
from greffier.core.config import Settings, StoreSettings
from greffier.core.types import CaptionUpdate, Speaker, Word
from greffier.store.sql import TranscriptStore

pytestmark = pytest.mark.unit

SECRET_TEXT = "la réunion secrète commence à minuit"
SECRET_NAME = "Zoé Confidentielle"
SECRET_IDENTITY = "identity-secret-42"


def settings_for(tmp_path: Path, name: str = "store", **store: float) -> Settings:
    return Settings(data_dir=tmp_path / name, store=StoreSettings(
        url=f"sqlite:///{tmp_path / name / 'greffier.db'}",
        **{"retry_max_s": 0.2, "flush_timeout_s": 10.0, **store}))


def final(k: int) -> CaptionUpdate:
    text = f"{SECRET_TEXT} ({k})"
    return CaptionUpdate(
        segment_id=f"TR_a-e1-{k}", speaker=Speaker(SECRET_IDENTITY, SECRET_NAME),
        track_sid="TR_a", language="fr", start=2.0 * k, end=2.0 * k + 1.5, text=text,
        final=True, words=(Word(2.0 * k, 2.0 * k + 1.5, " " + text),))


def db_path(settings: Settings) -> str:
    return settings.store_url.removeprefix("sqlite:///")


def break_store(settings: Settings) -> None:
    with sqlite3.connect(db_path(settings)) as conn:
        conn.execute("ALTER TABLE greffier_segments RENAME TO greffier_segments_gone")


def repair_store(settings: Settings) -> None:
    with sqlite3.connect(db_path(settings)) as conn:
        conn.execute("ALTER TABLE greffier_segments_gone RENAME TO greffier_segments")


def stored_texts(settings: Settings, meeting_id: str) -> list[str]:
    store = TranscriptStore(settings.store_url)
    try:
        return [s.text for s in store.segments_of(meeting_id)]
    finally:
        store.close()


async def test_finals_are_stored_in_order_and_the_journal_emptied(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    rec = await MeetingRecorder.open(settings, "salle")
    for k in range(6):
        await rec.on_final(final(k))
    assert await rec.flush(5.0)
    assert stored_texts(settings, rec.meeting.id) == [final(k).text for k in range(6)]
    assert rec.journal.path.stat().st_size == 0 and rec.pending == 0
    await rec.aclose()
    assert not rec.journal.path.exists()


async def test_a_failing_store_delays_no_caption_loses_no_final_and_logs_no_text(
    tmp_path: Path, caplog
) -> None:
    caplog.set_level(logging.DEBUG)
    settings = settings_for(tmp_path)
    rec = await MeetingRecorder.open(settings, "salle")
    break_store(settings)
    for k in range(5):
        started = time.monotonic()
        await rec.on_final(final(k))  # then the caption is published
        assert time.monotonic() - started < 0.5
        journaled = [s.text for _, s in read_journal(rec.journal.path)]
        assert journaled == [final(j).text for j in range(k + 1)], "journaled before it returns"
    await asyncio.sleep(1.0)
    assert rec.failures >= 2 and rec.pending == 5
    repair_store(settings)
    assert await rec.flush(10.0)
    assert stored_texts(settings, rec.meeting.id) == [final(k).text for k in range(5)]
    assert rec.journal.path.stat().st_size == 0
    await rec.aclose()
    assert "storing" in caplog.text and "failed" in caplog.text
    for secret in (SECRET_TEXT, SECRET_NAME, SECRET_IDENTITY, "minuit"):
        assert secret not in caplog.text


async def test_a_slow_room_does_not_stall_another(tmp_path: Path) -> None:
    slow, quick = settings_for(tmp_path, "slow"), settings_for(tmp_path, "quick")
    rec_slow = await MeetingRecorder.open(slow, "slow-room")
    rec_quick = await MeetingRecorder.open(quick, "quick-room")
    locker = sqlite3.connect(db_path(slow), timeout=0, isolation_level=None)
    locker.execute("BEGIN EXCLUSIVE")  # the slow room's writes wait for the lock (5 s each)
    try:
        await rec_slow.on_final(final(0))
        await asyncio.sleep(0.2)
        started = time.monotonic()
        for k in range(3):
            await rec_quick.on_final(final(k))
        assert await rec_quick.flush(2.0)
        assert time.monotonic() - started < 1.5
        assert rec_slow.pending == 1
    finally:
        locker.execute("ROLLBACK")
        locker.close()
    assert await rec_slow.flush(15.0)
    assert stored_texts(slow, rec_slow.meeting.id) == [final(0).text]
    assert len(stored_texts(quick, rec_quick.meeting.id)) == 3
    await rec_slow.aclose()
    await rec_quick.aclose()


async def test_a_journal_left_by_a_dead_worker_is_replayed_once_at_the_next_start(
    tmp_path: Path
) -> None:
    settings = settings_for(tmp_path)
    dead = await MeetingRecorder.open(settings, "salle")
    break_store(settings)
    for k in range(4):
        await dead.on_final(final(k))
    # The worker dies: its writer stops, its journal (and the lock on it) stays behind.
    assert dead._writer is not None
    dead._writer.cancel()
    dead.journal._file.close()
    from greffier.agents import meeting as meeting_module

    meeting_module._claimed.discard(dead.journal.path)
    repair_store(settings)
    TranscriptStore(settings.store_url).add_segment(
        dead.meeting.id, meeting_module.segment_of(final(0)))  # one made it before the crash
    other = await MeetingRecorder.open(settings, "another-room")
    assert stored_texts(settings, dead.meeting.id) == [final(k).text for k in range(4)]
    assert not dead.journal.path.exists()
    again = await MeetingRecorder.open(settings, "salle")
    assert again.meeting.id == dead.meeting.id, "the live record goes on"
    assert stored_texts(settings, dead.meeting.id) == [final(k).text for k in range(4)]
    await other.aclose()
    await again.aclose()


async def test_the_journal_is_bounded_and_counts_what_it_could_not_keep(
    tmp_path: Path, caplog
) -> None:
    caplog.set_level(logging.WARNING)
    settings = settings_for(tmp_path, journal_max_mb=1500 / 2**20)  # room for 2-3 finals
    rec = await MeetingRecorder.open(settings, "salle")
    break_store(settings)
    for k in range(8):
        await rec.on_final(final(k))
    kept = len(read_journal(rec.journal.path))
    assert 1 <= kept < 8 and rec.journal.overflow == 8 - kept
    assert rec.journal.size <= 1500
    assert "journal is full" in caplog.text and "1 final(s) wait in memory" in caplog.text
    repair_store(settings)
    assert await rec.flush(10.0)  # the overflow waited in memory and is stored too
    assert stored_texts(settings, rec.meeting.id) == [final(k).text for k in range(8)]
    await rec.aclose()
    assert f"{8 - kept} final(s) were not journaled" in caplog.text


async def test_minutes_while_the_store_is_down_hold_the_unstored_finals(
    tmp_path: Path
) -> None:
    settings = settings_for(tmp_path, flush_timeout_s=0.5)
    rec = await MeetingRecorder.open(settings, "salle")
    await rec.on_final(final(0))
    assert await rec.flush(5.0)
    break_store(settings)
    await rec.on_final(final(1))
    paths = await rec.write_minutes(end=False)
    md = next(p for p in paths if p.suffix == ".md").read_text()
    assert "(1)" in md  # from memory
    repair_store(settings)
    assert await rec.flush(10.0)
    assert len(stored_texts(settings, rec.meeting.id)) == 2
    await rec.aclose()


async def test_a_final_the_database_refuses_is_set_aside_not_retried_forever(
    tmp_path: Path, caplog
) -> None:
    caplog.set_level(logging.WARNING)
    settings = settings_for(tmp_path)
    rec = await MeetingRecorder.open(settings, "salle")
    bad = dataclasses.replace(final(1), speaker=Speaker(None, SECRET_NAME))  # type: ignore[arg-type]
    for update in (final(0), bad, final(2)):
        await rec.on_final(update)
    assert await rec.flush(5.0)
    assert stored_texts(settings, rec.meeting.id) == [final(0).text, final(2).text]
    assert rec.rejected == 1 and rec.journal.path.stat().st_size == 0
    aside = read_journal(rec.journal.path.with_suffix(".rejected"))
    assert [s.segment_id for _, s in aside] == [bad.segment_id]
    assert "refuses final TR_a-e1-1" in caplog.text and SECRET_NAME not in caplog.text
    await rec.aclose()


async def test_a_replayed_journal_with_a_refused_entry_stores_the_rest(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    first = await MeetingRecorder.open(settings, "salle")
    await first.aclose()
    path = journal_folder(settings) / f"{first.meeting.id}.jsonl"
    journal = FinalJournal(path, first.meeting.id, 1 << 20)
    bad = dataclasses.replace(final(1), speaker=Speaker(None, SECRET_NAME))  # type: ignore[arg-type]
    for update in (final(0), bad, final(2)):
        journal.append(segment_of(update))
    journal._file.close()  # the worker died
    other = await MeetingRecorder.open(settings, "another-room")
    assert stored_texts(settings, first.meeting.id) == [final(0).text, final(2).text]
    assert not path.exists()
    aside = read_journal(path.with_suffix(".rejected"))
    assert [s.segment_id for _, s in aside] == [bad.segment_id]
    await other.aclose()
