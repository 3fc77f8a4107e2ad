"""``python -m mainsim.openapi_export [PATH]``: write mainsim's OpenAPI document
(sorted, stable) to PATH, by default mainsim/openapi.json, which is committed:
it is the contract the client and schemathesis are tested against.  The admin
fault paths are left out (they exist only with --allow-faults)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

DEFAULT_PATH = Path(__file__).with_name("openapi.json")


def schema_text() -> str:
    from mainsim import replication, witness
    from mainsim.api import Sim, create_app

    # Routes only: describing them touches no state, so the parts are absent (typed Any,
    # as nothing here may use them).
    absent: Any = None
    sim = Sim(book=absent, auth=absent, hub=absent)
    app = create_app(sim)
    witness.install(app, absent, absent)
    replication.install(app, sim, absent)
    return json.dumps(app.openapi(), sort_keys=True, indent=2) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    path = Path(args[0]) if args else DEFAULT_PATH
    path.write_text(schema_text())
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
