"""TEST ONLY: the console's CLI with the test seams set from the environment.

``python -m tests.launcher <console.cli args...>`` is ``python -m console.cli <args...>``
(the same ``__main__`` run, the same program name in usage lines) after ``install()``
has set the seams the shipped code offers as module attributes.  The shipped code reads
no ``LIFEBOAT_TEST_*`` variable; only this module does:

=================================  ==============================================================
``LIFEBOAT_TEST_SCRYPT_N=n``       ``localstore.verifier.SCRYPT_N = n`` (new verifiers are cheap)
``LIFEBOAT_TEST_ACK_PAUSE=s``      ``console.cmd_trade.before_ack``: sleep s seconds between the
                                   answer and the acknowledgement (a window to kill -9)
``LIFEBOAT_TEST_BOD_PAUSE=s``      ``sync.bod.before_commit``: sleep s seconds inside the BOD
                                   transaction, after the old book is deleted
``LIFEBOAT_TEST_REPLAY_CRASH_AFTER=k``  ``sync.replay.after_step``: ``os._exit(CRASH_EXIT_CODE)``
                                   once the replayer has taken k steps
=================================  ==============================================================

Other entry points the tests spawn call ``install()`` themselves (tests/replay_runner.py);
a forked child passes its own mapping (tests/replay_env.py).  A module is imported only when
its variable is set, so a plain run imports nothing more than ``python -m console.cli`` does.
"""

from __future__ import annotations

import os
import runpy
import sys
import time
from collections.abc import Mapping

SCRYPT_N_ENV = "LIFEBOAT_TEST_SCRYPT_N"
ACK_PAUSE_ENV = "LIFEBOAT_TEST_ACK_PAUSE"
BOD_PAUSE_ENV = "LIFEBOAT_TEST_BOD_PAUSE"
REPLAY_CRASH_AFTER_ENV = "LIFEBOAT_TEST_REPLAY_CRASH_AFTER"

CHEAP_SCRYPT_N = 1024  # the cheapest work factor the verifier accepts (2**10)
_MIN_N, _MAX_N = 2**10, 2**20


def scrypt_n(text: str) -> int:
    n = int(text)
    if n < _MIN_N or n > _MAX_N or n & (n - 1):
        raise ValueError(f"{SCRYPT_N_ENV} must be a power of two between {_MIN_N} and {_MAX_N}")
    return n


def _sleeper(seconds: float):
    def pause(*_args: object) -> None:
        time.sleep(seconds)

    return pause


def crash_after(k: int):
    """The replay's crash point: exit hard (no cleanup, no flush) once ``k`` steps are done."""
    from sync import replay

    def after_step(steps: int) -> None:
        if steps >= k:
            os._exit(replay.CRASH_EXIT_CODE)

    return after_step


def install(environ: Mapping[str, str] | None = None) -> None:
    """Set each seam whose variable ``environ`` (default: this process's environment) holds."""
    env = os.environ if environ is None else environ
    if env.get(SCRYPT_N_ENV):
        from localstore import verifier

        verifier.SCRYPT_N = scrypt_n(env[SCRYPT_N_ENV])
    if env.get(ACK_PAUSE_ENV):
        from console import cmd_trade

        cmd_trade.before_ack = _sleeper(float(env[ACK_PAUSE_ENV]))
    if env.get(BOD_PAUSE_ENV):
        from sync import bod

        bod.before_commit = _sleeper(float(env[BOD_PAUSE_ENV]))
    crash = (env.get(REPLAY_CRASH_AFTER_ENV) or "").strip()
    if crash.isdigit():
        from sync import replay

        replay.after_step = crash_after(int(crash))


def main() -> None:
    install()
    # run console.cli as `python -m console.cli` would: as __main__, with its argv[0] and program name
    runpy.run_module("console.cli", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    sys.exit(main())
