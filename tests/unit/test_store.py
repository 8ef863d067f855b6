"""The transcript store on SQLite and on a real PostgreSQL cluster: schema versions and
migrations, one live record per room under a two-process race, segment upserts, stale
records, and errors that carry no transcript, name or identity."""

from __future__ import annotations

import logging
import multiprocessing
import random
import threading
import time
import traceback
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from greffier.core.errors import StoreError, StoreSchemaError
from greffier.core.types import Speaker, TranscriptSegment, Word
from greffier.store.sql import (
    BASELINE_REVISION,
    TranscriptStore,
    engine_for,
    full_metadata,
    schema_head,
    schema_version,
    upgrade_schema,
)
from tests import postgres

pytestmark = pytest.mark.unit

SECRET_TEXT = "the launch code is 0000 zebra"
SECRET_NAME = "Zoé Secretname"
SECRET_IDENTITY = "identity-7f3c-secret"


@pytest.fixture(scope="module")
def pg_server() -> Iterator[str]:
    if not postgres.enabled():
        pytest.skip("GREFFIER_TEST_POSTGRES=0: PostgreSQL left out on purpose")
    with postgres.cluster() as server:
        yield server


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.db'}"
    return postgres.new_database(request.getfixturevalue("pg_server"))


ALICE = Speaker("alice", "Alice")


def seg(sid: str, text: str = "Bonjour.", start: float = 0.0,
        speaker: Speaker = ALICE) -> TranscriptSegment:
    return TranscriptSegment(sid, speaker, start, start + 1.0, text, "fr",
                             (Word(start, start + 1.0, " " + text),), track_sid="TR_a")


def test_a_new_store_is_at_the_newest_schema_and_matches_the_code(url: str) -> None:
    store = TranscriptStore(url)
    assert store.schema == schema_head() == schema_version(store.engine) == "0002_live_unique"
    with store.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), full_metadata())
        assert diff == [], "the migrations and the tables in the code differ"
        inspector = sa.inspect(conn)
        assert set(inspector.get_table_names()) >= {
            "alembic_version", "greffier_meetings", "greffier_segments", "greffier_jobs"}
        indexes = {i["name"]: i for i in inspector.get_indexes("greffier_meetings")}
        assert indexes["uq_greffier_meetings_live_room"]["unique"]
        assert inspector.get_pk_constraint("greffier_segments")["constrained_columns"] == [
            "meeting_id", "id"]
    store.close()
    assert TranscriptStore(url).schema == "0002_live_unique"  # reopening changes nothing


def _old_schema(url: str) -> None:
    """The tables greffier 0.1 created (the baseline revision, no version table), with two
    live records of a room."""
    engine = engine_for(url)
    assert upgrade_schema(engine, BASELINE_REVISION) == BASELINE_REVISION
    with engine.begin() as conn:
        conn.execute(sa.text("DROP TABLE alembic_version"))
    md = sa.MetaData()
    md.reflect(engine)
    meetings, segments = md.tables["greffier_meetings"], md.tables["greffier_segments"]
    with engine.begin() as conn:
        conn.execute(meetings.insert(), [
            {"id": "old", "room": "salle", "title": "t", "started_at": 100.0, "ended_at": None},
            {"id": "new", "room": "salle", "title": "t", "started_at": 200.0, "ended_at": None},
            {"id": "done", "room": "salle", "title": "t", "started_at": 50.0, "ended_at": 60.0},
        ])
        conn.execute(segments.insert(), [
            {"id": f"s{k}", "meeting_id": m, "speaker_identity": "a", "speaker_name": "A",
             "speaker_label": None, "track_sid": "TR", "start": float(k), "end": k + 1.0,
             "language": "fr", "text": f"phrase {k}", "words": "[]", "created_at": 150.0 + k}
            for k, m in enumerate(["old", "new", "new", "done"])
        ])
    engine.dispose()


def test_a_store_of_the_previous_schema_is_adopted_and_upgraded(url: str, caplog) -> None:
    _old_schema(url)
    caplog.set_level(logging.INFO, logger="greffier")
    store = TranscriptStore(url)
    assert BASELINE_REVISION in caplog.text and store.schema == schema_head()
    meetings = {m.id: m for m in store.list_meetings("salle")}
    assert [m.id for m in meetings.values() if m.live] == ["new"]  # one live record per room
    assert meetings["old"].ended_at == 150.0  # closed at its last activity
    assert meetings["new"].active_at == 152.0 and meetings["done"].ended_at == 60.0
    assert [s.text for s in store.segments_of("new")] == ["phrase 1", "phrase 2"]
    store.add_segment("new", seg("s1", "phrase 1, corrected"))
    assert [s.text for s in store.segments_of("new")] == ["phrase 1, corrected", "phrase 2"]
    assert store.open_meeting("salle").id == "new"


def test_a_store_of_a_newer_schema_is_refused(url: str) -> None:
    TranscriptStore(url).close()
    engine = engine_for(url)
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE alembic_version SET version_num = '0099_future'"))
    engine.dispose()
    with pytest.raises(StoreSchemaError, match="0099_future.*0002_live_unique") as err:
        TranscriptStore(url)
    assert "GREFFIER_STORE__URL" in str(err.value)


def test_the_database_refuses_a_second_live_record_for_a_room(url: str) -> None:
    store = TranscriptStore(url)
    live = store.open_meeting("salle", now=1000.0)
    with pytest.raises(sa.exc.IntegrityError), store.engine.begin() as conn:
        conn.execute(store.meetings.insert().values(
            id="intruder", room="salle", title="t", started_at=1001.0, ended_at=None))
    store.end_meeting(live.id, now=1100.0)
    with store.engine.begin() as conn:  # ended records do not count
        conn.execute(store.meetings.insert().values(
            id="next", room="salle", title="t", started_at=1200.0, ended_at=None))
    assert store.open_meeting("salle").id == "next"


