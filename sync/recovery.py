"""Automatic replay when the console's runtime (agent or TUI) enters RECOVERING.

Why a separate object: the runtime owns the stream and the detector; this owns one
replay-and-reconcile task at a time.  When the detector says RECOVERING and the
journal holds work, it runs a replay pass (holding the store's lease, store work in
worker threads so the runtime's loop never waits on a flush), tells the detector
``replay_done`` once the journal is through, then reconciles, refreshing the mirror
through the runtime so its stream resumes from the fresh snapshot.  A pass that
stopped (main went away, another process holds the lease) is retried no sooner than
``retry_s`` later.  The last result and report are kept for the screens.
"""

from __future__ import annotations

import asyncio
import logging
import time

from backend_client import errors as be
from sync import detector_store
from sync.bod import replace_book
from sync.reconcile import reconcile
from sync.replay import Replayer, ReplayResult

log = logging.getLogger("lifeboat.recovery")


class Recovery:
    def __init__(self, runtime, *, retry_s: float = 2.0) -> None:
        self.runtime = runtime
        self.retry_s = retry_s
        self.task: asyncio.Task | None = None
        self.replayer: Replayer | None = None
        self.last_result: ReplayResult | None = None
        self.last_report: dict | None = None
        self._last_end = float("-inf")
        self.callbacks: list = []  # f(result, report) after each pass (the TUI)

    @property
    def running(self) -> bool:
        return self.task is not None and not self.task.done()

    def start(self) -> None:
        """Start a pass unless one runs or the last ended less than ``retry_s`` ago."""
        if self.running or time.monotonic() - self._last_end < self.retry_s:
            return
        self.task = asyncio.create_task(self._run(), name="lifeboat-replay")

    async def _apply_snapshot(self, snap) -> None:
        rt = self.runtime
        await asyncio.to_thread(
            replace_book, rt.store, snap, mode=rt.mode, reason="reconciliation after replay"
        )
        rt.mirror.snapshot_taken(snap.seq)
        if rt.stream is not None:
            rt.stream.resync(snap.seq)

    async def _run(self) -> None:
        rt = self.runtime
        try:
            if await asyncio.to_thread(detector_store.replay_work, rt.store) == 0:
                return
            self.replayer = Replayer(rt.store, rt.client, offload=True)
            result = await self.replayer.run()
            self.last_result = result
            report = None
            if result.status == "done":
                rt.detector.replay_done(rt.clock())
                report = await reconcile(
                    rt.store,
                    rt.client,
                    result,
                    apply_snapshot=self._apply_snapshot,
                    mode=rt.mode,
                    offload=True,
                )
                self.last_report = report
            log.info(
                "automatic replay",
                extra={
                    "event": "auto_replay",
                    "status": result.status,
                    "processed": len(result.outcomes),
                    "verdict": report["verdict"] if report else None,
                },
            )
            for cb in list(self.callbacks):
                try:
                    cb(result, report)
                except Exception:
                    log.exception("replay callback failed", extra={"event": "replay_callback_failed"})
        except (be.Unavailable, be.ProtocolError) as exc:
            log.warning(
                "automatic replay stopped: main unavailable",
                extra={"event": "auto_replay_stopped", "reason": str(exc)},
            )
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("automatic replay failed", extra={"event": "auto_replay_failed"})
        finally:
            self._last_end = time.monotonic()
