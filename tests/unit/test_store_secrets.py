"""Token storage in the OS keyring, and nowhere else.

No OS keyring (Secret Service, Keychain) runs on this headless machine, so the
round-trip test installs an in-memory backend with keyring.set_keyring(): a fake
by necessity.  The no-backend tests use keyring's own `fail` and `null` backends,
which are what a headless machine really gets."""

from __future__ import annotations

import os

import keyring
import pytest
from keyring.backend import KeyringBackend
from keyring.backends import fail, null
from keyring.errors import KeyringLocked

import localstore.secrets as lbsecrets
from localstore.secrets import NO_BACKEND_WARNING, SERVICE, delete_token, load_token, save_token


class MemoryKeyring(KeyringBackend):
    """In-memory keyring (test fake: no OS keyring here)."""

    priority = 1  # type: ignore[assignment]

    def __init__(self) -> None:
        super().__init__()
        self.items: dict[tuple[str, str], str] = {}

    def get_password(self, service, username):
        return self.items.get((service, username))

    def set_password(self, service, username, password):
        self.items[(service, username)] = password

    def delete_password(self, service, username):
        self.items.pop((service, username), None)


class LockedKeyring(MemoryKeyring):
    """A backend that exists but refuses (a locked Secret Service collection)."""

    def set_password(self, service, username, password):
        raise KeyringLocked("collection is locked")


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    """Fresh warning state, HOME/XDG dirs pointed into tmp, previous backend restored."""
    previous = keyring.get_keyring()
    monkeypatch.setattr(lbsecrets, "_warned", False)
    home = tmp_path / "home"
    home.mkdir()
    for var, sub in (("HOME", ""), ("XDG_DATA_HOME", ".local/share"), ("XDG_CONFIG_HOME", ".config")):
        monkeypatch.setenv(var, str(home / sub))
    yield home
    keyring.set_keyring(previous)


def _all_files(root):
    return [os.path.join(d, f) for d, _, files in os.walk(root) for f in files]


def test_round_trip_with_in_memory_backend(isolated, capsys):
    backend = MemoryKeyring()
    keyring.set_keyring(backend)
    assert save_token("dealer1", "tok-abc") is True
    assert backend.items == {(SERVICE, "dealer1"): "tok-abc"}
    assert load_token("dealer1") == "tok-abc"
    assert load_token("dealer2") is None
    delete_token("dealer1")
    assert load_token("dealer1") is None
    delete_token("dealer1")  # already gone: not an error
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("backend", [fail.Keyring(), null.Keyring()], ids=["fail", "null"])
def test_no_backend_keeps_nothing_and_warns_once(isolated, capsys, backend):
    keyring.set_keyring(backend)
    assert save_token("dealer1", "tok-abc") is False
    assert save_token("dealer2", "tok-def") is False
    assert load_token("dealer1") is None
    delete_token("dealer1")
    err = capsys.readouterr().err
    assert err.count(NO_BACKEND_WARNING) == 1
    assert "tok-" not in err
    assert _all_files(isolated) == []  # no plaintext fallback anywhere under HOME


def test_backend_that_refuses_is_reported_not_raised(isolated, capsys):
    keyring.set_keyring(LockedKeyring())
    assert save_token("dealer1", "tok-abc") is False
    assert "tok-abc" not in capsys.readouterr().err
