"""The log file speaks ECS (issue 14, "Logs"): a real logger, set up as the CLI sets it up,
writes into a tmp dir; every line is one JSON object with the Elastic Common Schema fields,
our own fields under ``lifeboat.*``, no secret at any depth and no traceback."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import re
import secrets
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import BaseModel

from console import eventlog

ECS_TOP = (
    "@timestamp",
    "log.level",
    "message",
)  # the first three keys, in this order, per the ECS logging spec


@pytest.fixture
def log_file(tmp_path):
    """``eventlog.setup`` into a tmp dir; the process's own log handler (if any) and the
    context are put back afterwards."""
    root = logging.getLogger()
    theirs = [h for h in root.handlers if getattr(h, "_lifeboat", False)]
    for h in theirs:
        root.removeHandler(h)
    level, context = root.level, dict(eventlog._context)
    eventlog.set_context(console_id=None, user=None, mode=None)
    path = eventlog.setup(tmp_path / "logs")
    yield path
    for h in [h for h in root.handlers if getattr(h, "_lifeboat", False)]:
        root.removeHandler(h)
        h.close()
    for h in theirs:
        root.addHandler(h)
    root.setLevel(level)
    eventlog.set_context(**context)


def lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def field(obj: dict, name: str):
    """An ECS field by its dotted name, whether the line nests it or keeps the dots."""
    if name in obj:
        return obj[name]
    head, _, rest = name.partition(".")
    if rest and isinstance(obj.get(head), dict):
        return field(obj[head], rest)
    raise KeyError(name)


def has(obj: dict, name: str) -> bool:
    try:
        field(obj, name)
    except KeyError:
        return False
    return True


def values(obj) -> list:
    """Every leaf value of a line, however deep."""
    if isinstance(obj, dict):
        return [v for x in obj.values() for v in values(x)]
    if isinstance(obj, list):
        return [v for x in obj for v in values(x)]
    return [obj]


def test_an_event_line_has_the_ecs_fields_and_ours_under_lifeboat(log_file):
    eventlog.set_context(console_id="CON-7", user="dealer1", mode="BACKUP")
    record = logging.makeLogRecord(
        {
            "name": "lifeboat.runtime",
            "levelno": logging.INFO,
            "levelname": "INFO",
            "msg": "mode %s -> %s",
            "args": ("ONLINE", "BACKUP"),
            "created": 1767584400.123,  # 2026-01-05 03:40:00.123 UTC: a fixed instant, not the real clock
            "msecs": 123.0,
            "event": "mode_change",
            "from": "ONLINE",
            "to": "BACKUP",
            "reason": "main unreachable",
            "client_order_id": "LB-1",
            "seq": 42,
        }
    )
    logging.getLogger("lifeboat.runtime").handle(record)

    text = log_file.read_text(encoding="utf-8")
    (line,) = lines(log_file)
    assert list(line)[:3] == list(ECS_TOP)
    assert line["@timestamp"] == "2026-01-05T03:40:00.123Z"
    assert field(line, "log.level") == "info" and field(line, "log.logger") == "lifeboat.runtime"
    assert line["message"] == "mode ONLINE -> BACKUP"  # the text as the code wrote it
    assert field(line, "ecs.version") == "1.6.0"
    assert field(line, "service.name") == "lifeboat"
    assert field(line, "event.action") == "mode_change" and field(line, "event.outcome") == "success"
    assert field(line, "user.name") == "dealer1"
    ours = line["lifeboat"]
    assert ours == {
        "console_id": "CON-7",
        "mode": "BACKUP",
        "from": "ONLINE",
        "to": "BACKUP",
        "reason": "main unreachable",
        "client_order_id": "LB-1",
        "seq": 42,
    }
    # none of our names left at the top, where they would collide with ECS's own
    for old in ("time", "level", "logger", "event", "user", "console_id", "mode", "from", "seq"):
        assert not (old in line and not isinstance(line[old], dict)), old
    assert text.count("\n") == 1 and text.endswith("}\n")


def test_log_error_line_carries_the_error_fields_and_its_id(log_file):
    eventlog.set_context(user="dealer2")
    try:
        {}["C9"]
    except KeyError as exc:
        error_id = eventlog.log_error("command_failed", exc, client_order_id="LB-9")
    (line,) = lines(log_file)
    assert error_id and re.fullmatch(r"E-[0-9A-F]{6}", error_id)
    assert field(line, "error.id") == error_id
    assert field(line, "error.type") == "KeyError" and field(line, "error.message") == "'C9'"
    assert field(line, "event.action") == "command_failed" and field(line, "event.outcome") == "failure"
    assert field(line, "log.level") == "error" and line["message"] == "KeyError: 'C9'"
    assert field(line, "lifeboat.client_order_id") == "LB-9" and field(line, "user.name") == "dealer2"
    assert field(line, "log.origin.function") == "test_log_error_line_carries_the_error_fields_and_its_id"
    assert not has(line, "lifeboat.error_id") and not has(line, "lifeboat.error_type")


def test_an_exception_is_its_type_and_message_never_its_traceback(log_file):
    def deep():
        raise RuntimeError("stream closed")

    try:
        deep()
    except RuntimeError:
        logging.getLogger("lifeboat.live").exception("live subscriber failed", extra={"event": "x_failed"})
    text = log_file.read_text(encoding="utf-8")
    (line,) = lines(log_file)
    assert field(line, "error.type") == "RuntimeError" and field(line, "error.message") == "stream closed"
    assert field(line, "event.outcome") == "failure" and line["message"] == "live subscriber failed"
    assert not has(line, "error.stack_trace") and "Traceback" not in text and "deep" not in text


@dataclasses.dataclass
class Grantish:
    user_id: str
    offline_grant: str
    nested: dict


class Sessionish(BaseModel):
    user_id: str
    access_token: str


def test_secrets_are_redacted_at_any_depth_and_never_reach_the_file(log_file):
    s = [secrets.token_hex(8) for _ in range(10)]
    logging.getLogger("lifeboat.service").info(
        "login",
        extra={
            "event": "login",
            "password": s[0],
            "access_token": s[1],
            "details": {"signature": s[2], "ok": True, "deeper": {"verifier": s[3], "n": 3}},
            "legs": [{"client_order_id": "LB-1", "Refresh_Token": s[4]}, ["x", {"secret_key": s[5]}]],
            "session": Sessionish(user_id="dealer1", access_token=s[6]),
            "grant_info": Grantish(user_id="dealer1", offline_grant=s[7], nested={"password": s[8]}),
            "headers": {"Authorization": "Bearer " + s[9]},
        },
    )
    text = log_file.read_text(encoding="utf-8")
    for secret in s:
        assert secret not in text
    (line,) = lines(log_file)
    ours = line["lifeboat"]
    assert ours["password"] == ours["access_token"] == "[redacted]"
    assert ours["details"] == {
        "signature": "[redacted]",
        "ok": True,
        "deeper": {"verifier": "[redacted]", "n": 3},
    }
    assert ours["legs"] == [
        {"client_order_id": "LB-1", "Refresh_Token": "[redacted]"},
        ["x", {"secret_key": "[redacted]"}],
    ]
    assert ours["session"] == {"user_id": "dealer1", "access_token": "[redacted]"}
    assert ours["grant_info"] == "[redacted]"  # the key itself names a secret: the whole value goes
    assert ours["headers"] == {"Authorization": "[redacted]"}
    assert "[redacted]" in values(line)


def test_one_object_per_line_whatever_the_text(log_file):
    log = logging.getLogger("lifeboat.x")
    texts = ["plain", "two\nlines", "quote \" and \\ backslash", "ünïcode ₹", "{\"not\": \"json\"}\n{}"]
    for t in texts:
        log.warning("%s", t, extra={"event": "echo", "note": t, "a.b": 1})
    raw = log_file.read_text(encoding="utf-8").split("\n")
    assert raw[-1] == "" and len(raw) == len(texts) + 1
    got = lines(log_file)
    assert [x["message"] for x in got] == texts
    assert [field(x, "lifeboat.note") for x in got] == texts
    assert all(field(x, "lifeboat.a_b") == 1 for x in got)  # a dotted key cannot clash with a nesting
    assert "₹" in log_file.read_text(encoding="utf-8")  # written as text, not escaped


@pytest.mark.parametrize(
    "level,extra,outcome",
    [
        (logging.INFO, {"event": "resnapshot", "reason": "gap"}, "success"),
        (logging.WARNING, {"event": "resnapshot_failed", "reason": "down"}, "failure"),
        (logging.WARNING, {"event": "checkpoint_refused_at_login"}, "failure"),
        (logging.ERROR, {"event": "replay_refused"}, "failure"),
        (logging.WARNING, {"event": "audit_mismatch", "error_id": "E-000001"}, "failure"),
        (logging.INFO, {"event": "replay_busy", "holder": "agent"}, "unknown"),
        (logging.WARNING, {"event": "checkpoint_queued"}, "unknown"),
        (logging.INFO, {"event": "squareoff", "outcome": "journaled"}, "success"),
        (logging.INFO, {"event": "squareoff", "outcome": "rejected"}, "failure"),
        (logging.INFO, {"event": "squareoff", "outcome": "unknown"}, "unknown"),
        (logging.INFO, {"event": "replay_entry", "state": "conflict"}, "failure"),
        (logging.INFO, {"event": "replay_entry", "state": "applied"}, "success"),
        (logging.INFO, {"event": "replay_pass", "status": "stopped"}, "unknown"),
        (logging.INFO, {}, "unknown"),  # a library's line: nothing says how it went
        (logging.WARNING, {"event": "replay_lease_takeover", "from": "tui"}, "unknown"),
    ],
)
def test_event_outcome_says_what_the_code_knows(log_file, level, extra, outcome):
    logging.getLogger("lifeboat.x").log(level, "something", extra=extra)
    (line,) = lines(log_file)
    assert field(line, "event.outcome") == outcome
    if "outcome" in extra:
        assert field(line, "lifeboat.outcome") == extra["outcome"]  # the leg's own word is kept too


def test_an_extra_console_id_wins_over_the_context(log_file):
    eventlog.set_context(console_id="OLD")
    logging.getLogger("lifeboat.service").info(
        "enrolled", extra={"event": "console_enrolled", "console_id": "NEW"}
    )
    (line,) = lines(log_file)
    assert field(line, "lifeboat.console_id") == "NEW"


def test_the_file_reads_line_by_line_with_json_loads_in_another_python(log_file):
    log = logging.getLogger("lifeboat.x")
    for i in range(25):
        log.info("line %d", i, extra={"event": "count", "seq": i, "nested": {"i": i, "token": "t"}})
    code = (
        "import json, sys\n"
        "n = 0\n"
        "for n, line in enumerate(open(sys.argv[1], encoding='utf-8'), 1):\n"
        "    obj = json.loads(line)\n"
        "    assert isinstance(obj, dict) and obj['ecs.version'], line\n"
        "    assert obj['service']['name'] == 'lifeboat' and obj['lifeboat']['seq'] == n - 1, line\n"
        "    assert obj['lifeboat']['nested']['token'] == '[redacted]', line\n"
        "print(n)\n"
    )
    r = subprocess.run(
        [sys.executable, "-c", code, str(log_file)], capture_output=True, text=True, check=False
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "25"


def test_file_and_folder_stay_private(log_file):
    logging.getLogger("lifeboat.x").info("hello", extra={"event": "hello"})
    assert stat.S_IMODE(log_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(log_file.parent.stat().st_mode) == 0o700


def test_a_full_disk_gives_one_stderr_line_and_no_error_id(tmp_path, capfd):
    """/dev/full takes the open and refuses every write with ENOSPC, as a full disk does."""
    if not Path("/dev/full").exists():
        pytest.skip("no /dev/full here")
    logs = tmp_path / "logs"
    logs.mkdir(mode=0o700)
    (logs / "lifeboat.jsonl").symlink_to("/dev/full")
    root = logging.getLogger()
    theirs = [h for h in root.handlers if getattr(h, "_lifeboat", False)]
    for h in theirs:
        root.removeHandler(h)
    level = root.level
    try:
        eventlog.setup(logs)
        assert eventlog.log_error("command_failed", ValueError("one")) is None
        assert eventlog.log_error("command_failed", ValueError("two")) is None
    finally:
        for h in [h for h in root.handlers if getattr(h, "_lifeboat", False)]:
            root.removeHandler(h)
            with contextlib.suppress(
                OSError
            ):  # its buffer cannot be flushed either (logging.shutdown ignores it too)
                h.close()
        for h in theirs:
            root.addHandler(h)
        root.setLevel(level)
    err = capfd.readouterr().err
    assert err.count("lifeboat: cannot write the log") == 1, err
    assert "Traceback" not in err


def test_each_record_is_formatted_once(log_file, monkeypatch):
    """The rotating handler formats a record to decide on a rollover and again to write it;
    the second time reuses the first (a 500-leg square-off logs 500 lines)."""
    calls = []
    fmt = eventlog.EcsLines.format_to_ecs

    def counting(self, record):
        calls.append(record)
        return fmt(self, record)

    monkeypatch.setattr(eventlog.EcsLines, "format_to_ecs", counting)
    log = logging.getLogger("lifeboat.x")
    for i in range(3):
        log.info("n %d", i, extra={"event": "n"})
    assert len(calls) == 3 and len(lines(log_file)) == 3
