"""Each client's MTM against its MTM-loss limit (the BOD's ``max_mtm_loss``), from the
freshest source the caller has, and how old the prices behind it are.

Two sources, one formula (contract.money: realised + (last - average) x net, as main marks
a position):

- ``main``: main's ``GET /positions``, marked at main's current price when it answered.
  The prices are as old as that answer (``fetched_at``).
- ``local``: the local book.  The mirror applies fills (position events), not ticks, so a
  position's price is the one of its last fill or of the BOD that brought it, whichever is
  later: minutes old in a quiet market, and older still once the stream is down.

A client's ``price_age_s`` is the age of the OLDEST price among its open positions (the
figure is only as fresh as its stalest part); a client with no open position has an MTM
that needs no price (realised only): no age, never stale.  Older than
``stale_price_seconds`` and the figure is ``stale``: shown, never acted on
(sync.rms.limits).

Why not the stream's ticks: they come from the same main over the same connection as
``GET /positions``, so they are fresh exactly when main answers (and then main's own marked
positions are the better figure: main's prices and main's fills, including a fill the
mirror has not applied yet); once main is down they are as stale as the local book.  And a
tick only says an instrument moved: a quiet instrument has no tick to date its price.  So
the runtime asks main every few seconds (one request for the whole scope) and falls back to
the local book, marked with its true age.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

from contract import clock
from contract.enums import value_of
from localstore import rms_store
from localstore.db import Store
from sync.rms.settings import RmsSettings

SOURCE_MAIN = "main"  # main's GET /positions, marked at main's current price
SOURCE_LOCAL = "local"  # the local book, marked at each position's last fill or the BOD


@dataclass(frozen=True)
class Mark:
    """One position as a source marks it."""

    client_id: str
    exchange: str
    symbol: str
    product: str
    net_quantity: int
    mtm: Decimal  # realised + unrealised at the source's price
    priced_at: datetime  # when that price was current


def main_marks(positions: Iterable, fetched_at: datetime) -> list[Mark]:
    """Main's positions (wire.Position), priced when main answered."""
    return [
        Mark(
            p.client_id,
            str(value_of(p.exchange)),
            p.symbol,
            str(value_of(p.product)),
            p.net_quantity,
            Decimal(p.mtm),
            fetched_at,
        )
        for p in positions
    ]


def local_marks(store: Store) -> list[Mark]:
    """The local book's positions, each priced at the later of its last update and the BOD."""
    rows, bod_at = rms_store.position_marks(store)
    out = []
    for r in rows:
        at = r.updated_at if bod_at is None else max(r.updated_at, bod_at)
        out.append(
            Mark(
                r.client_id,
                str(value_of(r.exchange)),
                r.symbol,
                str(value_of(r.product)),
                r.net_quantity,
                Decimal(r.mtm or 0),
                at,
            )
        )
    return out


@dataclass(frozen=True)
class ClientRisk:
    client_id: str
    mtm: Decimal  # realised + unrealised; a loss is negative
    max_mtm_loss: Decimal | None  # a positive amount; None: no limit from main
    used_pct: float | None  # the loss as a percent of the limit (0 when in profit); None: no limit
    alert_level: int  # the highest alert threshold reached today (0: none; 100: breached)
    squareoff_mode: bool  # reduce-only after a breach
    price_age_s: float | None  # age of the oldest price behind the MTM; None: no open position
    stale: bool
    source: str = SOURCE_LOCAL  # "main" or "local"
    open_positions: int = 0
    priced_at: datetime | None = None  # when the oldest price behind the MTM was current

    @property
    def mode(self) -> str:
        return "squareoff" if self.squareoff_mode else "normal"

    def as_dict(self) -> dict:
        return {
            "client_id": self.client_id,
            "mtm": float(self.mtm),
            "max_mtm_loss": None if self.max_mtm_loss is None else float(self.max_mtm_loss),
            "used_pct": None if self.used_pct is None else round(self.used_pct, 1),
            "alert_level": self.alert_level,
            "mode": self.mode,
            "price_age_s": None if self.price_age_s is None else round(self.price_age_s, 1),
            "stale": self.stale,
            "source": self.source,
            "open_positions": self.open_positions,
            "priced_at": None if self.priced_at is None else self.priced_at.isoformat(),
        }


def used_pct(mtm: Decimal, limit: Decimal | None) -> float | None:
    if limit is None or limit <= 0:
        return None
    return max(0.0, float(-mtm / limit * 100))


def client_risk(
    store: Store,
    settings: RmsSettings,
    *,
    now: datetime | None = None,
    trading_date: date | None = None,
    main_positions: Iterable | None = None,
    fetched_at: datetime | None = None,
) -> list[ClientRisk]:
    """Every client of the local book (and any other main shows), its MTM from main's
    positions when given (``main_positions``, as main answered at ``fetched_at``), else from
    the local book; its limit from the BOD; today's alert level and mode from the store."""
    now = now or clock.utcnow()
    day = trading_date or now.astimezone(settings.zone).date()
    if main_positions is not None:
        marks, source = main_marks(main_positions, fetched_at or now), SOURCE_MAIN
    else:
        marks, source = local_marks(store), SOURCE_LOCAL
    limits = rms_store.mtm_limits(store)
    states = rms_store.client_states(store, day)
    mtm: dict[str, Decimal] = {}
    oldest: dict[str, datetime] = {}
    opened: dict[str, int] = {}
    for m in marks:
        mtm[m.client_id] = mtm.get(m.client_id, Decimal(0)) + m.mtm
        if m.net_quantity == 0:
            continue  # realised only: no price behind it
        opened[m.client_id] = opened.get(m.client_id, 0) + 1
        if m.client_id not in oldest or m.priced_at < oldest[m.client_id]:
            oldest[m.client_id] = m.priced_at
    out = []
    for cid in sorted(set(limits) | set(mtm)):
        limit = limits.get(cid)
        value = mtm.get(cid, Decimal(0))
        at = oldest.get(cid)
        age = None if at is None else max(0.0, (now - at).total_seconds())
        st = states.get(cid)
        out.append(
            ClientRisk(
                client_id=cid,
                mtm=value,
                max_mtm_loss=limit,
                used_pct=used_pct(value, limit),
                alert_level=st.alert_level if st else 0,
                squareoff_mode=bool(st.squareoff_mode) if st else False,
                price_age_s=age,
                stale=age is not None and age > settings.stale_price_seconds,
                source=source,
                open_positions=opened.get(cid, 0),
                priced_at=at,
            )
        )
    return out
