"""Typed async client of the broker's main trading backend (REST + WebSocket stream).

Never imports Textual.  See ``wire`` for the schema and ``errors`` for what callers catch.
"""
