"""Signed checkpoints of the audit chain, queued for main to witness.

Why: the chain (localstore.audit) finds an edited row only if nobody recomputed the
hashes after it; whoever can edit the store can recompute them with the project's own
``row_hash`` and the chain verifies again.  A checkpoint pins the chain from outside:
"row ``seq``'s hash is ``head_hash``", signed with the console's Ed25519 key, which
lives outside the store (localstore.anchors: the OS keyring or a 0600 file in the
config dir).  A rewrite before a checkpoint changes that row's hash and no longer
matches a signature the editor cannot make.  The checkpoints are also sent to main
(sync.checkpoint_send), which recomputes the chain over the rows in between and keeps
them where the dealer cannot write: deleting local checkpoints does not help either.
This module is the store's side: the signing key, making, queueing and checking them;
it never talks to main.

When one is made (all cheap next to the work around them):

* every ``EVERY`` audit rows, inside the append's own transaction
  (``on_append``: one modulo per append; on the N-th, one read, one Ed25519
  signature (~0.1 ms) and one insert; the key is read from the anchors once per
  process and home);
* on every mode change, before each replay, at online login and, in the agent, every
  ``MINUTES`` minutes while the head moves (``make``).

Defaults: ``EVERY`` = 100 rows (``LIFEBOAT_CHECKPOINT_EVERY``): a backup command
appends one to three rows, so a checkpoint every 30-100 commands; the key read it
costs once per process (keyring ~75 ms cold, the file well under 1 ms) is then paid
by roughly one CLI command in 30 or more, and the journal's hot path pays a modulo.
Rows past the newest checkpoint are never called intact: ``check`` reports them as
not yet covered, and mode changes and replays checkpoint the head anyway, so N only
bounds how much of a long, quiet stretch waits uncovered.  ``MINUTES`` = 5
(``LIFEBOAT_CHECKPOINT_MINUTES``): an agent that runs all day ONLINE has its head
witnessed within minutes, at one small request per five minutes at most.

When they are sent to main (sync.checkpoint_send: oldest first, each with the rows
since the last one main witnessed, ``pending`` and ``rows_between`` here; while main is
down they stay queued; main's answer is recorded with ``mark``): at online login, after
any online command main answered, by the runtime while ONLINE (after each mode change
and every ``MINUTES``), and in the replay handshake (sync.replay), where main's 409
refuses the replay.

A store with no signing key (never enrolled on this home) makes no checkpoint; its
rows are reported as not covered.

Known limit: main keeps one witness history per console id.  A store re-enrolled under
a new console id (sync.identity: its home's anchors lost, or a copy) starts a new
history at main; the ``console_enrolled`` audit row names the previous id, but main
does not link the two.
"""

from __future__ import annotations

import base64
import json
import logging
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, func, insert, select, text, update

from contract import clock
from contract.auditchain import GENESIS_HASH, signature_ok, signing_bytes
from localstore.core_tables import audit_checkpoints as _CP
from localstore.core_tables import audit_head as _HEAD
from localstore.core_tables import audit_log as _ROWS

if TYPE_CHECKING:
    from localstore.db import Store

log = logging.getLogger("lifeboat.checkpoints")

EVERY_ENV = "LIFEBOAT_CHECKPOINT_EVERY"
MINUTES_ENV = "LIFEBOAT_CHECKPOINT_MINUTES"


def span(first: int, last: int) -> str:
    """'row 4' or 'rows 4-8', for a person."""
    return f"row {first}" if first == last else f"rows {first}-{last}"


def _env_number(name: str, default: float, kind=int):
    try:
        value = kind(os.environ.get(name, default))
    except ValueError:
        return default
    return value if value > 0 else default


EVERY: int = _env_number(EVERY_ENV, 100)
MINUTES: float = _env_number(MINUTES_ENV, 5.0, float)
PUBLIC_KEYS_ANCHOR = "checkpoint_public_keys"  # every key this home's checkpoints were signed with


# --------------------------------------------------------------------------- the signing key


