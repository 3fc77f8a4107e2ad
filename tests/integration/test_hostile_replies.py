"""Main's replies with bad content are refused whole, before anything is stored
(issue 10, section 2): out-of-scope rows, a 100,000-character symbol, ESC and
U+202E, huge integers, duplicate keys; and a huge position is refused before the
square-off slices anything, online and in backup.

Real parts: mainsim on loopback, the real CLI (tests/cli_env.py), a real SQLite
store.  The bad content comes from tests/hostile_proxy.py's ``rewrite`` mode, which
edits the JSON of mainsim's real reply on one path: a fake by necessity (mainsim
never sends such a reply), and only of those bytes.  Each case checks the exit
code, the message naming the row and field, and that the store is row for row what
it was before.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import re
import shutil
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter, ValidationError

from contract import wire
from contract.limits import MAX_QUANTITY, MAX_SLICES
from tests.cli_env import DEAD_URL, PASSWORD, Cli, raw_get, raw_session
from tests.hostile_proxy import ThreadedHostileProxy
from tests.simproc import SimProcess

# what a refused reply must leave exactly as it was
_KEPT = (
    "instruments",
    "clients",
    "client_limits",
    "positions",
    "orders",
    "trades",
    "sync_state",
    "users",
    "offline_credentials",
    "journal",
)


@dataclass
class PinnedCli(Cli):
    """A console whose config dir (trust anchors) is its own for the whole module, not
    the per-test one the autouse fixture sets (the module's login must outlive it)."""

    config: Path | None = None

    @property
    def config_dir(self) -> Path:
        return self.config


def store_rows(store_file: Path) -> dict[str, list[tuple]]:
    with sqlite3.connect(store_file) as con:
        return {t: sorted(con.execute(f"SELECT * FROM {t}").fetchall(), key=repr) for t in _KEPT}


class Desk:
    """One mainsim, the hostile proxy in front of it, and dealer1's console logged in
    through the proxy with a clean BOD: shared by the module (a refused reply changes
    nothing, which each test checks)."""

    def __init__(self, root: Path):
        self.sim = SimProcess(db=root / "mainsim.db", workdir=root).start()
        self.proxy = None
        try:
            self.proxy = ThreadedHostileProxy(self.sim.url).start()
            self.cli = PinnedCli(
                home=root / "home",
                backend_url=self.proxy.url,
                keyring_file=root / "keyring.json",
                config=root / "config",
            )
            self.cli.login().ok()
            self.cli("sync", "bod", "--json").ok()
            self.token = raw_session(self.sim.url)["access_token"]
            self.bod = raw_get(self.sim.url, self.token, "/bod")
        except BaseException:  # the scene failed to build: stop what it started
            self.close()
            raise

    def close(self) -> None:
        try:
            if self.proxy is not None:
                self.proxy.stop()
        finally:
            self.sim.kill()


@pytest.fixture(scope="module")
def desk(tmp_path_factory):
    d = Desk(tmp_path_factory.mktemp("hostile-replies"))
    yield d
    d.close()


@pytest.fixture
def proxy(desk):
    yield desk.proxy
    desk.proxy.clear()


def refused(r, code: int, *words: str) -> dict:
    """A clean refusal: the exit code, the --json error object, the words, no traceback."""
    assert r.returncode == code, f"exit {r.returncode}\nstdout={r.stdout[:2000]}\nstderr={r.stderr[:2000]}"
    assert "Traceback" not in r.stderr + r.stdout
    err = r.json()["error"]
    assert err["exit_code"] == code
    for w in words:
        assert w in err["message"] and w in r.stderr, err["message"]
    assert len(err["message"]) < 2000  # a 100,000-character value is named, never echoed
    return err


# --------------------------------------------------------------------------- BOD


def _outside_rows(b):
    """128 positions for clients of nobody's scope (the finding: 128 such rows stored)."""
    row = b["positions"][0]
    b["positions"] += [{**row, "client_id": f"ZZ{i:03d}"} for i in range(128)]


def _widened_scope(b):
    """The snapshot widens its own user's scope too: only the login's scope catches it."""
    b["user"]["client_ids"].append("ZZ001")
    b["clients"].append({**b["clients"][0], "client_id": "ZZ001"})
    b["positions"].append({**b["positions"][0], "client_id": "ZZ001"})


def _set(table, field, value, row=0):
    def edit(b):
        b[table][row][field] = value

    return edit


def _duplicate(table):
    def edit(b):
        b[table].append(copy.deepcopy(b[table][0]))

    return edit


BAD_BODS = {
    "out_of_scope_rows": (_outside_rows, ["positions[", "'ZZ000'", "outside the scope of user 'dealer1'"]),
    "scope_wider_than_login": (_widened_scope, ["1 client(s) outside the scope", "ZZ001", "log in again"]),
    "symbol_100k_chars": (
        _set("instruments", "symbol", "A" * 100_000),
        ["instruments.0.symbol", "at most 40"],
    ),
    "esc_in_name": (_set("clients", "name", "Dealer\x1b]0;pwned\x07"), ["clients.0.name", "U+001B"]),
    "rlo_in_symbol": (_set("positions", "symbol", "INFY\u202eGNOL"), ["positions.0.symbol", "U+202E"]),
    "c1_control_in_reason": (
        _set("open_orders", "status_reason", "ok\x9b2J"),
        ["open_orders.0.status_reason", "U+009B"],
    ),
    "net_quantity_10e30": (
        _set("positions", "net_quantity", 10**30),
        ["positions.0.net_quantity", "less than or equal to 1000000000"],
    ),
    "seq_2e63": (lambda b: b.update(seq=2**63), ["seq", "less than or equal to 9223372036854775807"]),
    "price_1e30": (
        _set("instruments", "last_price", 1e30),
        ["instruments.0.last_price", "less than or equal"],
    ),
    "naive_time": (
        _set("positions", "updated_at", "2026-01-05T09:15:00"),
        ["positions.0.updated_at", "timezone"],
    ),
    "duplicate_positions": (_duplicate("positions"), ["positions[", "repeats the key"]),
    "duplicate_instruments": (_duplicate("instruments"), ["instruments[", "repeats the key"]),
}


@pytest.mark.parametrize("case", list(BAD_BODS))
def test_a_bad_snapshot_is_refused_whole_and_the_previous_one_kept(desk, proxy, case):
    edit, words = BAD_BODS[case]

    def rewrite(body):
        edit(body)
        return body

    before = store_rows(desk.cli.store_file)
    proxy.misbehave("/bod", "rewrite", rewrite=rewrite)
    r = desk.cli("sync", "bod", "--json", timeout=30)
    err = refused(r, 5, "snapshot was refused whole", "previous snapshot is kept", *words)
    assert err["reason"] == "snapshot_refused"
    assert proxy.hits("/bod") == 1
    assert store_rows(desk.cli.store_file) == before


def test_the_real_snapshot_still_passes(desk, proxy):
    """The checks do not refuse what mainsim really sends (its book, its seed)."""
    r = desk.cli("sync", "bod", "--json").ok().json()
    assert r["positions"] == len(desk.bod["positions"]) and r["clients"] == len(desk.bod["clients"])


def test_a_bad_login_reply_stores_nothing(desk, proxy):
    def rewrite(body):
        body["user"]["client_ids"][0] += "\u202e"
        return body

    before = store_rows(desk.cli.store_file)
    proxy.misbehave("/session", "rewrite", rewrite=rewrite)
    r = desk.cli("--password-stdin", "login", stdin=PASSWORD + "\n", timeout=30)  # (login has no --json)
    assert r.returncode == 5, r.stderr
    assert "user.client_ids.0" in r.stderr and "U+202E" in r.stderr and "Traceback" not in r.stderr
    assert store_rows(desk.cli.store_file) == before


# --------------------------------------------------------------------------- the live mirror


def test_the_mirror_refuses_events_for_clients_outside_the_snapshot(desk, tmp_path):
    """Events reach the mirror already checked field by field (the stream validates
    them against the same wire models); its scope is the snapshot's clients."""
    from localstore.db import open_store
    from sync.mirror import Mirror

    shutil.copy(desk.cli.store_file, tmp_path / "copy.db")
    store = open_store(tmp_path / "copy.db", create=False)
    try:
        mine = wire.Position.model_validate(desk.bod["positions"][0])
        event = dict(
            type="position", seq=desk.bod["seq"] + 1, data=mine.model_copy(update={"net_quantity": 0})
        )
        outsider = dict(event, seq=desk.bod["seq"] + 2, data=mine.model_copy(update={"client_id": "ZZ999"}))
        mirror = Mirror(store)
        assert mirror.apply([wire.PositionEvent(**event), wire.PositionEvent(**outsider)]) == 1
        assert mirror.refused == 1
    finally:
        store.close()
    with sqlite3.connect(tmp_path / "copy.db") as con:
        assert con.execute("SELECT count(*) FROM positions WHERE client_id = 'ZZ999'").fetchone()[0] == 0
        assert (
            con.execute(
                "SELECT net_quantity FROM positions WHERE client_id = ? AND symbol = ? AND product = ?",
                (mine.client_id, mine.symbol, mine.product.value),
            ).fetchone()[0]
            == 0
        )


# --------------------------------------------------------------------------- huge position


def _open_position(desk) -> dict:
    return next(p for p in desk.bod["positions"] if p["net_quantity"] != 0)


def _orders_on_main(desk) -> int:
    return len(raw_get(desk.sim.url, desk.token, "/orders"))


@pytest.mark.parametrize(
    "net, code, words",
    [
        (
            10**30,
            5,
            ["net_quantity", "less than or equal to 1000000000"],
        ),  # beyond any limit: main's reply refused
        (
            MAX_QUANTITY,
            4,
            ["quantity_limit", "orders of at most", f"the limit is {MAX_SLICES:,}"],
        ),  # too many slices
    ],
)
def test_online_squareoff_of_a_huge_position_is_refused_before_slicing(desk, proxy, net, code, words):
    pos = _open_position(desk)

    def rewrite(rows):
        for row in rows:
            if (row["client_id"], row["symbol"], row["product"]) == (
                pos["client_id"],
                pos["symbol"],
                pos["product"],
            ):
                row["net_quantity"] = net
        return rows

    before, orders = store_rows(desk.cli.store_file), _orders_on_main(desk)
    proxy.misbehave("/positions", "rewrite", rewrite=rewrite)
    started = time.monotonic()
    r = desk.cli("squareoff", "--client", pos["client_id"], "--yes", "--json", timeout=30)
    took = time.monotonic() - started
    refused(r, code, *words)
    assert took < 15, f"took {took:.1f} s"  # was: 74% CPU and growing memory until killed
    assert _orders_on_main(desk) == orders  # nothing sent: no order, no cancel
    assert store_rows(desk.cli.store_file) == before  # nothing journaled


def test_backup_squareoff_of_a_huge_local_position_is_refused_before_journaling(desk, tmp_path):
    """A position in the local store beyond any limit (a store written before these
    checks, or edited) is refused in backup mode too: nothing is journaled."""
    up = PinnedCli(
        home=tmp_path / "home",
        backend_url=desk.sim.url,
        keyring_file=tmp_path / "keyring.json",
        config=tmp_path / "config",
    )
    up.login().ok()
    up("sync", "bod").ok()
    down = dataclasses.replace(up, backend_url=DEAD_URL)  # the same console; main gone
    pos = _open_position(desk)
    with sqlite3.connect(down.store_file) as con:
        con.execute(
            "UPDATE positions SET net_quantity = ? WHERE client_id = ? AND symbol = ? AND product = ?",
            (2**62, pos["client_id"], pos["symbol"], pos["product"]),
        )
    before = store_rows(down.store_file)
    started = time.monotonic()
    r = down(
        "--password-stdin",
        "squareoff",
        "--client",
        pos["client_id"],
        "--yes",
        "--json",
        stdin=PASSWORD + "\n",
        timeout=30,
    )
    refused(r, 4, "quantity_limit", f"{2**62:,}", "beyond any instrument's limits")
    assert time.monotonic() - started < 15
    after = store_rows(down.store_file)
    assert after.pop("sync_state")[0][-1] is not None  # (only the offline login's clock watermark moves)
    assert after == {k: v for k, v in before.items() if k != "sync_state"} and after["journal"] == []


# --------------------------------------------------------------------------- the safe text type


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=60))
def test_safe_text_accepts_exactly_short_printable_text(text):
    """Accepted iff 1..40 characters, none a control, format, surrogate or separator
    character (the ASCII space excepted); what is accepted is returned unchanged."""
    import unicodedata

    bad = [
        c
        for c in text
        if c != " " and unicodedata.category(c) in ("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp", "Zs")
    ]
    try:
        assert TypeAdapter(wire.Symbol).validate_python(text) == text
        accepted = True
    except ValidationError:
        accepted = False
    assert accepted == (1 <= len(text) <= 40 and not bad)


