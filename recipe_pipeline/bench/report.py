"""The benchmark's figures: percentiles, goals, and the table and JSON they print as.

Everything here is pure (no I/O, no clock), so it is tested directly. A
:class:`Figure` holds one measured value, the baseline measured in the same run, and
the :class:`Goal` it is judged by; :func:`render_table` and :func:`report_json`
turn a list of them into what ``recipe-pipeline bench`` prints and writes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

#: Version of the JSON document ``--json`` writes; bumped when its shape changes.
REPORT_VERSION = 1


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile of ``values``, interpolating between closest ranks.

    Args:
        values: the samples, in any order.
        q: the percentile, 0 to 100 (50 is the median).

    Raises:
        ValueError: ``values`` is empty or ``q`` is outside 0 to 100.
    """
    if not values:
        raise ValueError("percentile of no samples: the measurement collected none")
    if not 0 <= q <= 100:
        raise ValueError(f"percentile {q!r} is outside 0 to 100")
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    fraction = position - low
    return ordered[low] + (ordered[high] - ordered[low]) * fraction


@dataclass(frozen=True)
class Goal:
    """What a figure must reach; every bound that is set must hold.

    Attributes:
        min_ratio: value / baseline must be at least this.
        max_ratio: value / baseline must be at most this.
        min_value: the value must be at least this.
        below_value: the value must be strictly below this.
        conditions: named yes/no checks made while measuring (e.g. lag bounded).
    """

    min_ratio: float | None = None
    max_ratio: float | None = None
    min_value: float | None = None
    below_value: float | None = None
    conditions: Mapping[str, bool] = field(default_factory=dict)

    @property
    def is_set(self) -> bool:
        """Whether the goal has anything to check."""
        bounds = (self.min_ratio, self.max_ratio, self.min_value, self.below_value)
        return any(bound is not None for bound in bounds) or bool(self.conditions)

    def describe(self, unit: str) -> str:
        """The goal as a short text, such as ``>= 0.5x, >= 10,000 /s``."""
        parts: list[str] = []
        if self.min_ratio is not None:
            parts.append(f">= {self.min_ratio:g}x")
        if self.max_ratio is not None:
            parts.append(f"<= {self.max_ratio:g}x")
        if self.min_value is not None:
            parts.append(f">= {format_value(self.min_value, unit)}")
        if self.below_value is not None:
            parts.append(f"< {format_value(self.below_value, unit)}")
        parts.extend(self.conditions)
        return ", ".join(parts) if parts else "-"

    def met(self, value: float | None, baseline: float | None) -> bool | None:
        """Whether ``value`` meets the goal; ``None`` when there is none to judge.

        A missing value, or a missing or zero baseline where a ratio is asked for,
        does not meet the goal.
        """
        if not self.is_set:
            return None
        if value is None:
            return False
        checks: list[bool] = []
        if self.min_ratio is not None or self.max_ratio is not None:
            ratio = ratio_of(value, baseline)
            if ratio is None:
                return False
            if self.min_ratio is not None:
                checks.append(ratio >= self.min_ratio)
            if self.max_ratio is not None:
                checks.append(ratio <= self.max_ratio)
        if self.min_value is not None:
            checks.append(value >= self.min_value)
        if self.below_value is not None:
            checks.append(value < self.below_value)
        checks.extend(self.conditions.values())
        return all(checks)


def ratio_of(value: float | None, baseline: float | None) -> float | None:
    """``value / baseline``, or ``None`` when either is missing or the base is 0."""
    if value is None or baseline is None or baseline == 0:
        return None
    return value / baseline


