"""TableRows keeps a real Textual DataTable in step with rows, touching only changes."""

from __future__ import annotations

import pytest
from textual.app import App, ComposeResult
from textual.widgets import DataTable

from tui.table_rows import TableRows


class OneTable(App[None]):
    """An app with one two-column table."""

    def compose(self) -> ComposeResult:
        yield DataTable()

    def on_mount(self) -> None:
        self.query_one(DataTable).add_columns("user", "recipe")


def cells(table: DataTable[object]) -> list[list[str]]:
    return [[str(cell) for cell in table.get_row_at(i)] for i in range(table.row_count)]


async def test_showing_the_same_rows_again_changes_nothing() -> None:
    """A second show() of equal rows touches no cell."""
    async with OneTable().run_test() as pilot:
        rows = TableRows(pilot.app.query_one(DataTable))
        rows.show([("ada", "12"), ("bob", "7")])

        assert rows.show([("ada", "12"), ("bob", "7")]) == 0


async def test_only_the_cells_that_differ_are_changed() -> None:
    """One new cell value costs one cell update, and the table shows it."""
    async with OneTable().run_test() as pilot:
        table = pilot.app.query_one(DataTable)
        rows = TableRows(table)
        rows.show([("ada", "12"), ("bob", "7")])

        changed = rows.show([("ada", "12"), ("bob", "8")])

        assert changed == 1
        assert cells(table) == [["ada", "12"], ["bob", "8"]]


async def test_rows_are_added_and_removed_at_the_end() -> None:
    """More rows are appended, fewer rows drop the last ones; keys name positions."""
    async with OneTable().run_test() as pilot:
        table = pilot.app.query_one(DataTable)
        rows = TableRows(table)
        rows.show([("ada", "1")])
        rows.show([("bob", "2"), ("cy", "3"), ("di", "4")])
        assert cells(table) == [["bob", "2"], ["cy", "3"], ["di", "4"]]

        rows.show([("eve", "5")])

        assert cells(table) == [["eve", "5"]]
        assert [TableRows.index_of(key) for key in table.rows] == [0]


async def test_cell_text_is_never_read_as_markup() -> None:
    """A user name that looks like markup is shown as it is."""
    async with OneTable().run_test() as pilot:
        table = pilot.app.query_one(DataTable)
        TableRows(table).show([("[bold]ada[/]", "12")])

        assert cells(table) == [["[bold]ada[/]", "12"]]


async def test_a_row_with_the_wrong_number_of_cells_is_refused() -> None:
    """Each row needs one cell per column."""
    async with OneTable().run_test() as pilot:
        rows = TableRows(pilot.app.query_one(DataTable))

        with pytest.raises(ValueError, match="2 cells"):
            rows.show([("ada",)])
