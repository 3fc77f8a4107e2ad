"""What scripts rely on (CONTRACT.md, CLI): with --json every outcome is one JSON object
on stdout, failures included; the exit code table; global options before or after the
command; --version; bad input that is the user's is exit 2 (or 4), never 1 or a
traceback; logout tells the truth about the token; `lifeboat sim` prints no warning.

Real `lifeboat` subprocesses against a real mainsim and a real store in a tmp dir."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import httpx
import pytest

from tests.cli_env import DEAD_URL, PASSWORD, REPO_ROOT, Cli

ORDER = (
    "order",
    "place",
    "--client",
    "C1001",
    "--exchange",
    "NSE",
    "--side",
    "BUY",
    "--quantity",
    "1",
    "--product",
    "MIS",
    "--yes",
    "--json",
)


def error_of(r, exit_code: int, code: str) -> dict:
    """The one JSON error object on stdout, beside the exit code; no traceback anywhere."""
    assert r.returncode == exit_code, (r.returncode, r.stdout, r.stderr)
    assert "Traceback" not in r.stderr + r.stdout
    lines = r.stdout.splitlines()
    assert len(lines) == 1, r.stdout
    body = json.loads(lines[0])
    assert body["ok"] is False and set(body["error"]) >= {"code", "reason", "message", "error_id"}, body
    assert body["error"]["code"] == code and body["error"]["exit_code"] == exit_code, body
    words = body["error"]["message"].split()[:4]  # the same message on stderr (typer may box and wrap it)
    assert words and all(w in r.stderr for w in words), (body, r.stderr)
    return body["error"]


@pytest.fixture
def desk(sim, cli_factory) -> Cli:
    cli = cli_factory(sim.url)
    cli.login().ok()
    return cli


# --------------------------------------------------------------------------- --json failures


def test_a_refused_order_prints_one_json_error_with_the_logged_id(desk):
    r = desk(*ORDER, "--symbol", "NOSUCHSYMBOL", "--type", "MARKET")
    err = error_of(r, 4, "rejected")
    assert "NOSUCHSYMBOL" in err["message"] and err["reason"]
    assert err["error_id"].startswith("E-") and f"[{err['error_id']}]" in r.stderr
    logged = [json.loads(line) for line in desk.log_file.read_text().splitlines()]
    assert any(line.get("error", {}).get("id") == err["error_id"] for line in logged)


def test_parser_usage_errors_are_json_and_exit_2(desk):
    err = error_of(desk("order", "place", "--client", "C1001", "--json"), 2, "usage")
    assert err["reason"] == "missing_option" and "--exchange" in err["message"] and err["error_id"] is None
    err = error_of(desk("mode", "force", "SIDEWAYS", "--json"), 2, "usage")
    assert err["reason"] == "bad_value" and "SIDEWAYS" in err["message"]
    err = error_of(desk("--no-such-flag", "status", "--json"), 2, "usage")
    assert err["reason"] == "unknown_option"
    # without --json: nothing on stdout, the message on stderr
    r = desk("mode", "force", "SIDEWAYS")
    assert r.returncode == 2 and r.stdout == "" and "SIDEWAYS" in r.stderr


def test_a_limit_order_without_price_is_usage_not_a_rejection(desk):
    err = error_of(desk(*ORDER, "--symbol", "ITC", "--type", "LIMIT"), 2, "usage")
    assert err["message"] == "--type LIMIT needs --price"
    err = error_of(desk(*ORDER, "--symbol", "ITC", "--type", "SL", "--price", "100"), 2, "usage")
    assert err["message"] == "--type SL needs --trigger"
    err = error_of(desk(*ORDER, "--symbol", "ITC", "--type", "MARKET", "--price", "100"), 2, "usage")
    assert err["message"] == "--type MARKET takes no --price"


def test_success_keeps_its_shape(desk):
    r = desk("sync", "bod", "--json").ok()
    body = r.json()
    assert "error" not in body and body["trading_date"] and body["instruments"] > 0


# --------------------------------------------------------------------------- the user's bad input


def test_bad_input_is_usage_with_a_message(desk, tmp_path):
    cases = {
        "empty symbol": desk(*ORDER, "--symbol", "", "--type", "MARKET"),
        "20,000-character symbol": desk(*ORDER, "--symbol", "A" * 20_000, "--type", "MARKET"),
        "price 1e400": desk(*ORDER, "--symbol", "ITC", "--type", "LIMIT", "--price", "1e400"),
        "5,000-character backend": desk("--backend", "http://" + "a" * 5_000, "status", "--json"),
        "backend host label too long": desk(
            "--backend", "http://" + "a" * 100 + ".example", "status", "--json"
        ),
    }
    (tmp_path / "a-file").write_text("not a directory")
    cases["home is a file"] = desk("--home", str(tmp_path / "a-file"), "status", "--json")
    cases["home cannot be created"] = desk("--home", str(tmp_path / "a-file" / "below"), "status", "--json")
    for what, r in cases.items():
        err = error_of(r, 2, "usage")
        assert len(r.stderr) < 1_000, (what, r.stderr[:300])  # a message, not the whole input
        assert err["message"], what
    assert "out of range" in json.loads(cases["price 1e400"].stdout)["error"]["message"]
    assert "is a file, not a directory" in cases["home is a file"].stderr
    assert "too long" in cases["5,000-character backend"].stderr


# --------------------------------------------------------------------------- global options


def test_global_options_work_after_the_command(sim, cli_factory):
    cli = cli_factory(sim.url, user=None)  # no LIFEBOAT_USER: --user must come from the command line
    r = cli("login", "--user", "dealer1", "--password-stdin", stdin=PASSWORD + "\n")
    assert r.returncode == 0, r.stderr
    assert "Logged in as dealer1" in r.stderr
    before = cli("sync", "bod", "--user", "dealer1", "--json").ok().json()
    after = cli("--user", "dealer1", "sync", "bod", "--json").ok().json()
    assert before["instruments"] == after["instruments"] > 0
    # the other globals too, and the `=` form
    other = cli.home.parent / "elsewhere"
    dr = "http://127.0.0.1:1"  # another dead site: the DR site must not be main itself
    r = cli("status", "--json", f"--home={other}", "--backend", DEAD_URL, "--dr-backend", dr)
    assert other.is_dir() and r.json()["backend"]["url"] == DEAD_URL, (r.stdout, r.stderr)


def test_hoisting_follows_the_command_path_and_leaves_values_alone():
    from typer.main import get_command

    from console.cli import app, hoist_global_options

    group = get_command(app)
    ctx = group.make_context("lifeboat", ["--help"], resilient_parsing=True)
    hoist = lambda *a: hoist_global_options(group, ctx, list(a))  # noqa: E731
    assert hoist("sync", "bod", "--user", "u1") == (["--user", "u1", "sync", "bod"], False)
    assert hoist("--home", "h", "order", "place", "--client", "--user", "--json") == (
        ["--home", "h", "order", "place", "--client", "--user", "--json"],
        True,
    )  # --user is --client's value
    assert hoist("positions", "--password-stdin", "--user=u", "--json", "--", "--home", "x") == (
        ["--password-stdin", "--user=u", "positions", "--json", "--", "--home", "x"],
        True,
    )
    assert hoist("audit", "verify", "--home", "h") == (["--home", "h", "audit", "verify"], False)
    assert hoist("nosuch", "--user", "u") == (["nosuch", "--user", "u"], False)  # the parser reports it


# --------------------------------------------------------------------------- version, help, logout, sim


def test_version_and_agent_help(tmp_path):
    cli = Cli(home=tmp_path / "h", backend_url=DEAD_URL, keyring_file=tmp_path / "k.json")
    r = cli("--version").ok()
    from importlib.metadata import version

    assert r.stdout.strip() == f"lifeboat {version('lifeboat')}"
    helptext = " ".join(cli("agent", "--help").ok().stdout.split())
    assert "mirror" in helptext and "failure detector" in helptext and "automatic journal replay" in helptext
    assert "come later" not in helptext


def test_logout_says_what_happened_to_the_token(desk):
    r = desk("logout", PYTHON_KEYRING_BACKEND="keyring.backends.fail.Keyring").ok()
    assert "removed" not in r.stderr.replace("nothing to remove", "") and "no keyring" in r.stderr, r.stderr
    r = desk("logout").ok()
    assert "token removed from the keyring" in r.stderr
    r = desk("logout").ok()
    assert "no saved token" in r.stderr, r.stderr


def test_lifeboat_sim_prints_no_pydantic_warning(tmp_path):
    ready = tmp_path / "ready.json"
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "console.cli",
            "sim",
            "--port",
            "0",
            "--db",
            str(tmp_path / "m.db"),
            "--trading-date",
            "2026-01-05",
            "--ready-file",
            str(ready),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=REPO_ROOT,
    )
    try:
        deadline = time.monotonic() + 30
        while not ready.exists() or not ready.read_text().strip().endswith("}"):
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.05)
        url = json.loads(ready.read_text())["url"]
        # the warning came with the first request carrying a body
        r = httpx.post(f"{url}/api/v1/session", json={"user_id": "dealer1", "password": PASSWORD}, timeout=10)
        assert r.status_code == 200
        token = r.json()["access_token"]
        r = httpx.post(
            f"{url}/api/v1/orders",
            headers={"Authorization": f"Bearer {token}"},
            timeout=10,
            json={
                "client_order_id": "t-1",
                "client_id": "C1001",
                "exchange": "NSE",
                "symbol": "NOSUCH",
                "side": "BUY",
                "quantity": 1,
                "product": "MIS",
                "order_type": "MARKET",
            },
        )
        assert r.status_code in (400, 422)
    finally:
        proc.terminate()
        _, stderr = proc.communicate(timeout=20)
    assert "Warning" not in stderr and "pydantic" not in stderr, stderr


def test_readme_exit_code_table_is_the_enum():
    from console.exitcodes import ExitCode

    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    table = readme.split("| exit code | meaning |", 1)[1].split("\n\n", 1)[0]
    codes = [
        int(line.split("|")[1]) for line in table.splitlines() if line.startswith("| ") and "---" not in line
    ]
    assert codes == [int(c) for c in ExitCode]
    assert "busy" in table and "integrity" in table
