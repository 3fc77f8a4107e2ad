"""Lifeboat's two faces (the Textual console and the typer CLI) and the service layer they share.

Importing this package must stay cheap and must not import Textual: the CLI path starts here.
"""
