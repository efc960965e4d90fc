"""The privacy key file: the pseudonym key of the blocklist and the data keys of the evidence.

Amazon's Data Protection Policy asks that buyer data (relay addresses, names, message text) is
encrypted at rest and never stored unprotected. The blocklist therefore keeps a keyed digest of
each key (HMAC-SHA-256 under the pseudonym key, 128 bits kept) and the evidence is sealed with
AES-256-GCM under a data key that carries an id, so that `privacy rotate-key` can bring in a new
data key while rows sealed under the old one still open.

The file is JSON, mode 0600, and the same on every daemon that shares a database::

    {"version": 1, "pseudonym_key": "<base64, 32 bytes>",
     "data_keys": {"k1": "<base64, 32 bytes>", ...}, "current": "k1"}

The pseudonym key never changes: a blocklist entry cannot be digested again once its plain text
is purged. Losing the file loses the blocklist's meaning and the evidence (docs/privacy.md).
It imports only ``errors``, ``keys`` and ``secret``.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import os
import secrets
import stat
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from .errors import ConfigError
from .keys import PSEUDONYM_BYTES, digester
from .secret import Secret

__all__ = ["KeyRing", "SecretBytes", "SealedDataError", "load_keyring", "PSEUDONYM_BYTES"]

_KEY_BYTES = 32
_NONCE_BYTES = 12  # AES-GCM's 96-bit nonce (NIST SP 800-38D 8.2.2): random, never reused in practice
_SEALED_VERSION = 1
_CHECK_LABEL = b"inbox-daemon privacy key check v1"
_FILE_VERSION = 1


SecretBytes = Secret[bytes]  # key material


class SealedDataError(Exception):
    """A sealed value that does not open: unknown key id, damaged bytes, or another key's."""


@dataclass(frozen=True)
class KeyRing:
    """The pseudonym key and the data keys, by id; ``current`` seals new data."""

    pseudonym_secret: SecretBytes
    data_keys: Mapping[str, SecretBytes]
    current: str

    def __post_init__(self) -> None:
        if self.current not in self.data_keys:
            raise ConfigError(f"privacy key file: current data key {self.current!r} is not in data_keys")

    # -- pseudonyms -------------------------------------------------------------------------
    @property
    def pseudonym_key(self) -> bytes:
        """The raw HMAC key, for the C query loop, which digests queries without Python."""
        return self.pseudonym_secret.reveal()

    def pseudonym(self, canonical: bytes) -> bytes:
        """The keyed digest of a key's canonical form: HMAC-SHA-256, the first 128 bits."""
        return self._digest(canonical)

    @cached_property
    def _digest(self) -> Callable[[bytes], bytes]:
        return digester(self.pseudonym_secret.reveal())  # keys.digest, its pads made once

    def check_value(self) -> str:
        """What the database keeps to tell whether a daemon holds the key it was written with.
        A digest under the key of a fixed label: it reveals nothing of the key."""
        return hmac.digest(self.pseudonym_secret.reveal(), _CHECK_LABEL, "sha256")[:PSEUDONYM_BYTES].hex()

    # -- sealing ----------------------------------------------------------------------------
    @property
    def current_key_id(self) -> str:
        return self.current

    def encrypt(self, plaintext: bytes, *, context: bytes = b"") -> bytes:
        """Seal under the current data key: version, key id, nonce, AES-256-GCM ciphertext+tag.
        ``context`` is authenticated, not stored: a value opens only where it was sealed for."""
        key_id = self.current.encode("ascii")
        nonce = secrets.token_bytes(_NONCE_BYTES)
        sealed = AESGCM(self.data_keys[self.current].reveal()).encrypt(nonce, plaintext, context)
        return bytes((_SEALED_VERSION, len(key_id))) + key_id + nonce + sealed

    def decrypt(self, blob: bytes, *, context: bytes = b"") -> bytes:
        """Open a value sealed by :meth:`encrypt` under any data key still in the ring."""
        key_id = self.key_id_of(blob)
        key = self.data_keys.get(key_id)
        if key is None:
            raise SealedDataError(f"sealed under data key {key_id!r}, which is not in the key file")
        start = 2 + len(key_id)
        nonce, sealed = blob[start:start + _NONCE_BYTES], blob[start + _NONCE_BYTES:]
        try:
            return AESGCM(key.reveal()).decrypt(nonce, sealed, context)
        except InvalidTag:
            raise SealedDataError(f"sealed value under data key {key_id!r} does not open (damaged or another key)") from None

    @staticmethod
    def key_id_of(blob: bytes) -> str:
        """The id of the data key a sealed value needs (what rotation looks at)."""
        if len(blob) < 2 or blob[0] != _SEALED_VERSION or len(blob) < 2 + blob[1] + _NONCE_BYTES + 16:
            raise SealedDataError("not a sealed value")
        try:
            return blob[2:2 + blob[1]].decode("ascii")
        except UnicodeDecodeError:
            raise SealedDataError("not a sealed value") from None

    # -- rotation ---------------------------------------------------------------------------
    def with_new_data_key(self) -> KeyRing:
        """A ring with one more data key, made current; the old ones stay to open old rows."""
        number = 1 + max((int(k[1:]) for k in self.data_keys if k[1:].isdigit()), default=0)
        new_id = f"k{number}"
        keys = dict(self.data_keys)
        keys[new_id] = SecretBytes(secrets.token_bytes(_KEY_BYTES))
        return KeyRing(self.pseudonym_secret, keys, new_id)

    def without_data_keys(self, key_ids: set[str]) -> KeyRing:
        """A ring without retired data keys (never the current one)."""
        if self.current in key_ids:
            raise ValueError("the current data key cannot be retired")
        return KeyRing(self.pseudonym_secret, {k: v for k, v in self.data_keys.items() if k not in key_ids}, self.current)

    def to_json(self) -> bytes:
        document = {
            "version": _FILE_VERSION,
            "pseudonym_key": _b64(self.pseudonym_secret),
            "data_keys": {key_id: _b64(key) for key_id, key in sorted(self.data_keys.items())},
            "current": self.current,
        }
        return (json.dumps(document, indent=2) + "\n").encode()

    def save(self, path: Path) -> None:
        """Replace the file atomically (a new file at 0600, fsync, rename, fsync the folder)."""
        _write_new(path, self.to_json(), replace=True)

    def __repr__(self) -> str:
        return f"KeyRing(data_keys={sorted(self.data_keys)}, current={self.current!r})"


