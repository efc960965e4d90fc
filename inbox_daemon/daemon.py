"""Starts the parts in dependency order, says READY=1, waits for a stop signal, stops in reverse.

store -> index (loaded, then followed) -> processing (recovers pending mail) -> query socket ->
SMTP -> IMAP pollers. A signal handler only sets an Event; a second SIGINT forces exit
(uvicorn's ``handle_exit`` habit).
"""

from __future__ import annotations

import asyncio
import hmac
import os
import signal
import socket
import time
from typing import Any

from . import systemd
from .config import Config, load_config, query_tcp_address
from .errors import ConfigError
from .log import get_logger, set_level
from .lookup import BlocklistIndex, QueryServer
from .lookup.follow import AddressLearner, IndexFollower, load_index
from .lookup.mta_server import postfix_servers
from .metrics import DaemonCollector, MetricsServer
from .intake.smtp import SmtpListener
from .privacy import KeyRing, load_keyring
from .processing import build_flow
from .processing.admission import gatekeeper
from .reload import plan_reload
from .store import Store
from .state import secure_state
from .store.migrate import upgrade
from .systemd import notify

__all__ = ["Daemon", "open_store"]

DIED_STOP_S = 1.5  # a task died: stop within this, so the process exits within 2 s


async def open_store(config: Config, *, migrate: bool = False) -> Store:
    """Open the configured database with its privacy key (``bind_keyring``); upgrade an
    embedded SQLite first when allowed, after the key is found to match: a refused start
    writes nothing."""
    secure_state(config)  # the state directory and database file with their modes
    store = await Store.open(config.database_url)
    try:
        stored = await store.key_check()
        keyring = _keyring(config, stored)
        if migrate:
            await asyncio.to_thread(upgrade, config.database_url, keyring=keyring)
        if stored is None:
            recorded = await store.record_key_check(keyring.check_value())
            if recorded is not None:  # another process's first start may have recorded its key
                _match(config, keyring, recorded)
    except BaseException:
        await store.close()
        raise
    store.keyring = keyring
    return store


def _keyring(config: Config, stored: str | None) -> KeyRing:
    """The key file; created (0600) only for a database that has no check value yet, so a
    database written with a key is never given a new one. ConfigError when it does not match."""
    path = config.privacy_key_file
    try:
        keyring = load_keyring(path, create=stored is None)
    except ConfigError as error:
        if stored is not None and not path.exists():
            raise ConfigError(f"{error}, and the database was written with a privacy key: restore that key file "
                              "(docs/privacy.md); refusing to start") from None
        raise
    if stored is not None:
        _match(config, keyring, stored)
    return keyring


def _match(config: Config, keyring: KeyRing, stored: str) -> None:
    if not hmac.compare_digest(keyring.check_value(), stored):
        raise ConfigError(f"privacy key file {config.privacy_key_file} is not the key this database was written "
                          "with (its check value differs); start with that key file (docs/privacy.md); refusing to start")


