"""The broker's DR site for this console: ``--dr-backend`` / ``LIFEBOAT_DR_BACKEND_URL`` (the
CLI's global option and its environment variable), else ``[backend] dr_url`` in the console's
config.toml (the file console/tui/config.py reads).  Read with tomllib: the CLI's start-up
path imports no Textual."""

from __future__ import annotations

from pathlib import Path

from localstore.trustfile import config_section


class SiteConfigError(Exception):
    """The DR site's address cannot be used; the message says why."""


def check_url(url: str, what: str) -> str:
    """``url`` without a trailing slash, or SiteConfigError when it is not http(s)://host[:port]."""
    if not isinstance(url, str) or not url.startswith(("http://", "https://")) or len(url) > 2048:
        raise SiteConfigError(f"{what} must be an http(s):// URL, not {url!r}")
    return url.rstrip("/")


def dr_url(home: Path, given: str | None, main_url: str) -> str | None:
    """The DR site's URL, or None when none is configured."""
    if given:
        url = check_url(given, "--dr-backend")
    else:
        try:
            path, section = config_section(home, "backend")
        except ValueError as exc:
            raise SiteConfigError(str(exc)) from None
        value = section.get("dr_url") if isinstance(section, dict) else None
        if value is None:
            return None
        url = check_url(value, f"{path}: backend.dr_url")
    if url == main_url.rstrip("/"):
        raise SiteConfigError(f"the DR site {url} is the main backend itself: give the DR site's own URL")
    return url
