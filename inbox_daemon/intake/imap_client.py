"""One IMAP connection over aioimaplib 2.0, and the parsing of its answers (RFC 3501).

aioimaplib needs some care; each point is handled where it is marked "pitfall": a failed LOGIN
or SELECT returns a response instead of raising; a command whose connection died never
completes; ``idle_start`` waits forever if the server says BYE instead of ``+``; after a
timeout the client is in an unknown state, so a connection is used for one session and then
dropped; FETCH literals arrive as ``bytearray`` items between the response's text lines.
"""

from __future__ import annotations

import asyncio
import base64
import re
import ssl
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import aioimaplib  # type: ignore[import-untyped]

from ..config import ImapAccount
from ..errors import InboxDaemonError
from .sasl import SaslExchange
from .sasl import State as SaslState

__all__ = [
    "ImapConnection",
    "ImapSessionError",
    "ImapAuthError",
    "parse_fetch",
    "parse_search",
    "parse_sizes",
    "uid_set",
    "mailbox_arg",
    "check_ok",
    "response_text",
]

T = TypeVar("T")


class ImapSessionError(InboxDaemonError):
    """The server refused something or the connection broke: reconnect after a backoff."""


class ImapAuthError(ImapSessionError):
    """The credentials were refused: logged clearly and retried slowly."""


# -- pure helpers (unit-tested without a server) -----------------------------------------------

_FETCH_HEAD = re.compile(rb"^\d+ FETCH \(")
_UID = re.compile(rb"\bUID (\d+)")


def parse_fetch(lines: Sequence[bytes | bytearray]) -> dict[int, bytes]:
    """UID -> message bytes from aioimaplib's ``UID FETCH … (UID BODY.PEEK[])`` response lines.

    aioimaplib hands over ``b'7 FETCH (UID 42 BODY[] {1234}'``, then the literal as a
    ``bytearray``, then the rest of the item (``b')'`` or ``b' UID 42)'`` when the server puts
    UID after the body), and last the tagged response's text. Unsolicited FETCHes (flag changes
    from other clients) carry no literal and are skipped.
    """
    found: dict[int, bytes] = {}
    text: list[bytes] = []
    body: bytes | None = None

    def finish() -> None:
        m = _UID.search(b" ".join(text))
        if m and body is not None:
            found[int(m.group(1))] = body

    for item in lines[:-1]:  # the last line is the tagged "Fetch completed"
        if isinstance(item, bytearray):
            body = bytes(item)
        elif _FETCH_HEAD.match(item):
            finish()
            text, body = [item], None
        else:
            text.append(item)
    finish()
    return found


_SIZE = re.compile(rb"\bRFC822\.SIZE (\d+)")


def parse_sizes(lines: Sequence[bytes | bytearray]) -> dict[int, int]:
    """UID -> RFC822.SIZE from a ``UID FETCH … (UID RFC822.SIZE)`` response: the size the
    server will send for ``BODY[]`` (RFC 3501 6.4.5), known before a byte of it is fetched."""
    found: dict[int, int] = {}
    for line in lines[:-1]:
        text = bytes(line)
        uid, size = _UID.search(text), _SIZE.search(text)
        if uid and size:
            found[int(uid.group(1))] = int(size.group(1))
    return found


def parse_search(lines: Sequence[bytes | bytearray]) -> list[int]:
    """The UIDs of a ``UID SEARCH`` response (aioimaplib strips ``* SEARCH``)."""
    return sorted({int(n) for line in lines[:-1] for n in bytes(line).split() if n.isdigit()})


def uid_set(uids: Sequence[int]) -> str:
    """``[1, 2, 3, 7, 9, 10]`` -> ``"1:3,7,9:10"`` (RFC 3501 sequence-set)."""
    runs: list[list[int]] = []
    for uid in sorted(set(uids)):
        if runs and uid == runs[-1][1] + 1:
            runs[-1][1] = uid
        else:
            runs.append([uid, uid])
    return ",".join(str(a) if a == b else f"{a}:{b}" for a, b in runs)


