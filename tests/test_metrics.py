"""Metrics from a real daemon (SMTP, a real Dovecot account, the query socket, the Postfix
listeners), scraped with urllib and read with prometheus_client's own parser; the metrics
listener under the listeners' limits policy."""

from __future__ import annotations

import asyncio
import json
import math
import random
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Iterable
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from inbox_daemon import metrics
from inbox_daemon.lookup.limits import ListenerPolicy
from inbox_daemon.lookup.socketmap import encode
from tests.intake.dovecot import Dovecot
from tests.support.daemon import DaemonProcess
from tests.support.notices import opt_out_notice, order_id, relay_address

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(port: int, path: str = "/metrics") -> Samples:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain; version=")
        text = response.read().decode()
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, frozenset(labels.items()))]


def bound(daemon: DaemonProcess, listener: str) -> int:
    """The port a listener configured with port 0 was given (from its start-up log line)."""
    return int(daemon.wait_event(f"{listener}.listening")["address"].rpartition(":")[2])


def config(path: Path, dovecot: Dovecot) -> Path:
    path.write_text(f"""
[smtp]
recipients = ["optout@sellers.example"]
[postfix]
policy = "127.0.0.1:0"
socketmap = "127.0.0.1:0"
[metrics]
listen = "127.0.0.1:0"
[[imap.accounts]]
name = "shop"
host = "127.0.0.1"
port = {dovecot.port}
tls = "none"
username = {json.dumps(dovecot.user)}
password = {json.dumps(dovecot.password)}
poll_seconds = 0.2
""")
    return path


def test_metrics_scraped_and_parsed(tmp_path: Path, dovecot: Dovecot) -> None:
    rng = random.Random(41)
    (by_smtp, buyer), (by_imap, _) = (order_id(rng), relay_address(rng)), (order_id(rng), relay_address(rng))
    dovecot.append(opt_out_notice(by_imap, relay_address(rng)))
    daemon = DaemonProcess(tmp_path / "home", config(tmp_path / "c.toml", dovecot))
    started = time.time()
    try:
        daemon.start()
        policy, socketmap, metrics = (bound(daemon, name) for name in ("policy", "socketmap", "metrics"))
        assert daemon.send(opt_out_notice(by_smtp, buyer))[0] == 250
        assert daemon.send(b"Subject: hello\r\n\r\nnot a notice\r\n")[0] == 250
        daemon.wait_count("intake_decision", 3)
        replies = daemon.query(f"CHECK {buyer}", "CHECK nobody@marketplace.amazon.com", f"CHECK {buyer}")
        assert replies[0].startswith("BLOCKED") and replies[1:] == ["OK", replies[0]]  # 3 lookups, 2 hits
        with socket.create_connection(("127.0.0.1", policy), timeout=10) as sock:
            sock.sendall(f"request=smtpd_access_policy\nprotocol_state=RCPT\nrecipient={buyer}\n\n".encode())
            assert sock.recv(4096).startswith(b"action=REJECT 5.7.1")
        with socket.create_connection(("127.0.0.1", socketmap), timeout=10) as sock:
            sock.sendall(encode("blocklist nobody@marketplace.amazon.com"))
            assert sock.recv(4096) == encode("NOTFOUND ")
        with socket.socket(socket.AF_UNIX) as held:  # one open query connection while scraping
            held.connect(daemon.socket_path)
            held.sendall(b"PING\n")
            assert held.recv(16) == b"PONG\n"
            samples = scrape(metrics)
    finally:
        daemon.ensure_stopped()

    assert value(samples, "inbox_daemon_messages_total", source="smtp", outcome="opt_out") == 1
    assert value(samples, "inbox_daemon_messages_total", source="smtp", outcome="not_opt_out") == 1
    assert value(samples, "inbox_daemon_messages_total", source="imap", outcome="opt_out") == 1
    assert value(samples, "inbox_daemon_notices_total") == 2
    assert value(samples, "inbox_daemon_quarantined_total") == 0
    assert value(samples, "inbox_daemon_blocklist_entries") == 4  # two orders, two relay addresses
    assert value(samples, "inbox_daemon_lookups_total", via="query") == 3
    assert value(samples, "inbox_daemon_lookup_hits_total", via="query") == 2
    assert value(samples, "inbox_daemon_lookups_total", via="policy") == 1
    assert value(samples, "inbox_daemon_lookup_hits_total", via="policy") == 1
    assert value(samples, "inbox_daemon_lookups_total", via="socketmap") == 1
    assert value(samples, "inbox_daemon_lookup_hits_total", via="socketmap") == 0
    assert value(samples, "inbox_daemon_query_connections", via="query") == 1
    assert value(samples, "inbox_daemon_query_limit_hits_total", kind="refused_peer") == 0
    assert value(samples, "inbox_daemon_smtp_replies_total", code="354") == 2
    assert value(samples, "inbox_daemon_smtp_replies_total", code="250") >= 8  # EHLO, MAIL, RCPT, DATA twice
    assert value(samples, "inbox_daemon_pending_messages") == 0
    assert 0 <= value(samples, "inbox_daemon_index_follow_lag_seconds") < 30
    assert started < value(samples, "inbox_daemon_imap_last_success_timestamp_seconds", account="shop") <= time.time()


def test_metrics_server_answers_only_metrics(tmp_path: Path) -> None:
    daemon = DaemonProcess(tmp_path / "home", env={"INBOX_DAEMON_METRICS_LISTEN": "127.0.0.1:0"})
    try:
        daemon.start()
        port = bound(daemon, "metrics")
        with pytest.raises(urllib.error.HTTPError) as missing:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/nope", timeout=10)
        assert missing.value.code == 404
        missing.value.close()
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:  # headers past 8 KB
            sock.sendall(b"GET /metrics HTTP/1.1\r\nX: " + b"a" * 20_000 + b"\r\n\r\n")
            assert sock.recv(4096) == b""
        assert value(scrape(port, "/metrics?x=1"), "inbox_daemon_blocklist_entries") == 0
    finally:
        daemon.ensure_stopped()


class _NoMetrics(Collector):
    def collect(self) -> Iterable[Metric]:
        return []


def test_a_scrape_request_trickled_a_byte_at_a_time_is_closed_at_its_deadline(monkeypatch: pytest.MonkeyPatch) -> None:
    """A request head sent a byte every 50 ms, never complete: closed at the request deadline
    of its first byte, not kept for as long as bytes keep coming (about 12 s here)."""
    monkeypatch.setattr(metrics, "POLICY", ListenerPolicy(16, 12, request_seconds=0.3, idle_seconds=0.3))

    async def main() -> float:
        server = metrics.MetricsServer("127.0.0.1:0", _NoMetrics())
        await server.start()
        try:
            reader, writer = await asyncio.open_connection(*server.address)
            loop = asyncio.get_running_loop()
            began = loop.time()
            try:
                for byte in b"GET /metrics HTTP/1.1\r\nX-Slow: " + b"a" * 200:  # no blank line: never a whole head
                    writer.write(bytes([byte]))
                    await writer.drain()
                    try:
                        if await asyncio.wait_for(reader.read(1), 0.05) == b"":
                            return loop.time() - began
                    except TimeoutError:
                        continue  # the trickle's pace
            except ConnectionError:
                return loop.time() - began
            finally:
                writer.close()
            return math.inf
        finally:
            await server.stop()

    took = asyncio.run(asyncio.wait_for(main(), 60))
    assert took < 3, f"a trickled request was kept {took:.1f} s past a 0.3 s deadline"
