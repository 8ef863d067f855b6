"""Takeover bookkeeping on a real SQLite store: heartbeats refresh only live, fresh records of
held rooms; orphans are live records silent past the bound but not stale; one sweeper claims an
orphan; dispatch metadata and attributes name the replaced captioners."""

from __future__ import annotations

import json

import pytest

from greffier.agents.takeover import (
    REPLACES_KEY,
    beat,
    claim,
    orphans,
    replaced_identities,
    replaces_attribute,
)
from greffier.store.sql import TranscriptStore

pytestmark = pytest.mark.unit


@pytest.fixture
def store(tmp_path) -> TranscriptStore:
    s = TranscriptStore(f"sqlite:///{tmp_path / 'g.db'}")
    yield s
    s.close()


def test_heartbeat_orphan_and_claim(store: TranscriptStore) -> None:
    t0 = 1_000_000.0
    held = store.open_meeting("held", now=t0)
    dead = store.open_meeting("dead", now=t0)
    stale = store.open_meeting("stale", now=t0 - 1000)
    ended = store.open_meeting("ended", now=t0)
    store.end_meeting(ended.id, now=t0 + 1)
    now = t0 + 10
    # The beat refreshes the held room only (a stale record is the store's to close).
    assert beat(store, ["held", "stale", "ended"], now, fresh_s=300) == 1
    assert store.meeting(held.id).active_at == now
    assert store.meeting(stale.id).active_at == t0 - 1000
    found = orphans(store, now, orphaned_after_s=7, fresh_s=300)
    assert found == [(dead.id, "dead")]
    # Two sweepers saw it: the first claim wins, the second finds it refreshed.
    assert claim(store, dead.id, now - 7, now + 1)
    assert not claim(store, dead.id, now - 7, now + 1)
    assert orphans(store, now + 2, orphaned_after_s=7, fresh_s=300) == []
    assert beat(store, [], now, fresh_s=300) == 0


def test_replaced_identities() -> None:
    meta = json.dumps({REPLACES_KEY: ["greffier-b", "greffier-a"]})
    assert replaced_identities(meta) == {"greffier-a", "greffier-b"}
    assert replaced_identities(replaces_attribute({"greffier-b", "greffier-a"})) == {
        "greffier-a", "greffier-b"}
    assert replaces_attribute({"b", "a"}) == "a,b"
    for nothing in (None, "", "{", json.dumps({REPLACES_KEY: "x"}), json.dumps([1])):
        assert replaced_identities(nothing) == set()


def test_a_meeting_is_dispatched_again_a_bounded_number_of_times() -> None:
    from greffier.agents.takeover import MAX_TAKEOVERS, TAKEOVER_WINDOW_S, Takeover

    t = Takeover(lambda: None, held_rooms=list, lk_url="http://127.0.0.1:1", api_key="k",  # type: ignore[arg-type]
                 api_secret="s", agent_name="a", stale_after_s=300)
    now = 1000.0
    for i in range(MAX_TAKEOVERS):
        assert t._may_send("m", now + i)
        t._sent.setdefault("m", []).append(now + i)
    assert not t._may_send("m", now + MAX_TAKEOVERS)
    assert t._may_send("other", now)
    assert t._may_send("m", now + TAKEOVER_WINDOW_S + MAX_TAKEOVERS)


def test_a_replacing_recorder_journals_beside_the_live_one_without_waiting(tmp_path) -> None:
    """Two recorders of one meeting on one data directory (a replaced captioner still alive):
    the second journals in its own file at once; both files are replayed later."""
    import threading

    from greffier.agents.meeting import FinalJournal, read_journal, replay_journals
    from greffier.core.types import Speaker, TranscriptSegment

    def seg(k: int) -> TranscriptSegment:
        return TranscriptSegment(segment_id=f"s{k}", speaker=Speaker("a", "A"), start=k,
                                 end=k + 1, text=f"words {k}", language="en")

    path = tmp_path / "journal" / "m1.jsonl"
    first = FinalJournal(path, "m1", 1 << 20)
    made: list[FinalJournal] = []
    t = threading.Thread(target=lambda: made.append(FinalJournal(path, "m1", 1 << 20)))
    t.start()
    t.join(5)
    assert made, "the second journal waited for the first one's lock"
    second = made[0]
    assert second.path != path and second.path.parent == path.parent
    first.append(seg(1))
    second.append(seg(2))
    assert [s.segment_id for _, s in read_journal(second.path)] == ["s2"]
    first._file.close()  # the first process dies: its lock goes
    second._file.close()
    store = TranscriptStore(f"sqlite:///{tmp_path / 'g.db'}")
    try:
        meeting = store.open_meeting("r")
        for f in path.parent.glob("*.jsonl"):  # the journals name the meeting inside
            f.write_bytes(f.read_bytes().replace(b'"m1"', f'"{meeting.id}"'.encode()))
        assert replay_journals(path.parent, store) == 2
        assert [s.segment_id for s in store.segments_of(meeting.id)] == ["s1", "s2"]
    finally:
        store.close()
