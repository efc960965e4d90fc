"""The Postfix listeners in-process: a Unix socket path, the connection cap, and the config."""

from __future__ import annotations

import asyncio
import os
import stat
import tempfile
from pathlib import Path

import pytest

from inbox_daemon.config import load_config
from inbox_daemon.errors import ConfigError
from inbox_daemon.lookup import BlocklistIndex
from inbox_daemon.lookup.mta_server import MtaServer, postfix_servers
from inbox_daemon.lookup.limits import ListenerPolicy
from inbox_daemon.lookup.postfix_policy import PolicySession, PolicySettings
from inbox_daemon.lookup.protocol import Counters
from inbox_daemon.lookup.socketmap import encode

RELAY = "jxxvbothd0wtflh@marketplace.amazon.com"
TIMEOUT = 10


def index() -> BlocklistIndex:
    built = BlocklistIndex()
    built.set_address(RELAY, 1_795_673_854, 3)
    return built


async def ask(path: str, data: bytes) -> bytes:
    reader, writer = await asyncio.open_unix_connection(path)
    writer.write(data)
    try:
        return await reader.read(4096)
    except ConnectionResetError:  # refused with our request unread
        return b""
    finally:
        writer.close()
        try:
            await writer.wait_closed()
        except ConnectionResetError:
            pass


def test_unix_sockets_and_the_connection_cap() -> None:
    async def main(directory: str) -> None:
        policy, socketmap = os.path.join(directory, "policy"), os.path.join(directory, "map")
        cfg = load_config(environ={"INBOX_DAEMON_POSTFIX_POLICY": policy, "INBOX_DAEMON_POSTFIX_SOCKETMAP": socketmap,
                                   "INBOX_DAEMON_POSTFIX_POLICY_ACTION": "hold",
                                   "INBOX_DAEMON_POSTFIX_MAX_CONNECTIONS": "1"}, path=os.devnull)
        servers = postfix_servers(cfg.postfix, index())
        for server in servers:
            await server.start()
        try:
            assert stat.S_IMODE(os.stat(policy).st_mode) == 0o660
            request = f"request=smtpd_access_policy\nprotocol_state=RCPT\nrecipient={RELAY}\n\n".encode()
            assert (await ask(policy, request)).startswith(f"action=HOLD <{RELAY}>: buyer opted out".encode())
            assert (await ask(socketmap, encode(f"blocklist {RELAY}"))).startswith(b"125:OK HOLD <")
            held = await asyncio.open_unix_connection(policy)
            held[1].write(request)
            assert (await held[0].read(4096)).startswith(b"action=HOLD")  # served: it holds the one slot
            assert await ask(policy, request) == b""  # over the cap: closed unanswered, Postfix defers
            held[1].close()
            await held[1].wait_closed()
            assert servers[0].counters.lookups == 2 and servers[1].counters.hits == 1
        finally:
            for server in servers:
                await server.stop()
        assert not os.path.exists(policy) and not os.path.exists(socketmap)

    with tempfile.TemporaryDirectory(prefix="mta-") as directory:  # short: sun_path is 108 bytes
        asyncio.run(asyncio.wait_for(main(directory), TIMEOUT))


@pytest.mark.parametrize("key, value, message", [
    ("POSTFIX_POLICY", "relative/path", "postfix.policy must be an absolute socket path or host:port"),
    ("POSTFIX_SOCKETMAP", "127.0.0.1:99999", "postfix.socketmap must be"),
    ("POSTFIX_POLICY_ACTION", "BOUNCE", "postfix.policy_action must be REJECT|DEFER|HOLD|DISCARD"),
    ("POSTFIX_EXEMPT_SENDERS", "orders.example", "postfix.exempt_senders must be addresses or @domain"),
    ("METRICS_LISTEN", "/run/metrics.sock", "metrics.listen must be host:port"),
])
def test_bad_settings_name_the_key(key: str, value: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(os.devnull, environ={f"INBOX_DAEMON_{key}": value})


def test_settings_from_toml(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[postfix]\npolicy = "127.0.0.1:10040"\nexempt_senders = ["orders@seller.example", "@ship.example"]\n'
                    '[metrics]\nlisten = "[::1]:9108"\n')
    cfg = load_config(path, environ={})
    assert cfg.postfix.policy == "127.0.0.1:10040" and cfg.postfix.socketmap == ""
    assert cfg.postfix.exempt_senders == ("orders@seller.example", "@ship.example")
    assert cfg.metrics.listen == "[::1]:9108" and cfg.postfix.policy_action == "REJECT"


def test_a_silent_connection_is_closed_after_the_idle_timeout() -> None:
    async def main(directory: str) -> None:
        path = os.path.join(directory, "policy")
        counters = Counters()
        server = MtaServer("policy", path, lambda: PolicySession(index(), PolicySettings(), counters),
                           counters=counters, policy=ListenerPolicy(256, 192, request_seconds=0.2, idle_seconds=0.2))
        await server.start()
        try:
            reader, writer = await asyncio.open_unix_connection(path)
            writer.write(b"request=smtpd_access_policy\n")  # half a block, then nothing
            assert await reader.read(4096) == b""  # closed by the server, with nothing to say
            writer.close()
            await writer.wait_closed()
        finally:
            await server.stop()

    with tempfile.TemporaryDirectory(prefix="mta-") as directory:
        asyncio.run(asyncio.wait_for(main(directory), TIMEOUT))