@dataclass(frozen=True)
class Figure:
    """One line of the report.

    Attributes:
        key: a stable identifier (``api_accept_rate``), the JSON's key.
        name: what was measured, in words.
        unit: ``/s``, ``ms`` or ``MB``.
        value: the measurement; ``None`` when it could not be taken (see ``error``).
        baseline: the limit measured in the same run; ``None`` for absolute goals.
        baseline_name: what the baseline is.
        goal: what the value must reach.
        note: how it was measured, and side facts (CPU use, lag, sample counts).
        error: why the value is missing.
    """

    key: str
    name: str
    unit: str
    value: float | None
    baseline: float | None
    baseline_name: str
    goal: Goal
    note: str = ""
    error: str | None = None

    @property
    def ratio(self) -> float | None:
        """``value / baseline``."""
        return ratio_of(self.value, self.baseline)

    @property
    def met(self) -> bool | None:
        """Whether the goal is met (``None`` when the figure has no goal)."""
        return self.goal.met(self.value, self.baseline)

    def to_json(self) -> dict[str, Any]:
        """The figure as a JSON-ready dict (the shape ``--json`` writes)."""
        return {
            "key": self.key,
            "name": self.name,
            "unit": self.unit,
            "value": self.value,
            "baseline": self.baseline,
            "baseline_name": self.baseline_name,
            "ratio": self.ratio,
            "goal": self.goal.describe(self.unit),
            "met": self.met,
            "note": self.note,
            "error": self.error,
        }


def format_value(value: float | None, unit: str) -> str:
    """A number as the table shows it: rates as integers, times with precision."""
    if value is None:
        return "-"
    if unit == "/s":
        return f"{value:,.0f} /s"
    if unit == "ms":
        return f"{value:.1f} ms" if value < 100 else f"{value:,.0f} ms"
    return f"{value:,.1f} {unit}".rstrip()


def _met_text(met: bool | None) -> str:
    if met is None:
        return "-"
    return "yes" if met else "NO"


def table_rows(figures: Sequence[Figure]) -> list[list[str]]:
    """The table's cells, header first: figure, value, baseline, ratio, goal, met."""
    rows = [["figure", "value", "baseline", "ratio", "goal", "met"]]
    for figure in figures:
        ratio = figure.ratio
        value = format_value(figure.value, figure.unit)
        if figure.value is None and figure.error:
            value = "not measured"
        rows.append(
            [
                figure.name,
                value,
                format_value(figure.baseline, figure.unit),
                "-" if ratio is None else f"{ratio:.2f}x",
                figure.goal.describe(figure.unit),
                _met_text(figure.met),
            ]
        )
    return rows


def render_table(figures: Sequence[Figure], *, markdown: bool = False) -> str:
    """The figures as an aligned text table, or a Markdown table.

    Figures with an ``error`` are followed by a line saying why they are missing.
    """
    rows = table_rows(figures)
    if markdown:
        lines = ["| " + " | ".join(rows[0]) + " |"]
        lines.append("| " + " | ".join("---" for _ in rows[0]) + " |")
        lines.extend("| " + " | ".join(row) + " |" for row in rows[1:])
    else:
        widths = [max(len(row[col]) for row in rows) for col in range(len(rows[0]))]
        lines = []
        for index, row in enumerate(rows):
            cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=True)]
            lines.append("  ".join(cells).rstrip())
            if index == 0:
                lines.append("  ".join("-" * width for width in widths))
    missing = [figure for figure in figures if figure.error]
    if missing:
        lines.append("")
        lines.extend(f"{figure.name}: {figure.error}" for figure in missing)
    return "\n".join(lines) + "\n"


def report_json(
    figures: Sequence[Figure], *, mode: str, machine: Mapping[str, Any]
) -> dict[str, Any]:
    """The whole run as one JSON-ready document.

    Args:
        figures: the figures, in table order.
        mode: ``quick`` or ``full``.
        machine: what the run ran on (cores, memory, versions).
    """
    verdicts = [figure.met for figure in figures if figure.met is not None]
    return {
        "version": REPORT_VERSION,
        "mode": mode,
        "machine": dict(machine),
        "figures": [figure.to_json() for figure in figures],
        "all_met": bool(verdicts) and all(verdicts),
    }
