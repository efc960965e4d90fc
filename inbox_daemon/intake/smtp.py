"""The SMTP listener: a thin aiosmtpd handler that persists, then answers.

It never parses or touches SQL itself: ``handle_DATA`` hands the bytes to ``Flow.accept``
and answers 250 only once they are committed (nothing acknowledged is ever lost), 451 when
the store cannot commit (the sending MTA retries, RFC 5321 4.2.5).
"""

from __future__ import annotations

import asyncio
import re
import socket
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from email._header_value_parser import get_addr_spec, get_angle_addr  # as aiosmtpd's _getaddr
from email.errors import HeaderParseError

from aiosmtpd.smtp import SMTP, Envelope, Session

from ..config import SmtpConfig
from ..errors import Busy, MessageRejected, StoreUnavailable
from ..keys import DOT_ATOM
from ..log import Throttled, get_logger
from ..processing.flow import Intake
from ..store import Delivery
from .smtp_data import DataBody, read_body
from .smuggling import BareLfWatch

__all__ = ["OptOutHandler", "SmtpListener"]

# A MAIL or RCPT path aiosmtpd's parser reads to what it holds: "<local@domain>" with dot-atoms
# of ASCII atext (RFC 5321 section 4.1.2, RFC 5322 section 3.2.3), then blanks, then the rest
# (the ESMTP parameters). ``get_angle_addr`` gives such an address as written and the rest after
# the blanks (a space or tab, then any whitespace: its folding-whitespace reader strips them
# all); a rest opening with "(" is a comment it reads, and every other path (quoted local
# parts, source routes, address literals, non-ASCII) is left to it. tests/intake/test_smtp.py
# holds the two to each other.
_PLAIN_PATH = re.compile(rf"[ \t]*+<({DOT_ATOM}@{DOT_ATOM})>(?:[ \t]\s*+)?+(.*+)", re.DOTALL)

# Replies, named (Mailman's lmtp runner habit). Enhanced codes from RFC 3463.
ERR_451 = "451 4.3.0 Requested action aborted: storage unavailable, try again later"
ERR_554_REFUSED = "554 5.6.0 Message refused: it cannot be stored ({})"
ERR_452_RCPTS = "452 4.5.3 Too many recipients"
# RFC 5321 4.1.2: a path holds printable characters only; RFC 3463 5.1.7 and 5.1.3 name the
# bad sender and bad recipient syntax. Bytes that are not UTF-8 reach us as surrogates.
ERR_501_SENDER = "501 5.1.7 Bad sender address syntax"
ERR_553_RCPT = "553 5.1.3 Bad destination mailbox address syntax"
ERR_550_RCPT = "550 5.1.1 <{}>: recipient not accepted here"
ERR_421_BUSY = b"421 4.7.0 Too many connections, try again later\r\n"
ERR_421_TIMEOUT = b"421 4.4.2 Idle timeout, closing connection\r\n"
ERR_421_TOO_LONG = b"421 4.4.2 Transaction took too long, closing connection\r\n"
# RFC 3463 4.3.2 "system not accepting network messages": the backlog or the byte budget is
# full; the MTA keeps the mail and tries again.
ERR_451_BUSY = "451 4.3.2 System busy, try again later"
ERR_421_BUSY_DATA = b"421 4.3.2 System busy, try again later; closing connection\r\n"
OK_250_RCPT = "250 2.1.5 OK"
# Per-session command limits (aiosmtpd answers 421 past them). An MTA reusing a connection
# sends MAIL/RCPT/DATA many times (Postfix's connection cache); anything else 100 at most.
CALL_LIMITS = {"*": 100, "MAIL": 10_000, "RCPT": 100_000, "DATA": 10_000, "RSET": 10_000}
OK_250_DATA = "250 2.0.0 OK: stored as {}"


