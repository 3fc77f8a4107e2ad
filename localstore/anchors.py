"""Trust anchors: what this console trusts, kept outside its store.

Why: whoever can edit the SQLite store (the dealer's account, an intruder with the
file) must not be able to change what decides trust.  A public key read from the
same file as the grant it verifies proves nothing; a console id read from a store
that was copied to another home makes two consoles issue the same client_order_ids.
So the things below live in the OS keyring, or, where the machine has none (a
headless server, CI), in a 0600 file in the user's config dir, outside the store's
folder:

* ``console_id`` and ``console_key``: the identity this home was enrolled with at an
  online login, and its Ed25519 private key (signs audit checkpoints; the store's
  console id must match it before the console journals anything);
* ``grant_keys``: the main system's offline-grant public keys, pinned at enrolment
  (``{key_id: base64 raw Ed25519 public key}``);
* anything else a caller keeps with ``put`` (one JSON object per home).

Anchors are kept per console home: the entry is named by a hash of the home's real
path, so a store copied to another home (on this machine or another) finds no
anchors and must be enrolled online again.

Reading tries the keyring first, then the file (a process with a keyring and one
without may share a home); writing goes to the keyring when there is one, else the
file.  Writers of one home are serialised by a lock file beside the anchor file.
``where`` says which one holds this home's anchors, for ``lifeboat status``.

keyring is imported only when an anchor is read or written (about 75 ms).
"""

from __future__ import annotations

import base64
import fcntl
import hashlib
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

SERVICE = "lifeboat-anchors"
CONFIG_DIR_ENV = "LIFEBOAT_CONFIG_DIR"


class AnchorError(Exception):
    """The anchors cannot be read or kept safely (unreadable file, loose permissions,
    a config dir inside the store's folder); the message says which and where."""


def config_dir() -> Path:
    """``LIFEBOAT_CONFIG_DIR`` if set, else the platform's per-user config dir."""
    if os.environ.get(CONFIG_DIR_ENV):
        return Path(os.environ[CONFIG_DIR_ENV]).expanduser()
    from platformdirs import user_config_dir

    return Path(user_config_dir("lifeboat", appauthor=False))


def home_key(home: Path) -> str:
    """The name of a home's anchors: a hash of its real path (a copy elsewhere differs)."""
    return hashlib.sha256(os.path.realpath(home).encode()).hexdigest()[:24]