_signers: dict[str, tuple[Any, str] | None] = {}  # real home path -> (private key, public key b64)


def signing_key(home: Path) -> tuple[Any, str] | None:
    """This home's checkpoint key and its public half, or None before enrolment (or when
    the anchors cannot be read: logged; the rows then stay uncovered, never 'intact')."""
    where = os.path.realpath(home)
    if where in _signers and _signers[where] is not None:
        return _signers[where]
    from localstore.anchors import AnchorError, Anchors, public_key_b64

    try:  # only reads: this may run inside a store transaction, even inside an enrolment holding the anchors' lock
        key = Anchors(home).console_key()
        if key is None:
            return None
        public = public_key_b64(key)
    except AnchorError as exc:
        log.warning(
            "no checkpoint signing key", extra={"event": "checkpoint_key_unreadable", "reason": str(exc)}
        )
        return None
    _signers[where] = (key, public)
    return _signers[where]


def remember_key(home: Path, public: str) -> None:
    """Add ``public`` to the keys this home's checkpoints were signed with (in the anchors),
    so `audit verify` still trusts them after a re-enrolment makes a new key.  Called at
    online login, right after the enrolment that makes any new key."""
    from localstore.anchors import Anchors

    anchors = Anchors(home)
    with anchors.locked():
        known = anchors.get(PUBLIC_KEYS_ANCHOR) or []
        if public not in known:
            anchors.put(**{PUBLIC_KEYS_ANCHOR: [*known, public]})


def forget_keys() -> None:
    """Drop the cached keys (a re-enrolment in this process made a new one)."""
    _signers.clear()


def trusted_keys(home: Path) -> set[str]:
    """The public keys this home's checkpoints may be signed with (from the anchors,
    never from the store)."""
    from localstore.anchors import AnchorError, Anchors, public_key_b64

    anchors = Anchors(home)
    try:
        keys = {k for k in (anchors.get(PUBLIC_KEYS_ANCHOR) or []) if isinstance(k, str)}
        current = anchors.console_key()
    except AnchorError as exc:  # then no checkpoint proves anything: the rows read as not covered
        log.warning(
            "checkpoint keys unreadable", extra={"event": "checkpoint_key_unreadable", "reason": str(exc)}
        )
        return set()
    if current is not None:
        keys.add(public_key_b64(current))
    return keys


def _home_of(conn: Connection) -> Path | None:
    db = conn.engine.url.database
    return Path(db).parent if conn.engine.dialect.name == "sqlite" and db and db != ":memory:" else None


# --------------------------------------------------------------------------- making one


_NEWEST = select(_CP).order_by(_CP.c.number.desc()).limit(1)
_CONSOLE_ID = text("SELECT console_id FROM console_identity WHERE id = 1")


def _console_id(conn: Connection) -> str:
    return conn.execute(_CONSOLE_ID).scalar_one()


def sign_in(
    conn: Connection,
    *,
    seq: int,
    head_hash: str,
    mode: str,
    reason: str,
    home: Path | None = None,
    console_id: str | None = None,
) -> dict | None:
    """Sign and store a checkpoint of row ``seq`` (hash ``head_hash``) in the caller's
    write transaction; the claims, or None when this home has no signing key."""
    home = home or _home_of(conn)
    signer = signing_key(home) if home is not None else None
    if signer is None:
        return None
    key, public = signer
    number = (conn.execute(select(func.max(_CP.c.number))).scalar() or 0) + 1
    claims = {
        "console_id": console_id or _console_id(conn),
        "number": number,
        "seq": seq,
        "head_hash": head_hash,
        "at": clock.utcnow().astimezone(UTC).isoformat(timespec="microseconds"),
        "mode": mode,
        "reason": reason,
    }
    signature = base64.b64encode(key.sign(signing_bytes(claims))).decode("ascii")
    conn.execute(insert(_CP).values(**claims, public_key=public, signature=signature))
    return claims


