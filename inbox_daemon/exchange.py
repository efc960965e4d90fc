"""One exchange on a query connection, sans-IO: the client library's wire rules.

Requests are encoded here, replies counted and parsed here, and a connection's ``State`` named
here (STYLE habit 17), so that the sync and asyncio clients in client.py share every rule and
differ only in how bytes move. Replies carry nothing that names their request
(docs/query-protocol.md): a reply belongs to a request by its place in the stream, which is why
a surplus byte is an error and an interrupted exchange discards its connection.
"""

from __future__ import annotations

import enum
import json
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import lru_cache
from typing import Any, Final

from inbox_daemon.errors import QueryError
from inbox_daemon.keys import address as _address
from inbox_daemon.keys import order_id as _order_id

__all__ = [
    "Key", "Reply", "State", "Closed", "Replies", "Deadline", "request_line", "parse_target", "encode_requests",
    "parse_reply", "parse_replies", "parse_pong", "parse_stats", "discarding_on_failure", "target_name", "READ_SIZE",
    "ATTEMPTS", "retry_after_close",
]

_MAX_REPLY: Final = 64 * 1024  # a STATS line is the longest reply; anything longer is garbled
READ_SIZE: Final = 256 * 1024

Key = str | tuple[str, str | None]
"""What ``check_many`` takes per recipient: an address or order id, or (address, order id)."""


@dataclass(frozen=True, slots=True)
class Reply:
    """The answer to CHECK or ORDER."""

    blocked: bool
    first_seen: datetime | None = None  # UTC, when blocked
    count: int = 0  # notices, when blocked

    def __str__(self) -> str:
        """The reply as the daemon sent it: ``OK`` or ``BLOCKED <first-seen> <count>``."""
        if not self.blocked:
            return "OK"
        moment = self.first_seen or datetime(1970, 1, 1, tzinfo=timezone.utc)
        return f"BLOCKED {moment:%Y-%m-%dT%H:%M:%SZ} {self.count}"

    @classmethod
    def parse(cls, line: str) -> Reply:
        """``OK`` or ``BLOCKED <first-seen> <count>``; QueryError for anything else (ERR too)."""
        if line == "OK":
            return cls(False)
        if line.startswith("ERR"):
            raise QueryError(f"the daemon said: {line}")
        words = line.split(" ")
        if len(words) != 3 or words[0] != "BLOCKED":
            raise QueryError(f"unexpected reply: {line!r}")
        try:
            first_seen = _moment(words[1])
            count = int(words[2])
        except ValueError as exc:
            raise QueryError(f"unexpected reply: {line!r}") from exc
        return cls(True, first_seen, count)


@lru_cache(maxsize=4096)
def _moment(text: str) -> datetime:
    """``2026-11-26T06:17:34Z`` -> an aware datetime (cached: a campaign repeats few dates)."""
    if len(text) != 20 or text[10] != "T" or text[19] != "Z":
        raise ValueError(text)
    return datetime.fromisoformat(text[:19]).replace(tzinfo=timezone.utc)


def request_line(key: Key) -> str:
    """The request for one key: ``ORDER`` for a bare order id, else ``CHECK``.

    Keys go out in their canonical form (``inbox_daemon.keys``); one that is not a key goes as
    given, and the daemon's ``ERR`` for it raises QueryError."""
    if isinstance(key, tuple):
        address, order_id = key
        address = _address(address) or address
        if not order_id:
            return f"CHECK {address}"
        return f"CHECK {address} {_order_id(order_id) or order_id}"
    order = _order_id(key)
    return f"ORDER {order}" if order is not None else f"CHECK {_address(key) or key}"


def parse_target(target: str | tuple[str, int]) -> tuple[str | None, tuple[str, int] | None]:
    """``/path`` (or ``./path``) -> a Unix socket; ``host:port`` or (host, port) -> TCP."""
    if isinstance(target, tuple):
        return None, target
    if target.startswith(("/", ".")) or ":" not in target:
        return target, None
    host, _, port = target.rpartition(":")
    if not port.isdigit():
        raise ValueError(f"not a socket path or host:port: {target!r}")
    return None, (host.strip("[]"), int(port))


def encode_requests(lines: Sequence[str]) -> bytes:
    for line in lines:
        if "\n" in line or "\r" in line or "\0" in line:
            raise QueryError("a request may not contain a line break or NUL")
    try:
        return "".join(f"{line}\n" for line in lines).encode("ascii")
    except UnicodeEncodeError as exc:
        raise QueryError(f"a request must be ASCII: {exc}") from None


