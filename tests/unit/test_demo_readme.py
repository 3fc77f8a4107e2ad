"""The README's top promises: the two commands (the test one is what .ci/run runs), the key
map as the keymap really binds it, the config example valid, the screenshots present."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")

DEMO = "python3 -m venv .venv && .venv/bin/pip install -q -e . && .venv/bin/lifeboat demo"
TESTS = (
    "sh deploy/monitoring/install-tools.sh && python3 -m venv .venv && .venv/bin/pip install -q -e '.[test]'"
    " && .venv/bin/ruff check . && .venv/bin/ruff format --check . && .venv/bin/mypy && .venv/bin/lint-imports && .venv/bin/python -m pytest -m 'not soak' -q -n 2 --durations=15"
    " && LIFEBOAT_TEST_NOW=2027-05-17T11:05:00+05:30 .venv/bin/python -m pytest -m 'dates and not soak' -q -n 2"
)


def test_the_two_commands_come_first_and_ci_runs_the_second():
    blocks = re.findall(r"```\n(.*?)\n```", README, re.S)
    assert blocks[:2] == [DEMO, TESTS]
    assert TESTS in (ROOT / ".ci" / "run").read_text()


def test_the_second_run_moves_the_clock_months_ahead_of_the_suites_own_date():
    from datetime import datetime

    from tests import testclock

    moved = datetime.fromisoformat(TESTS.split("LIFEBOAT_TEST_NOW=", 1)[1].split()[0])
    assert (moved - datetime.fromisoformat(testclock.DEFAULT_NOW)).days > 90


def test_the_key_map_is_the_keymap():
    from console.tui import keymap

    table = README.split("<!-- keymap:start -->\n", 1)[1].split("\n<!-- keymap:end -->", 1)[0]
    assert table == keymap.markdown_table()


def test_the_config_example_parses_with_the_documented_settings():
    import tomllib

    from console.tui.config import parse_config

    example = re.search(r"```toml\n(.*?)\n```", README, re.S).group(1)
    cfg = parse_config(tomllib.loads(example))
    assert cfg.idle_lock_minutes == 10 and cfg.watch_symbols[0] == "NSE:RELIANCE"
    assert cfg.keys["squareoff"] == "f10,alt+s"


def test_screenshots_exist_and_are_svg():
    for name in re.findall(r"\]\((docs/[^)]+\.svg)\)", README):
        text = (ROOT / name).read_text(encoding="utf-8")
        assert text.lstrip().startswith("<svg") and "Lifeboat" in text, name
    assert "docs/desk-online.svg" in README and "docs/desk-backup.svg" in README