class Daemon:
    """The running service: its parts and their order."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.log = get_logger(component="daemon")
        self.started = time.monotonic()
        self.stop_event = asyncio.Event()
        self._parts: list[Any] = []  # started parts, stopped in reverse
        self._signals = 0
        self.listening = systemd.listen_fds()  # sockets passed by systemd, by FileDescriptorName
        self._reloads: set[asyncio.Task[None]] = set()
        self._serving = False  # a reload before start-up has finished waits for nothing: ignored

    async def start(self) -> None:
        cfg = self.config
        self.store = await open_store(cfg, migrate=cfg.is_embedded_sqlite and cfg.database.auto_upgrade)
        await self.store.ping()
        self._parts.append(self.store)
        cursor = await self.store.change_cursor()  # taken before the load: nothing slips by
        self.index = await self._load_index()
        self.follower = IndexFollower(self.store, self.index, cursor, cfg.query.sync_seconds)
        self.flow = build_flow(cfg, self.store, self.index.apply, recover=True)
        self.learner = AddressLearner(self.store, self.index, cfg.security.relay_domains, keyring=self.store.keyring)
        self.query = QueryServer(
            self.index, **self._query_listeners(),
            on_address_learned=self.learner.submit if cfg.query.learn_addresses else None, stats=self.stats,
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
            self.smtp = SmtpListener(self.flow, cfg.smtp, sock=self._inherited("smtp"))
            await self.smtp.start()
            self._parts.append(self.smtp)
        await self._start_imap()
        secure_state(cfg)  # now the WAL/SHM files and the query socket exist too
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
            query_socket=self._query_socket_name(), query_tcp=tcp, socket_activated=sorted(self.listening),
            imap_accounts=len(cfg.imap.accounts), pid=os.getpid(),
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
        loop.add_signal_handler(signal.SIGHUP, self._on_reload)
        try:
            await self.start()
            await self._start_heartbeat()
        except BaseException:
            await self.stop()
            raise
        code = await self._supervise()
        if code:  # systemd restarts us and recovery takes up what is pending; no long drain
            try:
                await asyncio.wait_for(self.stop(), DIED_STOP_S)
            except TimeoutError:
                self.log.error("stop_timeout_after_task_died")
        else:
            await self.stop()
        return code

    async def _supervise(self) -> int:
        """Wait for a stop signal or for a long-lived task to end: that is never expected,
        and a daemon that answers PING but takes no mail is worse than one that restarts."""
        stopping = asyncio.create_task(self.stop_event.wait())
        watched = {t for part in self._parts for t in getattr(part, "tasks", ())}
        done, _ = await asyncio.wait({stopping, *watched}, return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        died = [t for t in done if t is not stopping]
        for task in died:
            error = None if task.cancelled() else task.exception()
            self.log.error("task_died", task=task.get_name(), error=repr(error) if error else "cancelled",
                           exc_info=error)
        return 1 if died else 0

    # -- systemd: socket activation, start-up timeout, watchdog and status, reload ----------------

    def _inherited(self, name: str) -> socket.socket | None:
        """The one socket systemd passed under ``name``; None to bind from the config."""
        found = self.listening.get(name, [])
        if len(found) > 1:
            raise ConfigError(f"systemd passed {len(found)} sockets named {name!r}; give it one ListenStream=")
        return found[0] if found else None

    def _query_listeners(self) -> dict[str, Any]:
        """Sockets passed as ``query`` replace query.socket and query.tcp: the .socket unit owns them."""
        if "query" in self.listening:
            return {"unix_path": None, "tcp": None, "sockets": self.listening["query"]}
        return {"unix_path": self.config.query_socket, "tcp": query_tcp_address(self.config)}

    def _query_socket_name(self) -> str:
        """The Unix query socket's path: the one systemd passed, else the configured one."""
        if "query" not in self.listening:
            return self.config.query_socket
        unix = [s for s in self.listening["query"] if s.family == socket.AF_UNIX]
        return str(unix[0].getsockname()) if unix else "off"

    async def _load_index(self) -> BlocklistIndex:
        """Load the index, asking systemd for more start-up time while it runs (millions of entries
        take minutes; the loop keeps asking only while it turns)."""
        async with systemd.extend_start_timeout():
            index = await load_index(self.store)
        self.log.info("index_loaded", entries=len(index), memory_bytes=index.memory_bytes())
        return index

    async def _start_heartbeat(self) -> None:
        heartbeat = systemd.Heartbeat(self.status_line)
        await heartbeat.start()
        self._parts.append(heartbeat)
        self._serving = True

    def status_line(self) -> str:
        """Live counts for ``systemctl status`` (STATUS=)."""
        s = self.stats()
        return (f"{len(self.index)} blocked keys; {s['messages']} messages: {s['notices']} opt-outs, "
                f"{s['quarantined']} held, {s['errors']} errors; {self.query.connections} query connections")

    def _on_reload(self) -> None:
        if not self._serving:
            self.log.warning("reload_ignored", reason="still starting")
            return
        task = asyncio.get_running_loop().create_task(self.reload())
        self._reloads.add(task)
        task.add_done_callback(self._reloads.discard)

    async def reload(self) -> None:
        """Re-read the config file (SIGHUP) and apply what can change without dropping a
        connection (inbox_daemon/reload.py); a bad file is logged and changes nothing."""
        async with systemd.reloading():
            try:
                new = load_config(None if self.config.source == "embedded defaults" else self.config.source)
            except ConfigError as exc:
                self.log.error("reload_failed", config=self.config.source, error=str(exc))
                return
            plan = plan_reload(self.config, new)
            self.config = plan.config
            set_level(plan.config.log.level)
            self.flow.processor.use_gate(gatekeeper(plan.config.security))
            self.learner.use_relay_domains(plan.config.security.relay_domains)
            secure_state(plan.config)  # security.group may have changed
            self.log.info("config_reloaded", config=self.config.source, applied=list(plan.applied),
                          ignored_until_restart=list(plan.ignored))


def _safe_url(url: str) -> str:
    """The database URL without its password: logs must never carry a secret."""
    scheme, sep, rest = url.partition("://")
    if "@" in rest:
        creds, _, host = rest.rpartition("@")
        rest = creds.split(":", 1)[0] + ":***@" + host if ":" in creds else rest
    return scheme + sep + rest
