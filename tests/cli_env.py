"""Running the real `lifeboat` CLI as a subprocess against a real mainsim.

Shared by tests/test_cli_*.py and tests/test_sync_*.py (import the fixtures from
here; conftest.py is left to the mainsim fixtures).  Each console gets its own
LIFEBOAT_HOME under the test's tmp dir.  The keyring is the file-backed test
backend (tests/keyring_backend.py): no OS keyring runs on this headless machine,
so that one part is a fake by necessity.  LIFEBOAT_TEST_SCRYPT_N makes the local
offline-login verifier cheap; nothing else is faked.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests import testclock

REPO_ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "demo"
DEAD_URL = "http://127.0.0.1:9"  # discard port: nothing listens, connections are refused


@dataclass
class CliResult:
    args: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str

    def json(self):
        try:
            return json.loads(self.stdout)
        except json.JSONDecodeError as exc:
            raise AssertionError(f"lifeboat {' '.join(self.args)}: stdout is not JSON ({exc}):\n"
                                 f"stdout={self.stdout!r}\nstderr={self.stderr!r}") from None

    def ok(self) -> "CliResult":
        assert self.returncode == 0, (
            f"lifeboat {' '.join(self.args)} exited {self.returncode}\nstdout={self.stdout}\nstderr={self.stderr}")
        return self


@dataclass
class Cli:
    """One console (one LIFEBOAT_HOME) pointed at one backend URL."""

    home: Path
    backend_url: str
    keyring_file: Path
    user: str | None = "dealer1"
    extra_env: dict[str, str] = field(default_factory=dict)

    @property
    def store_file(self) -> Path:
        return self.home / "lifeboat.db"

    @property
    def log_file(self) -> Path:
        return self.home / "logs" / "lifeboat.jsonl"

    @property
    def config_dir(self) -> Path:
        """The config dir (trust anchors when there is no keyring): the test's own (conftest), shared
        with in-process services; anchors are kept per home, so consoles do not mix."""
        return Path(os.environ["LIFEBOAT_CONFIG_DIR"])

    def env(self, **extra: str) -> dict[str, str]:
        env = testclock.keep({k: v for k, v in os.environ.items() if not k.startswith("LIFEBOAT_")})
        env.update(
            LIFEBOAT_HOME=str(self.home),
            LIFEBOAT_CONFIG_DIR=str(self.config_dir),
            LIFEBOAT_BACKEND_URL=self.backend_url,
            LIFEBOAT_TEST_SCRYPT_N="1024",
            PYTHON_KEYRING_BACKEND="tests.keyring_backend.TestKeyring",
            LIFEBOAT_TEST_KEYRING_FILE=str(self.keyring_file),
            PYTHONPATH=str(REPO_ROOT),
        )
        if self.user:
            env["LIFEBOAT_USER"] = self.user
        env.update(self.extra_env)
        env.update(extra)
        return env

    def argv(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "console.cli", *args]

    def __call__(self, *args: str, stdin: str | None = None, timeout: float = 60, **env: str) -> CliResult:
        p = subprocess.run(self.argv(*args), input=stdin if stdin is not None else "", capture_output=True,
                           text=True, env=self.env(**env), cwd=REPO_ROOT, timeout=timeout)
        return CliResult(tuple(args), p.returncode, p.stdout, p.stderr)

    def many(self, *commands: tuple[str, ...], timeout: float = 60) -> list[CliResult]:
        """Run independent read-only commands at the same time (start-up dominates each)."""
        procs = [(args, self.popen(*args)) for args in commands]
        results = []
        for args, p in procs:
            out, err = p.communicate(timeout=timeout)
            results.append(CliResult(tuple(args), p.returncode, out, err))
        return results

    def popen(self, *args: str, stdin: str | None = None, **env: str) -> subprocess.Popen:
        """Start a command and return at once (stdin, if given, is written and closed)."""
        p = subprocess.Popen(self.argv(*args), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, env=self.env(**env), cwd=REPO_ROOT)
        if stdin:
            p.stdin.write(stdin)
        p.stdin.close()
        p.stdin = None  # so communicate() does not touch it again
        return p

    def login(self, user: str | None = None, password: str = PASSWORD) -> CliResult:
        return self("--user", user or self.user or "", "--password-stdin", "login", stdin=password + "\n")

    def service(self):
        """The same console's service layer, in this process (cheaper than a subprocess
        for setting the scene; the subprocess is for what the test is about)."""
        from console.service import Service

        return Service(backend_url=self.backend_url, home=self.home, user=self.user)

    def bod_in_process(self, password: str = PASSWORD):
        """Log in with the password and take a BOD, in this process; returns the BodResult."""
        svc = self.service()
        try:
            return asyncio.run(svc.sync_bod(password))
        finally:
            svc.close()


@pytest.fixture
def cli_factory(tmp_path, monkeypatch):
    """Make consoles: ``cli_factory(url, name="console", user="dealer1")``."""
    import keyring

    from tests.keyring_backend import TestKeyring

    # in-process logins (Cli.service) use the cheap test verifier too, and a keyring of this test's own: keyring
    # keeps one backend per process, and what an earlier test left there must not decide this one
    monkeypatch.setenv("LIFEBOAT_TEST_SCRYPT_N", "1024")
    monkeypatch.setenv("LIFEBOAT_TEST_KEYRING_FILE", str(tmp_path / "in-process-keyring.json"))
    previous = keyring.get_keyring()
    keyring.set_keyring(TestKeyring())

    def make(backend_url: str, name: str = "console", user: str | None = "dealer1") -> Cli:
        home = tmp_path / name
        return Cli(home=home, backend_url=backend_url, keyring_file=tmp_path / f"{name}-keyring.json", user=user)

    yield make
    keyring.set_keyring(previous)


@pytest.fixture
def cli(sim, cli_factory) -> Cli:
    """A console for dealer1 pointed at the test's mainsim (not logged in yet)."""
    return cli_factory(sim.url)


def raw_session(url: str, user: str = "dealer1", password: str = PASSWORD) -> dict:
    """POST /session with plain httpx: the access token and grant as the main system issues them."""
    r = httpx.post(f"{url}/api/v1/session", json={"user_id": user, "password": password}, timeout=10)
    r.raise_for_status()
    return r.json()


def raw_get(url: str, token: str, path: str, **params) -> list | dict:
    r = httpx.get(f"{url}/api/v1{path}", params=params or None, headers={"Authorization": f"Bearer {token}"},
                  timeout=10)
    r.raise_for_status()
    return r.json()
