"""BookGrid (the Line-API blotter): keyed updates repaint only the rows they touch,
structure changes keep the cursor on its row, and loading 5,000 rows renders only
what is visible.  No mainsim needed: the grid is fed directly."""

from __future__ import annotations

import asyncio
from decimal import Decimal

from textual.app import App, ComposeResult

from console.tui.widgets import panels
from console.tui.widgets.grid import BookGrid, Column

COLS = [
    Column("id", "Id", 6),
    Column("qty", "Qty", 6, "right"),
    Column("mtm", "MTM", 10, "right", panels.money, panels.signed_tone),
]


class GridApp(App):
    def compose(self) -> ComposeResult:
        yield BookGrid(COLS, max_fps=1000)


def _rows(n):
    return [(f"r{i}", {"id": f"r{i}", "qty": i, "mtm": Decimal(i) - 10}) for i in range(n)]


def test_only_touched_visible_rows_repaint():
    asyncio.run(_touched())


async def _touched():
    app = GridApp()
    async with app.run_test(size=(40, 20)) as pilot:
        g = app.query_one(BookGrid)
        g.focus()
        g.set_rows(_rows(5000))
        await pilot.pause(0.1)
        first = g.lines_rendered
        assert 0 < first <= 19 + 2, first  # the visible body only, not 5,000 rows
        g.stage("r3", {"qty": 999})
        g.stage("r5", {"mtm": Decimal("-50")})
        g.stage("r4000", {"qty": 1})  # off screen: updated, not drawn
        g.stage("r6", {"qty": 6})  # same value: no change, no repaint
        assert g.flush() == 3
        await pilot.pause(0.1)
        assert g.lines_rendered - first == 2
        assert g.row("r3")["qty"] == 999 and g.row("r4000")["qty"] == 1
        text = g.visible_text()
        assert text[0].split() == ["Id", "Qty", "MTM"]
        assert text[4].split() == ["r3", "999", "-7.00"]
        assert text[6].split() == ["r5", "5", "-50.00"]


def test_add_remove_and_cursor_follows_its_row():
    asyncio.run(_structure())


async def _structure():
    app = GridApp()
    async with app.run_test(size=(40, 10)) as pilot:
        g = app.query_one(BookGrid)
        g.focus()
        g.set_rows(_rows(5))
        await pilot.press("down", "down")
        assert g.cursor_key == "r2"
        g.stage("r9", {"id": "r9", "qty": 9, "mtm": Decimal(0)})
        g.stage("r0", None)
        g.flush()
        assert g.keys() == ["r1", "r2", "r3", "r4", "r9"]
        assert g.cursor == 2 and g.cursor_key == "r3"  # the index stays, rows moved up under it
        g.set_rows(_rows(3))  # a snapshot: cursor stays on its key when it survives
        assert g.cursor_key is not None and g.row_count == 3
        await pilot.press("end")
        assert g.cursor_key == "r2"
        await pilot.press("home")
        assert g.cursor_key == "r0"
        # staged partial updates merge, latest value wins
        g.stage("r1", {"qty": 10})
        g.stage("r1", {"mtm": Decimal(3)})
        g.stage("r1", {"qty": 11})
        g.flush()
        assert g.row("r1") == {"id": "r1", "qty": 11, "mtm": Decimal(3)}
