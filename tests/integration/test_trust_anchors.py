"""Trust anchors outside the store (issue 10, section 1): the forged offline grant, anchors with
and without an OS keyring, and the copied store.

Real parts: mainsim as a real server, the real `lifeboat` CLI in subprocesses, a real SQLite
store edited the way an attacker with the dealer's files would edit it.  The OS keyring is the
file-backed test keyring (tests/keyring_backend.py: no OS keyring runs on this headless machine,
a fake by necessity); "no keyring" is keyring's own ``fail`` backend, as on a headless server.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import os
import shutil
import sqlite3
import stat
from datetime import timedelta

import pytest

from tests.cli_env import DEAD_URL, PASSWORD, Cli, raw_get, raw_session


def anchors_of(cli: Cli):
    """This console's anchors, read in this process from the console's own keyring file."""
    from localstore.anchors import Anchors

    os.environ["LIFEBOAT_TEST_KEYRING_FILE"] = str(cli.keyring_file)  # monkeypatched by cli_factory: restored
    os.environ["LIFEBOAT_CONFIG_DIR"] = str(cli.config_dir)  # monkeypatched by conftest: restored
    return Anchors(cli.home)


def audit_rows(cli: Cli, action: str) -> list[dict]:
    with sqlite3.connect(cli.store_file) as db:
        return [
            json.loads(p)
            for (p,) in db.execute("SELECT payload FROM audit_log WHERE action = ? ORDER BY id", (action,))
        ]


def forge_supervisor_grant(cli: Cli, *, user: str, password: str, key_id: str | None) -> None:
    """What the finding did: a new Ed25519 key written into the store, a grant signed with it
    (role supervisor, 45 clients, valid a year) and a verifier for a chosen password.
    ``key_id``: the forged grant's key id (None: main's own key id, with the forged key)."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    from contract import clock
    from contract.grants import claims_bytes
    from localstore import credentials

    key = Ed25519PrivateKey.generate()
    public = base64.b64encode(key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)).decode()
    with sqlite3.connect(cli.store_file) as db:
        (grant_json,) = db.execute(
            "SELECT grant_json FROM offline_credentials WHERE user_id = ?", (user,)
        ).fetchone()
        claims = json.loads(grant_json)["claims"]
        claims.update(
            role="supervisor",
            client_ids=[f"C{i:03d}" for i in range(45)],
            valid_until=(clock.utcnow() + timedelta(days=365)).isoformat(),
            key_id=key_id or claims["key_id"],
        )
        forged = {"claims": claims, "signature": base64.b64encode(key.sign(claims_bytes(claims))).decode()}
        db.execute(
            "UPDATE offline_credentials SET grant_json = ?, public_key = ?, verifier = ? WHERE user_id = ?",
            (json.dumps(forged), public, credentials.make_verifier(password), user),
        )


def allow_new_exposure(cli: Cli) -> bool:
    with sqlite3.connect(cli.store_file) as db:
        return bool(db.execute("SELECT allow_new_exposure FROM policy WHERE id = 1").fetchone()[0])


# --------------------------------------------------------------------------- the forged offline grant


@pytest.mark.parametrize(
    "key_id, reason", [(None, "grant_key_mismatch"), ("forged-1", "grant_key_not_pinned")]
)
def test_a_forged_grant_signed_by_a_key_written_into_the_store_is_refused_exit_3_and_audited(
    sim, cli_factory, key_id, reason
):
    """The finding: a dealer wrote a key, a supervisor grant signed with it and a verifier into
    the store, and `policy set --allow-new-exposure` succeeded offline (exit 0).  The key that
    verifies grants is the one pinned outside the store at the online login."""
    cli = cli_factory(sim.url)
    cli.login().ok()
    forge_supervisor_grant(cli, user="dealer1", password="chosen", key_id=key_id)
    down = dataclasses.replace(cli, backend_url=DEAD_URL)
    r = down("--password-stdin", "policy", "set", "--allow-new-exposure", "--json", stdin="chosen\n")
    assert r.returncode == 3, (r.returncode, r.stdout, r.stderr)
    err = r.json()["error"]
    assert err["exit_code"] == 3 and "pinned" in err["message"] and "log in online" in err["message"], err
    assert not allow_new_exposure(cli)
    assert audit_rows(cli, "login_failed")[-1] == {"how": "offline", "reason": reason}


