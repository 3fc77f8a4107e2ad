"""The dealer's keys, in one table: id, default key, what it does.

Why one table: the desk's bindings, the help screen (`?`), the README's key map and the
config's ``[keys]`` validation all read it, so a key can never be documented one way
and bound another.  Defaults follow NSE's NEAT and NEST-style dealer terminals (F1 buy,
F2 sell, F3 order book, F4 market watch, F8 trade book, Alt+F6 net positions, Shift+F2
modify, Delete cancel; F7, this console's own, opens the risk panel).  Users rebind
by id in the TOML config; Textual's keymap does the rebinding (``App.set_keymap``), so the
help screen, which reads the live bindings, shows the keys actually in force.
"""

from __future__ import annotations

from dataclasses import dataclass

from textual.binding import Binding, BindingType


@dataclass(frozen=True)
class Key:
    id: str
    key: str
    action: str
    description: str
    show: bool = True
    priority: bool = False
    group: str = "Screen"  # the help screen's and README's section (GROUPS, in that order)
    short: str = ""  # the key bar's label where the description is too long for it


# Desk screen (the trading keys).
DESK_KEYS: tuple[Key, ...] = (
    Key("order.buy", "f1", "buy", "Buy order", group="Orders", short="Buy"),
    Key("order.sell", "f2", "sell", "Sell order", group="Orders", short="Sell"),
    Key("view.orders", "f3", "show('orders')", "Order book", group="Views", short="Orders"),
    Key("view.watch", "f4", "show('watch')", "Market watch", group="Views", short="Watch"),
    Key("view.trades", "f8", "show('trades')", "Trade book", group="Views", short="Trades"),
    Key("view.positions", "alt+f6", "show('positions')", "Net positions", group="Views", short="Positions"),
    Key("view.journal", "f9", "show('journal')", "Journal (backup)", group="Views", short="Journal"),
    Key("order.modify", "shift+f2", "modify", "Modify order", group="Orders", short="Modify"),
    Key("order.cancel", "delete", "cancel", "Cancel order", group="Orders", short="Cancel"),
    Key("squareoff", "f10", "squareoff", "Square off", group="Risk", short="Sq.off"),
    Key("killswitch", "ctrl+k", "killswitch", "Kill switch", group="Risk", short="Kill"),
    Key("view.risk", "f7", "toggle_risk", "Risk panel: cut-off, MTM limits", group="Risk", short="Risk"),
    Key("replay", "ctrl+r", "replay", "Replay and reconciliation", show=False, group="Risk"),
    Key("watch.add", "insert", "watch_add", "Add symbol to watch", show=False, group="Views"),
    Key("watch.remove", "ctrl+d", "watch_remove", "Remove symbol from watch", show=False, group="Views"),
)

# Everywhere once logged in (app level).
APP_KEYS: tuple[Key, ...] = (
    Key("lock", "ctrl+l", "lock", "Lock screen", priority=True, short="Lock"),
    Key("help", "question_mark", "help", "Help: every key", short="Help"),
    Key("quit", "ctrl+q", "quit", "Quit", priority=True),
)

# `lifeboat demo` only (console/tui/drill.py): stage an outage through mainsim's fault
# control; the same key ends it.  Not in ALL_KEYS: the real console has no such key.
DEMO_KEYS: tuple[Key, ...] = (
    Key("outage", "ctrl+o", "outage", "Demo: stage / end outage", priority=True, short="Outage"),
)

ALL_KEYS: tuple[Key, ...] = DESK_KEYS + APP_KEYS
KEY_IDS = frozenset(k.id for k in ALL_KEYS + DEMO_KEYS)
BY_ID = {k.id: k for k in ALL_KEYS + DEMO_KEYS}
GROUPS = ("Orders", "Views", "Risk", "Screen")  # the order a dealer reads them in


def key_label(keys: str) -> str:
    """Textual key names as people type them: a character's name becomes the character
    (``question_mark`` -> ``?``, ``plus`` -> ``+``); named keys and modifiers stay as written
    (``alt+f6``, ``ctrl+k``, ``delete``), so the label is also what the config accepts.
    Comma-separated keys come back as ``a, b``."""
    from textual.keys import key_to_character

    out = []
    for key in keys.split(","):
        *mods, last = key.strip().split("+")
        char = key_to_character(last) if len(last) > 1 else None
        if char is not None and char.isprintable() and not char.isspace():
            last = char
        out.append("+".join([*mods, last]))
    return ", ".join(out)


def help_rank(binding_id: str) -> tuple:
    """Sort key of the help order: GROUPS first, then as declared in ALL_KEYS and DEMO_KEYS."""
    known = BY_ID.get(binding_id)
    group = GROUPS.index(known.group) if known is not None else len(GROUPS)
    return group, _DECLARED.get(binding_id, len(_DECLARED)), binding_id


_DECLARED = {k.id: n for n, k in enumerate(ALL_KEYS + DEMO_KEYS)}


def bindings(keys: tuple[Key, ...]) -> list[BindingType]:
    return [
        Binding(
            k.key,
            k.action,
            k.description,
            show=k.show,
            priority=k.priority,
            id=k.id,
            tooltip=f"{k.description} (id {k.id})",
        )
        for k in keys
    ]


def markdown_table() -> str:
    """The key map as a Markdown table for the README, in help order, keys as people type them."""
    rows = ["| key | what | id |", "|---|---|---|"]
    keys = sorted(ALL_KEYS + DEMO_KEYS, key=lambda k: help_rank(k.id))
    rows += [f"| {key_label(k.key)} | {k.description} | `{k.id}` |" for k in keys]
    return "\n".join(rows)
