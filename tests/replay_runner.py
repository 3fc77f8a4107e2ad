"""A replay in its own process, for the crash-at-every-step and two-replayers tests:
``python -m tests.replay_runner --home H --url U [--user U] [--wait S] [--no-reconcile]``.
Logs in online, runs one replay pass (the crash point
LIFEBOAT_TEST_REPLAY_CRASH_AFTER, set through tests/launcher.py, may kill it part-way), reconciles, and prints one
JSON line: {"result": ..., "report": ...}."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

from backend_client.client import BackendClient
from localstore.db import open_store
from localstore.paths import store_path
from sync.reconcile import reconcile
from sync.replay import Replayer
from tests.launcher import install


async def main(a) -> int:
    store = open_store(store_path(Path(a.home)))
    try:
        async with BackendClient(a.url) as c:
            await c.login(a.user, "demo")
            result = await Replayer(store, c).run(wait_s=a.wait)
            report = None
            if result.status == "done" and not a.no_reconcile:
                report = await reconcile(store, c, result)
        print(json.dumps({"result": result.as_dict(), "report": report}, default=str))
        return 0
    finally:
        store.close()


if __name__ == "__main__":
    install()  # the test seams this process's environment asks for (the replay's crash point)
    p = argparse.ArgumentParser()
    p.add_argument("--home", required=True)
    p.add_argument("--url", required=True)
    p.add_argument("--user", default="super1")
    p.add_argument("--wait", type=float, default=0.0)
    p.add_argument("--no-reconcile", action="store_true")
    sys.exit(asyncio.run(main(p.parse_args())))
