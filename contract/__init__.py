"""The contract with the main system, in one place: the wire models and enums, the text and
number limits every reply is checked against, the order-shape rules, the money formulas, the
audit row hash and the offline-grant signature.

A leaf: it imports only the standard library, pydantic and cryptography, never the HTTP client,
the store or a face, so that ``backend_client``, ``localstore``, ``sync``, the faces and mainsim
all share it (import-linter contract in pyproject.toml).
"""
