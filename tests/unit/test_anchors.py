"""Trust anchors outside the store (localstore/anchors.py), both ways they are kept: in the OS
keyring (here the file-backed test keyring, tests/keyring_backend.py: no OS keyring runs on this
headless machine, a fake by necessity) and, with no keyring, in a 0600 file in the config dir."""

from __future__ import annotations

import os
import stat

import keyring
import pytest
from keyring.backends import fail

from localstore.anchors import AnchorError, Anchors, public_key_b64
from tests.keyring_backend import TestKeyring as _TestKeyring


@pytest.fixture
def no_keyring():
    previous = keyring.get_keyring()
    keyring.set_keyring(fail.Keyring())
    yield
    keyring.set_keyring(previous)


@pytest.fixture
def test_keyring(tmp_path, monkeypatch):
    monkeypatch.setenv("LIFEBOAT_TEST_KEYRING_FILE", str(tmp_path / "keyring.json"))
    previous = keyring.get_keyring()
    keyring.set_keyring(_TestKeyring())
    yield tmp_path / "keyring.json"
    keyring.set_keyring(previous)


def test_without_a_keyring_the_anchors_are_a_0600_file_in_the_config_dir_outside_the_home(
    tmp_path, no_keyring
):
    home = tmp_path / "home"
    home.mkdir()
    a = Anchors(home)
    assert a.kind == "file"
    key = a.enrol("C0NS0LE1")
    assert a.file.is_file() and not str(a.file).startswith(str(home))
    assert stat.S_IMODE(a.file.stat().st_mode) == 0o600
    assert stat.S_IMODE(a.directory.stat().st_mode) == 0o700
    assert str(a.file) in a.where
    again = Anchors(home)
    assert again.console_id() == "C0NS0LE1"
    assert public_key_b64(again.console_key()) == public_key_b64(key)
    # a store copied to another home finds no anchors there
    assert Anchors(tmp_path / "copy").console_id() is None


def test_with_a_keyring_the_anchors_go_there_and_no_file_is_written(tmp_path, test_keyring):
    home = tmp_path / "home"
    a = Anchors(home)
    assert a.kind == "keyring" and "keyring" in a.where
    a.enrol("C0NS0LE2")
    a.put(grant_keys={"k1": "AAAA"})
    assert not a.file.exists()
    assert "C0NS0LE2" in test_keyring.read_text()
    assert Anchors(home).grant_keys() == {"k1": "AAAA"}
    assert Anchors(home).console_id() == "C0NS0LE2"


def test_a_loose_anchor_file_or_a_config_dir_inside_the_home_is_refused(tmp_path, no_keyring, monkeypatch):
    home = tmp_path / "home"
    a = Anchors(home)
    a.enrol("C0NS0LE3")
    os.chmod(a.file, 0o644)
    with pytest.raises(AnchorError, match="chmod 600"):
        Anchors(home).console_id()
    monkeypatch.setenv("LIFEBOAT_CONFIG_DIR", str(home / "cfg"))
    with pytest.raises(AnchorError, match="outside the store's folder"):
        Anchors(home).enrol("C0NS0LE4")


def test_an_unreadable_anchor_file_is_an_error_not_an_empty_set(tmp_path, no_keyring):
    home = tmp_path / "home"
    a = Anchors(home)
    a.enrol("C0NS0LE5")
    a.file.write_text("{not json")
    with pytest.raises(AnchorError, match="unreadable"):
        Anchors(home).console_id()