def on_append(conn: Connection, *, seq: int, head_hash: str, mode: str) -> None:
    """The audit appenders call this for every ``EVERY``-th row, in their transaction."""
    sign_in(conn, seq=seq, head_hash=head_hash, mode=mode, reason="every_n")


def make(store: Store, *, mode: str, reason: str) -> dict | None:
    """A checkpoint of the chain's head now, unless the newest one already covers it
    (then that one).  None when the chain is empty or this home has no signing key."""
    if store.path is None:
        return None
    with store.write_core() as conn:
        head = conn.execute(select(_HEAD.c.last_id, _HEAD.c.last_hash).where(_HEAD.c.id == 1)).first()
        if head is None or head.last_id == 0:
            return None
        newest = conn.execute(_NEWEST).mappings().first()
        if newest is not None and newest["seq"] == head.last_id and newest["head_hash"] == head.last_hash:
            return dict(newest)
        return sign_in(
            conn,
            seq=head.last_id,
            head_hash=head.last_hash,
            mode=mode,
            reason=reason,
            home=store.path.parent,
            console_id=store.console_id,
        )


def newest(store: Store) -> dict | None:
    with store.read_core() as conn:
        row = conn.execute(_NEWEST).mappings().first()
    return dict(row) if row is not None else None


# --------------------------------------------------------------------------- the queue for main (sync.checkpoint_send sends it)


def pending(store: Store) -> list[dict]:
    """The checkpoints main has neither witnessed nor refused yet, oldest first."""
    with store.read_core() as conn:
        rows = (
            conn.execute(
                select(_CP)
                .where(_CP.c.witnessed_at.is_(None), _CP.c.refused_reason.is_(None))
                .order_by(_CP.c.number)
            )
            .mappings()
            .all()
        )
    return [dict(r) for r in rows]


def rows_between(store: Store, after: int, upto: int) -> list[dict]:
    """Audit rows ``after`` < id <= ``upto`` as they are hashed (payload decoded)."""
    with store.read_core() as conn:
        rows = (
            conn.execute(
                select(_ROWS.c.id, _ROWS.c.at, _ROWS.c.user_id, _ROWS.c.mode, _ROWS.c.action, _ROWS.c.payload)
                .where(_ROWS.c.id > after, _ROWS.c.id <= upto)
                .order_by(_ROWS.c.id)
            )
            .mappings()
            .all()
        )
    return [{**r, "payload": json.loads(r["payload"])} for r in rows]


def mark(
    store: Store, number: int, *, witnessed_at: datetime | None = None, refused: str | None = None
) -> None:
    """Record main's answer to checkpoint ``number`` (a cheap commit: a lost mark means it
    is sent again, and main answers a resend with 200)."""
    with store.write_core(durable=False) as conn:
        conn.execute(
            update(_CP)
            .where(_CP.c.number == number)
            .values(witnessed_at=witnessed_at, refused_reason=refused)
        )


# --------------------------------------------------------------------------- checking the chain against them


@dataclass
class Coverage:
    """What ``check`` found.  ``ok`` False: broken, ``first_bad_id`` the first row that
    cannot be proved and ``reason`` why.  ``ok`` True: rows 1..``covered_to`` match a
    signed checkpoint; ``uncovered`` (first, last) rows that no checkpoint covers yet."""

    ok: bool
    rows: int
    first_bad_id: int | None = None
    reason: str = ""
    covered_to: int = 0
    covered_by: str | None = None  # which checkpoint proves the most, for a person
    uncovered: tuple[int, int] | None = None
    checkpoints: int = 0
    witnessed: int = 0
    queued: int = 0
    untrusted: list[int] = field(default_factory=list)  # numbers of checkpoints no trusted key signed
    main: dict | None = None  # main's latest witnessed checkpoint, when asked

    def as_dict(self) -> dict:
        return {
            "ok": self.ok,
            "rows": self.rows,
            "first_bad_row": self.first_bad_id,
            "reason": self.reason or None,
            "covered_to_row": self.covered_to,
            "covered_by": self.covered_by,
            "uncovered_rows": list(self.uncovered) if self.uncovered else None,
            "checkpoints": {
                "total": self.checkpoints,
                "witnessed": self.witnessed,
                "queued": self.queued,
                "untrusted": self.untrusted,
            },
            "main_latest": self.main,
        }


