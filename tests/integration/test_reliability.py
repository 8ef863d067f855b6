"""Fault scenarios in their CI forms (``benchmarks/reliability.py --short``), each bounded:
join/leave cycles, a stalled track, a LiveKit server restarted mid-meeting (a server of the
test's own, never the shared one), a store that is down. The long forms are the script's."""

from __future__ import annotations

import pytest

from benchmarks.reliability import (
    RSS_GROWTH_LIMIT_PCT,
    SHORT,
    Rig,
    join_leave,
    server_restart,
    stalled_track,
    store_down,
)

pytestmark = pytest.mark.integration


async def test_join_leave_cycles_keep_captions_and_memory(
    livekit, worker, agent_name, worker_data, settings
) -> None:
    rig = Rig(livekit, agent_name, worker, worker_data)
    n = int(SHORT["join_leave"])
    got = await join_leave(rig, settings, n)
    print(got)
    assert got["cycles_with_a_final"] == n, got
    assert got["rss_growth_pct"] < RSS_GROWTH_LIMIT_PCT, got


async def test_a_stalled_track_is_finalised(livekit, worker, agent_name, worker_data,
                                            settings) -> None:
    rig = Rig(livekit, agent_name, worker, worker_data)
    got = await stalled_track(rig, settings, SHORT["stall_s"])
    print(got)
    assert got["finalised_during_stall"], got
    assert got["words_before_stall_found"] >= 0.8, got
    assert got["captioned_after_stall"] and got["words_after_stall_found"] >= 0.8, got
    assert got["finals_missing_from_store"] == 0, got


async def test_a_server_restart_continues_the_record(settings, tmp_path) -> None:
    got = await server_restart(settings, tmp_path, SHORT["server_down_s"])
    print(got)
    assert got["worker_alive_after_restart"] or got["worker_exit_code"] == 0, got
    assert got["captioner_back"], got
    assert got["finals_before_restart"] >= 1, got
    assert got["finals_before_restart_missing_from_store"] == 0, got
    assert got["record_continued"], got


async def test_a_store_down_loses_no_final(settings, livekit, tmp_path) -> None:
    got = await store_down(settings, livekit, tmp_path, SHORT["store_down_s"])
    print(got)
    assert got["finals_published_while_down"] >= 1, got
    assert got["finals_missing_from_store"] == 0, got
    assert got["journal_entries_at_end_of_outage"] >= got["finals_published_while_down"], got
    assert got["finals_so_far_stored_within_s_of_restart"] is not None, got
    assert got["meeting_records"] == 1, got
