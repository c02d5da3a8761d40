"""Keeping a :class:`~textual.widgets.DataTable` in step with rows of text, cheaply.

Clearing a table and adding every row again makes Textual measure every new cell
and re-render the whole table, and under a flood of topic records that work blocks
the dashboard's loop long enough to delay key presses. :class:`TableRows` instead
changes only the cells whose text differs, adds rows only past the current end and
removes rows only from the end, so a panel whose data did not change costs nothing
and one whose data changed costs what changed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich.text import Text
from textual.coordinate import Coordinate
from textual.widgets import DataTable

#: A row as text cells, one per column.
Row = tuple[str, ...]


class TableRows:
    """Shows rows of text in a table, position by position.

    Row ``i`` of the table always has the key ``row-i``: a row's key names its
    place, not its content, so callers map a selected row back to their own data
    by its index (:meth:`index_of`). Cells are :class:`rich.text.Text`, so text
    from the pipeline (user names, record keys) is shown as it is, never read as
    markup.

    Args:
        table: the table, with its columns already added.
        update_width: widen a column when a changed cell is wider than it (give
            ``False`` for a table whose columns have fixed widths: no measuring).
    """

    def __init__(self, table: DataTable[Any], *, update_width: bool = False) -> None:
        self.table = table
        self.update_width = update_width
        self._shown: list[Row] = []

    def show(self, rows: Sequence[Row]) -> int:
        """Make the table show ``rows``, in order; returns how many cells changed.

        Raises:
            ValueError: a row does not have one cell per column.
        """
        width = len(self.table.columns)
        if any(len(row) != width for row in rows):
            raise ValueError(f"each row needs {width} cells, one per column")

        changed = 0
        for index, row in enumerate(rows[: len(self._shown)]):
            old = self._shown[index]
            for column, (before, after) in enumerate(zip(old, row, strict=True)):
                if before != after:
                    self.table.update_cell_at(
                        Coordinate(index, column),
                        Text(after),
                        update_width=self.update_width,
                    )
                    changed += 1

        for index in range(len(self._shown), len(rows)):
            cells = [Text(cell) for cell in rows[index]]
            self.table.add_row(*cells, key=f"row-{index}")
            changed += width

        for index in range(len(self._shown) - 1, len(rows) - 1, -1):
            self.table.remove_row(f"row-{index}")
            changed += width

        self._shown = list(rows)
        return changed

    @staticmethod
    def index_of(row_key: object) -> int:
        """The position of the row with this key (a key this class gave)."""
        text = str(getattr(row_key, "value", row_key))
        if not text.startswith("row-"):
            raise ValueError(f"{text!r} is not a key of a TableRows row")
        return int(text.removeprefix("row-"))
