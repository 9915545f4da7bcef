"""agents/watermark.py: min over live partitions minus the allowed lateness (contract section 2).

Lateness 5 min = 300_000 ms, idle timeout 60 s of wall time, throughout.
"""

from __future__ import annotations

from agents.watermark import Watermark

LATENESS_MS = 300_000
T = 1_795_341_600_000  # 2026-11-22T10:00:00Z
MINUTE_MS = 60_000


def watermark() -> Watermark:
    return Watermark(allowed_lateness_ms=LATENESS_MS, idle_timeout_s=60.0)


def test_no_event_yet_means_no_watermark() -> None:
    wm = watermark()
    assert wm.value_ms(wall_s=0.0) is None
    assert wm.is_late(0) is False


def test_minimum_over_live_partitions_minus_lateness() -> None:
    wm = watermark()
    wm.observe("cx.raw.chat:0", T + 10 * MINUTE_MS, wall_s=0.0)
    wm.observe("cx.raw.email:0", T + 2 * MINUTE_MS, wall_s=1.0)
    wm.observe("cx.raw.chat:1", T + 7 * MINUTE_MS, wall_s=2.0)
    # min(10, 2, 7) min = T + 2 min; - 5 min = T - 3 min
    assert wm.value_ms(wall_s=3.0) == T - 3 * MINUTE_MS


def test_latest_per_partition_is_its_maximum_event_time() -> None:
    wm = watermark()
    wm.observe("p0", T + 10 * MINUTE_MS, wall_s=0.0)
    wm.observe("p0", T + 4 * MINUTE_MS, wall_s=1.0)  # out of order on the same partition
    # latest stays T + 10 min: T + 5 min
    assert wm.value_ms(wall_s=2.0) == T + 5 * MINUTE_MS


def test_idle_partition_stops_holding_the_watermark_back() -> None:
    wm = watermark()
    wm.observe("slow", T, wall_s=0.0)
    wm.observe("busy", T + 20 * MINUTE_MS, wall_s=0.0)
    assert wm.value_ms(wall_s=59.9) == T - 5 * MINUTE_MS  # both live: min = T
    wm.observe("busy", T + 30 * MINUTE_MS, wall_s=59.9)
    # at 60 s "slow" has been idle for the full timeout: only "busy" counts, T + 25 min
    assert wm.value_ms(wall_s=60.0) == T + 25 * MINUTE_MS


def test_partition_that_speaks_again_is_live_again_but_cannot_pull_it_back() -> None:
    wm = watermark()
    wm.observe("slow", T, wall_s=0.0)
    wm.observe("busy", T + 30 * MINUTE_MS, wall_s=100.0)
    assert wm.value_ms(wall_s=100.0) == T + 25 * MINUTE_MS
    # "slow" comes back with T + 1 min: live min is T + 1 min, but the watermark never goes back
    wm.observe("slow", T + MINUTE_MS, wall_s=101.0)
    assert wm.value_ms(wall_s=101.0) == T + 25 * MINUTE_MS
    # once "slow" passes the busy partition's level, the minimum moves it on: T + 40 - 5
    wm.observe("slow", T + 40 * MINUTE_MS, wall_s=102.0)
    wm.observe("busy", T + 50 * MINUTE_MS, wall_s=102.0)
    assert wm.value_ms(wall_s=102.0) == T + 35 * MINUTE_MS


def test_all_idle_uses_the_latest_event_time_seen_anywhere() -> None:
    wm = watermark()
    wm.observe("a", T, wall_s=0.0)
    wm.observe("b", T + 90 * MINUTE_MS, wall_s=5.0)
    wm.observe("c", T + 45 * MINUTE_MS, wall_s=10.0)
    assert wm.value_ms(wall_s=10.0) == T - 5 * MINUTE_MS  # all live: min = T
    # wall 70 s: every partition idle (last seen 0, 5, 10 s) -> max = T + 90 min, - 5 min
    assert wm.value_ms(wall_s=70.0) == T + 85 * MINUTE_MS


def test_never_goes_backwards() -> None:
    wm = watermark()
    wm.observe("a", T + 60 * MINUTE_MS, wall_s=0.0)
    assert wm.value_ms(wall_s=0.0) == T + 55 * MINUTE_MS
    # a new partition appears far behind: the candidate T - 5 min is lower, the value stays
    wm.observe("b", T, wall_s=1.0)
    assert wm.value_ms(wall_s=1.0) == T + 55 * MINUTE_MS
    # as "a" and then "b" go idle the basis moves (T, then max = T + 60 min): never below
    values = [wm.value_ms(wall_s=float(s)) for s in range(1, 200)]
    assert values == [T + 55 * MINUTE_MS] * 199


