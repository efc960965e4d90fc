"""AUTHENTICATE over aioimaplib against a scripted hostile server on loopback: whatever it sends
mid-exchange (garbage challenges, one challenge too many, NUL bytes, silence, a dropped
connection), the client answers as RFC 3501 6.2.2 says, sends the token once, and ends with an
error naming the cause — never a hang, never the token in the message."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import pytest

from inbox_daemon.config import ImapAccount
from inbox_daemon.intake.imap_auth import sign_in_for
from inbox_daemon.intake.imap_client import ImapAuthError, ImapConnection, ImapSessionError
from inbox_daemon.intake.sasl import SaslExchange, initial_response
from tests.support.oauth_issuer import Issuer

TOKEN = "at-9fQz2LmX7pKw"
GREETING = b"* OK [CAPABILITY IMAP4rev1 SASL-IR AUTH=XOAUTH2 AUTH=OAUTHBEARER] ready\r\n"
CAPS = b"* CAPABILITY IMAP4rev1 SASL-IR AUTH=XOAUTH2 AUTH=OAUTHBEARER\r\n"

last_exchange: list[SaslExchange] = []  # the exchange of the latest run, for its refusal text
received: list[bytes] = []  # what the client sent in the latest run
T = TypeVar("T")
Script = Callable[[asyncio.StreamReader, asyncio.StreamWriter, bytes, list[bytes]], Awaitable[None]]


def error_challenge(status: str = "401") -> bytes:
    return b"+ " + base64.b64encode(json.dumps({"status": status, "schemes": "bearer"}).encode()) + b"\r\n"


async def serving(script: Script, client: Callable[[int], Awaitable[T]]) -> T:
    """A scripted IMAP server on a loopback port while ``client(port)`` runs."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(GREETING)
        try:
            while line := await reader.readline():
                received.append(line)
                tag = line.split(b" ", 1)[0]
                if b" CAPABILITY" in line:
                    writer.write(CAPS + tag + b" OK done\r\n")
                elif b" AUTHENTICATE " in line:
                    await script(reader, writer, tag, received)
                elif b" LOGOUT" in line:
                    writer.write(b"* BYE\r\n" + tag + b" OK bye\r\n")
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    received.clear()
    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    try:
        return await client(server.sockets[0].getsockname()[1])
    finally:
        server.close()
        await server.wait_closed()


async def exchange(script: Script, mechanism: str = "XOAUTH2") -> tuple[BaseException | bool, list[bytes]]:
    """Run one AUTHENTICATE against ``script``; what the client ended with and what it sent."""

    async def client(port: int) -> BaseException | bool:
        acct = ImapAccount(name="t", host="127.0.0.1", port=port, tls="none", username="u@x", auth=mechanism.lower())
        conn = ImapConnection(acct, command_timeout=2.0, connect_timeout=5.0)
        try:
            await conn.open()
            last_exchange[:] = [SaslExchange(mechanism, initial_response(mechanism, "u@x", TOKEN))]
            try:
                return await conn.authenticate(last_exchange[0])
            except (ImapAuthError, ImapSessionError) as exc:
                return exc
        finally:
            await conn.close(logout=False, timeout=1.0)

    result = await serving(script, client)
    return result, list(received)


def token_sends(received: list[bytes]) -> int:
    b64 = base64.b64encode(initial_response("XOAUTH2", "u@x", TOKEN))[:20]
    return sum(1 for line in received if b64 in line)


def run(script: Script, mechanism: str = "XOAUTH2") -> tuple[BaseException | bool, list[bytes]]:
    return asyncio.run(asyncio.wait_for(exchange(script, mechanism), 20))


def test_success_and_the_error_challenge_acknowledged() -> None:
    async def ok(_r: asyncio.StreamReader, w: asyncio.StreamWriter, tag: bytes, _rx: list[bytes]) -> None:
        w.write(tag + b" OK [CAPABILITY IMAP4rev1 IDLE] logged in\r\n")

    result, received = run(ok)
    assert result is True and token_sends(received) == 1

    async def refuse(r: asyncio.StreamReader, w: asyncio.StreamWriter, tag: bytes, _rx: list[bytes]) -> None:
        w.write(error_challenge())
        await w.drain()
        ack = await r.readline()
        _rx.append(ack)
        w.write(tag + (b" NO [AUTHENTICATIONFAILED] bad token\r\n" if ack == b"\r\n" else b" BAD wrong ack\r\n"))

    result, received = run(refuse)
    assert result is False  # refused with the server's error: the caller may try a fresh token
    assert received[-1] == b"\r\n" and token_sends(received) == 1


