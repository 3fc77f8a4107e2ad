"""The witness endpoints' HTTP calls (CONTRACT.md): register this console's checkpoint
key, submit a signed checkpoint, ask for the last one main witnessed.

The bodies are contract.checkpoints' (shared with mainsim); what to send and when is
sync.checkpoint_send's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import TypeAdapter

from contract.checkpoints import (
    CheckpointKeyReceipt,
    CheckpointKeyRegistration,
    CheckpointSubmission,
    WitnessedCheckpoint,
)

if TYPE_CHECKING:  # imported by whoever sends, which has the client already
    from backend_client.client import BackendClient

_RECEIPT = TypeAdapter(CheckpointKeyReceipt)
_WITNESSED = TypeAdapter(WitnessedCheckpoint)


async def register_key(client: BackendClient, console_id: str, public_key: str) -> CheckpointKeyReceipt:
    """Registering the same key again is harmless, so a lost answer may be retried."""
    body = CheckpointKeyRegistration(console_id=console_id, public_key=public_key).model_dump(mode="json")
    _, receipt = await client.request(
        "POST", "/audit/checkpoint-keys", _RECEIPT, json=body, safe=True, ok=(200, 201)
    )
    return receipt


async def submit(client: BackendClient, submission: CheckpointSubmission) -> WitnessedCheckpoint:
    """Main answers the same checkpoint sent twice with 200, so it may be retried."""
    body = submission.model_dump(mode="json")
    _, witnessed = await client.request(
        "POST", "/audit/checkpoints", _WITNESSED, json=body, safe=True, ok=(200, 201)
    )
    return witnessed


async def latest(client: BackendClient, console_id: str) -> WitnessedCheckpoint | None:
    """Main's last witnessed checkpoint of ``console_id``; None when it witnessed none."""
    from backend_client.errors import NotFound

    try:
        _, last = await client.request(
            "GET", "/audit/checkpoints/latest", _WITNESSED, params={"console_id": console_id}, safe=True
        )
        return last
    except NotFound:
        return None
