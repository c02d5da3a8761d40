"""The dashboard's pop-up screens: a record's detail and the burst form."""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static

#: Largest burst the form accepts (the buffers stay bounded either way).
MAX_BURST = 100_000
#: Fastest rate the form accepts, in requests per second.
MAX_RATE = 5_000


class DetailScreen(ModalScreen[None]):
    """A record's pretty JSON and headers; Escape closes it."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape,q", "dismiss", "close")]

    def __init__(self, title: str, text: str) -> None:
        super().__init__()
        self._title = title
        self._text = text

    def compose(self) -> ComposeResult:
        with Vertical(id="detail-box") as box:
            box.border_title = self._title
            with VerticalScroll():
                yield Static(self._text, id="detail-text", markup=False)
            yield Label("Escape closes", classes="hint")


def parse_burst(count_text: str, rate_text: str) -> tuple[int, int]:
    """Check the burst form's fields.

    Returns:
        ``(count, rate)``.

    Raises:
        ValueError: a field is not a whole number in its range; the message says
            which and the range.
    """
    try:
        count = int(count_text)
        rate = int(rate_text)
    except ValueError:
        raise ValueError("count and rate are whole numbers") from None
    if not 1 <= count <= MAX_BURST:
        raise ValueError(f"count is between 1 and {MAX_BURST}")
    if not 1 <= rate <= MAX_RATE:
        raise ValueError(f"rate is between 1 and {MAX_RATE} per second")
    return count, rate


class BurstScreen(ModalScreen[tuple[int, int] | None]):
    """Asks for a burst's count and rate; returns them, or ``None`` if cancelled."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "cancel")]

    def compose(self) -> ComposeResult:
        with Vertical(id="burst-box") as box:
            box.border_title = "send a burst through the API"
            yield Label("favourites to send")
            yield Input("500", id="burst-count", type="integer")
            yield Label("per second")
            yield Input("200", id="burst-rate", type="integer")
            yield Label("", id="burst-error")
            with Horizontal(classes="buttons"):
                yield Button("send", id="burst-send", variant="primary")
                yield Button("cancel", id="burst-cancel")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "burst-send":
            self._submit()
        else:
            self.dismiss(None)

    def on_input_submitted(self, _event: Input.Submitted) -> None:
        self._submit()

    def action_cancel(self) -> None:
        self.dismiss(None)

    def _submit(self) -> None:
        count = self.query_one("#burst-count", Input).value
        rate = self.query_one("#burst-rate", Input).value
        try:
            self.dismiss(parse_burst(count, rate))
        except ValueError as exc:
            self.query_one("#burst-error", Label).update(str(exc))
