"""Who is asking: passwords (Argon2id through argon2-cffi, never our own hashing), API tokens,
sessions, the CSRF token and the login throttle. The web handlers ask these; the store keeps
only hashes."""

from __future__ import annotations

import hashlib
import hmac
import math
import secrets
import time
from dataclasses import dataclass, field

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

__all__ = [
    "hash_password", "verify_password", "new_token", "token_digest", "Session", "Sessions", "LoginThrottle",
    "ROLE_RANK",
]

_HASHER = PasswordHasher()  # argon2-cffi's defaults: Argon2id, RFC 9106's low-memory profile
_DUMMY: list[str] = []  # a hash for unknown users, made on first use
ROLE_RANK = {"viewer": 0, "operator": 1}


def hash_password(password: str) -> str:
    if not password:
        raise ValueError("an empty password")
    return _HASHER.hash(password)


def verify_password(stored: str | None, password: str) -> bool:
    """True when ``password`` matches ``stored``; a missing user costs the same time (no user
    enumeration by timing). Slow on purpose (tenths of a second): call it off the event loop."""
    if not _DUMMY:
        _DUMMY.append(_HASHER.hash(secrets.token_hex(16)))
    try:
        return _HASHER.verify(stored or _DUMMY[0], password) and stored is not None
    except (VerificationError, InvalidHashError):
        return False


def new_token() -> str:
    """A bearer token for the HTTP API: 32 random bytes, URL-safe."""
    return "idt_" + secrets.token_urlsafe(32)


def token_digest(token: str) -> str:
    """What the store keeps of a token (and of a session cookie): its SHA-256."""
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).hexdigest()


@dataclass
class Session:
    user: str
    csrf: str
    expires: float  # time.monotonic()
    proxied: bool = False  # made for the user a trusted reverse proxy named

    def csrf_ok(self, given: str | None) -> bool:
        return given is not None and hmac.compare_digest(self.csrf.encode(), given.encode("utf-8", "replace"))


@dataclass
class Sessions:
    """Logins held in memory, by the SHA-256 of their cookie (a restart logs everyone out)."""

    lifetime: float
    max_sessions: int = 10_000  # past it the oldest logins end (a proxied client that drops cookies)
    _by_digest: dict[str, Session] = field(default_factory=dict)

    def create(self, user: str, *, proxied: bool = False) -> tuple[str, Session]:
        self._expire()
        while len(self._by_digest) >= self.max_sessions:
            del self._by_digest[next(iter(self._by_digest))]
        cookie = secrets.token_urlsafe(32)
        session = Session(user, secrets.token_urlsafe(32), time.monotonic() + self.lifetime, proxied)
        self._by_digest[token_digest(cookie)] = session
        return cookie, session

    def get(self, cookie: str | None) -> Session | None:
        if not cookie:
            return None
        session = self._by_digest.get(token_digest(cookie))
        if session is None or session.expires < time.monotonic():
            return None
        return session

    def drop(self, cookie: str | None) -> None:
        if cookie:
            self._by_digest.pop(token_digest(cookie), None)

    def _expire(self) -> None:
        now = time.monotonic()
        for digest in [d for d, s in self._by_digest.items() if s.expires < now]:
            del self._by_digest[digest]


@dataclass
class LoginThrottle:
    """Exponential delay per source after failed logins, and per user across the sources that
    failed on it: a source must wait ``base * 2**(failures - free)`` (at most ``cap``) seconds
    after its last failure before its next attempt is even checked. A source that has not failed
    (the right user on their own machine) is never delayed, so an attack cannot lock them out.
    A success clears the source's count."""

    base: float = 0.25
    free: int = 3  # failures before any delay
    cap: float = 300.0
    max_tracked: int = 100_000  # sources remembered; the oldest are forgotten past it
    _sources: dict[str, tuple[int, float]] = field(default_factory=dict)  # source -> (failures, last)
    _users: dict[str, tuple[int, float]] = field(default_factory=dict)

    def wait(self, source: str, user: str) -> float:
        """Seconds ``source`` must still wait before a login attempt for ``user`` is checked."""
        now = time.monotonic()
        own = self._left(self._sources.get(source), now)
        if source not in self._sources:
            return own  # never failed: the user's count does not apply to it
        return max(own, self._left(self._users.get(user), now))

    def failed(self, source: str, user: str) -> None:
        now = time.monotonic()
        for table, key in ((self._sources, source), (self._users, user)):
            count = table.pop(key, (0, 0.0))[0]
            table[key] = (count + 1, now)  # re-inserted: the dict stays oldest-first
            if len(table) > self.max_tracked:
                del table[next(iter(table))]

    def succeeded(self, source: str, user: str) -> None:
        self._sources.pop(source, None)
        self._users.pop(user, None)

    def _left(self, entry: tuple[int, float] | None, now: float) -> float:
        if entry is None or entry[0] < self.free:
            return 0.0
        delay = min(self.cap, self.base * math.pow(2, min(entry[0] - self.free, 32)))
        return max(0.0, entry[1] + delay - now)
