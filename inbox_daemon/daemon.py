"""Starts the parts in dependency order, says READY=1, waits for a stop signal, stops in reverse.

store -> index (loaded, then followed) -> processing (recovers pending mail) -> query socket ->
SMTP -> IMAP pollers. A signal handler only sets an Event; a second SIGINT forces exit
(uvicorn's ``handle_exit`` habit).
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import time
from pathlib import Path
from typing import Any

from .config import Config, query_tcp_address
from .log import get_logger
from .lookup import QueryServer
from .lookup.follow import AddressLearner, IndexFollower, load_index
from .lookup.mta_server import postfix_servers
from .metrics import DaemonCollector, MetricsServer
from .intake.smtp import SmtpListener
from .processing import build_flow
from .store import Store
from .store.migrate import upgrade

__all__ = ["Daemon", "open_store", "notify"]


def notify(state: str) -> None:
    """sd_notify without a dependency: a datagram to $NOTIFY_SOCKET; a no-op without it."""
    path = os.environ.get("NOTIFY_SOCKET")
    if not path:
        return
    addr = "\0" + path[1:] if path.startswith("@") else path
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.connect(addr)
        sock.sendall(state.encode())


async def open_store(config: Config, *, migrate: bool = False) -> Store:
    """Open the configured database; upgrade an embedded SQLite first when allowed."""
    if config.is_embedded_sqlite and not config.database.url:
        Path(config.state_dir).mkdir(parents=True, exist_ok=True)
    if migrate:
        await asyncio.to_thread(upgrade, config.database_url)
    return await Store.open(config.database_url)


class Daemon:
    """The running service: its parts and their order."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.log = get_logger(component="daemon")
        self.started = time.monotonic()
        self.stop_event = asyncio.Event()
        self._parts: list[Any] = []  # started parts, stopped in reverse
        self._signals = 0

    async def start(self) -> None:
        cfg = self.config
        self.store = await open_store(cfg, migrate=cfg.is_embedded_sqlite and cfg.database.auto_upgrade)
        await self.store.ping()
        self._parts.append(self.store)
        cursor = await self.store.change_cursor()  # taken before the load: nothing slips by
        self.index = await load_index(self.store)
        self.log.info("index_loaded", entries=len(self.index), memory_bytes=self.index.memory_bytes())
        self.follower = IndexFollower(self.store, self.index, cursor, cfg.query.sync_seconds)
        self.flow = build_flow(cfg, self.store, self.index.apply, recover=True)
        self.learner = AddressLearner(self.store, self.index)
        self.query = QueryServer(
            self.index, unix_path=cfg.query_socket, tcp=query_tcp_address(cfg),
            on_address_learned=self.learner.submit, stats=self.stats,
            max_connections=cfg.query.max_connections, idle_timeout=cfg.query.idle_seconds,
            max_connections_per_peer=cfg.query.max_connections_per_peer, request_timeout=cfg.query.request_seconds,
            reserved_descriptors=cfg.smtp.max_connections + 128,
        )
        for part in (self.follower, self.flow, self.learner, self.query):
            await part.start()
            self._parts.append(part)
        self.mta = postfix_servers(cfg.postfix, self.index)  # Postfix's policy service and socketmap
        for mta in self.mta:
            await mta.start()
            self._parts.append(mta)
        if cfg.smtp.enabled:
            self.smtp = SmtpListener(self.flow, cfg.smtp)
            await self.smtp.start()
            self._parts.append(self.smtp)
        await self._start_imap()
        if cfg.metrics.listen:  # last: stopped first, and every part it reads exists
            self.metrics = MetricsServer(cfg.metrics.listen, DaemonCollector(self))
            await self.metrics.start()
            self._parts.append(self.metrics)
        self._announce()

    async def _start_imap(self) -> None:
        if not self.config.imap.accounts:
            return
        from .intake.imap import ImapPoller  # imported only when configured

        for account in self.config.imap.accounts:
            poller = ImapPoller(account, self.flow, self.store, logger=get_logger(component="imap", account=account.name))
            await poller.start()
            self._parts.append(poller)

    def _announce(self) -> None:
        cfg = self.config
        smtp = "{}:{}".format(*self.smtp.address) if cfg.smtp.enabled else "off"
        bound = self.query.tcp_address
        tcp = f"{bound[0]}:{bound[1]}" if bound else "off"
        self.log.info(
            "ready", config=cfg.source, database=_safe_url(cfg.database_url), smtp=smtp,
            query_socket=cfg.query_socket, query_tcp=tcp, imap_accounts=len(cfg.imap.accounts), pid=os.getpid(),
        )
        notify("READY=1")

    async def stop(self) -> None:
        notify("STOPPING=1")
        self.log.info("stopping")
        # SMTP first so no new mail arrives, then processing drains; reverse start order throughout.
        for part in reversed(self._parts):
            try:
                stop = part.close if isinstance(part, Store) else part.stop
                await asyncio.wait_for(stop(), 30)
            except Exception as exc:
                self.log.error("stop_failed", part=type(part).__name__, error=repr(exc))
        self.log.info("stopped")

    def stats(self) -> dict[str, Any]:
        counters = self.flow.counters
        return {
            "notices": counters.get("opt_out", 0),
            "messages": counters.get("accepted", 0),
            "duplicates": counters.get("duplicates", 0),
            "not_opt_out": counters.get("not_opt_out", 0),
            "malformed": counters.get("malformed", 0),
            "errors": counters.get("error", 0),
            "quarantined": counters.get("quarantined", 0),
            "followed_changes": self.follower.applied,
        }

    def _on_signal(self, signum: int) -> None:
        self._signals += 1
        if self._signals > 1 and signum == signal.SIGINT:
            self.log.warning("forced_exit")
            os._exit(130)
        self.stop_event.set()

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._on_signal, sig)
        try:
            await self.start()
        except BaseException:
            await self.stop()
            raise
        await self.stop_event.wait()
        await self.stop()
        return 0


def _safe_url(url: str) -> str:
    """The database URL without its password: logs must never carry a secret."""
    scheme, sep, rest = url.partition("://")
    if "@" in rest:
        creds, _, host = rest.rpartition("@")
        rest = creds.split(":", 1)[0] + ":***@" + host if ":" in creds else rest
    return scheme + sep + rest
