"""The console's own live session serves /metrics when `[monitoring] metrics_port` is set (off by
default): the same metrics as `lifeboat agent --metrics-port`, from the TUI's one runtime.  A
port that cannot be served is a notice on the desk, and the console works on without it."""

from __future__ import annotations

import socket

import httpx
import pytest

from tests.integration.test_agent_monitoring import free_port, scrape, value
from tests.tui_env import SIZE, login, make_app, run, wait_for

pytestmark = pytest.mark.timeout(90)


def test_console_serves_metrics_when_configured(sim, tmp_path, tui_keyring):
    run(_serves(sim, tmp_path))


async def _serves(sim, tmp_path):
    from console.tui.config import ConsoleConfig

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    app = make_app(sim.url, tmp_path / "home", config=ConsoleConfig(idle_lock_minutes=0, metrics_port=port))
    async with app.run_test(size=SIZE) as pilot:
        await login(pilot)
        await wait_for(pilot, lambda: app.live.snapshot().connected, what="the stream")

        def online() -> bool:
            try:
                return value(scrape(url), "lifeboat_mode", mode="ONLINE") == 1.0
            except httpx.HTTPError:
                return False

        await wait_for(pilot, online, what="lifeboat_mode ONLINE on the console's metrics port")
        assert app.live.monitor_problem is None
        app.exit()
    # the port closes with the console
    with pytest.raises(httpx.HTTPError):
        httpx.get(url + "/metrics", timeout=2)


def test_metrics_port_in_use_is_a_notice_and_the_console_works_on(sim, tmp_path, tui_keyring):
    run(_in_use(sim, tmp_path))


async def _in_use(sim, tmp_path):
    from console.tui.config import ConsoleConfig

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        cfg = ConsoleConfig(idle_lock_minutes=0, metrics_port=port)
        app = make_app(sim.url, tmp_path / "home", config=cfg)
        async with app.run_test(size=SIZE) as pilot:
            await login(pilot)
            assert app.live.monitor_problem and f"127.0.0.1:{port}" in app.live.monitor_problem
            await wait_for(pilot, lambda: app.live.snapshot().connected, what="the stream without metrics")
            app.exit()
