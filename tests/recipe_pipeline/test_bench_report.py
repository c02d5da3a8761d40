"""The benchmark's pure parts: percentiles, goals, the table and the JSON."""

from __future__ import annotations

import json

import pytest

from recipe_pipeline.bench.http_load import LoadError, parse_head
from recipe_pipeline.bench.report import (
    Figure,
    Goal,
    percentile,
    render_table,
    report_json,
)


def _figure(value: float | None, baseline: float | None, goal: Goal) -> Figure:
    return Figure(
        key="api_accept_rate",
        name="API accept rate",
        unit="/s",
        value=value,
        baseline=baseline,
        baseline_name="bare endpoint",
        goal=goal,
    )


def test_percentile_interpolates_between_closest_ranks() -> None:
    """p50 of an even count lies halfway between the two middle samples."""
    assert percentile([4.0, 1.0, 3.0, 2.0], 50) == pytest.approx(2.5)


def test_percentile_ends_are_min_and_max() -> None:
    """p0 is the smallest sample and p100 the largest."""
    samples = [5.0, 9.0, 1.0]
    assert (percentile(samples, 0), percentile(samples, 100)) == (1.0, 9.0)


def test_percentile_p99_of_hundred_samples() -> None:
    """p99 of 1..100 is 99.01 with linear interpolation."""
    assert percentile([float(n) for n in range(1, 101)], 99) == pytest.approx(99.01)


def test_percentile_refuses_no_samples() -> None:
    """An empty measurement is an error that says so, not a zero."""
    with pytest.raises(ValueError, match="no samples"):
        percentile([], 50)


def test_percentile_refuses_out_of_range_q() -> None:
    """q must be 0 to 100."""
    with pytest.raises(ValueError, match="outside 0 to 100"):
        percentile([1.0], 101)


def test_ratio_goal_met_at_exactly_the_bound() -> None:
    """A value of exactly 0.6 of its baseline meets a >= 0.6x goal."""
    assert _figure(60.0, 100.0, Goal(min_ratio=0.6)).met is True


def test_ratio_goal_missed_below_the_bound() -> None:
    """0.59 of the baseline misses a >= 0.6x goal."""
    assert _figure(59.0, 100.0, Goal(min_ratio=0.6)).met is False


def test_every_bound_must_hold() -> None:
    """A good ratio does not make up for an absolute floor that is missed."""
    figure = _figure(9_000.0, 10_000.0, Goal(min_ratio=0.5, min_value=10_000))
    assert figure.met is False


def test_max_ratio_goal() -> None:
    """A p99 of 3.5x its baseline misses a <= 3x goal."""
    assert _figure(35.0, 10.0, Goal(max_ratio=3.0)).met is False


def test_condition_failing_fails_the_goal() -> None:
    """An unbounded lag fails the end-to-end goal whatever the ratio."""
    goal = Goal(min_ratio=0.8, conditions={"lag bounded": False})
    assert _figure(100.0, 100.0, goal).met is False


def test_absolute_goal_is_strictly_below() -> None:
    """100 ms does not meet a < 100 ms goal."""
    assert _figure(100.0, None, Goal(below_value=100.0)).met is False


def test_missing_value_does_not_meet_the_goal() -> None:
    """A figure that could not be measured is not counted as met."""
    assert _figure(None, 100.0, Goal(min_ratio=0.6)).met is False


def test_ratio_goal_without_baseline_is_not_met() -> None:
    """A ratio cannot be judged against a missing or zero baseline."""
    assert _figure(50.0, 0.0, Goal(min_ratio=0.6)).met is False


def test_figure_without_goal_has_no_verdict() -> None:
    """The p50 line carries no goal, so its verdict is None rather than a guess."""
    assert _figure(5.0, 2.0, Goal()).met is None


def test_table_has_the_six_columns_and_each_figure() -> None:
    """The text table's header names the six columns and each figure has a row."""
    figures = [
        _figure(600.0, 1000.0, Goal(min_ratio=0.6)),
        _figure(None, 1000.0, Goal(min_ratio=0.6)),
    ]
    lines = render_table(figures).splitlines()
    assert lines[0].split() == ["figure", "value", "baseline", "ratio", "goal", "met"]
    assert "0.60x" in lines[2]
    assert lines[2].rstrip().endswith("yes")


def test_table_says_why_a_figure_is_missing() -> None:
    """A figure with an error shows 'not measured' and its reason below the table."""
    figure = Figure(
        key="dashboard_memory",
        name="dashboard memory",
        unit="MB",
        value=None,
        baseline=None,
        baseline_name="none",
        goal=Goal(below_value=250.0),
        error="the dashboard app is not there yet",
    )
    text = render_table([figure])
    assert "not measured" in text
    assert "dashboard memory: the dashboard app is not there yet" in text


def test_markdown_table_has_a_separator_row() -> None:
    """The Markdown form (for docs/benchmarks.md) is a valid pipe table."""
    lines = render_table([_figure(1.0, 1.0, Goal())], markdown=True).splitlines()
    assert lines[1] == "| --- | --- | --- | --- | --- | --- |"


def test_json_carries_what_the_table_shows() -> None:
    """Each figure's value, baseline, ratio, goal and verdict are in the JSON."""
    figure = _figure(600.0, 1000.0, Goal(min_ratio=0.6))
    document = json.loads(
        json.dumps(report_json([figure], mode="quick", machine={"cores": 2}))
    )
    entry = document["figures"][0]
    assert (entry["value"], entry["baseline"], entry["goal"], entry["met"]) == (
        600.0,
        1000.0,
        ">= 0.6x",
        True,
    )
    assert entry["ratio"] == pytest.approx(0.6)


def test_json_all_met_is_false_when_one_goal_is_missed() -> None:
    """all_met is the conjunction of the verdicts that exist."""
    figures = [
        _figure(600.0, 1000.0, Goal(min_ratio=0.6)),
        _figure(100.0, 1000.0, Goal(min_ratio=0.6)),
        _figure(1.0, 1.0, Goal()),
    ]
    assert report_json(figures, mode="full", machine={})["all_met"] is False


def test_parse_head_reads_status_and_length() -> None:
    """The load generator reads the status and Content-Length of uvicorn's answer."""
    head = (
        b"HTTP/1.1 202 Accepted\r\ncontent-type: application/json\r\n"
        b"content-length: 123\r\n\r\n"
    )
    assert parse_head(head) == (202, 123)


def test_parse_head_refuses_a_chunked_answer() -> None:
    """An answer without Content-Length is an error naming the reason."""
    head = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"
    with pytest.raises(LoadError, match="Content-Length"):
        parse_head(head)
