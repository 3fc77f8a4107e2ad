from __future__ import annotations

import os
import re

import pytest

from tests import launcher, testclock
from tests.simproc import SimProcess

testclock.install()  # before any test imports the product: no test sees the real date


def _no_keyring_by_default() -> None:
    """This process's keyring is keyring's 'fail' backend (the headless machine's own) until a test
    sets one.  Left to itself, keyring picks the highest-priority backend class it knows, and the test
    modules define several of equal priority (a locked one among them, tests/test_store_secrets.py):
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


def pytest_sessionfinish(session, exitstatus):
    """No test may leave anchors or their locks in the user's real config dir (a subprocess started
    without the test's LIFEBOAT_CONFIG_DIR did, unnoticed): fail the run if one did."""
    new = _real_anchors() - _REAL_ANCHORS_BEFORE
    if new:
        print(f"\nFAILED: tests wrote {sorted(new)} into the real config dir's anchors/", flush=True)
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

    yield make
    for sim in started:
        sim.kill()


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
