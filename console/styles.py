"""Rich styles both faces draw with: the CLI prints with rich, the TUI renders rich markup.

One definition, so `lifeboat sync report` and the console's replay and reconciliation
screens colour a journal entry's state alike (the states: localstore.journal_states).
"""

from __future__ import annotations

JOURNAL_STATE_STYLE: dict[str, str] = {
    "applied": "green",
    "moot": "dim",
    "rejected": "red",
    "conflict": "bold red",
    "held": "bold yellow",
    "pending": "cyan",
    "sent": "cyan",
}
