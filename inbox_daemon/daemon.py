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
from .errors import ConfigError, StoreRefused, StoreUnavailable
from .log import get_logger, set_level
from .lookup import BlocklistIndex, QueryServer
from .lookup.follow import AddressLearner, IndexFollower, load_index
from .lookup.mta_server import postfix_servers
from .lookup.limits import Limits, share_descriptors
from .metrics import POLICY as METRICS_POLICY
from .metrics import DaemonCollector, MetricsServer
from .intake.smtp import SmtpListener
from .intake.smtp_process import SmtpProcess
from .privacy import KeyRing, load_keyring
from .processing import build_flow
from .processing.admission import gatekeeper
from .processing.privacy import PrivacyTask
from .reload import BASELINE, plan_reload, refusal, weakened
from .store import Store
from .state import secure_state
from .store.engine import unavailable
from .store.migrate import upgrade
from .systemd import notify

__all__ = ["Daemon", "end_leftover_tasks", "open_store"]

DIED_STOP_S = 1.5  # a task died: stop within this, so the process exits within 2 s
STOP_S = 15.0  # SIGTERM: the whole stop, every part together, within this (TimeoutStopSec=60)
LEFTOVERS_S = 2.0  # after the stop: tasks a library left behind, cancelled until they end

# Stop order: the edges first (no new mail or queries), then what drains (the flow, the
# follower, the learner), then the store. The parts of one stage stop together.
EDGE, CORE, STORE = 2, 1, 0


async def end_leftover_tasks(keep: set[asyncio.Task[Any]], within: float = LEFTOVERS_S) -> list[str]:
    """Cancel every task but ``keep`` and the caller's, again while one goes on, for at most
    ``within`` seconds; the names of those still running then. Once a stop has cut the store's
    close short, SQLAlchemy may leave a shielded graceful close of an aiosqlite connection
    running whose thread its forced close already ended (aiosqlite 0.22): cancelled once, it
    awaits that thread again in ``Connection.close``'s ``finally``, and the single cancel of
    ``asyncio.run`` at exit would wait on it for ever."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    keep = keep | {t for t in (asyncio.current_task(),) if t is not None}
    while True:
        left = asyncio.all_tasks() - keep
        if not left or loop.time() >= deadline:
            return sorted(t.get_name() for t in left)
        for task in left:
            task.cancel()
        await asyncio.wait(left, timeout=min(0.1, max(0.0, deadline - loop.time())))


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
            async with unavailable():
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



def _smtp_reserve(cfg: Config) -> int:
    """Descriptors no listener may take: SMTP's sessions, and 128 for the database, IMAP and files."""
    return cfg.smtp.max_connections + 128


def listener_limits(cfg: Config) -> dict[str, Limits]:
    """Every listener's caps from one descriptor budget (lookup/limits.py): a flood on one
    listener cannot take the descriptors SMTP and the other listeners need."""
    per_postfix = (cfg.postfix.max_connections, cfg.postfix.max_connections_per_peer)
    wanted = {"query": (cfg.query.max_connections, cfg.query.max_connections_per_peer)}
    wanted |= {name: per_postfix for name in ("policy", "socketmap") if getattr(cfg.postfix, name)}
    if cfg.metrics.listen:
        wanted["metrics"] = (METRICS_POLICY.max_connections, METRICS_POLICY.max_per_peer)
    return share_descriptors(wanted, _smtp_reserve(cfg))

