"""Each client's MTM against its MTM-loss limit (the BOD's ``max_mtm_loss``), from the local
book: realised plus unrealised P&L over its positions, as main computed them at their last
update (contract.money).  ``price_age_s`` says how old that is: older than
``stale_price_seconds`` (the stream is down, or the market quiet) and the figure is stale.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

from contract import clock
from localstore import rms_store
from localstore.db import Store
from sync.rms.settings import RmsSettings


@dataclass(frozen=True)
class ClientRisk:
    client_id: str
    mtm: Decimal  # realised + unrealised; a loss is negative
    max_mtm_loss: Decimal | None  # a positive amount; None: no limit from main
    used_pct: float | None  # the loss as a percent of the limit (0 when in profit); None: no limit
    alert_level: int  # the highest alert threshold reached today (0: none)
    squareoff_mode: bool  # reduce-only after a breach
    price_age_s: float | None  # seconds since the newest position update; None: no position
    stale: bool

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
        }


def used_pct(mtm: Decimal, limit: Decimal | None) -> float | None:
    if limit is None or limit <= 0:
        return None
    return max(0.0, float(-mtm / limit * 100))


def client_risk(
    store: Store, settings: RmsSettings, *, now: datetime | None = None, trading_date: date | None = None
) -> list[ClientRisk]:
    now = now or clock.utcnow()
    day = trading_date or now.astimezone(settings.zone).date()
    states = rms_store.client_states(store, day)
    out = []
    for r in rms_store.client_book(store):
        mtm = Decimal(r.realised or 0) + Decimal(r.unrealised or 0)
        age = None if r.updated_at is None else max(0.0, (now - r.updated_at).total_seconds())
        st = states.get(r.client_id)
        out.append(
            ClientRisk(
                client_id=r.client_id,
                mtm=mtm,
                max_mtm_loss=r.max_mtm_loss,
                used_pct=used_pct(mtm, r.max_mtm_loss),
                alert_level=st.alert_level if st else 0,
                squareoff_mode=bool(st.squareoff_mode) if st else False,
                price_age_s=age,
                stale=age is not None and age > settings.stale_price_seconds,
            )
        )
    return out
