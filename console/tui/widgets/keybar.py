"""KeyBar: the desk's bottom line of keys, where lock, help and quit are never cut off.

Why not Textual's Footer: it lays every shown binding out left to right with long
descriptions and cuts what does not fit, and the app's keys (lock, help, quit) come last,
so at 160 columns they were the ones cut.  Here each key has a short label
(``keymap.Key.short``), the screen keys (lock, help, quit) are pinned to the right, and
when the width is short the trading keys drop from the end (the help screen, ``?``,
lists them all).  Keys are shown as people type them and follow the live bindings, so a
rebound key shows its new key.  A click on a key presses it.
"""

from __future__ import annotations

from rich.style import Style
from rich.text import Text
from textual import events
from textual.widget import Widget

from console.tui import keymap

_KEY = Style(bold=True)
_GAP = " "
BAR_ORDER = ("Orders", "Risk", "Views")  # what stays longest when the bar is short: orders, then risk


def key_entries(active_bindings) -> tuple[list[tuple[str, str, str]], list[tuple[str, str, str]]]:
    """(trading keys, screen keys) shown in the bar: (key label, short label, the key to press),
    from a screen's active bindings; trading keys in BAR_ORDER, screen keys in help order."""
    seen: dict[str, list[str]] = {}
    for key, active in active_bindings.items():
        b = active.binding
        known = keymap.BY_ID.get(b.id or "")
        if known is None or not b.show:
            continue
        seen.setdefault(b.id, []).append(key)
    trading: list[tuple[str, str, str]] = []
    screen: list[tuple[str, str, str]] = []

    def rank(binding_id):
        group = keymap.BY_ID[binding_id].group
        return (
            BAR_ORDER.index(group) if group in BAR_ORDER else len(BAR_ORDER),
            keymap.help_rank(binding_id),
        )

    for binding_id in sorted(seen, key=rank):
        known = keymap.BY_ID[binding_id]
        keys = seen[binding_id]
        entry = (keymap.key_label(keys[0]), known.short or known.description, keys[0])
        (screen if known.group == "Screen" else trading).append(entry)
    return trading, screen


def layout(trading, screen, width: int) -> tuple[str, list[tuple[int, int, str]]]:
    """The bar's text at ``width`` and where each key sits ((start, end, key) spans): the
    screen keys right-aligned and always whole, the trading keys from the left while they fit."""

    def piece(entry):
        return f"{entry[0]} {entry[1]}"

    right = _GAP.join(piece(e) for e in screen)
    room = width - len(right) - 3  # a space at each end, at least one between the halves
    left_parts: list[tuple[str, str]] = []
    used = 0
    for e in trading:
        add = len(piece(e)) + (len(_GAP) if left_parts else 0)
        if used + add > room - (2 if len(left_parts) + 1 < len(trading) else 0):
            break
        left_parts.append((piece(e), e[2]))
        used += add
    spans: list[tuple[int, int, str]] = []
    text = " "
    for n, (p, key) in enumerate(left_parts):
        if n:
            text += _GAP
        spans.append((len(text), len(text) + len(p), key))
        text += p
    if len(left_parts) < len(trading):
        text += " …"
    pad = max(width - len(text) - len(right) - 1, 1)
    text += " " * pad
    for n, e in enumerate(screen):
        if n:
            text += _GAP
        p = piece(e)
        spans.append((len(text), len(text) + len(p), e[2]))
        text += p
    return text + " ", spans


class KeyBar(Widget):
    DEFAULT_CSS = """
    KeyBar { dock: bottom; height: 1; background: $footer-background; color: $footer-foreground; }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._spans: list[tuple[int, int, str]] = []

    def on_mount(self) -> None:
        self.screen.bindings_updated_signal.subscribe(self, lambda _screen: self.refresh())

    def line(self, width: int | None = None) -> str:
        trading, screen = key_entries(self.screen.active_bindings)
        text, self._spans = layout(trading, screen, width if width is not None else self.size.width)
        return text

    def render(self) -> Text:
        text = Text(self.line())
        for start, end, _key in self._spans:
            label_end = text.plain.find(" ", start)
            text.stylize(_KEY, start, label_end if 0 <= label_end < end else end)
        return text

    def on_click(self, event: events.Click) -> None:
        for start, end, key in self._spans:
            if start <= event.x < end:
                self.app.simulate_key(key)
                return