def _race(url: str, rooms: list[str], seed: int, barrier: Any, out: Any) -> None:
    barrier.wait()
    store = TranscriptStore(url)  # the schema is created by whichever process comes first
    got: dict[str, str] = {}

    def opener(k: int) -> None:
        order = rooms[:]
        random.Random(seed * 10 + k).shuffle(order)
        for room in order:
            got[f"{room}/{k}"] = store.open_meeting(room).id

    threads = [threading.Thread(target=opener, args=(k,)) for k in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    out.put(got)


def test_two_processes_racing_open_one_live_record_per_room(url: str) -> None:
    rooms = [f"room-{k}" for k in range(30)]
    ctx = multiprocessing.get_context("spawn")
    barrier, out = ctx.Barrier(2), ctx.Queue()
    procs = [ctx.Process(target=_race, args=(url, rooms, seed, barrier, out))
             for seed in (1, 2)]
    for p in procs:
        p.start()
    results = [out.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=30)
        assert p.exitcode == 0
    store = TranscriptStore(url)
    meetings = store.list_meetings(limit=1000)
    assert sorted(m.room for m in meetings) == sorted(rooms), "exactly one record per room"
    ids = {m.room: m.id for m in meetings}
    for got in results:
        assert {key: ids[key.split("/")[0]] for key in got} == got, "everyone got that one"


def test_segments_are_upserted_per_meeting(url: str) -> None:
    store = TranscriptStore(url)
    a = store.open_meeting("a", now=10.0)
    b = store.open_meeting("b", now=10.0)
    store.add_segment(a.id, seg("TR_a-1-0", "Bonjour"))
    store.add_segments(a.id, [seg("TR_a-1-0", "Bonjour à tous."), seg("TR_a-1-1", "Oui.", 2.0)])
    store.add_segment(b.id, seg("TR_a-1-0", "Autre salle."))
    assert [s.text for s in store.segments_of(a.id)] == ["Bonjour à tous.", "Oui."]
    assert [s.text for s in store.segments_of(b.id)] == ["Autre salle."]
    assert store.segments_of(a.id)[0].words == (Word(0.0, 1.0, " Bonjour à tous."),)
    store.replace_segments(a.id, [seg("TR_a-1-0.0", "Bonjour"), seg("TR_a-1-0.1", "à tous.", 0.5)])
    assert [s.segment_id for s in store.segments_of(a.id)] == ["TR_a-1-0.0", "TR_a-1-0.1"]


def test_a_stale_live_record_is_closed_not_continued(url: str) -> None:
    store = TranscriptStore(url)
    first = store.open_meeting("salle", now=1000.0)
    store.touch(first.id, now=1100.0)
    again = store.open_meeting("salle", now=1100.0 + 300.0, stale_after_s=320.0)
    assert again.id == first.id, "recent activity: the record goes on"
    later = store.open_meeting("salle", now=1100.0 + 7 * 86400, stale_after_s=320.0)
    assert later.id != first.id and later.live
    closed = store.meeting(first.id)
    assert closed is not None and closed.ended_at == 1100.0  # at its last activity
    assert [m.id for m in store.list_meetings("salle") if m.live] == [later.id]


def test_store_errors_carry_no_text_name_or_identity(url: str, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    store = TranscriptStore(url)
    meeting = store.open_meeting("salle")
    secret = seg("TR_a-1-0", SECRET_TEXT, speaker=Speaker(SECRET_IDENTITY, SECRET_NAME))
    errors: list[BaseException] = []
    with store.engine.begin() as conn:  # the table goes away under the store
        conn.execute(sa.text("ALTER TABLE greffier_segments RENAME TO gone"))
    with pytest.raises(StoreError) as err:
        store.add_segment(meeting.id, secret)
    errors.append(err.value)
    if store.engine.dialect.name == "postgresql":
        with store.engine.begin() as conn:
            conn.execute(sa.text("ALTER TABLE gone RENAME TO greffier_segments"))
        # the database's own message would quote the key: "Key (meeting_id)=(...)"
        with pytest.raises(StoreError) as err:
            store.add_segment(SECRET_IDENTITY, secret)
        errors.append(err.value)
    logging.getLogger("greffier.test").error("store failed", exc_info=errors[-1])
    for e in errors:
        chain = "".join(traceback.format_exception(e)) + f"{e!r} {e.__cause__!r}"
        for secret_value in (SECRET_TEXT, SECRET_NAME, SECRET_IDENTITY, "zebra"):
            assert secret_value not in chain
            assert secret_value not in caplog.text
        assert "Error" in str(e)
    assert "0000" not in caplog.text


def test_an_unreachable_database_is_a_clear_error_without_the_password(caplog) -> None:
    caplog.set_level(logging.DEBUG)
    started = time.monotonic()
    with pytest.raises(StoreError, match="cannot open the transcript store") as err:
        TranscriptStore("postgresql://greffier:hunter2@127.0.0.1:1/nowhere")
    assert "GREFFIER_STORE__URL" in str(err.value) and "hunter2" not in str(err.value)
    assert "hunter2" not in caplog.text and time.monotonic() - started < 30
    with pytest.raises(StoreError, match="unusable store URL"):
        TranscriptStore("nosuchdriver://x")
