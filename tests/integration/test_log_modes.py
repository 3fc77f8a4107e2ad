"""Logs are as private as the store (issue 10, section 1, "logs world-readable").

The store was 0600 in a 0700 home, but `logs/` was 0755 and `lifeboat.jsonl` 0644:
any user on the machine could read who traded what for which client.  Here, with
the usual umask 022: a real CLI run leaves the home and `logs/` 0700 and the log
and the store 0600; a rotation (the real handler's doRollover, in a subprocess
that set the log up as the CLI does) keeps both files 0600; a home left by an older
version (0755 home and logs, 0644 log and store) is warned about once on stderr and
in `status`, and what is Lifeboat's own in it is tightened while the home itself,
which may be any folder the person chose, is only warned about.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli_env import DEAD_URL, REPO_ROOT


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture(autouse=True)
def usual_umask():
    """The umask most machines have (022): what made the old files world-readable."""
    old = os.umask(0o022)
    yield
    os.umask(old)


def test_cli_run_and_rotation_leave_logs_private(cli_factory):
    cli = cli_factory(DEAD_URL)
    r = cli("status", "--json")
    assert r.returncode in (0, 5), r.stderr  # main is down; nobody logged in here: UNAVAILABLE
    assert cli.log_file.exists()
    assert (mode(cli.home), mode(cli.home / "logs")) == (0o700, 0o700)
    assert (mode(cli.log_file), mode(cli.store_file)) == (0o600, 0o600)
    assert "warning" not in r.stderr  # a home Lifeboat made itself has nothing to warn about

    # a rotation, through the log set up as the CLI sets it up
    code = (
        "import logging, sys; from pathlib import Path; from console import eventlog\n"
        "eventlog.setup(Path(sys.argv[1]))\n"
        "logging.getLogger('lifeboat').warning('before the rotation')\n"
        "[h for h in logging.getLogger().handlers if getattr(h, '_lifeboat', False)][0].doRollover()\n"
        "logging.getLogger('lifeboat').warning('after the rotation')\n"
    )
    subprocess.run(
        [sys.executable, "-c", code, str(cli.home / "logs")],
        check=True,
        cwd=REPO_ROOT,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
    )
    rotated = cli.home / "logs" / "lifeboat.jsonl.1"
    assert "before the rotation" in rotated.read_text() and "after the rotation" in cli.log_file.read_text()
    for path in (rotated, cli.log_file):  # both sides of a rotation hold whole ECS lines, one object a line
        for line in path.read_text().splitlines():
            obj = json.loads(line)
            assert obj["ecs.version"] and obj["service"]["name"] == "lifeboat" and obj["log.level"], line
    assert (mode(rotated), mode(cli.log_file), mode(cli.home / "logs")) == (0o600, 0o600, 0o700)


def test_home_left_loose_by_an_older_version_is_warned_about_and_tightened(cli_factory):
    cli = cli_factory(DEAD_URL)
    cli("status")  # makes the home, the store and the log
    logs = cli.home / "logs"
    (logs / "lifeboat.jsonl.1").write_text("{}\n")
    for path, loose in (
        (cli.home, 0o755),
        (logs, 0o755),
        (cli.log_file, 0o644),
        (logs / "lifeboat.jsonl.1", 0o644),
        (cli.store_file, 0o644),
    ):
        os.chmod(path, loose)  # as an older Lifeboat (or a careless copy) left them

    r = cli("status", "--json")
    assert r.returncode in (0, 5), r.stderr
    warnings = [line for line in r.stderr.splitlines() if line.startswith("lifeboat: warning:")]
    assert (
        sum(f"data directory {cli.home} can be read by other users (mode 0755)" in w for w in warnings) == 1
    ), r.stderr  # once, however often the command looks at its data dir
    assert f"chmod 700 {cli.home}" in r.stderr
    for path in (logs, cli.log_file, logs / "lifeboat.jsonl.1", cli.store_file):
        assert any(f"{path} could be read by other users" in w for w in warnings), (path, r.stderr)
    assert r.json()["privacy_warnings"], r.stdout  # status says it too (--json and text)
    assert mode(cli.home) == 0o755  # the person's folder: warned about, not changed
    assert (mode(logs), mode(cli.log_file), mode(logs / "lifeboat.jsonl.1"), mode(cli.store_file)) == (
        0o700,
        0o600,
        0o600,
        0o600,
    )

    again = cli("status")  # tightened things are fine now; the home is still said to be open, in status too
    assert "data directory" in again.stderr and "could be read" not in again.stderr, again.stderr
    assert "privacy" in again.stdout and f"chmod 700 {cli.home}" in again.stdout, again.stdout
