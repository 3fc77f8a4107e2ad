"""A console ready for backup mode, built once per test module and copied per test.

dealer1 logs in online (offline grant + verifier in the store), super1 logs in and
takes the BOD (the whole book), then mainsim is killed.  Each test gets its own
copy of that LIFEBOAT_HOME, so tests do not see each other's journal.  The
console then points at DEAD_URL (a port nothing listens on: connection refused,
what a killed main looks like).  Nothing is faked but the keyring (see cli_env).
"""

from __future__ import annotations

import asyncio
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from tests.cli_env import DEAD_URL, PASSWORD, Cli
from tests.simproc import SimProcess


@dataclass
class Template:
    home: Path
    keyring_file: Path
    trading_date: str


def build_template(root: Path) -> Template:
    os.environ["LIFEBOAT_TEST_SCRYPT_N"] = "1024"
    os.environ.setdefault("PYTHON_KEYRING_BACKEND", "tests.keyring_backend.TestKeyring")
    keyring_file = root / "keyring.json"
    os.environ["LIFEBOAT_TEST_KEYRING_FILE"] = str(keyring_file)
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
    return Template(home, keyring_file, res.trading_date.isoformat())


def fresh_console(tpl: Template, dest: Path, user: str = "dealer1", backend_url: str = DEAD_URL) -> Cli:
    home = dest / "home"
    shutil.copytree(tpl.home, home)
    kr = dest / "keyring.json"
    if tpl.keyring_file.exists():
        shutil.copy(tpl.keyring_file, kr)
    return Cli(home=home, backend_url=backend_url, keyring_file=kr, user=user)