def new_keyring() -> KeyRing:
    return KeyRing(SecretBytes(secrets.token_bytes(_KEY_BYTES)), {"k1": SecretBytes(secrets.token_bytes(_KEY_BYTES))}, "k1")


def load_keyring(path: Path, *, create: bool) -> KeyRing:
    """Read the key file; with ``create``, make a new one (0600) when there is none.

    Refused with one line naming the file (never its content): unreadable, not valid, or
    readable or writable by others than its owner (and group read, for ``security.group``).
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        if not create:
            raise ConfigError(f"privacy key file {path} does not exist") from None
        ring = new_keyring()
        try:
            _write_new(path, ring.to_json(), replace=False)
        except FileExistsError:  # another process created it first: use that one
            return load_keyring(path, create=False)
        return ring
    except OSError as error:
        raise ConfigError(f"cannot read privacy key file {path}: {error.strerror}") from None
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise ConfigError(f"privacy key file {path} is not a regular file")
        if info.st_mode & 0o037:
            raise ConfigError(f"privacy key file {path} is open to others (mode {stat.S_IMODE(info.st_mode):04o}); chmod 600 it")
        raw = handle.read(1 << 20)
    return _parse(path, raw)


def _parse(path: Path, raw: bytes) -> KeyRing:
    problem = f"privacy key file {path} is not a valid key file"
    try:
        document: Any = json.loads(raw)
        if not isinstance(document, dict) or document.get("version") != _FILE_VERSION:
            raise ConfigError(f"{problem} (version)")
        pseudonym = _unb64(document["pseudonym_key"])
        data_keys = {str(k): _unb64(v) for k, v in dict(document["data_keys"]).items()}
        current = str(document["current"])
    except (ValueError, KeyError, TypeError, binascii.Error):
        raise ConfigError(problem) from None  # never echo the content: it is key material
    if any(not k.isascii() or not 0 < len(k) < 64 for k in data_keys):
        raise ConfigError(f"{problem} (data key ids)")
    return KeyRing(pseudonym, data_keys, current)


def _b64(secret: SecretBytes) -> str:
    return base64.b64encode(secret.reveal()).decode("ascii")


def _unb64(text: object) -> SecretBytes:
    if not isinstance(text, str):
        raise ValueError("not a string")
    value = base64.b64decode(text, validate=True)
    if len(value) != _KEY_BYTES:
        raise ValueError("wrong key length")
    return SecretBytes(value)


def _write_new(path: Path, content: bytes, *, replace: bool) -> None:
    """Write to a temporary 0600 file beside ``path`` and move it in place; without
    ``replace`` an existing file wins (FileExistsError), so two first starts agree on one key."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o750)
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
        if replace:
            os.replace(temporary, path)
        else:
            os.link(temporary, path)  # fails if the name exists: no clobbering
    finally:
        try:
            os.unlink(temporary)
        except FileNotFoundError:
            pass
    directory = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