def test_grant_keys_are_pinned_from_main_at_online_login_and_replaced_only_online(sim, cli_factory):
    """The pins are main's /keys at the last online login (named in its audit row); a pin that
    does not match the store's key, or no pin for the grant's key id, refuses offline login
    (exit 3); an online login puts main's keys back (a change: audited), and the genuine grant
    works offline again."""
    cli = cli_factory(sim.url, user="super1")
    cli.login().ok()
    token = raw_session(sim.url, "super1")["access_token"]
    published = {k["key_id"]: k["public_key"] for k in raw_get(sim.url, token, "/keys")["keys"]}
    anchors = anchors_of(cli)
    assert anchors.grant_keys() == published and anchors.kind == "keyring"
    fingerprints = {k: hashlib.sha256(base64.b64decode(v)).hexdigest()[:16] for k, v in published.items()}
    login = audit_rows(cli, "login")[-1]
    assert login["grant_keys"] == fingerprints and login["console_id"] == anchors.console_id()
    down = dataclasses.replace(cli, backend_url=DEAD_URL)
    policy = ("--password-stdin", "policy", "set", "--reduce-only", "--json")
    down(*policy, stdin=PASSWORD + "\n").ok()  # the genuine grant, verified with the pin

    [key_id] = published
    zeros = {key_id: base64.b64encode(bytes(32)).decode()}
    anchors.put(grant_keys=zeros)  # a pin the store's key does not match
    r = down(*policy, stdin=PASSWORD + "\n")
    assert r.returncode == 3 and "another public key" in r.json()["error"]["message"], r.stdout
    anchors.put(grant_keys={})  # nothing pinned for the grant's key id
    r = down(*policy, stdin=PASSWORD + "\n")
    assert r.returncode == 3 and "did not pin" in r.json()["error"]["message"], r.stdout
    assert [a["reason"] for a in audit_rows(cli, "login_failed")] == [
        "grant_key_mismatch",
        "grant_key_not_pinned",
    ]

    anchors.put(grant_keys=zeros)
    cli.login().ok()  # online: main's keys replace the pins, and the change is audited
    assert anchors_of(cli).grant_keys() == published
    [changed] = audit_rows(cli, "grant_keys_pinned")
    assert (
        changed["pinned"] == fingerprints
        and changed["before"] != fingerprints
        and changed["where"] == "keyring"
    )
    down(*policy, stdin=PASSWORD + "\n").ok()


# --------------------------------------------------------------------------- with and without an OS keyring


def test_with_a_keyring_the_anchors_are_there_and_status_says_so(sim, cli_factory):
    cli = cli_factory(sim.url)
    cli.login().ok()
    j, t = cli.many(("status", "--json"), ("status",))
    an = j.ok().json()["anchors"]
    assert an["kind"] == "keyring" and "TestKeyring" in an["where"] and an["enrolled"] is True, an
    assert "trust anchors  OS keyring (TestKeyring" in t.ok().stdout and "; enrolled here" in t.stdout
    assert not list((cli.config_dir / "anchors").glob("*.json"))  # no file: the keyring holds them