def _status(cp: dict) -> str:
    if cp["witnessed_at"] is not None:
        return "witnessed by main"
    return "queued for main"


def check(conn: Connection, rows: int, *, trusted: set[str], main_latest: dict | None = None) -> Coverage:
    """Check a chain whose own links verify (``rows`` rows, localstore.audit.verify)
    against every signed checkpoint in the store and main's latest witnessed one."""
    cps = [dict(r) for r in conn.execute(select(_CP).order_by(_CP.c.number)).mappings()]
    cov = Coverage(ok=True, rows=rows, checkpoints=len(cps), main=main_latest)
    wanted = {cp["seq"] for cp in cps} | ({main_latest["seq"]} if main_latest else set())
    hashes = (
        dict(conn.execute(select(_ROWS.c.id, _ROWS.c.hash).where(_ROWS.c.id.in_(wanted))).all())
        if wanted
        else {}
    )

    def broken(first: int, reason: str) -> Coverage:
        cov.ok, cov.first_bad_id, cov.reason = False, first, reason
        return cov

    matched: dict[int, str] = {0: "the chain's start"}  # seq -> the signed head that proves rows 1..seq

    def against(seq: int, head_hash: str, what: str) -> Coverage | None:
        """Compare one signed head with the chain; None when it matches.  A head that
        matches at row s proves rows 1..s (each hash commits to every row before it)."""
        if seq > rows:
            return broken(
                rows + 1,
                f"{what} covers row {seq}, but the chain ends at row {rows}: {span(rows + 1, seq)} removed",
            )
        have = hashes.get(seq, GENESIS_HASH if seq == 0 else None)
        if have != head_hash:
            proved = max(s for s in matched if s < seq)
            first = proved + 1
            where = f"row {first}" if first == seq else f"one of rows {first}-{seq}"
            return broken(
                first,
                f"row {seq} does not match {what}: {where} was changed after the checkpoint was "
                f"made (and the later hashes recomputed); "
                + (
                    f"{span(1, proved)} {'matches' if proved == 1 else 'match'} {matched[proved]}, "
                    if proved
                    else ""
                )
                + f"so the first row that differs is {where}",
            )
        matched[seq] = what
        if seq >= cov.covered_to:
            cov.covered_to, cov.covered_by = seq, what
        return None

    expected = 1
    for cp in cps:
        if cp["number"] != expected:
            return broken(
                cov.covered_to + 1,
                f"signed checkpoint #{expected} is missing from the store "
                f"(checkpoints #{expected}-#{cp['number'] - 1} were deleted)",
            )
        expected += 1
        claims = {k: cp[k] for k in ("console_id", "number", "seq", "head_hash", "at", "mode", "reason")}
        if cp["public_key"] not in trusted or not signature_ok(claims, cp["public_key"], cp["signature"]):
            cov.untrusted.append(cp["number"])  # forged or from a key this home never held: proves nothing
            continue
        if cp["refused_reason"]:
            return broken(
                cov.covered_to + 1,
                f"signed checkpoint #{cp['number']} (row {cp['seq']}) was refused by "
                f"main: {cp['refused_reason']}",
            )
        cov.witnessed += cp["witnessed_at"] is not None
        cov.queued += cp["witnessed_at"] is None
        bad = against(cp["seq"], cp["head_hash"], f"signed checkpoint #{cp['number']} ({_status(cp)})")
        if bad is not None:
            return bad
    if main_latest is not None:
        bad = against(
            main_latest["seq"],
            main_latest["head_hash"],
            f"main's latest witnessed checkpoint #{main_latest['number']}",
        )
        if bad is not None:
            return bad
    if cov.covered_to < rows:
        cov.uncovered = (cov.covered_to + 1, rows)
    return cov