def test_forgotten_partition_holds_until_its_new_owner_reports() -> None:
    wm = watermark()
    wm.observe("mine", T + 30 * MINUTE_MS, wall_s=0.0)
    wm.observe("moved", T, wall_s=0.0)
    assert wm.value_ms(wall_s=1.0) == T - 5 * MINUTE_MS
    wm.forget("moved")
    assert wm.partitions() == ["mine"]
    # still held at "moved"'s last event time, T: its unread rest is another worker's now
    assert wm.value_ms(wall_s=100.0) == T - 5 * MINUTE_MS
    # the new owner reports T + 20 min: min(30, 20) - 5 = T + 15 min
    wm.report("moved", T + 20 * MINUTE_MS, idle=False)
    assert wm.value_ms(wall_s=100.5) == T + 15 * MINUTE_MS
    # ... and later that it is idle: only "mine" counts (30 - 5)
    wm.observe("mine", T + 30 * MINUTE_MS, wall_s=101.0)
    wm.report("moved", T + 20 * MINUTE_MS, idle=True)
    assert wm.value_ms(wall_s=101.0) == T + 25 * MINUTE_MS


def test_other_workers_partitions_count_in_the_minimum() -> None:
    wm = watermark()
    wm.observe("mine", T + 30 * MINUTE_MS, wall_s=0.0)
    wm.report("theirs", T + 10 * MINUTE_MS, idle=False)
    assert wm.value_ms(wall_s=1.0) == T + 5 * MINUTE_MS  # min(30, 10) - 5
    # a report older than the last one cannot pull the partition's latest back
    wm.report("theirs", T + 2 * MINUTE_MS, idle=False)
    wm.report("theirs", T + 40 * MINUTE_MS, idle=False)
    assert wm.value_ms(wall_s=2.0) == T + 25 * MINUTE_MS  # min(30, 40) - 5


def test_partition_nobody_reported_on_holds_the_watermark() -> None:
    wm = watermark()
    wm.expect(frozenset({"mine", "theirs"}))
    wm.observe("mine", T + 30 * MINUTE_MS, wall_s=0.0)
    assert wm.value_ms(wall_s=1.0) is None  # "theirs" may be far behind: no word yet
    assert not wm.all_idle(wall_s=100.0)
    wm.report("theirs", None, idle=False)  # assigned, not read yet: still holds
    assert wm.value_ms(wall_s=2.0) is None
    wm.report("theirs", T + 10 * MINUTE_MS, idle=False)
    assert wm.value_ms(wall_s=3.0) == T + 5 * MINUTE_MS


def test_all_idle_needs_every_worker_idle() -> None:
    wm = watermark()
    wm.observe("mine", T + 30 * MINUTE_MS, wall_s=0.0)
    wm.report("theirs", T + 50 * MINUTE_MS, idle=False)
    assert not wm.all_idle(wall_s=60.0)  # ours is idle, theirs is not
    wm.report("theirs", T + 50 * MINUTE_MS, idle=True)
    assert wm.all_idle(wall_s=60.0)
    # everything idle: the latest anywhere less the lateness (50 - 5)
    assert wm.value_ms(wall_s=60.0) == T + 45 * MINUTE_MS


def test_local_reports_say_latest_and_idle() -> None:
    wm = watermark()
    wm.assign("new", wall_s=0.0)
    wm.observe("busy", T, wall_s=50.0)
    assert wm.local_reports(wall_s=61.0) == {"new": (None, True), "busy": (T, False)}


def test_forgetting_every_partition_keeps_the_last_value() -> None:
    wm = watermark()
    wm.observe("p", T, wall_s=0.0)
    assert wm.value_ms(wall_s=0.0) == T - 5 * MINUTE_MS
    wm.forget("p")
    assert wm.value_ms(wall_s=1.0) == T - 5 * MINUTE_MS


def test_restore_seeds_a_partition_after_restart() -> None:
    wm = watermark()
    wm.restore("cx.raw.chat:0", T + 10 * MINUTE_MS, wall_s=0.0)
    assert wm.value_ms(wall_s=0.0) == T + 5 * MINUTE_MS


def test_is_late_compares_with_the_last_computed_watermark() -> None:
    wm = watermark()
    wm.observe("p", T + 10 * MINUTE_MS, wall_s=0.0)
    assert wm.is_late(T) is False  # nothing computed yet
    assert wm.value_ms(wall_s=0.0) == T + 5 * MINUTE_MS
    assert wm.is_late(T + 5 * MINUTE_MS - 1) is True  # 1 ms older than the watermark
    assert wm.is_late(T + 5 * MINUTE_MS) is False  # at the watermark: on time
    assert wm.is_late(T + 10 * MINUTE_MS) is False


def test_partition_with_unread_data_is_never_idle() -> None:
    """A starved consumer may not fetch from a partition for longer than the idle timeout:
    while the partition has messages past what was read, it still holds the watermark."""
    unread = {"slow"}
    wm = Watermark(allowed_lateness_ms=LATENESS_MS, idle_timeout_s=60.0, behind=unread.__contains__)
    wm.observe("slow", T, wall_s=0.0)
    wm.observe("busy", T + 30 * MINUTE_MS, wall_s=100.0)
    assert wm.value_ms(wall_s=100.0) == T - 5 * MINUTE_MS  # "slow" quiet 100 s, yet behind
    assert wm.local_reports(wall_s=100.0)["slow"] == (T, False)
    assert not wm.all_idle(wall_s=1000.0)
    unread.clear()  # read to the end: now the idle timeout applies
    assert wm.value_ms(wall_s=100.0) == T + 25 * MINUTE_MS
