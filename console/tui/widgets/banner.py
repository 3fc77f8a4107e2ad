"""The mode banner: one line, always on screen, impossible to misread.

ONLINE green, DR blue (the broker's DR site takes the actions; which one, since when),
SUSPECT amber, BACKUP red, RECOVERING amber with the replay progress,
UNAVAILABLE (main down and no valid grant or book here: nothing can be journaled) magenta.
The text says what the mode means for the dealer's next action, not only its name.
"""

from __future__ import annotations

from textual.reactive import reactive
from textual.widgets import Static

MEANING = {
    "ONLINE": "orders go to the main system",
    "DR": "main is down: orders go to the broker's DR site",
    "SUSPECT": "main is late answering; not switched yet",
    "BACKUP": "main is down: actions are journaled locally (reduce-only unless allowed)",
    "RECOVERING": "main is back: replaying the journal, new actions queue behind it",
    "UNAVAILABLE": "main is down and no backup action can be accepted here",
}


class ModeBanner(Static):
    mode: reactive[str] = reactive("ONLINE")
    progress: reactive[str] = reactive("")
    reason: reactive[str] = reactive("")  # UNAVAILABLE: why (from `status`)

    def render(self) -> str:
        extra = f"  replay {self.progress}" if self.mode == "RECOVERING" and self.progress else ""
        if self.mode == "UNAVAILABLE" and self.reason:
            extra = f" ({self.reason.split('backup not possible here: ', 1)[-1]})"
        if self.mode == "DR" and self.reason:
            extra = f" ({self.reason})"  # which DR site
        if self.mode == "BACKUP" and self.reason.startswith("ALARM"):
            # split brain or a stale primary: main is not down, no site may be trusted
            return f" BACKUP  -  {self.reason}: actions are journaled locally"
        return f" {self.mode}  -  {MEANING.get(self.mode, '')}{extra}"

    def watch_mode(self, old: str, new: str) -> None:
        self.remove_class(f"mode-{old.lower()}")
        self.add_class(f"mode-{new.lower()}")

    def on_mount(self) -> None:
        self.add_class(f"mode-{self.mode.lower()}")
