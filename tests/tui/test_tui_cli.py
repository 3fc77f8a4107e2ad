"""Bare `lifeboat` opens the console: run the real command in a real pty against a real
mainsim, read the login screen, quit with Ctrl+Q; without a terminal it says so (exit 2)."""

from __future__ import annotations

import fcntl
import os
import re
import select
import struct
import subprocess
import sys
import termios
import time

from tests import testclock
from tests.cli_env import REPO_ROOT

ANSI = re.compile(r"\x1b\[[0-9;?<>=]*[ -/]*[@-~]|\x1b[()][0-9A-Za-z]|\x1b[=>]|\x1b\][^\x07]*\x07")


def _env(home, url):
    env = testclock.keep({k: v for k, v in os.environ.items() if not k.startswith("LIFEBOAT_")})
    env.update(
        LIFEBOAT_HOME=str(home),
        LIFEBOAT_BACKEND_URL=url,
        LIFEBOAT_USER="dealer1",
        TERM="xterm-256color",
        PYTHONPATH=str(REPO_ROOT),
        LIFEBOAT_CONFIG=str(home / "none.toml"),
    )
    return env


def test_bare_lifeboat_opens_the_console_in_a_terminal(sim, tmp_path):
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 140, 0, 0))
    proc = subprocess.Popen(
        [sys.executable, "-m", "console.cli"],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env=_env(tmp_path / "home", sim.url),
        start_new_session=True,
        cwd=REPO_ROOT,
    )
    os.close(slave)
    seen = ""
    try:
        deadline = time.monotonic() + 40
        while time.monotonic() < deadline and "log in ONLINE" not in seen:
            r, _, _ = select.select([master], [], [], 0.2)
            if r:
                seen += ANSI.sub("", os.read(master, 65536).decode(errors="replace"))
        assert "LIFEBOAT" in seen and "dealer console" in seen, seen[-2000:]
        assert "you will log in ONLINE" in seen, seen[-2000:]
        os.write(master, b"\x11")  # Ctrl+Q
        deadline = time.monotonic() + 20
        while proc.poll() is None and time.monotonic() < deadline:
            r, _, _ = select.select([master], [], [], 0.2)
            if r:
                try:
                    os.read(master, 65536)
                except OSError:
                    break
        assert proc.wait(5) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(master)


def test_bare_lifeboat_without_a_terminal_says_so(tmp_path):
    p = subprocess.run(
        [sys.executable, "-m", "console.cli"],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env=_env(tmp_path / "home", "http://127.0.0.1:9"),
        cwd=REPO_ROOT,
        timeout=60,
    )
    assert p.returncode == 2 and "needs a terminal" in p.stderr


def test_a_bad_config_is_one_sentence_not_a_traceback(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    (home / "none.toml").write_text("[keys]\n\"order.buyy\" = \"f1\"\n")
    script = (
        "import sys; from console.tui import run_console; "
        "sys.exit(run_console(backend='http://127.0.0.1:9', home=None, user='dealer1'))"
    )
    p = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        env=_env(home, "http://127.0.0.1:9"),
        cwd=REPO_ROOT,
        timeout=60,
    )
    assert p.returncode == 2, p.stderr
    assert "keys.order.buyy is not a key id" in p.stderr and "Traceback" not in p.stderr
