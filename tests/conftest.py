from __future__ import annotations

import pytest

from tests.simproc import SimProcess


@pytest.fixture
def sim_factory(tmp_path):
    """Make mainsim subprocesses (each with its own SQLite file); all are killed at teardown."""
    started: list[SimProcess] = []

    def make(**kw) -> SimProcess:
        workdir = tmp_path / f"sim{len(started)}"
        workdir.mkdir()
        sim = SimProcess(db=kw.pop("db", workdir / "mainsim.db"), workdir=workdir, **kw)
        started.append(sim)
        return sim.start()

    yield make
    for sim in started:
        sim.kill()


@pytest.fixture
def sim(sim_factory) -> SimProcess:
    """One running mainsim (seed 7, heartbeat 250 ms, faults off)."""
    return sim_factory()