class OptOutHandler:
    """aiosmtpd handler: accept the opt-out recipients, persist DATA, answer."""

    def __init__(self, flow: Intake, config: SmtpConfig) -> None:
        self._flow = flow
        self._recipients = frozenset(r.strip().lower() for r in config.recipients)
        self._max_rcpts = config.max_recipients
        self._log = get_logger(component="smtp")
        self._busy = Throttled(self._log, "smtp_busy")  # a client may retry at once, for ever
        self._deferred = Throttled(self._log, "smtp_deferred")
        self.in_flight = 0  # DATA transactions between receipt and their answer
        self.last_success = 0.0  # epoch seconds of the last 250 for DATA (the overview page shows it)

    def flush_warnings(self) -> None:
        """Write the throttled warnings' pending summaries (at stop)."""
        self._busy.flush()
        self._deferred.flush()

    async def handle_MAIL(self, server: SMTP, session: Session, envelope: Envelope, address: str,
                          mail_options: list[str]) -> str:
        if not _printable(address):
            return ERR_501_SENDER
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope, address: str,
                          rcpt_options: list[str]) -> str:
        if not _printable(address):
            return ERR_553_RCPT
        if self._recipients and not {address.lower(), _without_detail(address)} & self._recipients:
            return ERR_550_RCPT.format(address)  # never a relay
        if len(envelope.rcpt_tos) >= self._max_rcpts:
            return ERR_452_RCPTS
        envelope.rcpt_tos.append(address)
        return OK_250_RCPT

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        peer = _peer(session.peer)
        delivery = Delivery(raw=raw, source="smtp", envelope_from=envelope.mail_from,
                            envelope_to=tuple(envelope.rcpt_tos), peer=peer)
        self.in_flight += 1
        reserved = server.take_counted() if isinstance(server, _CappedSMTP) else 0
        try:
            saved = await self._flow.accept(delivery, reserved=reserved)
        except Busy as exc:
            self._busy(peer=peer, size=len(raw), reason=str(exc))
            return ERR_451_BUSY
        except StoreUnavailable as exc:
            self._deferred(peer=peer, size=len(raw), error=str(exc))
            return ERR_451
        except MessageRejected as exc:
            self._log.error("smtp_refused", peer=peer, size=len(raw), error=str(exc))
            return ERR_554_REFUSED.format(str(exc)[:80].replace("\r", " ").replace("\n", " "))
        except Exception as exc:  # never lose a message: an unknown failure is a temporary one
            self._log.error("smtp_accept_failed", peer=peer, size=len(raw), error=repr(exc))
            return ERR_451
        finally:
            self.in_flight -= 1
        self._log.debug("smtp_stored", peer=peer, sha256=saved.sha256, raw_id=saved.id,
                       duplicate=not saved.is_new, size=len(raw))
        self.last_success = time.time()
        return OK_250_DATA.format(saved.sha256[:16])


def _printable(address: str) -> bool:
    """No control characters (NUL included) and no undecodable bytes (surrogates)."""
    return not any(c < " " or c == "\x7f" or "\ud800" <= c <= "\udfff" for c in address)


def _declared_size(mail_options: list[str]) -> int:
    """The SIZE= a client gave with MAIL FROM (RFC 1870), 0 when none (aiosmtpd has checked it
    is a number no larger than the limit)."""
    for option in mail_options:
        name, _, value = option.partition("=")
        if name.upper() == "SIZE" and value.isdigit():
            return int(value)
    return 0


def _without_detail(address: str) -> str:
    """``optout+k3x9q2@sellers.example`` -> ``optout@sellers.example``: a per-seller address
    (RFC 5233 subaddress) is accepted wherever its base address is."""
    local, at, domain = address.strip().lower().rpartition("@")
    return f"{local.partition('+')[0]}{at}{domain}" if at else address.lower()


def _peer(peer: Any) -> str | None:
    if isinstance(peer, tuple) and len(peer) >= 2:
        return f"{peer[0]}:{peer[1]}"
    return str(peer) if peer else None


