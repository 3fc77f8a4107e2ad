"""A keyring backend for tests only: no OS keyring (Secret Service, Keychain) runs on
this headless machine, so CLI subprocesses are pointed here with
PYTHON_KEYRING_BACKEND=tests.keyring_backend.TestKeyring.  It keeps secrets in a
JSON file named by LIFEBOAT_TEST_KEYRING_FILE, which lives in the test's tmp dir.
This is a fake by necessity; the product never writes a token to a plain file."""

from __future__ import annotations

import fcntl
import json
import os
from contextlib import contextmanager
from pathlib import Path

from keyring.backend import KeyringBackend


class TestKeyring(KeyringBackend):
    priority = 1  # type: ignore[assignment]

    def _path(self) -> Path:
        return Path(os.environ["LIFEBOAT_TEST_KEYRING_FILE"])

    def _load(self) -> dict:
        p = self._path()
        return json.loads(p.read_text()) if p.exists() else {}

    def _save(self, data: dict) -> None:
        # each entry is set atomically, as in a real keyring: parallel CLI processes of one test
        # read while another writes (a torn file would read as garbage)
        tmp = self._path().with_suffix(f".tmp{os.getpid()}")
        tmp.write_text(json.dumps(data))
        os.replace(tmp, self._path())

    @contextmanager
    def _locked(self):
        with open(self._path().with_suffix(".lock"), "a") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            yield

    def get_password(self, service, username):
        return self._load().get(f"{service}\0{username}")

    def set_password(self, service, username, password):
        with self._locked():
            data = self._load()
            data[f"{service}\0{username}"] = password
            self._save(data)

    def delete_password(self, service, username):
        with self._locked():
            data = self._load()
            data.pop(f"{service}\0{username}", None)
            self._save(data)
