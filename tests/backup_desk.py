"""A console ready for backup mode, built once per test module and copied per test.

dealer1 logs in online (offline grant + verifier in the store), super1 logs in and
takes the BOD (the whole book), then mainsim is killed.  Each test gets its own
copy of that LIFEBOAT_HOME, so tests do not see each other's journal; the copy is
enrolled as the template was (its trust anchors are bound to the home's path, so a
plain copy would be refused as "not enrolled here": see cli_env.copy_anchors).  The
console then points at DEAD_URL (a port nothing listens on: connection refused,
what a killed main looks like).  Nothing is faked but the keyring (see cli_env).
"""

from __future__ import annotations

import asyncio
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from tests import launcher
from tests.cli_env import DEAD_URL, PASSWORD, Cli, copy_anchors
from tests.simproc import SimProcess


@dataclass
class Template:
    home: Path
    keyring_file: Path
    trading_date: str


def build_template(root: Path) -> Template:
    import keyring

    from tests.keyring_backend import TestKeyring

    os.environ["LIFEBOAT_TEST_SCRYPT_N"] = "1024"  # for the subprocesses (tests/launcher.py)
    launcher.install({launcher.SCRYPT_N_ENV: "1024"})  # and for the logins below, in this process
    os.environ.setdefault("PYTHON_KEYRING_BACKEND", "tests.keyring_backend.TestKeyring")
    keyring_file = root / "keyring.json"
    os.environ["LIFEBOAT_TEST_KEYRING_FILE"] = str(keyring_file)
    # the logins below enrol the template's home: its trust anchors go to this keyring file
    # (whatever keyring an earlier test left this process with), never to a real config dir
    # (a module-scoped build runs outside the tests' own LIFEBOAT_CONFIG_DIR)
    previous_keyring, previous_config = keyring.get_keyring(), os.environ.get("LIFEBOAT_CONFIG_DIR")
    keyring.set_keyring(TestKeyring())
    os.environ["LIFEBOAT_CONFIG_DIR"] = str(root / "config")
    sim = SimProcess(db=root / "mainsim.db", workdir=root).start()
    try:
        from console.service import Service

        home = root / "home"
        svc = Service(backend_url=sim.url, home=home, user="dealer1")
        try:
            asyncio.run(svc.login("dealer1", PASSWORD))
        finally:
            svc.close()
        svc = Service(backend_url=sim.url, home=home, user="super1")
        try:
            res = asyncio.run(svc.sync_bod(PASSWORD))
        finally:
            svc.close()
    finally:
        sim.kill()
        keyring.set_keyring(previous_keyring)
        if previous_config is None:
            os.environ.pop("LIFEBOAT_CONFIG_DIR", None)
        else:
            os.environ["LIFEBOAT_CONFIG_DIR"] = previous_config
    return Template(home, keyring_file, res.trading_date.isoformat())


def fresh_console(tpl: Template, dest: Path, user: str = "dealer1", backend_url: str = DEAD_URL) -> Cli:
    """A copy of the template's home, enrolled as the template was (test-only: the copy's
    trust anchors are the template's, under the copy's home; cli_env.copy_anchors)."""
    home = dest / "home"
    shutil.copytree(tpl.home, home)
    kr = dest / "keyring.json"
    shutil.copy(tpl.keyring_file, kr)
    # the template's keyring file too: an in-process Service reads it (build_template pointed this process there)
    copy_anchors(tpl.home, home, keyring_file=tpl.keyring_file, dst_keyring_files=(kr,))
    return Cli(home=home, backend_url=backend_url, keyring_file=kr, user=user)
