"""The test suite's clock: every test runs in a world whose wall clock starts at a fixed
instant, whatever the real date, so no test can depend on the real date.

``install()`` (called by conftest before any test module is imported) sets the offset of the
console's and mainsim's one clock (``LIFEBOAT_CLOCK_OFFSET_S``, contract/clock.py and
mainsim/tradingday.py) so that "now" is ``LIFEBOAT_TEST_NOW`` (default ``DEFAULT_NOW``) when
the session starts; time then runs at its real pace.  Subprocesses (mainsim, the CLI) inherit
the variable, so every part agrees on the date.  CI runs the date-sensitive tests (marker
``dates``) a second time with ``LIFEBOAT_TEST_NOW`` months ahead (see README).
"""

from __future__ import annotations

import os
from datetime import UTC, datetime

from contract.clock import OFFSET_ENV

NOW_ENV = "LIFEBOAT_TEST_NOW"
DEFAULT_NOW = "2026-01-05T09:20:00+05:30"  # a Monday, early in the session (IST)


def start() -> datetime:
    text = os.environ.get(NOW_ENV) or DEFAULT_NOW
    when = datetime.fromisoformat(text)
    if when.tzinfo is None:
        raise ValueError(f"{NOW_ENV} needs a UTC offset: {text!r}")
    return when


def offset_to(when: datetime) -> str:
    """The value of LIFEBOAT_CLOCK_OFFSET_S that makes 'now' equal ``when``."""
    return repr((when - datetime.now(UTC)).total_seconds())


def install() -> None:
    os.environ[OFFSET_ENV] = offset_to(start())


def keep(env: dict[str, str]) -> dict[str, str]:
    """``env`` plus the clock offset, and the test's config dir (conftest: trust anchors and their
    locks never go to the user's real ~/.config): for tests that build a subprocess environment
    from scratch."""
    config = (
        {"LIFEBOAT_CONFIG_DIR": os.environ["LIFEBOAT_CONFIG_DIR"]}
        if "LIFEBOAT_CONFIG_DIR" in os.environ
        else {}
    )
    return {**config, **env, OFFSET_ENV: os.environ[OFFSET_ENV]}
