"""Integrity at open: a corrupt file, a non-SQLite file, a foreign SQLite file and a
future-schema store are refused with StoreError naming the file, and are left
byte-for-byte untouched (sha256 and mtime).  The CLI says so without a traceback.

Real files in tmp dirs; the CLI runs in a subprocess."""

from __future__ import annotations

import hashlib
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from localstore.db import open_store
from localstore.errors import StoreError
from localstore.models import SyncState


def _fingerprint(path: Path) -> tuple[str, int, int]:
    st = path.stat()
    return hashlib.sha256(path.read_bytes()).hexdigest(), st.st_mtime_ns, st.st_size


def _siblings(path: Path) -> set[str]:
    return {p.name for p in path.parent.iterdir()}


def _make_store(path: Path) -> None:
    s = open_store(path)
    with s.write() as session:
        session.get(SyncState, 1).bod_seq = 7
    s.close()  # last connection closes: WAL checkpointed into the main file


def _corrupt(path: Path) -> None:
    """Keep the 100-byte header and page 1, overwrite the following pages with garbage."""
    data = bytearray(path.read_bytes())
    page = int.from_bytes(data[16:18], "big")
    assert len(data) >= 6 * page
    for i in range(page, len(data)):
        data[i] = (i * 7 + 13) % 251
    path.write_bytes(bytes(data))
    # make the mtime clearly in the past so a touch would show
    os.utime(path, ns=(1_600_000_000_000_000_000, 1_600_000_000_000_000_000))


def _assert_refused_untouched(path: Path, match: str) -> StoreError:
    before = _fingerprint(path)
    names = _siblings(path)
    with pytest.raises(StoreError, match=match) as info:
        open_store(path)
    assert str(path.resolve()) in str(info.value)
    assert info.value.path == path.resolve()
    assert _fingerprint(path) == before
    assert _siblings(path) == names  # no -wal / -shm / journal left beside it either
    return info.value


def test_non_sqlite_file_refused_untouched(tmp_path):
    path = tmp_path / "lifeboat.db"
    path.write_text("positions,qty\nRELIANCE,100\n" * 50)
    _assert_refused_untouched(path, "not a SQLite database")


def test_corrupt_file_refused_untouched(tmp_path):
    path = tmp_path / "lifeboat.db"
    _make_store(path)
    _corrupt(path)
    assert path.read_bytes()[:16] == b"SQLite format 3\x00"  # the header still says SQLite
    err = _assert_refused_untouched(path, "corrupt")
    assert "move it aside" in str(err)


def test_truncated_file_refused_untouched(tmp_path):
    path = tmp_path / "lifeboat.db"
    _make_store(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])  # a copy cut short (disk full, interrupted scp)
    _assert_refused_untouched(path, "corrupt")


def test_future_schema_refused_untouched(tmp_path):
    path = tmp_path / "lifeboat.db"
    _make_store(path)
    conn = sqlite3.connect(path)
    conn.execute("UPDATE alembic_version SET version_num = '9999_from_the_future'")
    conn.commit()
    conn.close()
    os.utime(path, ns=(1_600_000_000_000_000_000, 1_600_000_000_000_000_000))
    err = _assert_refused_untouched(path, "newer than this Lifeboat")
    assert "9999_from_the_future" in str(err) and "upgrade lifeboat" in str(err)


def test_foreign_sqlite_file_refused_untouched(tmp_path):
    path = tmp_path / "lifeboat.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY, note TEXT)")
    conn.execute("INSERT INTO orders (note) VALUES ('someone else''s data')")
    conn.commit()
    conn.close()
    _assert_refused_untouched(path, "not a Lifeboat store")


def test_directory_refused(tmp_path):
    with pytest.raises(StoreError, match="is a directory"):
        open_store(tmp_path)


def test_empty_file_is_created_and_migrated(tmp_path):
    path = tmp_path / "lifeboat.db"
    path.touch()
    s = open_store(path)
    try:
        with s.read() as session:
            assert session.get(SyncState, 1) is not None
    finally:
        s.close()


def test_store_left_by_a_killed_writer_opens(tmp_path):
    """kill -9 in the middle of a WAL session leaves -wal/-shm beside the file: that is
    a healthy store and must open (read-only check included) with the committed data."""
    path = tmp_path / "lifeboat.db"
    _make_store(path)
    code = textwrap.dedent(
        f"""
        import os, signal, sys
        from localstore.db import open_store
        from localstore.models import SyncState
        s = open_store({str(path)!r})
        with s.write() as session:
            session.get(SyncState, 1).bod_seq = 8
        sys.stdout.write("committed\\n"); sys.stdout.flush()
        os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == -signal.SIGKILL and "committed" in proc.stdout, proc.stderr
    assert (tmp_path / "lifeboat.db-wal").exists()
    s = open_store(path)
    try:
        with s.read() as session:
            assert session.get(SyncState, 1).bod_seq == 8
    finally:
        s.close()


def _run_cli(*args: str, env_extra: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, **(env_extra or {})}
    env.pop("LIFEBOAT_HOME", None)
    return subprocess.run(
        [sys.executable, "-m", "console.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=Path(__file__).resolve().parents[2],
    )


def test_cli_audit_verify_on_corrupt_store_exits_nonzero_without_traceback(tmp_path):
    path = tmp_path / "lifeboat.db"
    _make_store(path)
    _corrupt(path)
    before = _fingerprint(path)
    proc = _run_cli("--home", str(tmp_path), "audit", "verify")
    assert proc.returncode == 8  # integrity: the store failed its check
    assert "corrupt" in proc.stderr and str(path.resolve()) in proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    assert _fingerprint(path) == before


def test_cli_audit_verify_on_non_sqlite_and_missing_store(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "lifeboat.db").write_text("not a database")
    proc = _run_cli("--home", str(tmp_path / "a"), "audit", "verify")
    assert proc.returncode == 8 and "not a SQLite database" in proc.stderr and "Traceback" not in proc.stderr
    proc = _run_cli("--home", str(tmp_path / "b"), "audit", "verify")  # nothing to verify there: usage
    assert proc.returncode == 2 and "no local store" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "b" / "lifeboat.db").exists()
