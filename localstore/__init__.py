"""The console's local SQLite store (SQLAlchemy): mirror, journal, audit log. Never imports Textual."""
