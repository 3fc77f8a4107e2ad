"""The dealer's keys, in one table: id, default key, what it does.

Why one table: the desk's bindings, the help screen (`?`), the README's key map and the
config's ``[keys]`` validation all read it, so a key can never be documented one way
and bound another.  Defaults follow NSE's NEAT and NEST-style dealer terminals (F1 buy,
F2 sell, F3 order book, F4 market watch, F8 trade book, Alt+F6 net positions, Shift+F2
modify, Delete cancel).  Users rebind by id in the TOML config; Textual's keymap does
the rebinding (``App.set_keymap``), so the help screen, which reads the live bindings,
shows the keys actually in force.
"""

from __future__ import annotations

from dataclasses import dataclass

from textual.binding import Binding


@dataclass(frozen=True)
class Key:
    id: str
    key: str
    action: str
    description: str
    show: bool = True
    priority: bool = False


# Desk screen (the trading keys).
DESK_KEYS: tuple[Key, ...] = (
    Key("order.buy", "f1", "buy", "Buy order"),
    Key("order.sell", "f2", "sell", "Sell order"),
    Key("view.orders", "f3", "show('orders')", "Order book"),
    Key("view.watch", "f4", "show('watch')", "Market watch"),
    Key("view.trades", "f8", "show('trades')", "Trade book"),
    Key("view.positions", "alt+f6", "show('positions')", "Net positions"),
    Key("view.journal", "f9", "show('journal')", "Journal (backup)"),
    Key("order.modify", "shift+f2", "modify", "Modify order"),
    Key("order.cancel", "delete", "cancel", "Cancel order"),
    Key("squareoff", "f10", "squareoff", "Square off"),
    Key("killswitch", "ctrl+k", "killswitch", "Kill switch"),
    Key("replay", "ctrl+r", "replay", "Replay and reconciliation", show=False),
    Key("watch.add", "insert", "watch_add", "Add symbol to watch", show=False),
    Key("watch.remove", "ctrl+d", "watch_remove", "Remove symbol from watch", show=False),
)

# Everywhere once logged in (app level).
APP_KEYS: tuple[Key, ...] = (
    Key("lock", "ctrl+l", "lock", "Lock screen", priority=True),
    Key("help", "question_mark", "help", "Help: every key"),
    Key("quit", "ctrl+q", "quit", "Quit", priority=True),
)

# `lifeboat demo` only (console/tui/drill.py): stage an outage through mainsim's fault
# control; the same key ends it.  Not in ALL_KEYS: the real console has no such key.
DEMO_KEYS: tuple[Key, ...] = (
    Key("outage", "ctrl+o", "outage", "Demo: stage / end outage", priority=True),
)

ALL_KEYS: tuple[Key, ...] = DESK_KEYS + APP_KEYS
KEY_IDS = frozenset(k.id for k in ALL_KEYS + DEMO_KEYS)


def bindings(keys: tuple[Key, ...]) -> list[Binding]:
    return [Binding(k.key, k.action, k.description, show=k.show, priority=k.priority, id=k.id,
                    tooltip=f"{k.description} (id {k.id})") for k in keys]


def markdown_table() -> str:
    """The key map as a Markdown table (README, help)."""
    rows = ["| key | what | id |", "|---|---|---|"]
    rows += [f"| {k.key} | {k.description} | `{k.id}` |" for k in ALL_KEYS + DEMO_KEYS]
    return "\n".join(rows)
