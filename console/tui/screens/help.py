"""`?`: every key in force, read from the live bindings (so a rebound key shows its new key).

Keys are written as people type them (``?``, not ``question_mark``: keymap.key_label) and
grouped the way a dealer reads them: orders, views, risk, then the screen itself
(keymap.GROUPS).  Every text here is plain text, never Rich markup: the header names the
config's ``[keys]`` table, which markup would swallow as a style tag.
"""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import DataTable, Static

from console.tui import keymap

HEADER = "Keys (rebind by id in the config's [keys] table; ctrl+p: command palette)"


class HelpScreen(ModalScreen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,question_mark,q", "close", "Close", id="help.close")
    ]

    def __init__(self, rows: list[tuple[str, str, str]]) -> None:
        super().__init__()
        self.rows = rows  # (key, description, id), in help order

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog", id="help-box"):
            yield Static(HEADER, markup=False, id="help-header")
            table: DataTable[str | Text] = DataTable(id="help-keys", cursor_type="row")
            table.add_columns("Group", "Key", "What", "Id")
            shown = None
            for key, what, binding_id in self.rows:
                group = _group(binding_id)
                label = Text(group if group != shown else "", style="bold")
                shown = group
                table.add_row(label, Text(key), Text(what), Text(binding_id))
            yield table

    def action_close(self) -> None:
        self.dismiss(None)


def _group(binding_id: str) -> str:
    known = keymap.BY_ID.get(binding_id)
    return known.group if known is not None else "Other"


def live_keys(screen) -> list[tuple[str, str, str]]:
    """(key, description, id) of every binding with an id active on ``screen``, keymap applied,
    keys as people type them, in help order (keymap.GROUPS)."""
    seen: dict[str, list[str]] = {}
    desc: dict[str, str] = {}
    for key, active in screen.active_bindings.items():
        b = active.binding
        if not b.id or b.id.startswith(("grid.", "help.", "confirm.", "ask.")):
            continue
        seen.setdefault(b.id, []).append(keymap.key_label(key))
        known = keymap.BY_ID.get(b.id)
        desc[b.id] = known.description if known is not None else b.description
    return [(", ".join(seen[i]), desc[i], i) for i in sorted(seen, key=keymap.help_rank)]