def test_without_a_keyring_the_anchors_are_a_0600_file_outside_the_home_and_backup_works_from_it(
    sim, cli_factory
):
    """A headless server: keyring's fail backend.  The online login keeps the anchors in a 0600 file
    in the config dir (not the token: there is no plaintext fallback for it); status says where;
    offline login verifies the grant with the keys pinned in that file."""
    from localstore.anchors import home_key

    cli = cli_factory(sim.url)
    cli.extra_env["PYTHON_KEYRING_BACKEND"] = "keyring.backends.fail.Keyring"
    cli.login().ok()
    cli("--password-stdin", "sync", "bod", stdin=PASSWORD + "\n").ok()
    file = cli.config_dir / "anchors" / f"{home_key(cli.home)}.json"
    assert stat.S_IMODE(file.stat().st_mode) == 0o600 and stat.S_IMODE(file.parent.stat().st_mode) == 0o700
    assert cli.home.resolve() not in file.resolve().parents  # outside the store's folder
    kept = json.loads(file.read_text())
    assert set(kept) >= {"console_id", "console_key", "grant_keys"} and kept["grant_keys"]
    assert not cli.keyring_file.exists()  # nothing went to a keyring

    down = dataclasses.replace(cli, backend_url=DEAD_URL)
    j, t = down.many(("status", "--json"), ("status",))
    st = j.ok().json()
    assert st["mode"] == "BACKUP" and st["anchors"] == {
        "kind": "file",
        "enrolled": True,
        "where": f"{file} (mode 0600; no OS keyring on this machine)",
    }
    assert f"trust anchors  {file} (mode 0600; no OS keyring on this machine); enrolled here" in t.ok().stdout
    so = down("--password-stdin", "squareoff", "--all", "--yes", "--json", stdin=PASSWORD + "\n").ok().json()
    assert so["outcome"] == "journaled"


# --------------------------------------------------------------------------- the copied store


def test_a_copied_store_refuses_to_journal_until_an_online_login_gives_it_a_new_console_id(
    sim, cli_factory, tmp_path
):
    """The finding: a store copied to another home kept its console id, so both copies issued the
    same client_order_ids.  The copy (same machine, same keyring: the anchors are per home) is not
    enrolled: offline login, the journal and the replay refuse it (exit 3); an online login gives it
    a new console id (audited), and from then on the two never share an id."""
    from sync.identity import NotEnrolled
    from sync.trading import desk
    from sync.trading.desk import Actor

    orig = cli_factory(sim.url, user="super1")
    orig.login().ok()
    orig("--password-stdin", "sync", "bod", stdin=PASSWORD + "\n").ok()
    odown = dataclasses.replace(orig, backend_url=DEAD_URL)
    client = json.loads(orig("positions", "--local", "--json").ok().stdout)[0]["client_id"]
    first = (
        odown("--password-stdin", "squareoff", "--client", client, "--yes", "--json", stdin=PASSWORD + "\n")
        .ok()
        .json()
    )
    original_id = orig("status", "--json").ok().json()["console_id"]
    assert all(leg["client_order_id"].startswith(original_id + "-") for leg in first["legs"])

    copy = Cli(home=tmp_path / "copy", backend_url=sim.url, keyring_file=orig.keyring_file, user="super1")
    shutil.copytree(orig.home, copy.home)
    cdown = dataclasses.replace(copy, backend_url=DEAD_URL)
    st = cdown("status", "--json")
    assert st.returncode == 5 and st.json()["mode"] == "UNAVAILABLE", st.stdout
    an = st.json()["anchors"]
    assert an["enrolled"] is False and "is not enrolled on this home" in an["problem"], an
    so = cdown("--password-stdin", "squareoff", "--all", "--yes", "--json", stdin=PASSWORD + "\n")
    assert so.returncode == 3 and "not enrolled on this home" in so.json()["error"]["message"], so.stdout
    assert audit_rows(copy, "login_failed")[-1] == {"how": "offline", "reason": "console_not_enrolled"}
    # the journal itself refuses the copy (a runtime that logged in before the copy was made)
    svc = copy.service()
    try:
        with pytest.raises(NotEnrolled, match="log in online"):
            desk.squareoff(
                svc.store,
                Actor("super1", "supervisor", frozenset(), _trading_date(copy)),
                client_id=None,
                symbol=None,
                keep_orders=True,
                mode="BACKUP",
            )
    finally:
        svc.close()
    # the replay too (main up, the user's saved token: the same machine's keyring)
    rp = copy("sync", "replay", "--json")
    assert rp.returncode == 3 and "not enrolled on this home" in rp.json()["error"]["message"], rp.stdout
    with sqlite3.connect(copy.store_file) as db:
        assert db.execute("SELECT count(*) FROM journal").fetchone()[0] == len(first["legs"]) + len(
            first["cancels"]
        )

    copy.login().ok()  # online: enrolled here, with a new console id
    new_id = copy("status", "--json").ok().json()["console_id"]
    assert new_id != original_id
    enrolled = audit_rows(copy, "console_enrolled")[
        -1
    ]  # the first: the original's first login (a fresh store is enrolled too)
    assert enrolled["previous"] == original_id and enrolled["console_id"] == new_id
    second = (
        cdown("--password-stdin", "squareoff", "--all", "--yes", "--json", stdin=PASSWORD + "\n").ok().json()
    )
    again = (
        odown("--password-stdin", "squareoff", "--all", "--yes", "--json", stdin=PASSWORD + "\n").ok().json()
    )
    copy_ids = {leg["client_order_id"] for leg in second["legs"]}
    orig_ids = {leg["client_order_id"] for leg in again["legs"]}
    assert copy_ids and orig_ids and not copy_ids & orig_ids
    assert all(c.startswith(new_id + "-") for c in copy_ids) and all(
        c.startswith(original_id + "-") for c in orig_ids
    )