@pytest.mark.parametrize("challenge", [
    b"+ bm90IGpzb24=\r\n",  # "not json"
    b"+ \x00\xff\xfe\r\n",
    b"+ " + b"A" * 20000 + b"\r\n",
])
def test_a_challenge_that_is_no_oauth_error_is_cancelled(challenge: bytes) -> None:
    async def script(r: asyncio.StreamReader, w: asyncio.StreamWriter, tag: bytes, rx: list[bytes]) -> None:
        w.write(challenge)
        await w.drain()
        answer = await r.readline()
        rx.append(answer)
        w.write(tag + (b" BAD cancelled\r\n" if answer == b"*\r\n" else b" NO what\r\n"))

    result, received = run(script, "OAUTHBEARER")
    assert isinstance(result, ImapAuthError) and "cancelled" in str(result)
    assert received[-1] == b"*\r\n"
    assert TOKEN not in str(result)


def test_a_server_that_challenges_on_after_the_cancel_is_dropped() -> None:
    async def script(r: asyncio.StreamReader, w: asyncio.StreamWriter, _tag: bytes, rx: list[bytes]) -> None:
        for _ in range(50):
            w.write(b"+ garbage\r\n")
            await w.drain()

    result, received = run(script)
    assert isinstance(result, ImapSessionError) and "after the client cancelled" in str(result)
    assert received.count(b"*\r\n") == 1


def test_a_second_challenge_after_the_error_is_cancelled_and_the_token_not_sent_again() -> None:
    async def script(r: asyncio.StreamReader, w: asyncio.StreamWriter, tag: bytes, rx: list[bytes]) -> None:
        w.write(error_challenge())
        await w.drain()
        rx.append(await r.readline())
        w.write(error_challenge())
        await w.drain()
        rx.append(await r.readline())
        w.write(tag + b" BAD cancelled\r\n")

    result, received = run(script)
    assert isinstance(result, ImapAuthError) and "out of turn" in str(result)
    assert received[-2:] == [b"\r\n", b"*\r\n"] and token_sends(received) == 1


def test_a_server_that_goes_silent_or_away_mid_exchange_ends_it() -> None:
    async def silent(r: asyncio.StreamReader, w: asyncio.StreamWriter, _tag: bytes, rx: list[bytes]) -> None:
        w.write(error_challenge())
        await w.drain()
        rx.append(await r.readline())  # then nothing: no tagged reply

    result, _ = run(silent)
    assert isinstance(result, ImapSessionError) and "timed out" in str(result)

    async def gone(_r: asyncio.StreamReader, w: asyncio.StreamWriter, _tag: bytes, _rx: list[bytes]) -> None:
        w.transport.abort()

    result, _ = run(gone)
    assert isinstance(result, ImapSessionError) and "connection lost" in str(result)


def test_a_refusal_without_challenge_keeps_the_servers_text() -> None:
    """Exchange Online refuses a bad token with a plain NO, no error challenge."""
    async def script(_r: asyncio.StreamReader, w: asyncio.StreamWriter, tag: bytes, _rx: list[bytes]) -> None:
        w.write(tag + b" NO [AUTHENTICATIONFAILED] \x00\xff nope\r\n")

    result, _ = run(script)
    assert result is False
    assert "AUTHENTICATIONFAILED" in last_exchange[0].refusal and "nope" in last_exchange[0].refusal

    async def unavailable(_r: asyncio.StreamReader, w: asyncio.StreamWriter, tag: bytes, _rx: list[bytes]) -> None:
        w.write(tag + b" NO [UNAVAILABLE] try later\r\n")

    result, _ = run(unavailable)  # RFC 5530: not the token's fault; a session error, retried soon
    assert isinstance(result, ImapSessionError) and not isinstance(result, ImapAuthError)


def test_a_plain_refusal_gets_one_fresh_token_on_the_same_connection(tmp_path: Path) -> None:
    """As Exchange Online does: NO without a challenge. The sign-in asks the token endpoint for
    a fresh token once and signs in with it; the first token is not sent again."""
    issuer = Issuer()
    issuer.register("cid", "csecret")
    (tmp_path / "secret").write_text("csecret")
    tokens_seen: list[bytes] = []

    async def script(_r: asyncio.StreamReader, w: asyncio.StreamWriter, tag: bytes, rx: list[bytes]) -> None:
        tokens_seen.append(rx[-1].split()[-1])
        w.write(tag + (b" NO AUTHENTICATE failed.\r\n" if len(tokens_seen) == 1 else b" OK in\r\n"))

    async def main(port: int) -> None:
        acct = ImapAccount(name="t", host="127.0.0.1", port=port, tls="none", username="u@x", auth="xoauth2",
                           client_id="cid", client_secret_file=str(tmp_path / "secret"),
                           token_file=str(tmp_path / "rt"), token_url=f"{issuer.url}/token")
        (tmp_path / "rt").write_text(issuer.refresh_token_for("u@x", "cid"))
        conn = ImapConnection(acct, command_timeout=5.0, connect_timeout=5.0)
        try:
            await conn.open()
            await sign_in_for(acct)(conn)
        finally:
            await conn.close(logout=False, timeout=1.0)

    with issuer.running():
        asyncio.run(asyncio.wait_for(serving(script, main), 20))
    assert len(tokens_seen) == 2 and tokens_seen[0] != tokens_seen[1]
    assert issuer.grants == ["refresh_token", "refresh_token"]
