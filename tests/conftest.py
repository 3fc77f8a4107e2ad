from __future__ import annotations

import os
import re
import signal
import threading
import time

import pytest

from tests import launcher, simproc, testclock
from tests.simproc import SimProcess

# pytest-xdist's workers inherit COLUMNS=80 from it; the CLI's output width must not depend on how
# the tests were started (console/runner.py: 200 columns when piped, unless COLUMNS says otherwise)
os.environ.pop("COLUMNS", None)
os.environ.pop("LINES", None)
testclock.install()  # before any test imports the product: no test sees the real date
SESSION_MARK = simproc.mark_session()  # every process the tests start carries it (tests/simproc.py)
LEFTOVER_GRACE_S = 5.0  # what a teardown stopped may take to be gone


def _no_keyring_by_default() -> None:
    """This process's keyring is keyring's 'fail' backend (the headless machine's own) until a test
    sets one.  Left to itself, keyring picks the highest-priority backend class it knows, and the test
    modules define several of equal priority (a locked one among them, tests/unit/test_store_secrets.py):
    which one won changed from run to run (a set of classes), and a test then found the keyring locked."""
    import keyring
    from keyring.backends import fail

    keyring.set_keyring(fail.Keyring())


_no_keyring_by_default()


def _real_anchors() -> set[str]:
    """What the user's real config dir holds of trust anchors (the dir the product would use with no
    LIFEBOAT_CONFIG_DIR)."""
    from platformdirs import user_config_dir

    folder = os.path.join(user_config_dir("lifeboat", appauthor=False), "anchors")
    return set(os.listdir(folder)) if os.path.isdir(folder) else set()


_REAL_ANCHORS_BEFORE = _real_anchors()


def pytest_configure(config):
    """A SIGTERM (an outer `timeout`, a CI runner giving up) ends the run as ^C does: the fixtures'
    teardowns still stop what they started, and the guard below still runs."""
    if threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGTERM) in (
        signal.SIG_DFL,
        None,
    ):

        def interrupt(signum, frame):
            raise KeyboardInterrupt(f"signal {signum}")

        signal.signal(signal.SIGTERM, interrupt)


@pytest.hookimpl(trylast=True)  # after pytest's own sessionfinish, which tears down what an interrupt left
def pytest_sessionfinish(session, exitstatus):
    """No test may leave anchors or their locks in the user's real config dir (a subprocess started
    without the test's LIFEBOAT_CONFIG_DIR did, unnoticed): fail the run if one did.  Nor may a
    process the tests started outlive them (mainsim, an agent, a console; the run's mark in its
    environment or a descendant of this process): the guard kills it and fails the run."""
    new = _real_anchors() - _REAL_ANCHORS_BEFORE
    if new:
        print(f"\nFAILED: tests wrote {sorted(new)} into the real config dir's anchors/", flush=True)
        session.exitstatus = 1
    simproc.stop_tracked()
    deadline = time.monotonic() + LEFTOVER_GRACE_S
    left = simproc.leftovers(SESSION_MARK)
    while left and time.monotonic() < deadline:
        time.sleep(0.1)
        left = simproc.leftovers(SESSION_MARK)
    if left:
        simproc.kill_pids(left)
        listing = "".join(f"\n  {pid}: {cmd[:200]}" for pid, cmd in sorted(left.items()))
        print(
            f"\nFAILED: processes the tests started were still running at the end (killed):{listing}",
            flush=True,
        )
        session.exitstatus = 1


@pytest.fixture(autouse=True, scope="session")
def _session_config_dir(tmp_path_factory):
    """The config dir for fixtures wider than one test (module-scoped template consoles are set up
    before any test's own): never the user's real ~/.config/lifeboat."""
    mp = pytest.MonkeyPatch()
    mp.setenv("LIFEBOAT_CONFIG_DIR", str(tmp_path_factory.mktemp("lifeboat-config")))
    yield
    mp.undo()


@pytest.fixture(autouse=True)
def _config_dir(tmp_path, monkeypatch):
    """Each test's console config dir (trust anchors, localstore/anchors.py) is its own, outside
    any console home, never the user's real ~/.config/lifeboat."""
    monkeypatch.setenv("LIFEBOAT_CONFIG_DIR", str(tmp_path / "lifeboat-config"))


