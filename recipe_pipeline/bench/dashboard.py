"""The dashboard figures: key-press-to-update time and memory under a message flood.

Measured last, with Textual's ``App.run_test()`` Pilot, if the dashboard app is
available; otherwise the figures say why they are missing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from recipe_pipeline.bench.report import Figure, Goal

if TYPE_CHECKING:
    from recipe_pipeline.bench.runner import Run

#: The goals (absolute: there is no baseline for a screen).
KEY_TO_UPDATE_MS = 100.0
MEMORY_MB = 250.0


def missing_figures(reason: str, rate: float) -> list[Figure]:
    """The two dashboard figures, not measured, with ``reason``."""
    return [
        Figure(
            key="dashboard_key_to_update",
            name=f"dashboard key-press to update, {rate:,.0f} msgs/s",
            unit="ms",
            value=None,
            baseline=None,
            baseline_name="none: absolute goal",
            goal=Goal(below_value=KEY_TO_UPDATE_MS),
            error=reason,
        ),
        Figure(
            key="dashboard_memory",
            name=f"dashboard memory (RSS), {rate:,.0f} msgs/s",
            unit="MB",
            value=None,
            baseline=None,
            baseline_name="none: absolute goal",
            goal=Goal(below_value=MEMORY_MB),
            error=reason,
        ),
    ]


async def measure_dashboard(run: Run) -> list[Figure]:
    """Measure the dashboard, or say why it could not be measured."""
    try:
        import tui.app  # noqa: F401
    except ImportError as exc:
        return missing_figures(
            f"the dashboard app is not there yet ({exc}); not measured",
            run.config.dashboard_rate,
        )
    return missing_figures(
        "the dashboard measurement is not written yet", run.config.dashboard_rate
    )
