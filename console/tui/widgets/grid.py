"""BookGrid: a keyed, live-updating table for the big blotters (net positions, order book).

Why not the stock DataTable: it repaints the whole visible table on any cell change
(~51 ms a frame at 5,000 rows here, FLOORS.md), so under streaming ticks the screen
drops to ~10 frames/s and keys lag.  This grid uses Textual's Line API (ScrollView +
``render_line``): each visible line is one ``Strip``, cached in an LRU keyed by the
row's version, so an update re-renders only the rows it touched, and only if they are
on screen.  Updates are staged (``stage``, latest value wins per key) and applied at
most ``max_fps`` times a second, so a 1,000 ticks/s feed costs a few small repaints a
second, not a thousand.  Loading 5,000 rows is a dict build (no rendering), so it never
stalls the screen.

Prices are "live quotes", not row updates: a tick on a symbol held by 25 clients would
otherwise be 25 row updates.  ``set_quotes`` records the newest price per quote key;
rows pick their quote up when drawn (``quote_of`` says which quote a row follows,
``with_quote`` derives the shown values, e.g. LTP and MTM), and each frame checks only
the visible rows for a changed quote.  The cost of a tick is then O(1), and the cost of a
frame O(visible rows), whatever the book's size.

Rendering is a pure function of (columns, row values, cursor, width): given fixed
prices it draws the same lines every time (snapshot tests rely on it).

A ``fit`` column (symbols) is as wide as its longest value, up to ``max_width``: a cut
symbol (``BANKNIFTY26DE…``) is ambiguous, so the grid scrolls sideways rather than cut
it.  ``set_summary`` pins one line (a total) under the rows, in the same columns.

Ages: ``show_ages(age_of)`` makes every ``aged`` column (a price) carry a text ``age_of(row)``
gives ("1,520.35 · 4 m old": the desk, while the stream is down); the aged columns widen by
a fixed width while ages are on, so a changing age never reflows the table.  The age is part
of a drawn line's cache key, so a repaint each second redraws only the lines whose age text
changed.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, ClassVar

from rich.segment import Segment
from rich.style import Style
from textual import events
from textual.binding import Binding, BindingType
from textual.cache import LRUCache
from textual.geometry import Region, Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip

RowKey = Hashable
_SEP = " "
AGE_KEY = "_age"  # a row's age text as drawn (show_ages), next to its aged columns


@dataclass(frozen=True)
class Column:
    """One column: ``key`` into the row's values, a header, a width and how to show a value.

    ``fmt`` turns a value into text; ``tone`` picks a style from the value (e.g. red when
    negative).  Numbers are right-aligned by default."""

    key: str
    label: str
    width: int
    align: str = "left"  # left | right
    fmt: Callable[[Any], str] = str
    tone: Callable[[Any], Style | None] | None = None
    row_fmt: Callable[[Any, dict], str] | None = None  # like fmt, also given the row (e.g. its tick size)
    fit: bool = False  # widen to the longest value (never cut it), up to max_width
    max_width: int = 40
    aged: bool = False  # a price: carries the row's age text while the grid shows ages

    def text(self, values: dict) -> str:
        value = values.get(self.key)
        if value is None:
            return ""
        text = self.row_fmt(value, values) if self.row_fmt is not None else self.fmt(value)
        if self.aged:
            age = values.get(AGE_KEY)
            if age:
                return f"{text} · {age}"
        return text


def _fit(text: str, width: int, align: str) -> str:
    if len(text) > width:
        return text[: max(width - 1, 0)] + "…" if width > 1 else text[:width]
    return text.rjust(width) if align == "right" else text.ljust(width)


class BookGrid(ScrollView, can_focus=True):
    """A keyed table with a sticky header, a cursor row and batched, throttled updates."""

    DEFAULT_CSS = """
    BookGrid { height: 1fr; }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up", "cursor(-1)", "Up", show=False, id="grid.up"),
        Binding("down", "cursor(1)", "Down", show=False, id="grid.down"),
        Binding("pageup", "page(-1)", "Page up", show=False, id="grid.page_up"),
        Binding("pagedown", "page(1)", "Page down", show=False, id="grid.page_down"),
        Binding("home", "jump(0)", "First row", show=False, id="grid.first"),
        Binding("end", "jump(-1)", "Last row", show=False, id="grid.last"),
    ]

    class CursorMoved(Message):
        """The highlighted row changed (``key`` is None when the grid is empty)."""

        def __init__(self, grid: BookGrid, key: RowKey | None) -> None:
            super().__init__()
            self.grid = grid
            self.key = key

    HEADER = Style(bold=True, reverse=True)
    CURSOR = Style(reverse=True)
    SUMMARY = Style(bold=True)

    def __init__(
        self,
        columns: Iterable[Column],
        *,
        max_fps: float = 8.0,
        cache_size: int = 512,
        quote_of: Callable[[dict], Hashable] | None = None,
        with_quote: Callable[[dict, Any], dict] | None = None,
        name: str | None = None,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self.quote_of = quote_of
        self.with_quote = with_quote
        self.quotes: dict = {}
        self._quotes_changed = False
        self._drawn_quote: dict = {}
        self.columns: list[Column] = list(columns)
        self._keys: list[RowKey] = []
        self._index: dict[RowKey, int] = {}
        self._values: dict[RowKey, dict] = {}
        self._version: dict[RowKey, int] = {}
        self._pending: dict[RowKey, dict | None] = {}  # None: remove
        self._cache: LRUCache[tuple, Strip] = LRUCache(cache_size)
        self._header: Strip | None = None
        self._base: Style | None = None
        self.cursor: int = 0
        self.max_fps = max_fps
        self.frames = 0  # applied batches (the bench counts them)
        self.lines_rendered = 0  # strips built, cache misses (tests check only touched rows repaint)
        self.widths: list[int] = [c.width for c in self.columns]  # as drawn (fit columns widen)
        self._fit = [n for n, c in enumerate(self.columns) if c.fit]
        self._summary: dict | None = None
        self._summary_strip: Strip | None = None
        self._age_of: Callable[[dict], str | None] | None = None
        self._age_width = 0
        self._line_width = 0
        self._set_line_width()

    def _base_width(self, col: Column) -> int:
        return col.width + (self._age_width if col.aged and self._age_of is not None else 0)

    def show_ages(self, age_of: Callable[[dict], str | None] | None, width: int = 16) -> None:
        """Ages on (``age_of(row)``: the text an aged column carries, None: none) or off (None).
        Called again while on (e.g. each second), it repaints the visible rows whose age changed."""
        was_on = self._age_of is not None
        self._age_of = age_of
        if (age_of is not None) == was_on and (age_of is None or width == self._age_width):
            if age_of is not None:
                self.refresh()
            return
        self._age_width = width if age_of is not None else 0
        for n, col in enumerate(self.columns):
            if col.aged:
                self.widths[n] = self._base_width(col)
        self._set_line_width()
        self._header = None
        self._summary_strip = None
        self._cache.clear()
        self._resize_virtual()
        self.refresh()

    @property
    def ages_shown(self) -> bool:
        return self._age_of is not None

    def _set_line_width(self) -> None:
        self._line_width = sum(self.widths) + len(_SEP) * (len(self.columns) - 1)

    def _widen(self, values: dict) -> bool:
        """Widen the fit columns to ``values``; True when a width changed (redraw everything)."""
        changed = False
        for n in self._fit:
            col = self.columns[n]
            need = min(len(col.text(values)), col.max_width)
            if need > self.widths[n]:
                self.widths[n] = need
                changed = True
        if changed:
            self._set_line_width()
            self._header = None
            self._summary_strip = None
            self._cache.clear()
        return changed

    @property
    def _body(self) -> int:
        """Lines for rows: the height less the header and the summary line."""
        return max(self.size.height - 1 - (1 if self._summary is not None else 0), 1)

    def set_summary(self, values: dict | None) -> None:
        """Pin a line under the rows (e.g. the total MTM), drawn in the grid's columns; None removes it."""
        if values == self._summary:
            return
        had = self._summary is not None
        self._summary = dict(values) if values is not None else None
        self._summary_strip = None
        if values is not None:
            self._widen(values)
        if had != (values is not None):
            self._resize_virtual()
            self.refresh()
        elif self.size.height:
            self.refresh(Region(0, self.size.height - 1, self.size.width, 1))

    @property
    def summary(self) -> dict | None:
        return self._summary

    # ------------------------------------------------------------------ data in

    def on_mount(self) -> None:
        self.set_interval(1.0 / self.max_fps, self.flush, name="grid-flush")
        self._resize_virtual()

    def set_rows(self, rows: Iterable[tuple[RowKey, dict]]) -> None:
        """Replace every row at once (a snapshot); keeps the cursor on the same key if it is still there."""
        keep = self.cursor_key
        self._keys, self._values, self._version, self._index = [], {}, {}, {}
        self._pending.clear()
        self.widths = [self._base_width(c) for c in self.columns]
        self._header = None
        for key, values in rows:
            if key not in self._index:
                self._index[key] = len(self._keys)
                self._keys.append(key)
            self._values[key] = dict(values)
            self._version[key] = 0
            if self._fit:
                self._widen(values)
        self._set_line_width()
        self._summary_strip = None
        self._cache.clear()
        self.cursor = self._index.get(keep, min(self.cursor, max(len(self._keys) - 1, 0)))
        self._resize_virtual()
        self.refresh()
        self._announce()

    def stage(self, key: RowKey, values: dict | None) -> None:
        """Queue an update (partial values merge into the row; a new key adds a row;
        ``None`` removes it).  Applied at the next frame, latest value wins."""
        if values is None:
            self._pending[key] = None
            return
        prior = self._pending.get(key)
        self._pending[key] = {**prior, **values} if prior else dict(values)

    def set_quotes(self, quotes: dict) -> None:
        """Newest prices by quote key (e.g. (exchange, symbol)); drawn at the next frame."""
        if self.quote_of is not None and quotes:
            self.quotes.update(quotes)
            self._quotes_changed = True

    def _refresh_quoted(self) -> None:
        """Repaint the visible rows whose quote moved since they were drawn."""
        self._quotes_changed = False
        quote_of = self.quote_of
        if quote_of is None:  # rows without quotes never change by a quote
            return
        top = int(self.scroll_offset.y)
        for i in range(top, min(top + self._body, len(self._keys))):
            key = self._keys[i]
            if self._drawn_quote.get(key) != self.quotes.get(quote_of(self._values[key])):
                self.refresh(Region(0, i - top + 1, self.size.width, 1))

    def flush(self) -> int:
        """Apply staged updates and repaint only the visible rows they touched; returns
        how many rows changed.  Runs on the frame timer; call it directly in tests."""
        if self._quotes_changed:
            self._refresh_quoted()
        if not self._pending:
            return 0
        pending, self._pending = self._pending, {}
        structure = False
        dirty: list[int] = []
        for key, values in pending.items():
            if values is None:
                if key in self._index:
                    self._remove(key)
                    structure = True
                continue
            row = self._values.get(key)
            if self._fit and self._widen(values):
                structure = True
            if row is None:
                self._index[key] = len(self._keys)
                self._keys.append(key)
                self._values[key] = dict(values)
                self._version[key] = 0
                structure = True
                continue
            changed = False
            for k, v in values.items():
                if row.get(k) != v:
                    row[k] = v
                    changed = True
            if changed:
                self._version[key] += 1
                dirty.append(self._index[key])
        self.frames += 1
        if structure:
            self._cache.clear()
            self.cursor = min(self.cursor, max(len(self._keys) - 1, 0))
            self._resize_virtual()
            self.refresh()
            self._announce()
        else:
            top = int(self.scroll_offset.y)
            for i in dirty:
                y = i - top + 1
                if 1 <= y <= self._body:
                    self.refresh(Region(0, y, self.size.width, 1))
        return len(dirty) + (1 if structure else 0)

    def _remove(self, key: RowKey) -> None:
        i = self._index.pop(key)
        del self._keys[i]
        del self._values[key]
        del self._version[key]
        for j in range(i, len(self._keys)):
            self._index[self._keys[j]] = j

    # ------------------------------------------------------------------ data out

    @property
    def row_count(self) -> int:
        return len(self._keys)

    @property
    def cursor_key(self) -> RowKey | None:
        return self._keys[self.cursor] if 0 <= self.cursor < len(self._keys) else None

    def row(self, key: RowKey) -> dict | None:
        """The row as shown (its live quote applied)."""
        values = self._values.get(key)
        if values is None or self.quote_of is None or self.with_quote is None:
            return values
        q = self.quotes.get(self.quote_of(values))
        return values if q is None else self.with_quote(values, q)

    def shown(self, key: RowKey) -> dict | None:
        """The row as drawn: its live quote applied and, while ages are on, its age."""
        values = self.row(key)
        if values is None or self._age_of is None:
            return values
        age = self._age_of(self._values[key])
        return {**values, AGE_KEY: age} if age else values

    def keys(self) -> list[RowKey]:
        return list(self._keys)

    def rows_and_quotes(self) -> Iterator[tuple[dict, Any]]:
        """Every row's own values with its live quote (None: none), in row order: for sums
        over every row without building each row as shown (``row``)."""
        quote_of, quotes = self.quote_of, self.quotes
        for key in self._keys:
            values = self._values[key]
            yield values, (quotes.get(quote_of(values)) if quote_of is not None else None)

    def move_to(self, key: RowKey) -> bool:
        if key not in self._index:
            return False
        self._set_cursor(self._index[key])
        return True

    # ------------------------------------------------------------------ cursor

    def _set_cursor(self, i: int) -> None:
        if not self._keys:
            return
        i = max(0, min(i, len(self._keys) - 1))
        old, self.cursor = self.cursor, i
        top = int(self.scroll_offset.y)
        body = self._body
        if i < top:
            self.scroll_to(y=i, animate=False)
            self.refresh()
        elif i >= top + body:
            self.scroll_to(y=i - body + 1, animate=False)
            self.refresh()
        else:  # only the two rows whose highlight changed
            for row in (old, i):
                self.refresh(Region(0, row - top + 1, self.size.width, 1))
        if old != i:
            self._announce()

    def _announce(self) -> None:
        self.post_message(self.CursorMoved(self, self.cursor_key))

    def action_cursor(self, delta: int) -> None:
        self._set_cursor(self.cursor + delta)

    def action_page(self, direction: int) -> None:
        self._set_cursor(self.cursor + direction * max(self._body - 1, 1))

    def action_jump(self, where: int) -> None:
        self._set_cursor(where if where >= 0 else len(self._keys) - 1)

    def on_click(self, event: events.Click) -> None:
        if 1 <= event.y <= self._body:
            self._set_cursor(int(self.scroll_offset.y) + event.y - 1)

    # ------------------------------------------------------------------ rendering (Line API)

    def _resize_virtual(self) -> None:
        self.virtual_size = Size(
            self._line_width, len(self._keys) + 1 + (1 if self._summary is not None else 0)
        )

    def render_lines(self, crop):
        self._base = self.rich_style  # once per paint, not once per line (it walks the DOM)
        return super().render_lines(crop)

    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y = self.scroll_offset
        width = self.size.width
        base = self._base if self._base is not None else self.rich_style
        if y == 0:
            if self._header is None:
                text = _SEP.join(
                    _fit(c.label, w, c.align) for c, w in zip(self.columns, self.widths, strict=True)
                )
                self._header = Strip([Segment(text, self.HEADER)])
            return self._header.crop_extend(scroll_x, scroll_x + width, self.HEADER)
        if self._summary is not None and y == self.size.height - 1:
            if self._summary_strip is None:
                self._summary_strip = self._render_row(self._summary, False, base + self.SUMMARY)
            return self._summary_strip.crop_extend(scroll_x, scroll_x + width, base)
        i = scroll_y + y - 1
        if i >= len(self._keys):
            return Strip.blank(width, base)
        key = self._keys[i]
        values = self._values[key]
        on_cursor = i == self.cursor and self.has_focus
        quote = None
        if self.quote_of is not None:
            quote = self.quotes.get(self.quote_of(values))
            self._drawn_quote[key] = quote
        age = self._age_of(values) if self._age_of is not None else None
        ck = (key, self._version[key], on_cursor, quote, age)
        strip = self._cache.get(ck)
        if strip is None:
            if quote is not None and self.with_quote is not None:
                values = self.with_quote(values, quote)
            if age:
                values = {**values, AGE_KEY: age}
            strip = self._render_row(values, on_cursor, base)
            self._cache.set(ck, strip)
            self.lines_rendered += 1
        return strip.crop_extend(scroll_x, scroll_x + width, base)

    def _render_row(self, values: dict, on_cursor: bool, base: Style) -> Strip:
        segments: list[Segment] = []
        for n, col in enumerate(self.columns):
            if n:
                segments.append(Segment(_SEP, base))
            value = values.get(col.key)
            text = col.text(values)
            style = base
            if col.tone is not None and value is not None:
                tone = col.tone(value)
                if tone is not None:
                    style = base + tone
            if on_cursor:
                style = style + self.CURSOR
            segments.append(Segment(_fit(text, self.widths[n], col.align), style))
        return Strip(segments, self._line_width)

    def on_focus(self) -> None:
        self._cache.clear()
        self.refresh()

    def on_blur(self) -> None:
        self._cache.clear()
        self.refresh()

    def visible_text(self) -> list[str]:
        """The rows as drawn (header first), for tests and snapshots."""
        out = [self.line_text({c.key: c.label for c in self.columns}, header=True)]
        out += [self.line_text(self.shown(key) or {}) for key in self._keys]
        if self._summary is not None:
            out.append(self.line_text(self._summary))
        return out

    def line_text(self, values: dict, header: bool = False) -> str:
        """One line as drawn: ``values`` in the grid's columns at their current widths."""
        return _SEP.join(
            _fit(values.get(c.key, "") if header else c.text(values), w, c.align)
            for c, w in zip(self.columns, self.widths, strict=True)
        )
