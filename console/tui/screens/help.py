"""`?`: every key in force, read from the live bindings (so a rebound key shows its new key)."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import DataTable, Static


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,question_mark,q", "close", "Close", id="help.close")]

    def __init__(self, rows: list[tuple[str, str, str]]) -> None:
        super().__init__()
        self.rows = rows  # (key, description, id)

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog", id="help-box"):
            yield Static("Keys (rebind by id in the config's [keys] table; Ctrl+P: command palette)")
            table = DataTable(id="help-keys", cursor_type="row")
            table.add_columns("Key", "What", "Id")
            for row in self.rows:
                table.add_row(*row)
            yield table

    def action_close(self) -> None:
        self.dismiss(None)


def live_keys(screen) -> list[tuple[str, str, str]]:
    """(key, description, id) of every binding with an id active on ``screen``, keymap applied."""
    seen: dict[str, list[str]] = {}
    desc: dict[str, str] = {}
    for key, active in screen.active_bindings.items():
        b = active.binding
        if not b.id or b.id.startswith(("grid.", "help.", "confirm.", "ask.")):
            continue
        seen.setdefault(b.id, []).append(key)
        desc[b.id] = b.description
    return sorted(((", ".join(keys), desc[i], i) for i, keys in seen.items()), key=lambda r: r[2])
