"""Smoke test: `lifeboat demo` in a real terminal (tmux, 200x50), read off the screen as a
newcomer reads it: ONLINE, ctrl+o -> BACKUP, ctrl+o -> ONLINE again, ctrl+q quits cleanly,
and mainsim is stopped afterwards (no process left)."""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
import sys
import time
import uuid

import pytest

from tests.tui.test_demo_drill import demo_env, pid_alive

pytestmark = [
    pytest.mark.timeout(90),
    pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed"),
]


class Tmux:
    def __init__(self) -> None:
        self.socket = f"lbtest-{uuid.uuid4().hex[:8]}"  # a private server: never touches a user's tmux

    def __call__(self, *args: str) -> str:
        r = subprocess.run(["tmux", "-L", self.socket, *args], capture_output=True, text=True, timeout=10)
        return r.stdout

    def screen(self) -> str:
        return self("capture-pane", "-p", "-t", "demo")

    def wait(self, predicate, what: str, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        text = ""
        while time.monotonic() < deadline:
            text = self.screen()
            if predicate(text):
                return text
            time.sleep(0.2)
        raise AssertionError(f"not on screen after {timeout:.0f} s: {what}\n--- screen ---\n{text}")


def banner(text: str) -> str:
    return text.splitlines()[0] if text.strip() else ""


def test_demo_under_tmux_online_outage_backup_back_and_quit(tmp_path):
    data = tmp_path / "demo"
    # console.cli through the test launcher: demo_env's cheap verifier (tests/launcher.py)
    cmd = " ".join(
        shlex.quote(a) for a in [sys.executable, "-m", "tests.launcher", "demo", "--dir", str(data)]
    )
    tmux = Tmux()
    env = demo_env(tmp_path)
    env["TERM"] = "xterm-256color"
    subprocess.run(
        [
            "tmux",
            "-L",
            tmux.socket,
            "-f",
            "/dev/null",
            "new-session",
            "-d",
            "-s",
            "demo",
            "-x",
            "200",
            "-y",
            "50",
            f"{cmd}; echo DEMO-EXIT=$?; sleep 60",
        ],
        env=env,
        check=True,
        timeout=10,
    )
    try:
        tmux.wait(
            lambda t: banner(t).startswith(" ONLINE") and "ctrl+o" in t, "the desk ONLINE with the hint", 45
        )
        pid = json.loads((data / "mainsim-ready.json").read_text())["pid"]
        assert pid_alive(pid)
        tmux("send-keys", "-t", "demo", "C-o")
        tmux.wait(lambda t: banner(t).startswith(" BACKUP"), "BACKUP after the outage key", 20)
        tmux("send-keys", "-t", "demo", "C-o")
        tmux.wait(lambda t: banner(t).startswith(" ONLINE"), "ONLINE after the outage ended", 30)
        tmux("send-keys", "-t", "demo", "C-q")
        end = tmux.wait(lambda t: "DEMO-EXIT=" in t, "the demo exiting", 20)
        assert "DEMO-EXIT=0" in end and "mainsim stopped" in end and str(data) in end
        assert "Traceback" not in end
        assert not pid_alive(pid)
    finally:
        tmux("kill-server")
