"""The benches' privacy-off anchor: the same workload with a key ring that protects nothing.

The product has no way to turn privacy off, and must not have one. The benches that compare
against it (``bench/ingest.py --privacy-anchor``, ``bench/import.py --privacy-anchor``) run their
workload once with the daemon's real key ring and once with ``PlainRing``, injected here and
nowhere else, and print the ratio:

* sealing is the identity: raw messages are stored as they came (no AES-256-GCM);
* a key's digest is an unkeyed BLAKE2b-128 of its plain normalised form. The plain form itself
  cannot stand in: the index, the C query loop and the stored form all key on 128 bits
  (``keys.PSEUDONYM_BYTES``), and the hex of a whole address is no stored pseudonym
  (``keys.is_stored``). So the anchor drops the keying (HMAC-SHA-256) and keeps one cheap
  unkeyed hash; the daemon's lookups under it answer from a differently keyed index (ingest
  only counts notices applied, never a lookup).

In a daemon process the ring comes in through ``plain_daemon_exe``: a small executable that
wraps ``inbox-daemon`` and replaces the key file's ring by a ``PlainRing`` of the same keys
(so the database's check value still matches). In the bench's own process ``stores_with``
gives every ``Store`` opened without a key ring the one given, as the test suite does.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import os
import stat
import statistics
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from inbox_daemon.keys import PSEUDONYM_BYTES
from inbox_daemon.privacy import KeyRing

__all__ = ["PlainRing", "plain_daemon_exe", "stores_with", "ratio_line"]

REPO = Path(__file__).resolve().parents[1]


@dataclasses.dataclass(frozen=True)
class PlainRing(KeyRing):
    """A key ring that seals nothing and digests without a key (see the module)."""

    def pseudonym(self, canonical: bytes) -> bytes:
        return hashlib.blake2b(canonical, digest_size=PSEUDONYM_BYTES).digest()

    def encrypt(self, plaintext: bytes, *, context: bytes = b"") -> bytes:
        return plaintext

    def decrypt(self, blob: bytes, *, context: bytes = b"") -> bytes:
        return blob

    @classmethod
    def of(cls, ring: KeyRing) -> PlainRing:
        """The same keys (the check value stays the database's), protecting nothing."""
        return cls(**{f.name: getattr(ring, f.name) for f in dataclasses.fields(ring)})


def install_in_daemon() -> None:
    """Make the daemon process load ``PlainRing`` where it loads the key file."""
    from inbox_daemon import daemon

    loaded = daemon.load_keyring

    def plain(path: Path, *, create: bool) -> KeyRing:
        return PlainRing.of(loaded(path, create=create))

    daemon.load_keyring = plain  # type: ignore[assignment]


_WRAPPER = """#!{python}
import sys
sys.path.insert(0, {repo!r})
if __name__ == "__main__":  # parse workers started by spawn import this file again
    from bench._privacy import install_in_daemon
    install_in_daemon()
    from inbox_daemon.cli import main
    sys.exit(main())
"""


def plain_daemon_exe(directory: Path) -> str:
    """An executable that runs ``inbox-daemon`` with ``PlainRing`` (``DaemonProcess(exe=...)``)."""
    path = directory / "inbox-daemon-privacy-off"
    path.write_text(_WRAPPER.format(python=sys.executable, repo=str(REPO)))
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return os.fspath(path)


@contextlib.contextmanager
def stores_with(ring: KeyRing) -> Iterator[None]:
    """Every ``Store`` opened in this process without a key ring gets ``ring`` meanwhile."""
    from inbox_daemon.store import Store

    opened = Store.__init__

    def with_ring(self: Store, engine: Any, keyring: KeyRing | None = None) -> None:
        opened(self, engine, ring if keyring is None else keyring)

    Store.__init__ = with_ring  # type: ignore[method-assign]
    try:
        yield
    finally:
        Store.__init__ = opened  # type: ignore[method-assign]


def ratio_line(what: str, on: list[float], off: list[float], unit: str) -> str:
    """Rounds of the same run, privacy on and off alternating; the ratio of their medians."""
    rounds = ", ".join(f"{a:,.0f}/{b:,.0f}" for a, b in zip(on, off))
    return (f"  {what}: privacy on {statistics.median(on):,.0f} {unit}, off {statistics.median(off):,.0f} {unit} (medians; rounds on/off: "
            f"{rounds}); on/off = {statistics.median(on) / statistics.median(off):.2f}x (target >= 0.9x)")
