"""Building the LD_PRELOAD fault shims of tests/faultshim/ (a failing or full disk cannot be
had here without them): one way for every test that needs one."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

SOURCES = Path(__file__).resolve().parent / "faultshim"


def build(tmp_path_factory, name: str) -> str:
    """Compile tests/faultshim/<name>.c into a shared object; skip the test without gcc."""
    if shutil.which("gcc") is None:
        pytest.skip("gcc is needed to build the fault shim")
    so = tmp_path_factory.mktemp("shim") / f"{name}.so"
    subprocess.run(
        ["gcc", "-shared", "-fPIC", "-O1", "-o", str(so), str(SOURCES / f"{name}.c"), "-ldl"],
        check=True,
        capture_output=True,
    )
    return str(so)