@pytest.fixture
def cheap_scrypt(monkeypatch):
    """New offline-login verifiers made in this process use the cheapest scrypt work factor
    (localstore.verifier.SCRYPT_N, read at call time); subprocesses get it from tests/launcher.py."""
    from localstore import verifier

    monkeypatch.setattr(verifier, "SCRYPT_N", launcher.CHEAP_SCRYPT_N)


@pytest.fixture(autouse=True)
def _stop_test_processes():
    """Processes a test started (``simproc.track``: the console commands of tests/cli_env.py, the replay
    runners) are stopped when it ends, when it failed or timed out too."""
    started = simproc.tracked_count()
    yield
    simproc.stop_tracked(started)


@pytest.fixture
def cli_factory(tmp_path, monkeypatch, cheap_scrypt):
    """Make consoles (tests/cli_env.py's Cli): ``cli_factory(url, name="console", user="dealer1")``."""
    import keyring

    from tests.cli_env import Cli
    from tests.keyring_backend import TestKeyring

    # in-process logins (Cli.service) use the cheap test verifier too (cheap_scrypt), and a keyring of this
    # test's own: keyring keeps one backend per process, and what an earlier test left there must not decide this one
    monkeypatch.setenv("LIFEBOAT_TEST_KEYRING_FILE", str(tmp_path / "in-process-keyring.json"))
    previous = keyring.get_keyring()
    keyring.set_keyring(TestKeyring())

    def make(backend_url: str, name: str = "console", user: str | None = "dealer1") -> Cli:
        home = tmp_path / name
        return Cli(
            home=home, backend_url=backend_url, keyring_file=tmp_path / f"{name}-keyring.json", user=user
        )

    yield make
    keyring.set_keyring(previous)


@pytest.fixture
def cli(sim, cli_factory):
    """A console for dealer1 pointed at the test's mainsim (not logged in yet)."""
    return cli_factory(sim.url)


@pytest.fixture
def tui_keyring(tmp_path, monkeypatch, cheap_scrypt):
    """The file-backed test keyring (tests/keyring_backend.py) for a console app in this process
    (tests/tui_env.py); yields its file."""
    import keyring

    from tests.keyring_backend import TestKeyring

    monkeypatch.setenv("LIFEBOAT_TEST_KEYRING_FILE", str(tmp_path / "keyring.json"))
    prev = keyring.get_keyring()
    keyring.set_keyring(TestKeyring())
    yield tmp_path / "keyring.json"
    keyring.set_keyring(prev)


@pytest.fixture
def sim_factory(tmp_path):
    """Make mainsim subprocesses (each with its own SQLite file); all are killed at teardown."""
    started: list[SimProcess] = []

    def make(**kw) -> SimProcess:
        workdir = tmp_path / f"sim{len(started)}"
        workdir.mkdir()
        sim = SimProcess(db=kw.pop("db", workdir / "mainsim.db"), workdir=workdir, **kw)
        started.append(sim)
        return sim.start()

    try:
        yield make
    finally:
        for sim in started:  # each one, even if killing another failed
            try:
                sim.kill()
            except Exception as exc:  # noqa: BLE001 - reported; the session guard kills what is left
                print(f"sim_factory: could not kill {sim.proc and sim.proc.pid}: {exc!r}")


@pytest.fixture
def sim(sim_factory) -> SimProcess:
    """One running mainsim (seed 7, heartbeat 250 ms, faults off)."""
    return sim_factory()


# The date-sensitive tests: CI runs them a second time with the clock months ahead
# (`pytest -m dates` under LIFEBOAT_TEST_NOW, see README and tests/testclock.py).
DATE_MODULES = {"test_tui_snapshots", "test_sync_bod", "test_store_credentials", "test_tui_replay"}
DATE_WORDS = re.compile(r"stale|expir|grant|next_day|clock|trading_d|rolled_back|(^|_)bod(_|$)")


def pytest_collection_modifyitems(config, items):
    for item in items:
        module = item.module.__name__.rsplit(".", 1)[-1] if item.module else ""
        if module in DATE_MODULES or DATE_WORDS.search(item.name.lower()):
            item.add_marker(pytest.mark.dates)
