"""The Burrow-style lag rules, on synthetic snapshot series (no broker)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest

from pipeline_core.lag import (
    LagEvaluator,
    LagSnapshot,
    LagStatus,
    PartitionLag,
    partition_lag,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def series(
    points: Sequence[tuple[int | None, int]], *, step_s: float = 10.0
) -> list[LagSnapshot]:
    """One-partition snapshots from (committed, end offset) pairs, step_s apart."""
    snapshots = []
    for index, (committed, end) in enumerate(points):
        lag = end - (committed or 0)
        part = PartitionLag(0, committed, end, lag)
        taken_at = T0 + timedelta(seconds=step_s * index)
        snapshots.append(LagSnapshot("g", "t", taken_at, (part,)))
    return snapshots


def judge(snapshots: Sequence[LagSnapshot], window: int = 5) -> LagStatus:
    evaluator = LagEvaluator(window=window)
    status = LagStatus.OK
    for snapshot in snapshots:
        status = evaluator.add(snapshot).status
    return status


def test_lag_zero_anywhere_in_the_window_is_ok() -> None:
    """A window in which the consumer caught up once is OK."""
    points = [(100, 100), (100, 150), (110, 200), (120, 250), (130, 300)]
    assert judge(series(points)) is LagStatus.OK


def test_committed_advancing_with_shrinking_lag_is_ok() -> None:
    """Commits moving and lag not growing at every step is OK."""
    points = [(0, 100), (50, 140), (100, 150), (140, 170), (170, 180)]
    assert judge(series(points)) is LagStatus.OK


def test_lag_growing_at_every_step_while_committing_is_warn() -> None:
    """Commits moving but lag growing at every sample is WARN."""
    points = [(0, 100), (10, 120), (20, 140), (30, 160), (40, 180)]
    assert judge(series(points)) is LagStatus.WARN


def test_committed_offset_frozen_with_lag_is_stall() -> None:
    """An unmoving committed offset with records waiting is STALL."""
    points = [(40, 100), (40, 100), (40, 110), (40, 120), (40, 120)]
    assert judge(series(points)) is LagStatus.STALL


def test_stall_that_outlasts_two_windows_becomes_stop() -> None:
    """A committed offset frozen for more than twice the window's span is STOP."""
    points = [(40, 100)] * 12
    assert judge(series(points), window=5) is LagStatus.STOP


def test_group_that_never_committed_with_waiting_records_is_stop() -> None:
    """No committed offset at all while records wait is STOP."""
    points = [(None, 100)] * 5
    assert judge(series(points)) is LagStatus.STOP


def test_too_few_snapshots_is_ok() -> None:
    """Two samples are not enough to judge, even with a frozen offset."""
    points = [(40, 100), (40, 100)]
    assert judge(series(points)) is LagStatus.OK


def test_group_status_is_its_worst_partition() -> None:
    """One stalled partition makes the whole group STALL."""
    evaluator = LagEvaluator(window=3)
    result = None
    for index in range(3):
        taken_at = T0 + timedelta(seconds=index)
        parts = (
            PartitionLag(0, 10 * index, 10 * index, 0),
            PartitionLag(1, 5, 20, 15),
        )
        result = evaluator.add(LagSnapshot("g", "t", taken_at, parts))
    assert result is not None
    assert result.status is LagStatus.STALL
    assert [v.status for v in result.partitions] == [LagStatus.OK, LagStatus.STALL]


def test_window_keeps_only_the_last_snapshots() -> None:
    """The evaluator holds at most ``window`` snapshots."""
    evaluator = LagEvaluator(window=4)
    for snapshot in series([(0, 10)] * 9):
        evaluator.add(snapshot)
    assert len(evaluator.snapshots) == 4


def test_snapshots_out_of_time_order_are_refused() -> None:
    """Adding an older snapshot after a newer one raises ValueError."""
    first, second = series([(0, 10), (0, 10)])
    evaluator = LagEvaluator()
    evaluator.add(second)
    with pytest.raises(ValueError, match="oldest first"):
        evaluator.add(first)


def test_lag_of_a_partition_never_committed_counts_from_log_start() -> None:
    """Without a committed offset lag counts from the earliest offset, not 0."""
    assert partition_lag(0, None, start_offset=30, end_offset=100).lag == 70


def test_lag_is_never_negative() -> None:
    """A committed offset past the end (log truncated) gives lag 0."""
    assert partition_lag(0, 120, start_offset=0, end_offset=100).lag == 0


def test_broker_no_offset_marker_means_never_committed() -> None:
    """The broker's -1 "no offset" is reported as committed None."""
    part = partition_lag(2, -1, start_offset=0, end_offset=5)
    assert part.committed is None
    assert part.lag == 5


def test_snapshot_total_sums_partitions() -> None:
    """LagSnapshot.total is the sum of the partitions' lag."""
    parts = (PartitionLag(0, 1, 4, 3), PartitionLag(1, None, 7, 7))
    assert LagSnapshot("g", "t", T0, parts).total == 10
