"""Journal states as stored, for readers that must not import the ORM models or the
pydantic wire schema (`lifeboat status`, the backup CLI path).  They are the values of
localstore.models.JournalState; tests/test_perf_paths.py keeps the two equal."""

STATE_PENDING, STATE_SENT = "pending", "sent"
UNFINISHED_STATES = (STATE_PENDING, STATE_SENT)  # still to be replayed
FINAL_STATES = ("applied", "moot", "rejected")  # nothing left to do
HELD_STATES = ("held", "conflict")  # waiting for a person
