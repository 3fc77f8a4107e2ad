"""The README's fault control, over plain HTTP against a real mainsim (`--allow-faults`):

- a supervisor POSTs `/api/v1/admin/faults` to the PUBLIC url (the one a user knows) and
  gets a 200 JSON reply: the outage begins only after that reply went out (it used to be
  cut by the very outage it started: the connection carrying it was reset);
- then the public port refuses connections;
- the outage is ended the documented way: the same POST with mode "none" to the
  `control_url` of the ready file (the public port refuses, so it cannot carry it).
Also: `error` and `hang` asked on the public port answer first too."""

from __future__ import annotations

import json
import time

import httpx
import pytest

from tests.mainsim_support import API, login

pytestmark = pytest.mark.timeout(90)


@pytest.fixture
def server(tmp_path_factory):
    from tests.mainsim_support import start_sim

    sim = start_sim(
        tmp_path_factory,
        "mainsim-fault-reply",
        allow_faults=True,
        extra_args=["--trading-date", "2026-11-20"],
    )
    yield sim
    sim.stop()


def ready_info(server) -> dict:
    """What the ready file says (the README points there for the control_url)."""
    files = sorted(server.workdir.glob("ready-*.json"))
    return json.loads(files[-1].read_text())


def until(predicate, timeout: float = 3.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return False


def refused(url: str) -> bool:
    try:
        httpx.get(f"{url}{API}/health", timeout=2)
    except httpx.ConnectError:
        return True
    return False


def post_fault(base: str, token: str, body: dict) -> httpx.Response:
    # a fresh client per call, as curl does: nothing pooled from before
    return httpx.post(
        f"{base}{API}/admin/faults", json=body, timeout=5, headers={"Authorization": f"Bearer {token}"}
    )


def test_refuse_posted_on_the_public_port_replies_first_and_ends_through_the_control_url(server):
    info = ready_info(server)
    public, control = info["url"], info["control_url"]
    assert public == server.url and control and control != public
    token = login(public, "super1")  # the README's login, on the public port

    r = post_fault(public, token, {"mode": "refuse"})  # before the fix: httpx.RemoteProtocolError / ReadError
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/json")
    assert r.json()["mode"] == "refuse"

    assert until(lambda: refused(public)), "the public port still answers after the reply"
    # the state says so on the control url too
    state = httpx.get(f"{control}{API}/admin/faults", headers={"Authorization": f"Bearer {token}"}, timeout=5)
    assert state.status_code == 200 and state.json()["mode"] == "refuse"

    r = post_fault(control, token, {"mode": "none"})  # the documented way back
    assert r.status_code == 200 and r.json()["mode"] == "none"
    h = httpx.get(f"{public}{API}/health", timeout=5)  # back at once on the same port
    assert h.status_code == 200


@pytest.mark.parametrize("mode", ["error", "hang"])
def test_other_faults_posted_on_the_public_port_reply_first(server, mode):
    token = login(server.url, "super1")
    r = post_fault(server.url, token, {"mode": mode, "duration_s": 30})
    assert r.status_code == 200, r.text
    assert r.json()["mode"] == mode and r.json()["until"]
    if mode == "error":
        assert until(lambda: httpx.get(f"{server.url}{API}/health", timeout=2).status_code == 503)
    else:
        with pytest.raises(httpx.ReadTimeout):
            httpx.get(f"{server.url}{API}/health", timeout=0.5)
    r = post_fault(server.control_url, token, {"mode": "none"})
    assert r.status_code == 200 and r.json()["mode"] == "none"
    assert httpx.get(f"{server.url}{API}/health", timeout=5).status_code == 200


def test_the_readme_fault_commands_work_as_written(server, tmp_path):
    """The README's curl block, run by bash as written (only its two address lines set to this server);
    between its start and its end the public port is checked refused."""
    import re
    import subprocess
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    block = readme.split("<!-- faults:start -->\n```sh\n", 1)[1].split("```\n<!-- faults:end -->", 1)[0]
    script, n = re.subn(r"^URL=\S+", f"URL={server.url}", block, count=1, flags=re.M)
    script, m = re.subn(r"^CONTROL=\S+", f"CONTROL={server.control_url}", script, count=1, flags=re.M)
    assert n == m == 1 and "\n# end:" in script
    go = tmp_path / "go"
    script = script.replace("\n# end:", f'\nwhile [ ! -e "{go}" ]; do sleep 0.02; done\n# end:', 1)
    out = tmp_path / "out"
    with open(out, "wb") as sink:
        proc = subprocess.Popen(
            ["bash", "-euo", "pipefail", "-c", script], stdout=sink, stderr=subprocess.PIPE
        )
    try:
        assert until(lambda: b"}" in out.read_bytes() or proc.poll() is not None, timeout=20), "no reply"
        assert json.loads(out.read_text())["mode"] == "refuse", (out.read_text(), proc.poll())
        assert until(lambda: refused(server.url)), "the public port still answers after the reply"
        go.touch()
        assert proc.wait(20) == 0, proc.stderr.read().decode()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    replies = [json.loads(x + "}") for x in out.read_text().split("}") if x.strip()]
    assert [r["mode"] for r in replies] == ["refuse", "none"]
    assert httpx.get(f"{server.url}{API}/health", timeout=5).status_code == 200