def parse_replies(lines: Sequence[str]) -> list[Reply]:
    return [Reply.parse(line) for line in lines]


def parse_reply(lines: Sequence[str]) -> Reply:
    return Reply.parse(lines[0])


def parse_pong(lines: Sequence[str]) -> bool:
    line = lines[0]
    if line != "PONG":
        raise QueryError(f"unexpected reply: {line!r}" if not line.startswith("ERR") else f"the daemon said: {line}")
    return True


def parse_stats(lines: Sequence[str]) -> dict[str, Any]:
    line = lines[0]
    verb, _, payload = line.partition(" ")
    try:
        figures = json.loads(payload) if verb == "STATS" else None
    except ValueError:
        figures = None
    if not isinstance(figures, dict):
        raise QueryError(f"unexpected reply: {line!r}" if not line.startswith("ERR") else f"the daemon said: {line}")
    return figures


class Closed(Exception):
    """The daemon closed the connection before any reply to this exchange arrived."""


ATTEMPTS: Final = (False, True)
"""Each exchange's tries, ``True`` for the last: one more only after a reused connection closed."""


def retry_after_close(target: str, *, reused: bool, last: bool) -> None:
    """A connection the daemon closed between calls (idle timeout, restart) is reopened once; a
    fresh connection closed without a reply, or a second close, is the daemon's failure."""
    if last or not reused:
        raise QueryError(f"{target} closed the connection without a reply") from None


class State(enum.Enum):
    """Where a connection stands; only an IDLE one may carry a new request (STYLE habit 17)."""

    IDLE = "idle"  # every request sent has had its reply, and nothing else arrived
    WAITING = "waiting"  # requests went out and not all replies are in
    BROKEN = "broken"  # an exchange failed or was interrupted: discarded, never reused


class Replies:
    """The reply lines to one pipelined batch of ``want`` requests, counted as they arrive.

    Replies carry nothing that names their request (docs/query-protocol.md), so a reply belongs
    to a request by position only: a line beyond ``want``, or any byte after the last wanted
    line, means the stream is out of step and nothing in it can be trusted.
    """

    def __init__(self, want: int) -> None:
        self.want = want
        self.lines: list[str] = []
        self._buffer = b""
        self._started = False  # a reply byte arrived

    def feed(self, data: bytes, target: str) -> bool:
        """Take ``data`` (empty: end of stream); True once all ``want`` lines are in."""
        if not data:
            if not self._started:
                raise Closed  # nothing of this exchange arrived: the connection was stale
            raise QueryError(f"{target} closed the connection mid-reply")
        self._started = True
        buffer = self._buffer + data
        if b"\n" in data:
            *lines, buffer = buffer.split(b"\n")
            if len(self.lines) + len(lines) > self.want:
                raise QueryError("more replies than requests")
            try:
                self.lines += [line.decode("ascii").rstrip("\r") for line in lines]
            except UnicodeDecodeError:
                raise QueryError("reply is not ASCII") from None
        if len(buffer) > _MAX_REPLY:
            raise QueryError("reply line too long")
        self._buffer = buffer
        if len(self.lines) < self.want:
            return False
        if buffer:
            raise QueryError("bytes after the last reply")
        return True


class Deadline:
    """One total deadline for a call: connecting, sending and every read share it, so a
    trickled reply cannot stretch a call past its timeout."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._end = time.monotonic() + seconds

    def left(self, target: str) -> float:
        """Seconds left; QueryError once none are."""
        left = self._end - time.monotonic()
        if left <= 0:
            raise QueryError(f"no reply from {target} within {self.seconds}s")
        return left


@contextmanager
def discarding_on_failure(discard: Callable[[], None], target: str) -> Iterator[None]:
    """Whatever ends an exchange early — a QueryError, an OSError (raised as QueryError), a
    cancellation, KeyboardInterrupt, a gevent or Celery timeout — leaves the connection in an
    unknown state: ``discard`` it (BROKEN) before the exception goes on."""
    try:
        yield
    except OSError as exc:
        discard()
        raise QueryError(f"query socket {target} failed: {exc!r}") from exc
    except BaseException:
        discard()
        raise


def target_name(unix_path: str | None, tcp: tuple[str, int] | None) -> str:
    return unix_path if unix_path is not None else "%s:%d" % tcp  # type: ignore[str-format]
