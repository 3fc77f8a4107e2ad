"""BOD snapshot, live mirror, journal replay and reconciliation. Never imports Textual."""
