"""The console (console/tui) never talks to SQLAlchemy or the store's models itself: every
read and write goes through the service layer (console/service.py), as DESIGN.md says."""

from __future__ import annotations

import re
from pathlib import Path

TUI = Path(__file__).resolve().parents[2] / "console" / "tui"
FORBIDDEN = re.compile(r"\b(sqlalchemy|localstore\.models|localstore\.db)\b")


def test_console_tui_never_imports_sqlalchemy_or_the_store_models():
    sources = sorted(TUI.rglob("*.py"))
    assert len(sources) > 10, "the console package moved?"
    found = [
        f"{p.relative_to(TUI.parent.parent)}:{n}: {line.strip()}"
        for p in sources
        for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1)
        if FORBIDDEN.search(line)
    ]
    assert found == [], "\n".join(found)


def test_the_check_would_see_an_import():
    assert FORBIDDEN.search("    from sqlalchemy import select")
    assert FORBIDDEN.search("from localstore.models import TradeRow")
    assert not FORBIDDEN.search("from console.service import Service")