@pytest.mark.parametrize(
    "field, value, words",
    [
        ("net_quantity", 10**30, "less than or equal to 1000000000"),
        ("symbol", "INFY\x1b[2J", "U+001B"),
        ("client_id", "C" * 33, "at most 32"),
    ],
)
def test_a_stream_event_with_bad_content_is_refused_before_the_mirror(desk, field, value, words):
    """The live stream reads each message with this adapter (backend_client.stream) and
    drops the connection on a refusal, so the event never reaches the mirror."""
    from backend_client.stream import _MESSAGE

    data = dict(desk.bod["positions"][0], **{field: value})
    raw = json.dumps({"type": "position", "seq": desk.bod["seq"] + 1, "data": data})
    with pytest.raises(ValidationError, match=re.escape(words)):
        _MESSAGE.validate_json(raw)


def test_mains_error_message_is_shown_escaped_and_cut_short(desk, proxy):
    """A 4xx body's message is the one text of main's a person is shown as is: its ESC
    and U+202E come out escaped, and 5,000 characters come out as 500 and a count."""
    pos = _open_position(desk)
    inst = next(
        i for i in desk.bod["instruments"] if (i["exchange"], i["symbol"]) == (pos["exchange"], pos["symbol"])
    )
    evil = "nope\x1b]0;pwned\x07\u202e" + "A" * 5000
    proxy.misbehave(
        "/orders",
        "rewrite",
        method="POST",
        status=422,
        rewrite=lambda body: {"error": {"code": "price_band\x1b[31m", "message": evil}},
    )
    r = desk.cli(
        "order",
        "place",
        "--client",
        pos["client_id"],
        "--exchange",
        pos["exchange"],
        "--symbol",
        pos["symbol"],
        "--side",
        "BUY",
        "--quantity",
        str(inst["lot_size"]),
        "--product",
        pos["product"],
        "--type",
        "MARKET",
        "--yes",
        "--json",
        timeout=30,
    )
    err = refused(r, 4, "nope\\x1b]0;pwned\\x07\\u202e", "(5,015 characters)")
    assert "\x1b" not in r.stdout + r.stderr and "\u202e" not in r.stdout + r.stderr
    assert err["reason"] == "price_band\\x1b[31m"


