"""A small blocking client for the query socket: the CLI's ``check`` and the tests use it."""

from __future__ import annotations

import json
import socket
from dataclasses import dataclass
from datetime import datetime, timezone
from types import TracebackType
from typing import Any

from inbox_daemon.errors import QueryError

__all__ = ["Reply", "QueryClient"]

_MAX_REPLY = 64 * 1024  # a STATS line is the longest reply; anything longer is garbled


@dataclass(frozen=True, slots=True)
class Reply:
    """The answer to CHECK or ORDER."""

    blocked: bool
    first_seen: datetime | None = None  # UTC, when blocked
    count: int = 0  # notices, when blocked

    def __str__(self) -> str:
        """The reply as the daemon sent it: ``OK`` or ``BLOCKED <first-seen> <count>``."""
        if not self.blocked or self.first_seen is None:
            return "OK" if not self.blocked else f"BLOCKED 1970-01-01T00:00:00Z {self.count}"
        return f"BLOCKED {self.first_seen:%Y-%m-%dT%H:%M:%SZ} {self.count}"

    @classmethod
    def parse(cls, line: str) -> Reply:
        """``OK`` or ``BLOCKED <first-seen> <count>``; QueryError for anything else."""
        if line == "OK":
            return cls(False)
        words = line.split(" ")
        if len(words) != 3 or words[0] != "BLOCKED":
            raise QueryError(f"unexpected reply: {line!r}")
        try:
            first_seen = datetime.strptime(words[1], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
            count = int(words[2])
        except ValueError as exc:
            raise QueryError(f"unexpected reply: {line!r}") from exc
        return cls(True, first_seen, count)


class QueryClient:
    """One connection to the daemon's query socket; requests are answered in order."""

    def __init__(
        self, unix_path: str | None = None, tcp: tuple[str, int] | None = None, timeout: float = 5.0
    ) -> None:
        if (unix_path is None) == (tcp is None):
            raise ValueError("QueryClient needs exactly one of unix_path and tcp")
        self._unix_path = unix_path
        self._tcp = tcp
        self._timeout = timeout
        self._sock: socket.socket | None = None
        self._buffer = b""

    def __enter__(self) -> QueryClient:
        self._connect()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        self._buffer = b""

    # -- commands ----------------------------------------------------------------------------

    def check(self, address: str, order_id: str | None = None) -> Reply:
        line = f"CHECK {address}" if order_id is None else f"CHECK {address} {order_id}"
        return Reply.parse(self._expect_no_error(self.raw(line)))

    def order(self, order_id: str) -> Reply:
        return Reply.parse(self._expect_no_error(self.raw(f"ORDER {order_id}")))

    def ping(self) -> bool:
        return self.raw("PING") == "PONG"

    def stats(self) -> dict[str, Any]:
        line = self._expect_no_error(self.raw("STATS"))
        verb, _, payload = line.partition(" ")
        try:
            figures = json.loads(payload) if verb == "STATS" else None
        except ValueError:
            figures = None
        if not isinstance(figures, dict):
            raise QueryError(f"unexpected reply: {line!r}")
        return figures

    def raw(self, line: str) -> str:
        """Send one request line, return the reply line without its ending."""
        return self.pipeline([line])[0]

    def pipeline(self, lines: list[str]) -> list[str]:
        """Send several request lines at once and read their replies, in order."""
        if any("\n" in line or "\r" in line for line in lines):
            raise QueryError("a request may not contain a line break")
        sock = self._connect()
        try:
            sock.sendall("".join(f"{line}\n" for line in lines).encode("ascii"))
        except (OSError, UnicodeEncodeError) as exc:
            self.close()
            raise QueryError(f"cannot send to the query socket: {exc}") from exc
        return [self._read_line(sock) for _ in lines]

    # -- plumbing ----------------------------------------------------------------------------

    @staticmethod
    def _expect_no_error(line: str) -> str:
        if line.startswith("ERR"):
            raise QueryError(f"the daemon said: {line}")
        return line

    def _connect(self) -> socket.socket:
        if self._sock is not None:
            return self._sock
        try:
            if self._unix_path is not None:
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                sock.settimeout(self._timeout)
                _connect_or_close(sock, self._unix_path)
            else:
                assert self._tcp is not None
                sock = socket.create_connection(self._tcp, timeout=self._timeout)
        except OSError as exc:
            raise QueryError(f"cannot reach the query socket {self._target()}: {exc}") from exc
        self._sock = sock
        return sock

    def _target(self) -> str:
        return self._unix_path if self._unix_path is not None else f"{self._tcp}"

    def _read_line(self, sock: socket.socket) -> str:
        while b"\n" not in self._buffer:
            if len(self._buffer) > _MAX_REPLY:
                self.close()
                raise QueryError("reply line too long")
            try:
                chunk = sock.recv(65536)
            except OSError as exc:
                self.close()
                raise QueryError(f"no reply from the query socket: {exc}") from exc
            if not chunk:
                self.close()
                raise QueryError("the query socket closed the connection")
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        try:
            return line.decode("ascii").rstrip("\r")
        except UnicodeDecodeError as exc:
            self.close()
            raise QueryError("reply is not ASCII") from exc


def _connect_or_close(sock: socket.socket, path: str) -> None:
    try:
        sock.connect(path)
    except OSError:
        sock.close()
        raise