class Anchors:
    """One console home's anchors.  ``backend``: "keyring" or "file" to force one (tests),
    None to choose (the keyring when usable)."""

    def __init__(self, home: Path, *, backend: str | None = None, directory: Path | None = None):
        self.home = Path(home)
        self.key = home_key(self.home)
        self.directory = (directory or config_dir()) / "anchors"
        if backend not in (None, "keyring", "file"):
            raise ValueError(f"unknown anchor backend {backend!r}")
        self._forced = backend
        self._depth = 0  # locked() nesting on this object
        self._cache: dict[str, Any] | None = None  # what get() read

    # ------------------------------------------------------------------ where

    @property
    def file(self) -> Path:
        return self.directory / f"{self.key}.json"

    def _keyring(self):
        """The usable keyring backend, or None (headless, or the file is forced)."""
        if self._forced == "file":
            return None
        from localstore.secrets import _usable_backend

        backend = _usable_backend()
        if backend is None and self._forced == "keyring":
            raise AnchorError("no OS keyring on this machine to keep the console's trust anchors")
        return backend

    @property
    def kind(self) -> str:
        return "keyring" if self._keyring() is not None else "file"

    @property
    def where(self) -> str:
        """Where this home's anchors are kept, for a person: the keyring or the file."""
        backend = self._keyring()
        if backend is not None:
            return f"OS keyring ({type(backend).__name__}, service {SERVICE!r}, entry {self.key})"
        return f"{self.file} (mode 0600; no OS keyring on this machine)"

    # ------------------------------------------------------------------ the JSON object

    def load(self) -> dict[str, Any]:
        """This home's anchors ({} when none were kept)."""
        backend = self._keyring()
        if backend is not None:
            from keyring.errors import KeyringError

            try:
                text = backend.get_password(SERVICE, self.key)
            except KeyringError as exc:
                raise AnchorError(f"the OS keyring cannot be read ({type(exc).__name__})") from None
            if text is not None:
                return self._parse(text, "the OS keyring entry")
        return self._load_file()

    def _load_file(self) -> dict[str, Any]:
        path = self.file
        try:
            st = path.stat()
        except FileNotFoundError:
            return {}
        except OSError as exc:
            raise AnchorError(f"cannot read the console's trust anchors at {path}: {exc.strerror}") from None
        if st.st_mode & 0o077:
            raise AnchorError(
                f"{path} is readable or writable by others (mode {st.st_mode & 0o777:04o}); "
                f"it holds the console's keys: chmod 600 it, or log in online to enrol again"
            )
        try:
            return self._parse(path.read_text(encoding="utf-8"), str(path))
        except (OSError, UnicodeDecodeError) as exc:
            raise AnchorError(f"cannot read the console's trust anchors at {path}: {exc}") from None

    @staticmethod
    def _parse(text: str, what: str) -> dict[str, Any]:
        try:
            data = json.loads(text)
        except json.JSONDecodeError:
            data = None
        if not isinstance(data, dict):
            raise AnchorError(
                f"{what} holding the console's trust anchors is unreadable; "
                f"log in online to enrol this console again"
            )
        return data

    def save(self, data: dict[str, Any]) -> None:
        text = json.dumps(data, sort_keys=True)
        backend = self._keyring()
        if backend is not None:
            from keyring.errors import KeyringError

            try:
                backend.set_password(SERVICE, self.key, text)
                return
            except KeyringError as exc:
                raise AnchorError(
                    f"the OS keyring cannot keep the console's trust anchors ({type(exc).__name__})"
                ) from None
        self._save_file(text)

    def _save_file(self, text: str) -> None:
        home = os.path.realpath(self.home)
        folder = os.path.realpath(self.directory)
        if folder == home or folder.startswith(home + os.sep):
            raise AnchorError(
                f"the config dir {self.directory.parent} is inside the console's home {self.home}: "
                f"the trust anchors must live outside the store's folder (set {CONFIG_DIR_ENV})"
            )
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        tmp = self.file.with_suffix(f".tmp{os.getpid()}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(text)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.file)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    @contextmanager
    def locked(self) -> Iterator[None]:
        """Serialise read-modify-write of this home's anchors across processes.  Re-entrant
        on this object (``put`` and ``enrol`` inside a caller's ``locked()`` block: a second
        flock of the same file from this process would wait for ever); use one Anchors
        object per home within a locked block."""
        if self._depth:
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
            return
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(self.directory / f"{self.key}.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            self._depth = 1
            yield
        finally:
            self._depth = 0
            os.close(fd)

    def get(self, name: str) -> Any:
        """One anchor; the first ``get`` on this object reads them all, later ones reuse that
        (an Anchors object is short-lived: one check, one login), but inside ``locked()``
        every ``get`` reads afresh (a read-modify-write must see the other writers)."""
        if self._cache is None or self._depth:
            self._cache = self.load()
        return self._cache.get(name)

    def put(self, **values: Any) -> None:
        """Set some anchors (None deletes one), keeping the others."""
        with self.locked():
            data = self.load()
            for name, value in values.items():
                if value is None:
                    data.pop(name, None)
                else:
                    data[name] = value
            self.save(data)
            self._cache = data

    # ------------------------------------------------------------------ the console's identity

    def console_id(self) -> str | None:
        value = self.get("console_id")
        return value if isinstance(value, str) else None

    def console_key(self) -> Ed25519PrivateKey | None:
        """The console's Ed25519 signing key, or None before enrolment."""
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        raw = self.get("console_key")
        if raw is None:
            return None
        try:
            return Ed25519PrivateKey.from_private_bytes(base64.b64decode(raw, validate=True))
        except (ValueError, TypeError) as exc:
            raise AnchorError(
                f"the console's signing key in {self.where} is unreadable ({exc}); "
                f"log in online to enrol this console again"
            ) from None

    def enrol(self, console_id: str) -> Ed25519PrivateKey:
        """Bind ``console_id`` to this home with a new signing key (replacing any)."""
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
        from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

        key = Ed25519PrivateKey.generate()
        raw = key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
        self.put(console_id=console_id, console_key=base64.b64encode(raw).decode("ascii"))
        return key

    def grant_keys(self) -> dict[str, str]:
        """The pinned offline-grant public keys ({key_id: base64}); {} before enrolment."""
        keys = self.get("grant_keys")
        return (
            {k: v for k, v in keys.items() if isinstance(k, str) and isinstance(v, str)}
            if isinstance(keys, dict)
            else {}
        )


def public_key_b64(key: Ed25519PrivateKey) -> str:
    """The raw public key of ``key``, base64 (how main and the checkpoints name it)."""
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    return base64.b64encode(key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)).decode("ascii")
