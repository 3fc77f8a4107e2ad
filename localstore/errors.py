"""Errors of the local store.

One exception type the faces (CLI, TUI) can catch and show as is: its message
names the file and tells a person what to do, because a refused store at 9:15 on
an outage morning must not need a developer to interpret a traceback.
"""

from __future__ import annotations

from pathlib import Path


class StoreError(Exception):
    """The store cannot be opened or used safely.  ``path`` is the file involved
    (None for a non-file URL); ``str(err)`` is a complete sentence for a person."""

    def __init__(self, message: str, *, path: Path | None = None) -> None:
        super().__init__(message)
        self.path = path
