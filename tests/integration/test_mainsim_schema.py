"""The committed OpenAPI document is the generated one, and schemathesis, driven
by it against a real mainsim with a supervisor token, finds no 5xx."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from mainsim.openapi_export import DEFAULT_PATH, schema_text
from tests.mainsim_support import login, start_sim


def test_committed_openapi_json_is_up_to_date():
    assert DEFAULT_PATH.exists(), "run: python -m mainsim.openapi_export"
    assert DEFAULT_PATH.read_text() == schema_text(), "stale: run python -m mainsim.openapi_export and commit"


def test_schemathesis_finds_no_server_error(tmp_path_factory):
    sim = start_sim(tmp_path_factory, "mainsim-schemathesis")
    try:
        token = login(sim.url, "super1")
        cli = Path(sys.executable).with_name("schemathesis")
        cmd = [
            str(cli) if cli.exists() else "schemathesis",
            "run",
            str(DEFAULT_PATH),
            "--url",
            sim.url,
            "-H",
            f"Authorization: Bearer {token}",
            "--checks",
            "not_a_server_error",
            "--max-examples",
            "5",
            "--seed",
            "1",
            "--phases",
            "coverage,fuzzing",
            "--request-timeout",
            "5",
            "--no-color",
        ]
        env = {**os.environ, "SCHEMATHESIS_HOOKS": ""}
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=100, env=env)
    finally:
        sim.stop()
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]
