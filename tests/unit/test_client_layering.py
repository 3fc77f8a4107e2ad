"""backend_client is used by the headless CLI and the agent: it must never pull in Textual."""

from __future__ import annotations

import subprocess
import sys


def test_backend_client_does_not_import_textual():
    code = (
        "import sys, backend_client.client, backend_client.stream, backend_client.replies; "
        "print('textual' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "False"
