"""Running the real `lifeboat` CLI as a subprocess against a real mainsim.

Shared by tests/test_cli_*.py and tests/test_sync_*.py (the fixtures ``cli_factory``
and ``cli`` that make these consoles are in tests/conftest.py).  Each console gets its own
LIFEBOAT_HOME under the test's tmp dir.  The keyring is the file-backed test
backend (tests/keyring_backend.py): no OS keyring runs on this headless machine,
so that one part is a fake by necessity.  The local offline-login verifier is cheap
(LIFEBOAT_TEST_SCRYPT_N for the subprocesses, run through tests/launcher.py; the
``cheap_scrypt`` fixture in this process); nothing else is faked.
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

from tests import testclock
from tests.simproc import track

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
            raise AssertionError(
                f"lifeboat {' '.join(self.args)}: stdout is not JSON ({exc}):\n"
                f"stdout={self.stdout!r}\nstderr={self.stderr!r}"
            ) from None

    def ok(self) -> CliResult:
        assert self.returncode == 0, (
            f"lifeboat {' '.join(self.args)} exited {self.returncode}\nstdout={self.stdout}\nstderr={self.stderr}"
        )
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
        """This console's config dir (trust anchors when there is no keyring), beside its home and
        outside it, like its keyring file: the same for its subprocesses and its in-process
        services (``service``), also for a console a module-scoped fixture made before any test's
        own LIFEBOAT_CONFIG_DIR (conftest) was set."""
        return self.home.parent / f"{self.home.name}-config"

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
        return [sys.executable, "-m", "tests.launcher", *args]  # console.cli with the test seams set

    def __call__(self, *args: str, stdin: str | None = None, timeout: float = 60, **env: str) -> CliResult:
        p = subprocess.run(
            self.argv(*args),
            input=stdin if stdin is not None else "",
            capture_output=True,
            text=True,
            env=self.env(**env),
            cwd=REPO_ROOT,
            timeout=timeout,
        )
        return CliResult(tuple(args), p.returncode, p.stdout, p.stderr)

    def many(self, *commands: tuple[str, ...], timeout: float = 60) -> list[CliResult]:
        """Run independent read-only commands at the same time (start-up dominates each)."""
        procs = []
        try:
            for args in commands:
                procs.append((args, self.popen(*args)))
            results = []
            for args, p in procs:
                out, err = p.communicate(timeout=timeout)
                results.append(CliResult(tuple(args), p.returncode, out, err))
            return results
        finally:  # one timed out or failed to start: none of the others is left running
            for _, p in procs:
                if p.poll() is None:
                    p.kill()
                    p.wait()

    def popen(self, *args: str, stdin: str | None = None, **env: str) -> subprocess.Popen:
        """Start a command and return at once (stdin, if given, is written and closed).  The test's
        end stops it if the test did not (conftest, ``simproc.track``)."""
        p = subprocess.Popen(
            self.argv(*args),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=self.env(**env),
            cwd=REPO_ROOT,
        )
        track(p)
        if stdin:
            p.stdin.write(stdin)
        p.stdin.close()
        p.stdin = None  # so communicate() does not touch it again
        return p

    def login(self, user: str | None = None, password: str = PASSWORD) -> CliResult:
        return self("--user", user or self.user or "", "--password-stdin", "login", stdin=password + "\n")

    def service(self):
        """The same console's service layer, in this process (cheaper than a subprocess
        for setting the scene; the subprocess is for what the test is about).  It uses this
        console's keyring file and config dir, as its subprocesses do: the token and the trust anchors an
        in-process login keeps there are this console's (one machine, one keyring); with
        another file an in-process login would not find the enrolment of a subprocess login
        and would enrol the store again under a new console id (sync.identity)."""
        from console.service import Service

        # conftest's and cli_factory's monkeypatch put both back after the test
        os.environ["LIFEBOAT_TEST_KEYRING_FILE"] = str(self.keyring_file)
        os.environ["LIFEBOAT_CONFIG_DIR"] = str(self.config_dir)
        return Service(backend_url=self.backend_url, home=self.home, user=self.user)

    def bod_in_process(self, password: str = PASSWORD):
        """Log in with the password and take a BOD, in this process; returns the BodResult."""
        svc = self.service()
        try:
            return asyncio.run(svc.sync_bod(password))
        finally:
            svc.close()


def copy_anchors(
    src_home: Path,
    dst_home: Path,
    *,
    keyring_file: Path | None = None,
    dst_keyring_files: tuple[Path, ...] = (),
    console_id: str | None = None,
    src_config_dir: Path | None = None,
) -> None:
    """TEST ONLY: enrol ``dst_home`` (a copy of ``src_home``'s store) as ``src_home`` was, the
    same as an online login there would, without one: templates built once and copied per
    test need it, since the trust anchors are bound to the home's real path
    (localstore.anchors, sync.identity) and a copy is "not enrolled".  ``console_id``: the id
    the copy's store was given (a harness that renumbers its copies).

    The source entry is read from the test keyring file ``keyring_file``
    (tests/keyring_backend.py), else from the anchor file in ``src_config_dir`` (the config dir the
    source was enrolled under; default: the current one).  The copy's entry is
    written to ``keyring_file`` and each of ``dst_keyring_files`` (the copy's subprocesses read
    one of those), and to the config dir's anchor file: an in-process reader whose keyring
    (whatever an earlier test left this process with) has no entry for the copy falls back to it."""
    from localstore.anchors import SERVICE, Anchors, config_dir, home_key

    def entries(path: Path | None) -> dict:
        return json.loads(path.read_text()) if path is not None and path.exists() else {}

    text = entries(keyring_file).get(f"{SERVICE}\0{home_key(src_home)}")
    if text is None:
        src_file = (src_config_dir or config_dir()) / "anchors" / f"{home_key(src_home)}.json"
        assert src_file.exists(), f"no trust anchors for {src_home} in {keyring_file} or {src_file}"
        text = src_file.read_text()
    data = json.loads(text)
    if console_id is not None:
        data["console_id"] = console_id
    for kr_file in {p for p in (keyring_file, *dst_keyring_files) if p is not None}:
        kr = entries(kr_file)
        kr[f"{SERVICE}\0{home_key(dst_home)}"] = json.dumps(data, sort_keys=True)
        kr_file.write_text(json.dumps(kr))
    if os.environ.get("LIFEBOAT_CONFIG_DIR"):  # the test's own (conftest), never the user's real config dir
        Anchors(dst_home, backend="file").save(data)


def enrolled_for_test(store):
    """TEST ONLY: a store opened without an online login, for tests of the journal itself, taken
    as the console enrolled on its home (sync.identity's mark of a store it checked), so that
    journal writes are not refused as "not enrolled"; no anchors are written anywhere."""
    from sync import identity

    identity._cache(store, store.console_id)
    return store


def raw_session(url: str, user: str = "dealer1", password: str = PASSWORD) -> dict:
    """POST /session with plain httpx: the access token and grant as the main system issues them."""
    r = httpx.post(f"{url}/api/v1/session", json={"user_id": user, "password": password}, timeout=10)
    r.raise_for_status()
    return r.json()


def raw_get(url: str, token: str, path: str, **params) -> list | dict:
    r = httpx.get(
        f"{url}/api/v1{path}", params=params or None, headers={"Authorization": f"Bearer {token}"}, timeout=10
    )
    r.raise_for_status()
    return r.json()
