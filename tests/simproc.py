"""Start the reference backend (mainsim) as a real subprocess on 127.0.0.1.

Shared by tests and benches.  mainsim binds an ephemeral port and writes a ready
file (JSON: url, control_url, pid) once it is serving; we wait for that file.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class SimProcess:
    db: Path
    workdir: Path
    seed: int = 7
    heartbeat_ms: int = 250
    allow_faults: bool = False
    extra_args: list[str] = field(default_factory=list)
    proc: subprocess.Popen | None = None
    url: str = ""
    control_url: str | None = None
    port: int = 0  # reused on restart so clients can reconnect to the same address

    def start(self, timeout: float = 30.0) -> SimProcess:
        ready = self.workdir / f"ready-{time.monotonic_ns()}.json"
        args = [
            sys.executable,
            "-m",
            "mainsim",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--db",
            str(self.db),
            "--seed",
            str(self.seed),
            "--heartbeat-ms",
            str(self.heartbeat_ms),
            "--ready-file",
            str(ready),
            *self.extra_args,
        ]
        if self.allow_faults:
            args.append("--allow-faults")
        log = open(self.workdir / "mainsim.log", "ab")
        self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"mainsim exited with {self.proc.returncode}; see {self.workdir / 'mainsim.log'}"
                )
            if ready.exists():
                try:
                    info = json.loads(ready.read_text())
                except json.JSONDecodeError:
                    time.sleep(0.02)
                    continue
                self.url = info["url"]
                self.control_url = info.get("control_url")
                self.port = int(self.url.rsplit(":", 1)[1])
                return self
            time.sleep(0.02)
        self.kill()
        raise RuntimeError("mainsim did not become ready in time")

    def kill(self) -> None:
        """kill -9: the hard crash the persistence guarantees are about."""
        if self.proc and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()

    def restart(self) -> SimProcess:
        self.kill()
        return self.start()