@pytest.mark.parametrize(
    "net, code, words",
    [
        (10**30, 5, "less than or equal to 1000000000"),  # main's reply refused: the pass stops, nothing sent
        (
            MAX_QUANTITY,
            6,
            f"more than {MAX_SLICES} orders needed",
        ),  # held for a person before any slice is sent
    ],
)
def test_replay_of_a_squareoff_against_a_huge_live_position_sends_nothing(
    desk, proxy, tmp_path, net, code, words
):
    """A square-off journaled in backup is recomputed against main's live position at
    replay; a live position beyond the limits stops or holds it before any slice."""
    cli = PinnedCli(
        home=tmp_path / "home",
        backend_url=desk.proxy.url,
        keyring_file=tmp_path / "keyring.json",
        config=tmp_path / "config",
    )
    cli.login().ok()
    cli("sync", "bod").ok()
    pos = _open_position(desk)
    down = dataclasses.replace(cli, backend_url=DEAD_URL)
    down(
        "--password-stdin",
        "squareoff",
        "--client",
        pos["client_id"],
        "--symbol",
        pos["symbol"],
        "--keep-orders",
        "--yes",
        "--json",
        stdin=PASSWORD + "\n",
    ).ok()

    def rewrite(rows):
        for row in rows:
            if (row["client_id"], row["symbol"], row["product"]) == (
                pos["client_id"],
                pos["symbol"],
                pos["product"],
            ):
                row["net_quantity"] = net if row["net_quantity"] > 0 else -net
        return rows

    orders = _orders_on_main(desk)
    proxy.misbehave("/positions", "rewrite", rewrite=rewrite)
    started = time.monotonic()
    r = cli("sync", "replay", "--json", timeout=30)
    assert time.monotonic() - started < 15
    assert r.returncode == code, (r.stdout[-2000:], r.stderr[-2000:])
    assert words in r.stdout + r.stderr and "Traceback" not in r.stderr
    assert _orders_on_main(desk) == orders


@pytest.mark.parametrize(
    "tick, words",
    [
        ({"exchange": "NSE", "symbol": "INFY\u202e", "last_price": 1500.05}, "U+202E"),
        ({"exchange": "NSE", "symbol": "INFY", "last_price": 1e30}, "less than or equal to"),
    ],
)
def test_a_tick_with_bad_content_is_refused_before_the_market_watch(tick, words):
    """Ticks are not stored but shown as they come (console/tui/feed.py): the same checks."""
    from backend_client.stream import _MESSAGE

    raw = json.dumps({"type": "tick", "seq": 1, "server_time": "2026-01-05T04:00:00Z", "ticks": [tick]})
    with pytest.raises(ValidationError, match=re.escape(words)):
        _MESSAGE.validate_json(raw)
