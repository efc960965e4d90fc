"""Prometheus metrics: ``[metrics] listen = "host:port"`` serves the text exposition at /metrics.

The figures are read from the running parts at scrape time (a custom collector, nothing is
double-counted in a second set of counters); the exposition format is prometheus_client's. The
HTTP side is a small asyncio server on the daemon's own loop, so a scrape reads the counters
between two events of the loop and never races with them (prometheus_client's own server is
a thread).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import structlog
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.registry import Collector, CollectorRegistry

from inbox_daemon.lookup.limits import LISTEN_BACKLOG, Limits, ListenerPolicy, PeerCounts, peer_identity

__all__ = ["DaemonCollector", "MetricsServer"]

_PREFIX = "inbox_daemon_"
_MAX_REQUEST = 8192  # request line and headers; a scraper sends a few hundred bytes. More: closed
# The listeners' one limits policy (lookup/limits.py): a Prometheus server scrapes on one
# connection at a time, so 16 leave room for a few scrapers and a curl; the request (its head)
# must be whole within 10 s of connecting, and nothing else is ever read (idle = deadline).
POLICY = ListenerPolicy(max_connections=16, max_per_peer=12, request_seconds=10.0, idle_seconds=10.0)


class DaemonCollector(Collector):
    """Reads the daemon's parts: intake, index, query socket, Postfix listeners, SMTP, IMAP."""

    def __init__(self, daemon: Any) -> None:
        self._daemon = daemon

    def collect(self) -> Iterator[Metric]:
        yield from self._intake()
        yield from self._lookups()
        yield from self._sources()

    def _intake(self) -> Iterator[Metric]:
        intake = self._daemon.flow
        messages = CounterMetricFamily(_PREFIX + "messages", "Messages processed, by source and outcome.",
                                       labels=["source", "outcome"])
        for (source, outcome), count in sorted(intake.outcomes.items()):
            messages.add_metric([source, outcome], count)
        yield messages
        yield CounterMetricFamily(_PREFIX + "notices", "Opt-out notices applied.", value=intake.counters.get("opt_out", 0))
        yield CounterMetricFamily(_PREFIX + "quarantined", "Messages held in quarantine.",
                                  value=intake.counters.get("quarantined", 0))
        yield GaugeMetricFamily(_PREFIX + "pending_messages", "Messages accepted and not yet processed.",
                                value=intake.backlog)

    def _lookups(self) -> Iterator[Metric]:
        daemon = self._daemon
        yield GaugeMetricFamily(_PREFIX + "blocklist_entries", "Keys (relay addresses and order ids) in the index.",
                                value=len(daemon.index))
        lookups = CounterMetricFamily(_PREFIX + "lookups", "Lookups answered, by interface.", labels=["via"])
        hits = CounterMetricFamily(_PREFIX + "lookup_hits", "Lookups that found a blocked buyer.", labels=["via"])
        connections = GaugeMetricFamily(_PREFIX + "query_connections", "Open connections, by interface.",
                                        labels=["via"])
        for via, server in [("query", daemon.query), *((m.kind, m) for m in getattr(daemon, "mta", []))]:
            counted = server.lookup_counters()
            lookups.add_metric([via], counted.lookups)
            hits.add_metric([via], counted.hits)
            connections.add_metric([via], server.connections)
        yield from (lookups, hits, connections)
        limits = CounterMetricFamily(_PREFIX + "query_limit_hits", "Query connections refused or closed by a limit.",
                                     labels=["kind"])
        for kind, count in sorted(daemon.query.limit_counts().items()):
            limits.add_metric([kind], count)
        yield limits
        lag = time.monotonic() - daemon.follower.caught_up
        yield GaugeMetricFamily(_PREFIX + "index_follow_lag_seconds",
                                "Seconds since the index last pulled in other processes' changes.", value=lag)

    def _sources(self) -> Iterator[Metric]:
        replies = CounterMetricFamily(_PREFIX + "smtp_replies", "SMTP replies sent, by code.", labels=["code"])
        smtp = getattr(self._daemon, "smtp", None)
        for code, count in sorted(smtp.replies.items() if smtp is not None else []):
            replies.add_metric([code], count)
        yield replies
        imap = GaugeMetricFamily(_PREFIX + "imap_last_success_timestamp_seconds",
                                 "When each IMAP account's mailbox was last drained (0: not yet).", labels=["account"])
        for part in self._daemon.parts:  # the started parts; IMAP pollers are those with an account
            if hasattr(part, "last_success") and hasattr(part, "account"):
                imap.add_metric([part.account.name], part.last_success)
        yield imap


class MetricsServer:
    """``GET /metrics`` over HTTP/1.1 on the daemon's loop; start()/stop()."""

    def __init__(self, listen: str, collector: Collector, limits: Limits | None = None) -> None:
        self.limits = limits or Limits(POLICY.max_connections, POLICY.max_per_peer, 0, POLICY.max_connections)
        self._peers = PeerCounts(self.limits)
        self.refused = 0
        host, _, port = listen.rpartition(":")
        self._host, self._port = host.strip("[]"), int(port)
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(collector)
        self._server: asyncio.Server | None = None
        self._log = structlog.get_logger("inbox_daemon.metrics")

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, self._host, self._port, limit=_MAX_REQUEST,
                                                  backlog=LISTEN_BACKLOG)
        self._log.info("metrics.listening", address="%s:%d" % self.address)

    @property
    def address(self) -> tuple[str, int]:
        assert self._server is not None
        host, port = self._server.sockets[0].getsockname()[:2]
        return str(host), int(port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        key = peer_identity(writer.get_extra_info("socket"), writer.get_extra_info("peername"))
        if self._peers.admit(key) is not None:
            self.refused += 1
            writer.transport.abort()  # over the cap: the descriptor goes back at once
            return
        try:
            # One deadline for the whole head: bytes trickled in do not extend it.
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), POLICY.request_seconds)
            writer.write(self._respond(head))
            await asyncio.wait_for(writer.drain(), POLICY.idle_seconds)
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError, ConnectionError):
            pass  # a scraper that went away, sent too much or too slowly: nothing to answer
        finally:
            self._peers.release(key)
            if writer.transport.get_write_buffer_size():
                writer.transport.abort()  # a scraper that does not read: its bytes are dropped
            else:
                writer.close()

    def _respond(self, head: bytes) -> bytes:
        method, _, rest = head.split(b"\r\n", 1)[0].partition(b" ")
        path = rest.split(b" ", 1)[0].split(b"?", 1)[0]
        if path not in (b"/metrics", b"/"):
            return _reply("404 Not Found", b"try /metrics\n")
        if method not in (b"GET", b"HEAD"):
            return _reply("405 Method Not Allowed", b"")
        body = generate_latest(self.registry)
        return _reply("200 OK", body, CONTENT_TYPE_LATEST, head_only=method == b"HEAD")


def _reply(status: str, body: bytes, content_type: str = "text/plain; charset=utf-8", head_only: bool = False) -> bytes:
    head = (f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {len(body)}\r\n"
            "Connection: close\r\n\r\n").encode("ascii")
    return head if head_only else head + body