class Daemon:
    """The running service: its parts and their order."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.log = get_logger(component="daemon")
        self.started = time.monotonic()
        self.stop_event = asyncio.Event()
        self._parts: list[tuple[int, Any]] = []  # (stage, part) as started; stopped by stage, last first
        self._signals = 0
        self.listening = systemd.listen_fds()  # sockets passed by systemd, by FileDescriptorName
        self._reloads: set[asyncio.Task[None]] = set()
        self._serving = False  # a reload asked for before start-up has finished waits for it
        self._reload_pending = False

    async def start(self) -> None:
        cfg = self.config
        await self._open_store()
        self._warn_weakened(BASELINE, cfg, "start")
        cursor = await self.store.change_cursor()  # taken before the load: nothing slips by
        self.index = await self._load_index()
        self.follower = IndexFollower(self.store, self.index, cursor, cfg.query.sync_seconds)
        self.flow = build_flow(cfg, self.store, self.follower.catch_up, recover=True)
        self.learner = AddressLearner(self.store, self.index, cfg.security.relay_domains, keyring=self.store.keyring)
        shares = listener_limits(cfg)
        self.log.info("listener_limits", descriptor_limit=shares["query"].descriptor_limit,
                      reserved_for_smtp=_smtp_reserve(cfg), **{k: v.max_connections for k, v in shares.items()})
        self.query = QueryServer(
            self.index, **self._query_listeners(),
            on_address_learned=self.learner.submit if cfg.query.learn_addresses else None, stats=self.stats,
            max_connections=cfg.query.max_connections, idle_timeout=cfg.query.idle_seconds,
            max_connections_per_peer=cfg.query.max_connections_per_peer, request_timeout=cfg.query.request_seconds,
            reserved_descriptors=_smtp_reserve(cfg), limits=shares["query"],
        )
        self.privacy = PrivacyTask(self.store, cfg.privacy)  # seals plain rows, purges what is due
        for stage, part in ((CORE, self.follower), (CORE, self.flow), (CORE, self.privacy), (CORE, self.learner),
                            (EDGE, self.query)):
            await self._start_part(stage, part)
        self.mta = postfix_servers(cfg.postfix, self.index, shares)  # Postfix's policy service and socketmap
        for mta in self.mta:
            await self._start_part(EDGE, mta)
        if cfg.smtp.enabled:
            self.smtp = self._smtp_intake()
            await self._start_part(EDGE, self.smtp)
        await self._start_imap()
        await self._start_web()
        secure_state(cfg)  # now the WAL/SHM files and the query socket exist too
        if cfg.metrics.listen:  # last: stopped first, and every part it reads exists
            self.metrics = MetricsServer(cfg.metrics.listen, DaemonCollector(self), shares["metrics"])
            await self._start_part(EDGE, self.metrics)
        self._announce()

    @property
    def parts(self) -> list[Any]:
        """The started parts, in start order (the metrics read the IMAP pollers from here)."""
        return [part for _, part in self._parts]

    async def _start_part(self, stage: int, part: Any) -> None:
        await part.start()
        self._parts.append((stage, part))

    async def _open_store(self) -> None:
        """Open the database and see it answer. Credentials it refuses or a database that does
        not exist are a configuration error (one line, exit 78); one that cannot be reached
        now is StoreUnavailable (exit 2). Neither message carries the password."""
        cfg = self.config
        try:
            self.store = await open_store(cfg, migrate=cfg.is_embedded_sqlite and cfg.database.auto_upgrade)
            await self.store.ping()
        except StoreRefused as exc:
            raise StoreRefused(f"{exc} (database.url {_safe_url(cfg.database_url)})") from None
        except StoreUnavailable as exc:
            raise StoreUnavailable(f"{exc} (database.url {_safe_url(cfg.database_url)})") from None
        self._parts.append((STORE, self.store))

    def _smtp_intake(self) -> SmtpListener | SmtpProcess:
        """The SMTP listener: in a process of its own unless ``smtp.own_process`` is false."""
        sock = self._inherited("smtp")
        if self.config.smtp.own_process:
            return SmtpProcess(self.flow, self.config, self.store.spec, sock=sock)
        return SmtpListener(self.flow, self.config.smtp, sock=sock)

    async def _start_imap(self) -> None:
        if not self.config.imap.accounts:
            return
        from .intake.imap import ImapPoller  # imported only when configured

        for account in self.config.imap.accounts:
            poller = ImapPoller(
                account, self.flow, self.store, logger=get_logger(component="imap", account=account.name),
                max_message_bytes=self.config.smtp.max_message_bytes,
            )
            await self._start_part(EDGE, poller)

    async def _start_web(self) -> None:
        """The operator pages and HTTP API, on this loop, reading the parts started before."""
        self.web = None
        if not self.config.web.listen:
            return
        from .web import WebContext, WebServer  # imported only when configured

        learn = self.learner.submit if self.config.query.learn_addresses else None
        context = WebContext(self.config, self.store, self.index, self.flow.processor, on_applied=self.index.apply,
                             on_address_learned=learn, status=self.web_status)
        self.web = WebServer(context)
        await self._start_part(EDGE, self.web)

    def web_status(self) -> dict[str, Any]:
        """What the overview page shows of the running parts."""
        sources: list[dict[str, Any]] = []
        if self.config.smtp.enabled:
            last = self.smtp.last_success
            sources.append({"name": "smtp", "state": "listening {}:{}".format(*self.smtp.address),
                            "last_success": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(last)) if last else None})
        for part in self.parts:
            if hasattr(part, "last_success") and hasattr(part, "account"):
                last = part.last_success
                sources.append({"name": f"imap:{part.account.name}", "state": getattr(part, "state", "polling"),
                                "last_success": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(last)) if last else None})
        return {"backlog": self.flow.backlog, "query_connections": self.query.connections, "sources": sources}

    def _announce(self) -> None:
        cfg = self.config
        smtp = "{}:{}".format(*self.smtp.address) if cfg.smtp.enabled else "off"
        bound = self.query.tcp_address
        tcp = f"{bound[0]}:{bound[1]}" if bound else "off"
        intake = getattr(self, "smtp", None)
        self.log.info(
            "ready", config=cfg.source, database=_safe_url(cfg.database_url), smtp=smtp,
            query_socket=self._query_socket_name(), query_tcp=tcp, socket_activated=sorted(self.listening),
            web="{}:{}".format(*self.web.address) if self.web else "off",
            imap_accounts=len(cfg.imap.accounts), pid=os.getpid(),
            smtp_pid=intake.pid if isinstance(intake, SmtpProcess) else None,  # its own process
        )
        notify("READY=1")

    async def stop(self, within: float = STOP_S) -> None:
        """Stop every part within one deadline: the stages in turn (edges, then what drains,
        then the store), the parts of a stage together. What has not ended gracefully by four
        fifths of ``within`` is cancelled: no task of a part goes on working once this returns
        (one waiting in its database driver ends as soon as the driver returns)."""
        if not self._parts:  # start-up failed before anything ran: its error says it all
            return
        notify("STOPPING=1")
        self.log.info("stopping")
        now = asyncio.get_running_loop().time()
        graceful, hard = now + within * 0.8, now + within
        for stage in (EDGE, CORE):
            await self._stop_together([p for s, p in self._parts if s == stage], graceful, hard)
        await self._end_leftovers(hard)
        # The store last, once nothing uses it.
        await self._stop_together([p for s, p in self._parts if s == STORE], hard, hard)
        self.log.info("stopped")

    async def _stop_together(self, parts: list[Any], graceful: float, hard: float) -> None:
        """Run the parts' stops at once; cancel those still running at ``graceful``."""
        loop = asyncio.get_running_loop()
        stops = {asyncio.create_task(self._stop_one(p)): p for p in parts}
        if not stops:
            return
        _, late = await asyncio.wait(stops, timeout=max(0.0, graceful - loop.time()))
        for task in late:
            self.log.error("stop_timeout", part=type(stops[task]).__name__)
            task.cancel()
        if late:
            await asyncio.wait(late, timeout=max(0.0, hard - loop.time()))

    async def _stop_one(self, part: Any) -> None:
        try:
            await (part.close() if isinstance(part, Store) else part.stop())
        except Exception as exc:
            self.log.error("stop_failed", part=type(part).__name__, error=repr(exc))

    async def _end_leftovers(self, hard: float) -> None:
        """Cancel every long-lived task a part still runs (a stop cut short by the deadline)."""
        left = [t for p in self.parts for t in getattr(p, "tasks", ()) if not t.done()]
        for task in left:
            task.cancel()
        if left:
            self.log.warning("stop_cancelled", tasks=sorted(t.get_name() for t in left))
            await asyncio.wait(left, timeout=max(0.0, hard - asyncio.get_running_loop().time()))

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
        before = asyncio.all_tasks()  # the process's main task, or a test's
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._on_signal, sig)
        loop.add_signal_handler(signal.SIGHUP, self._on_reload)
        if systemd.take_early_hangup():  # came while the command was still starting
            self._on_reload()
        try:
            await self.start()
            await self._start_heartbeat()
        except BaseException:
            await self.stop()
            raise
        code = await self._supervise()
        # A task died: systemd restarts us and recovery takes up what is pending; no long drain.
        await self.stop(DIED_STOP_S if code else STOP_S)
        left = await end_leftover_tasks(before)  # all the daemon started is over, or cancelled
        if left:
            self.log.error("stop_leftover_tasks", tasks=left)
        return code

    async def _supervise(self) -> int:
        """Wait for a stop signal or for a long-lived task to end: that is never expected,
        and a daemon that answers PING but takes no mail is worse than one that restarts."""
        stopping = asyncio.create_task(self.stop_event.wait())
        watched = {t for part in self.parts for t in getattr(part, "tasks", ())}
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
        try:
            async with systemd.extend_start_timeout():
                index = await load_index(self.store)
        except Exception as exc:  # said here, once, with the reason: start-up ends on it
            self.log.error("index_load_failed", error=repr(exc)[:500], exc_info=exc)
            raise
        self.log.info("index_loaded", entries=len(index), memory_bytes=index.memory_bytes())
        return index

    async def _start_heartbeat(self) -> None:
        await self._start_part(EDGE, systemd.Heartbeat(self.status_line))
        self._serving = True
        if self._reload_pending:  # a SIGHUP came while starting: apply it now
            self._reload_pending = False
            self._on_reload()

    def status_line(self) -> str:
        """Live counts for ``systemctl status`` (STATUS=)."""
        s = self.stats()
        return (f"{len(self.index)} blocked keys; {s['messages']} messages: {s['notices']} opt-outs, "
                f"{s['quarantined']} held, {s['errors']} errors; {self.query.connections} query connections")

    def _on_reload(self) -> None:
        if not self._serving:
            self._reload_pending = True
            self.log.info("reload_deferred", reason="still starting")
            return
        task = asyncio.get_running_loop().create_task(self.reload(), name="reload")
        self._reloads.add(task)
        task.add_done_callback(self._reloads.discard)

    async def reload(self) -> None:
        """Re-read the config file (SIGHUP) and apply what can change without dropping a
        connection (inbox_daemon/reload.py). All or nothing: the file is read and validated
        whole and every part that depends on it is built before anything is swapped; any
        failure keeps the running configuration and logs ``reload_failed``."""
        async with systemd.reloading():
            try:
                new = load_config(None if self.config.source == "embedded defaults" else self.config.source)
                problem = refusal(self.config, new)
                if problem:
                    raise ConfigError(problem)
                plan = plan_reload(self.config, new)
                gate = gatekeeper(plan.config.security)  # reads the pinned DKIM keys: may fail
            except ConfigError as exc:
                self.log.error("reload_failed", config=self.config.source, error=str(exc))
                return
            except Exception as exc:  # a bug while building: still nothing changed
                self.log.error("reload_failed", config=self.config.source, error=repr(exc), exc_info=exc)
                return
            before, self.config = self.config, plan.config  # from here on nothing can fail
            set_level(plan.config.log.level)
            smtp = getattr(self, "smtp", None)
            if isinstance(smtp, SmtpProcess):  # its own process: told the level too
                smtp.set_level(plan.config.log.level)
            self.flow.processor.use_gate(gate)
            self.learner.use_relay_domains(plan.config.security.relay_domains)
            secure_state(plan.config)  # security.group may have changed
            self._warn_weakened(before.security, plan.config, "reload")
            self.log.info("config_reloaded", config=self.config.source, applied=list(plan.applied),
                          ignored_until_restart=list(plan.ignored))

    def _warn_weakened(self, before: Any, cfg: Config, when: str) -> None:
        """One warning per ``[security]`` setting that now admits more than ``before``."""
        for change in weakened(before, cfg.security):
            self.log.warning("trust_weakened", key=change.key, was=change.was, now=change.now, when=when,
                             config=cfg.source)


def _safe_url(url: str) -> str:
    """The database URL without its password: logs must never carry a secret."""
    scheme, sep, rest = url.partition("://")
    if "@" in rest:
        creds, _, host = rest.rpartition("@")
        rest = creds.split(":", 1)[0] + ":***@" + host if ":" in creds else rest
    return scheme + sep + rest
