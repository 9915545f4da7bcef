"""A `cx.kpi` snapshot merges only complete rounds: every partition, one window end."""

from __future__ import annotations

from agents.kpi_snapshots import Reported, _complete_round
from agents.windows import Partial

MINUTE = 60_000


def _reported(as_of_ms: int) -> Reported:
    return (0.0, as_of_ms, Partial(), {})


def test_a_round_with_a_missing_partition_is_not_merged() -> None:
    latest = {(3600, 0): _reported(10 * MINUTE), (3600, 1): _reported(10 * MINUTE)}
    assert _complete_round(latest, 3600, expected_partitions=3) is None


def test_partitions_cutting_the_window_at_different_minutes_are_not_merged() -> None:
    # 1 h window: minute granularity; 10:00.000 and 09:59.999 floor to different minutes
    latest = {(3600, 0): _reported(600 * MINUTE), (3600, 1): _reported(600 * MINUTE - 1)}
    assert _complete_round(latest, 3600, expected_partitions=2) is None


def test_a_complete_round_is_merged_and_other_windows_ignored() -> None:
    latest = {
        (3600, 0): _reported(600 * MINUTE + 5),
        (3600, 1): _reported(600 * MINUTE + 59_000),  # same minute
        (86400, 0): _reported(1),
    }
    found = _complete_round(latest, 3600, expected_partitions=2)
    assert found is not None
    assert sorted(r[1] for r in found) == [600 * MINUTE + 5, 600 * MINUTE + 59_000]
