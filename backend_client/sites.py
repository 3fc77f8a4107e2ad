"""Which site takes the console's actions: main, the broker's DR site, or neither.

The DR tier (DESIGN "Modes"): actions go to main while main is primary, to the DR site once
the broker has declared it primary, and to the local journal when neither can take them.
The choice follows what the sites say of themselves (``role`` and ``epoch`` in their health
replies), never a guess:

* a site is sent to only while it says it is primary with an epoch at least the highest this
  console has seen (a fencing number: an old primary restarted by mistake as primary, at the
  epoch it had before the promotion, is refused);
* when both sites say primary (split brain), nothing is sent to either: the journal takes the
  actions and the console raises an alarm;
* a site that does not answer, answers badly or says standby is not sent to.

Pure decisions (``choose``) apart from one concurrent survey of both sites (``survey``).
Cheap to import: it sits on the CLI's start-up path.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from backend_client.detector import ProbeResult, probe_once

MAIN, DR = "main", "dr"


@dataclass(frozen=True)
class Site:
    """One site as a probe saw it."""

    name: str  # MAIN or DR
    url: str
    probe: ProbeResult

    @property
    def claims_primary(self) -> bool:
        """It answered and says it is the primary (whatever its epoch)."""
        return self.probe.role == "primary" and self.probe.kind == "ok"


@dataclass(frozen=True)
class SiteChoice:
    """Where actions go now, and why."""

    sites: tuple[Site, ...]
    active: Site | None  # None: neither site may take an action (the local journal does)
    split_brain: bool
    fenced: Site | None  # a site that says primary at an epoch below the highest seen
    highest_epoch: int  # the highest epoch seen, this survey included
    reason: str  # one sentence for a person

    @property
    def mode(self) -> str | None:
        """ONLINE (main takes actions), DR (the DR site does), or None (neither)."""
        if self.active is None:
            return None
        return "ONLINE" if self.active.name == MAIN else "DR"

    def site(self, name: str) -> Site | None:
        return next((s for s in self.sites if s.name == name), None)

    def as_dict(self) -> dict:
        """Both sites at a glance (``lifeboat status``, the screens): which one takes actions and
        each one's word; a value not known is left out, never a null (but ``active``)."""

        def known(**kw) -> dict:
            return {k: v for k, v in kw.items() if v is not None}

        rows = []
        for s in self.sites:
            p, answered = s.probe, s.probe.role is not None
            rows.append(
                known(
                    name=s.name,
                    url=s.url,
                    reachable=answered,
                    role=p.role,
                    epoch=p.epoch,
                    latency_ms=None if p.latency_ms is None else round(p.latency_ms, 1),
                    following=p.following,
                    replication_lag_s=p.replication_lag_s,
                    error=None if answered else (p.detail or p.kind),
                )
            )
        return {
            "active": None if self.active is None else self.active.name,
            **known(
                split_brain=self.split_brain,
                fenced=None if self.fenced is None else self.fenced.name,
                highest_epoch=self.highest_epoch,
                reason=self.reason,
            ),
            "sites": rows,
        }


def choose(sites: tuple[Site, ...], highest_seen: int = 0) -> SiteChoice:
    """Decide from one survey; ``highest_seen`` is the highest epoch seen before it."""
    answered = [s.probe.epoch for s in sites if s.probe.epoch is not None and s.probe.role is not None]
    highest = max([highest_seen, *answered])
    primaries = [s for s in sites if s.claims_primary]
    if len(primaries) > 1:
        epochs = ", ".join(f"{s.name} epoch {s.probe.epoch}" for s in primaries)
        return SiteChoice(
            sites,
            None,
            True,
            None,
            highest,
            f"split brain: both sites say they are primary ({epochs}); nothing is sent to either",
        )
    if not primaries:
        return SiteChoice(sites, None, False, None, highest, _none_primary(sites))
    (primary,) = primaries
    epoch = primary.probe.epoch or 0
    if epoch < highest:
        return SiteChoice(
            sites,
            None,
            False,
            primary,
            highest,
            f"{primary.name} says primary at epoch {epoch}, but epoch {highest} was seen: "
            "it is fenced off (a stale primary)",
        )
    return SiteChoice(sites, primary, False, None, highest, f"{primary.name} is primary (epoch {epoch})")


def _none_primary(sites: tuple[Site, ...]) -> str:
    parts = []
    for s in sites:
        if s.probe.kind == "standby":
            parts.append(f"{s.name} is a standby")
        else:
            parts.append(f"{s.name} {s.probe.kind}" + (f" ({s.probe.detail})" if s.probe.detail else ""))
    return "no site is primary: " + "; ".join(parts)


async def survey(
    main_url: str,
    dr_url: str | None,
    *,
    timeout: float = 0.8,
    verify: bool | str = True,
    http=None,
    known: dict[str, ProbeResult] | None = None,
) -> tuple[Site, ...]:
    """Both sites' health, probed at once (one site when no DR site is configured); ``known``
    holds probes already made (by site name), ``http`` a probe client kept open by the caller."""
    urls = [(MAIN, main_url)] + ([(DR, dr_url)] if dr_url else [])
    known = known or {}

    async def probe(name: str, url: str) -> ProbeResult:
        if name in known:
            return known[name]
        return await probe_once(
            url, timeout=timeout, verify=verify if url.startswith("https://") else False, http=http
        )

    probes = await asyncio.gather(*(probe(name, url) for name, url in urls))
    return tuple(Site(name, url, p) for (name, url), p in zip(urls, probes, strict=True))