def _trading_date(cli: Cli):
    from datetime import date

    with sqlite3.connect(cli.store_file) as db:
        return date.fromisoformat(
            db.execute("SELECT trading_date FROM sync_state WHERE id = 1").fetchone()[0]
        )


# --------------------------------------------------------------------------- the broker's trust file


def test_a_broker_trust_file_decides_which_grant_keys_are_pinned_and_used(sim, cli_factory, tmp_path):
    """The anchors live where the dealer's account can write; the broker's trust file (named in
    config.toml, localstore.trustfile) need not.  A grant key it does not list refuses the online
    login (exit 3, nothing pinned); with the right fingerprint the login pins it; and a forgery
    the dealer wrote into BOTH the store and the anchors (its own key pinned) is still refused
    offline, since the trust file does not list that key."""
    from localstore.trustfile import fingerprint

    cli = cli_factory(sim.url, user="super1")
    trust = tmp_path / "broker" / "grant-keys"
    trust.parent.mkdir()
    cli.home.mkdir(parents=True)
    (cli.home / "config.toml").write_text(f'[trust]\ngrant_keys_file = "{trust}"\n')
    token = raw_session(sim.url, "super1")["access_token"]
    [(key_id, key)] = [(k["key_id"], k["public_key"]) for k in raw_get(sim.url, token, "/keys")["keys"]]

    trust.write_text(f"# broker's grant keys\n{key_id} {'0' * 64}\n")
    r = cli.login()
    assert r.returncode == 3 and "does not list" in r.stderr and str(trust) in r.stderr, r.stderr
    assert anchors_of(cli).grant_keys() == {}

    trust.write_text(f"{key_id} {fingerprint(key)}  # main's key\n")
    cli.login().ok()
    assert anchors_of(cli).grant_keys() == {key_id: key}
    down = dataclasses.replace(cli, backend_url=DEAD_URL)
    down("--password-stdin", "policy", "set", "--reduce-only", stdin=PASSWORD + "\n").ok()

    forge_supervisor_grant(cli, user="super1", password="chosen", key_id="forged-1")
    with sqlite3.connect(cli.store_file) as db:
        (forged_key,) = db.execute(
            "SELECT public_key FROM offline_credentials WHERE user_id = 'super1'"
        ).fetchone()
    anchors_of(cli).put(
        grant_keys={key_id: key, "forged-1": forged_key}
    )  # the dealer's account writes its keyring
    r = down("--password-stdin", "policy", "set", "--allow-new-exposure", "--json", stdin="chosen\n")
    assert r.returncode == 3 and "did not pin" in r.json()["error"]["message"], r.stdout
    assert not allow_new_exposure(cli)
    assert audit_rows(cli, "login_failed")[-1] == {"how": "offline", "reason": "grant_key_not_pinned"}
