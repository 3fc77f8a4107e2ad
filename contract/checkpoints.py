"""The witness endpoints' bodies (CONTRACT.md): a console's signed audit checkpoints,
sent to main, which the dealer cannot write.

* ``POST /audit/checkpoint-keys`` ``CheckpointKeyRegistration``: at online login the
  console registers the public key its checkpoints are signed with (201,
  ``CheckpointKeyReceipt``).
* ``POST /audit/checkpoints`` ``CheckpointSubmission``: a signed checkpoint and the
  rows since the last one main witnessed; 201 witnessed (200: the same checkpoint
  again), 403 no key registered for the console, 422 bad signature, 409 the chain does
  not extend the last witnessed checkpoint (``purpose: "replay"``: the replay is
  refused) or seq does not grow.
* ``GET /audit/checkpoints/latest?console_id=``: the last witnessed one
  (``WitnessedCheckpoint``), 404 none.

Shared by the console (backend_client.checkpoints sends them) and mainsim (which
witnesses them); the hashing and the signed bytes are contract.auditchain's.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

_HEX64 = r"^[0-9a-f]{64}$"
_B64 = r"^[A-Za-z0-9+/]+={0,2}$"
MAX_ROWS_PER_SUBMISSION = 100_000  # mainsim recomputes them in one request

# 409 codes (ErrorBody.error.code)
NOT_EXTENDING = "chain_not_extending"
SEQ_NOT_GROWING = "seq_not_growing"


class ChainRow(BaseModel):
    """One audit row as it is hashed (payload already redacted, as stored)."""

    model_config = ConfigDict(extra="forbid")

    id: int = Field(ge=1)
    at: str = Field(max_length=40)
    user_id: str | None = Field(default=None, max_length=64)
    mode: str = Field(max_length=16)
    action: str = Field(max_length=64)
    payload: dict[str, Any]


class CheckpointClaims(BaseModel):
    """What a checkpoint says: exactly what is signed (auditchain.signing_bytes)."""

    model_config = ConfigDict(extra="forbid")

    console_id: str = Field(min_length=1, max_length=16)
    number: int = Field(ge=1)  # 1, 2, 3 ... on this console: a gap shows a deleted checkpoint
    seq: int = Field(ge=0)  # the audit row id it covers
    head_hash: str = Field(pattern=_HEX64)  # that row's hash
    at: str = Field(max_length=40)  # UTC ISO 8601, when it was made
    mode: str = Field(max_length=16)  # the console's mode then
    reason: str = Field(max_length=32)  # mode_change, replay, every_n, timer, login


class SignedCheckpoint(BaseModel):
    model_config = ConfigDict(extra="forbid")

    claims: CheckpointClaims
    public_key: str = Field(pattern=_B64, max_length=64)  # raw Ed25519, base64
    signature: str = Field(pattern=_B64, max_length=128)  # over auditchain.signing_bytes(claims), base64


class CheckpointKeyRegistration(BaseModel):
    model_config = ConfigDict(extra="forbid")

    console_id: str = Field(min_length=1, max_length=16)
    public_key: str = Field(pattern=_B64, max_length=64)


class CheckpointKeyReceipt(BaseModel):
    console_id: str
    public_key: str
    registered_at: datetime


class CheckpointSubmission(BaseModel):
    """A signed checkpoint and the rows after the last checkpoint main witnessed for the
    console (from row 1 when none) up to the checkpoint's ``seq``."""

    model_config = ConfigDict(extra="forbid")

    checkpoint: SignedCheckpoint
    rows: list[ChainRow] = Field(max_length=MAX_ROWS_PER_SUBMISSION)
    purpose: Literal["checkpoint", "replay"] = "checkpoint"  # replay: the replay handshake


class WitnessedCheckpoint(BaseModel):
    """A checkpoint main accepted."""

    console_id: str
    number: int
    seq: int
    head_hash: str
    at: str
    mode: str
    reason: str
    witnessed_at: datetime