def mailbox_arg(name: str) -> str:
    """A mailbox name as an IMAP quoted string, non-ASCII in modified UTF-7 (RFC 3501 5.1.3)."""
    out: list[str] = []
    wide: list[str] = []

    def flush() -> None:
        if wide:
            b64 = base64.b64encode("".join(wide).encode("utf-16-be")).decode().rstrip("=")
            out.append("&" + b64.replace("/", ",") + "-")
            wide.clear()

    for ch in name:
        if 0x20 <= ord(ch) <= 0x7E:
            flush()
            out.append("&-" if ch == "&" else ch)
        else:
            wide.append(ch)
    flush()
    return '"' + "".join(out).replace("\\", "\\\\").replace('"', '\\"') + '"'


# -- one connection ----------------------------------------------------------------------------


class ImapConnection:
    """One aioimaplib client, used for one session and then dropped (pitfall: not reusable)."""

    def __init__(self, account: ImapAccount, *, command_timeout: float, connect_timeout: float) -> None:
        self.account = account
        self.command_timeout = command_timeout
        self.connect_timeout = connect_timeout
        self.lost = asyncio.Event()
        self.client: aioimaplib.IMAP4 | None = None

    @property
    def capabilities(self) -> set[str]:
        assert self.client is not None
        return {c.upper() for c in self.client.protocol.capabilities}

    async def guard(self, aw: Awaitable[T], timeout: float | None = None) -> T:
        """Await one command; fail at once if the connection drops (pitfall: aioimaplib leaves
        the command waiting forever) and after ``timeout``."""
        task = asyncio.ensure_future(aw)
        lost = asyncio.ensure_future(self.lost.wait())
        try:
            done, _ = await asyncio.wait(
                {task, lost}, timeout=timeout or self.command_timeout,
                return_when=asyncio.FIRST_COMPLETED,
            )
        finally:
            for fut in (task, lost):
                if not fut.done():
                    fut.cancel()
        if task in done:
            return task.result()
        if lost in done:
            raise ImapSessionError("connection lost")
        raise ImapSessionError("command timed out")

    async def open(self) -> None:
        """Connect, greet, and STARTTLS when configured; not yet authenticated."""
        acct = self.account
        context = ssl.create_default_context() if acct.tls != "none" else None
        self.client = aioimaplib.IMAP4(
            host=acct.host, port=acct.port, timeout=self.command_timeout,
            conn_lost_cb=lambda _exc: self.lost.set(),
            ssl_context=context if acct.tls == "implicit" else None,
        )
        await self.guard(self.client.wait_hello_from_server(), self.connect_timeout)
        if acct.tls == "starttls":
            assert context is not None
            await self._starttls(context)

    async def login(self, password: str) -> None:
        """LOGIN (RFC 3501 6.2.3)."""
        assert self.client is not None
        if "LOGINDISABLED" in self.capabilities:
            raise ImapAuthError("server refuses LOGIN on this connection (LOGINDISABLED): use tls")
        response = await self.guard(self.client.login(self.account.username, password))
        if response.result != "OK" or self.client.get_state() != aioimaplib.AUTH:  # pitfall
            _refused(response, "LOGIN")
        await self.guard(self.client.protocol.capability())  # they may grow after login

    async def authenticate(self, exchange: SaslExchange) -> bool:
        """AUTHENTICATE (RFC 3501 6.2.2) driven by the sans-IO ``exchange``; True once
        authenticated, False when refused (``exchange.server_error`` and ``refusal`` say why).
        Pitfall:
        aioimaplib's own ``xoauth2`` never answers the server's error challenge (the command then
        hangs until its timeout) and logs the base64 token at debug level; here the client's
        lines go to the transport directly and the command carries only the mechanism name."""
        assert self.client is not None
        protocol = self.client.protocol
        if f"AUTH={exchange.mechanism}" not in self.capabilities:
            raise ImapAuthError(f"server does not offer AUTH={exchange.mechanism}")
        command = _AuthenticateCommand(protocol.new_tag(), exchange.mechanism, loop=protocol.loop)
        assert protocol.pending_sync_command is None  # nothing runs before authentication
        protocol.pending_sync_command = command
        protocol.transport.write(exchange.begin(command.tag, "SASL-IR" in self.capabilities))
        done = asyncio.ensure_future(command.wait())
        try:
            while not done.done():
                challenge = asyncio.ensure_future(command.challenges.get())
                try:
                    await self.guard(asyncio.wait({done, challenge}, return_when=asyncio.FIRST_COMPLETED))
                finally:
                    challenge.cancel()
                if challenge.done() and not challenge.cancelled():
                    if exchange.state is SaslState.CANCELLED:  # RFC 3501 6.2.2: BAD must follow "*"
                        raise ImapSessionError("server went on challenging after the client cancelled")
                    protocol.transport.write(exchange.on_continuation(challenge.result()))
        finally:
            done.cancel()
        return await self._authenticated(command.response, exchange)

    async def _authenticated(self, response: Any, exchange: SaslExchange) -> bool:
        """The tagged answer to AUTHENTICATE: True once in, False when refused (a fresh token
        may help); a cancelled exchange or a temporary refusal raise."""
        assert self.client is not None
        protocol = self.client.protocol
        if response.result == "OK":
            async with protocol.state_condition:
                protocol.state = aioimaplib.AUTH
                protocol.state_condition.notify_all()
            await self.guard(protocol.capability())
            return True
        if exchange.problem:
            raise ImapAuthError(f"AUTHENTICATE {exchange.mechanism} cancelled: {exchange.problem}")
        exchange.refusal = response_text(response)
        if "[UNAVAILABLE]" in exchange.refusal.upper():  # RFC 5530: temporary, not the token
            raise ImapSessionError(f"AUTHENTICATE {exchange.mechanism} unavailable: {exchange.refusal}")
        return False

    async def _starttls(self, context: ssl.SSLContext) -> None:
        """STARTTLS (RFC 3501 6.2.1), which aioimaplib 2.0 has no method for."""
        assert self.client is not None
        protocol = self.client.protocol
        if "STARTTLS" not in self.capabilities:
            raise ImapSessionError("server does not offer STARTTLS")
        command = aioimaplib.Command("STARTTLS", protocol.new_tag(), loop=protocol.loop)
        response = await self.guard(protocol.execute(command))
        if response.result != "OK":
            raise ImapSessionError(f"STARTTLS refused: {response_text(response)}")
        loop = asyncio.get_running_loop()
        protocol.transport = await self.guard(
            loop.start_tls(protocol.transport, protocol, context, server_hostname=self.account.host)
        )
        await self.guard(protocol.capability())  # capabilities from before TLS are void

    async def select(self, mailbox: str) -> int:
        """SELECT; returns UIDVALIDITY."""
        assert self.client is not None
        response = await self.guard(self.client.select(mailbox_arg(mailbox)))
        if response.result != "OK" or self.client.get_state() != aioimaplib.SELECTED:  # pitfall
            raise ImapSessionError(f"SELECT {mailbox} refused: {response_text(response)}")
        for line in response.lines:
            m = re.search(rb"\[UIDVALIDITY (\d+)\]", bytes(line))
            if m:
                return int(m.group(1))
        raise ImapSessionError(f"SELECT {mailbox}: no UIDVALIDITY in the answer")

    async def uids_after(self, last_uid: int) -> list[int]:
        assert self.client is not None
        response = await self.guard(self.client.uid_search("UID", f"{last_uid + 1}:*", charset=None))
        check_ok(response, "UID SEARCH")
        # "n:*" always matches the highest UID, even one below n (RFC 3501 6.4.8).
        return [uid for uid in parse_search(response.lines) if uid > last_uid]

    async def fetch(self, uids: Sequence[int]) -> dict[int, bytes]:
        assert self.client is not None
        response = await self.guard(self.client.uid("fetch", uid_set(uids), "(UID BODY.PEEK[])"))
        check_ok(response, "UID FETCH")
        return parse_fetch(response.lines)

    async def sizes(self, uids: Sequence[int]) -> dict[int, int]:
        assert self.client is not None
        response = await self.guard(self.client.uid("fetch", uid_set(uids), "(UID RFC822.SIZE)"))
        check_ok(response, "UID FETCH")
        return parse_sizes(response.lines)

    async def uid_command(self, command: str, *args: str) -> Any:
        assert self.client is not None
        return await self.guard(self.client.uid(command, *args))

    async def noop(self) -> None:
        assert self.client is not None
        check_ok(await self.guard(self.client.noop()), "NOOP")

    async def create(self, mailbox: str) -> None:
        assert self.client is not None
        await self.guard(self.client.create(mailbox_arg(mailbox)))

    async def idle(self, seconds: float, stop: asyncio.Event, on_idle: Callable[[], None]) -> bool:
        """IDLE until the server pushes something, ``seconds`` pass or ``stop`` is set; then
        DONE. ``on_idle`` is called once the server has said "+ idling". Returns True if the
        server pushed something."""
        assert self.client is not None
        client = self.client
        while not client.protocol.idle_queue.empty():  # stale pushes: we search anyway
            client.protocol.idle_queue.get_nowait()
        # Pitfall: idle_start waits forever if the server answers BYE instead of "+ idling".
        idle_task = await self.guard(client.idle_start(timeout=seconds))
        on_idle()
        push = asyncio.ensure_future(client.wait_server_push(timeout=seconds + 60))
        stopping = asyncio.ensure_future(stop.wait())
        lost = asyncio.ensure_future(self.lost.wait())
        try:
            done, _ = await asyncio.wait({push, stopping, lost, idle_task}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for fut in (push, stopping, lost):
                fut.cancel()
        if lost in done:
            raise ImapSessionError("connection lost in IDLE")
        if idle_task in done:  # the server ended IDLE by itself
            check_ok(idle_task.result(), "IDLE")
            return True
        lines = push.result() if push in done and push.exception() is None else []
        if any(bytes(line).startswith(b"BYE") for line in lines):
            raise ImapSessionError(f"server said {bytes(lines[0])!r} in IDLE")
        client.idle_done()
        check_ok(await self.guard(idle_task), "IDLE")
        return bool(lines) and lines != aioimaplib.STOP_WAIT_SERVER_PUSH

    async def close(self, *, logout: bool, timeout: float) -> None:
        """LOGOUT (bounded) if asked and the connection is still usable; drop the transport."""
        if self.client is None:
            return
        protocol = self.client.protocol
        usable = not self.lost.is_set() and self.client.get_state() in (aioimaplib.AUTH, aioimaplib.SELECTED)
        try:
            if logout and usable:
                await self.guard(self.client.logout(), timeout)
        except (ImapSessionError, aioimaplib.AioImapException, OSError):
            pass  # a goodbye is a courtesy
        finally:
            if protocol.transport is not None:
                protocol.transport.close()
            self.client._client_task.cancel()  # a connect still in progress


class _AuthenticateCommand(aioimaplib.Command):  # type: ignore[misc]
    """An AUTHENTICATE whose ``+`` lines are queued for the SASL exchange (aioimaplib hands a
    continuation to the pending command and calls ``flush``). Its repr, which aioimaplib puts
    in log lines and errors, carries only the mechanism name."""

    def __init__(self, tag: str, mechanism: str, *, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__("AUTHENTICATE", tag, mechanism, loop=loop)
        self.challenges: asyncio.Queue[bytes] = asyncio.Queue()
        self._pending: list[bytes] = []

    def append_to_resp(self, line: bytes, result: str = "Pending") -> None:
        if result == "Pending" and bytes(line).startswith(b"+"):
            self._pending.append(bytes(line))
        else:
            super().append_to_resp(line, result)

    def flush(self) -> None:
        for line in self._pending:
            self.challenges.put_nowait(line)
        self._pending.clear()


def _refused(response: Any, what: str) -> None:
    """A refused LOGIN or AUTHENTICATE: a temporary refusal (RFC 5530 [UNAVAILABLE]) is a
    session error, anything else an authentication error."""
    text = response_text(response)
    if "[UNAVAILABLE]" in text.upper():
        raise ImapSessionError(f"{what} unavailable: {text}")
    raise ImapAuthError(text or f"{what} refused")


def response_text(response: Any) -> str:
    return bytes(response.lines[-1]).decode("utf-8", "replace") if response.lines else ""


def check_ok(response: Any, what: str) -> None:
    if response.result != "OK":
        raise ImapSessionError(f"{what} refused: {response.result} {response_text(response)}")
