"""Exit codes of the lifeboat CLI, documented in one place (../shared/CONTRACT.md)."""

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0  # done, or durably journaled
    # a bug or an unforeseen failure (see the log by its error id), or a full or failing
    # disk under the store (--json reason disk_full / io_error: keep the store, free space)
    UNEXPECTED = 1
    USAGE = 2  # bad flags or arguments
    DENIED = 3  # authentication or permission denied
    REJECTED = 4  # rejected by policy, risk check or the main system (partly, for multi-leg)
    UNAVAILABLE = 5  # main system unavailable and backup mode not possible
    HELD = 6  # held for a person's decision (replay conflicts, stale entries, reconciliation mismatches)
    BUSY = 7  # another process holds the replay; try again
    INTEGRITY = 8  # the audit chain or the store failed its check
