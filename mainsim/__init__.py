"""The reference main trading backend: a real FastAPI server for demos, drills and tests."""