class _CappedSMTP(SMTP):
    """aiosmtpd's SMTP with a cap on concurrent connections (421 past it, RFC 5321 3.8)."""

    def __init__(self, listener: SmtpListener, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._listener = listener
        self._refused = False
        self._transaction_started: float | None = None  # MAIL seen, DATA not finished
        self._receiving = False  # between 354 and the end of DATA
        self._counted = 0  # bytes of this DATA counted in the flow's budget
        self._received = 0  # bytes of this DATA received so far
        self._in_data = False  # between 354 and the reply to the content: smuggling watch
        self._data_tail = b""
        self._data_flagged = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if len(self._listener.connections) >= self._listener.config.max_connections:
            self._refused = True
            transport.write(ERR_421_BUSY)  # type: ignore[attr-defined]
            transport.close()
            return
        self._listener.connections.add(self)
        super().connection_made(transport)

    async def push(self, status: str) -> None:  # type: ignore[override]
        self._listener.replies[str(status)[:3]] += 1  # SMTP replies by code, for the metrics
        if self._listener.on_reply is not None:
            self._listener.on_reply()
        self._in_data, self._data_tail, self._data_flagged = str(status).startswith("354"), b"", False
        await super().push(status)

    def connection_lost(self, error: Exception | None) -> None:
        if self._refused:
            return
        self._listener.flow.release(self.take_counted())
        self._listener.connections.discard(self)
        super().connection_lost(error)

    def _timeout_cb(self) -> None:
        # RFC 5321 4.5.3.2: say why before closing an idle session (aiosmtpd just closes).
        if self.transport is not None:
            self.transport.write(ERR_421_TIMEOUT)  # type: ignore[attr-defined]
        super()._timeout_cb()  # type: ignore[no-untyped-call]

    def data_received(self, data: bytes) -> None:
        """Idle means no bytes: any byte restarts the idle timer (aiosmtpd restarts it per
        command only, which cuts off a slow DATA). A transaction has its own total limit."""
        if self.transport is None or self.transport.is_closing():
            return
        started = self._transaction_started
        if started is not None and self.loop.time() - started > self._listener.config.transaction_seconds:
            self.transport.write(ERR_421_TOO_LONG)  # type: ignore[attr-defined]
            self.transport.close()
            return
        self._reset_timeout()
        if self._receiving:
            self._received += len(data)
            beyond = self._received - self._counted  # past what was reserved at DATA (SIZE)
            if beyond > 0 and not self._count(beyond):  # the budget is spent: stop taking bytes
                self.transport.write(ERR_421_BUSY_DATA)  # type: ignore[attr-defined]
                self.transport.close()
                return
        if self._in_data and not self._data_flagged:
            self._watch_bare_lf(data)
        super().data_received(data)

    def _watch_bare_lf(self, data: bytes) -> None:
        """Log a bare-LF end-of-data variant once per message (SMTP smuggling: the MTA in front
        might have split there)."""
        variant = BareLfWatch.find(self._data_tail, data)
        if variant is not None:
            self._data_flagged = True
            self._listener.bare_lf.saw(variant, _peer(self.session.peer if self.session else None))
        self._data_tail = BareLfWatch.tail(data, self._data_tail)

    def _count(self, size: int) -> bool:
        self._counted += size
        return self._listener.flow.reserve(size)

    def take_counted(self) -> int:
        """The bytes of the DATA just received, counted in the budget: the flow owns them now."""
        counted, self._counted, self._received, self._receiving = self._counted, 0, 0, False
        return counted

    def _getaddr(self, arg: str) -> tuple[str | None, str | None]:
        """aiosmtpd's own parsing of a MAIL or RCPT path (its ``_getaddr``), without the
        typing-only Protocol class it defines on every call: class creation was 8% of the SMTP
        process's CPU under bench/ingest.py. A plain path (``_PLAIN_PATH``) is read by one
        regex: the header parser's tokens were another 12%."""
        if not arg:
            return "", ""
        plain = _PLAIN_PATH.fullmatch(arg)
        if plain is not None and not plain.group(2).startswith("("):
            addr, rest = plain.group(1), plain.group(2)
        else:
            try:
                if arg.lstrip().startswith("<"):
                    angle, rest = get_angle_addr(arg)
                    addr = angle.addr_spec
                else:
                    spec, rest = get_addr_spec(arg)
                    addr = spec.addr_spec
            except HeaderParseError:
                return None, None
        if self.local_part_limit and len(addr.rpartition("@")[0]) > self.local_part_limit:
            return None, None
        return addr, rest

    async def smtp_MAIL(self, arg: str) -> None:
        self._transaction_started = self.loop.time()
        await super().smtp_MAIL(arg)

    async def smtp_DATA(self, arg: str) -> None:
        """aiosmtpd's DATA with the content read in chunks into one buffer (``read_body``)."""
        if await self.check_helo_needed() or await self.check_auth_needed("DATA"):
            return
        if self.envelope is None or not self.envelope.rcpt_tos:
            await self.push("503 Error: need RCPT command")
            return
        if arg:
            await self.push("501 Syntax: DATA")
            return
        # RFC 1870: a client that declared the size (Postfix and smtplib always do when SIZE is
        # advertised) has it reserved before 354, so a full budget is a 451 before any byte is
        # sent, never a transfer cut off half way.
        declared = _declared_size(self.envelope.mail_options)
        if self._listener.flow.busy(declared) is not None:  # before 354: the MTA holds the message
            self._transaction_started = None
            await self.push(ERR_451_BUSY)
            return
        self._receiving = True
        self._count(declared)
        body = DataBody(self.data_size_limit, self.line_length_limit)
        try:
            await self.push("354 End data with <CR><LF>.<CR><LF>")
            await read_body(self._reader, body)
            if body.refusal is None:
                content = body.finish()
            if body.refusal is not None:
                self._set_post_data_state()  # type: ignore[no-untyped-call]
                await self.push(body.refusal.value)
                return
            self.envelope.content = self.envelope.original_content = content
            status = await self._call_handler_hook("DATA")
            self._set_post_data_state()  # type: ignore[no-untyped-call]
            await self.push(status)
        finally:
            body.close()  # at once, even when a lost connection cancelled the read
            self._transaction_started = None
            self._listener.flow.release(self.take_counted())  # what the handler did not take

    async def smtp_RSET(self, arg: str) -> None:
        self._transaction_started = None
        await super().smtp_RSET(arg)

    def eof_received(self) -> bool | None:
        if self._refused:
            return False
        return super().eof_received()


class SmtpListener:
    """Binds the SMTP port on the daemon's own loop; start()/stop() like every component."""

    def __init__(self, flow: Intake, config: SmtpConfig, hostname: str = "inbox-daemon",
                 sock: socket.socket | None = None) -> None:
        self.config = config
        self.flow = flow
        self._sock = sock  # bound already (systemd socket activation): served instead of host:port
        self.handler = OptOutHandler(flow, config)
        self.connections: set[_CappedSMTP] = set()
        self.replies: Counter[str] = Counter()  # by reply code
        self.on_reply: Callable[[], None] | None = None  # told after each reply is counted
        self.bare_lf = BareLfWatch(get_logger(component="smtp"))
        self._hostname = hostname  # given, so aiosmtpd does not call getfqdn() (slow without DNS)
        self._server: asyncio.Server | None = None

    def _factory(self) -> _CappedSMTP:
        return _CappedSMTP(
            self, self.handler, data_size_limit=self.config.max_message_bytes, hostname=self._hostname,
            ident="inbox-daemon", timeout=self.config.timeout_seconds, command_call_limit=CALL_LIMITS,
            loop=asyncio.get_running_loop(),
        )

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        if self._sock is not None:
            self._server = await loop.create_server(self._factory, sock=self._sock)
        else:
            self._server = await loop.create_server(self._factory, self.config.host, self.config.port)

    @property
    def last_success(self) -> float:
        """Epoch seconds of the last 250 for DATA (0: none yet)."""
        return self.handler.last_success

    @property
    def address(self) -> tuple[str, int]:
        assert self._server is not None
        host, port = self._server.sockets[0].getsockname()[:2]
        return host, port

    async def stop(self, timeout: float = 10.0) -> None:
        """Stop accepting, let DATA transactions in flight get their answer, then close."""
        if self._server is None:
            return
        self._server.close()
        deadline = asyncio.get_running_loop().time() + timeout
        while self.handler.in_flight and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.01)
        for conn in list(self.connections):
            if conn.transport is not None:
                conn.transport.close()
        await self._server.wait_closed()
        self._server = None
        self.handler.flush_warnings()
        self.bare_lf.flush()
