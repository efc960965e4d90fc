"""End to end through real processes: `inbox-daemon serve`, smtplib, the query socket, SIGKILL."""

from __future__ import annotations

import csv
import io
import json
import random
import re
import signal
import threading
from pathlib import Path

import pytest

from tests.support.daemon import DaemonProcess, query_socket, wait_until, write_config
from tests.support.notices import opt_out_notice, order_id, relay_address
from tests.support.proxy import CuttableProxy
from tests.support.samples import SAMPLES, Samples, shared_corpus

ORDER_RE = re.compile(rb"\b\d{3}-\d{7}-\d{7}\b")
RELAY_RE = re.compile(rb"[a-z0-9]{15}@marketplace\.amazon\.[a-z.]+", re.I)


@pytest.fixture
def daemon(tmp_path: Path):  # type: ignore[no-untyped-def]
    proc = DaemonProcess(tmp_path / "home", write_config(tmp_path / "c.toml", {"query": {"sync_seconds": 0.2}}))
    yield proc
    proc.ensure_stopped()


def exported(daemon: DaemonProcess) -> set[tuple[str, str]]:
    """(order id, email) of every row as ``blocklist export`` writes them: pseudonyms."""
    proc = daemon.cli("blocklist", "export", "--csv", check=True)
    return {(row["order_id"], row["email"]) for row in csv.DictReader(io.StringIO(proc.stdout))}


def stored_pairs(daemon: DaemonProcess, pairs: set[tuple[str, str]]) -> set[tuple[str, str]]:
    """Plain (order id, email) pairs as the daemon's database holds them (``exported``)."""
    return {(daemon.stored(o) if o else "", daemon.stored(e) if e else "") for o, e in pairs}


@pytest.mark.parametrize("source", ["repository", "shared"])
def test_samples_over_smtp_yield_exactly_the_expected_blocklist(daemon: DaemonProcess, source: str) -> None:
    samples = Samples.of(SAMPLES) if source == "repository" else shared_corpus()
    # RFC 5321 4.5.3.1.6: a line ends in CRLF and is at most 1000 octets. A sample whose lines
    # end in bare LF (es_utf16be_bom_declared_utf8.eml) reaches us by IMAP or import, not SMTP.
    sendable = [(n, r, c) for n, r, c in samples.cases if max(map(len, r.split(b"\r\n"))) <= 998]
    assert len(sendable) >= len(samples.cases) - 2
    daemon.start()
    cases = [case for _, _, case in sendable]
    for name, raw, _ in sendable:
        code, text = daemon.send(raw)
        assert code == 250, (name, text)
    daemon.wait_count("intake_decision", len(cases), timeout=60)
    want = {(b["order_id"] or "", b["email"] or "") for c in cases if c["kind"] == "opt_out" for b in c["buyers"]}
    # also_ok opt-outs (shared corpus s27/s28): a parser that recognises the real charset may block them
    maybe = {(b["order_id"] or "", b["email"] or "") for c in cases for alt in c.get("also_ok", [])
             if alt["kind"] == "opt_out" for b in alt["buyers"]}
    got = exported(daemon)
    assert stored_pairs(daemon, want) <= got <= stored_pairs(daemon, want | maybe)
    want = {pair for pair in want | maybe if stored_pairs(daemon, {pair}) <= got}

    blocked_keys = {k for pair in want for k in pair if k}
    for order, email in want:
        replies = daemon.query(*(f"ORDER {order}",) + ((f"CHECK {email.upper()}",) if email else ()))
        assert all(r.startswith("BLOCKED ") for r in replies), (order, email, replies)
    for case in cases:  # every order id and relay address a look-alike names stays OK
        raw = (samples.folder / case["file"]).read_bytes()
        others = {m.decode() for m in ORDER_RE.findall(raw)} - blocked_keys
        addrs = {m.decode().lower() for m in RELAY_RE.findall(raw)} - blocked_keys
        if case["kind"] != "opt_out":
            lines = [f"ORDER {o}" for o in sorted(others)] + [f"CHECK {a}" for a in sorted(addrs)]
            if lines:
                assert set(daemon.query(*lines)) == {"OK"}, case["file"]


def test_check_with_order_learns_the_address(daemon: DaemonProcess) -> None:
    daemon.start()
    rng = random.Random(7)
    order, buyer = order_id(rng), relay_address(rng)
    assert daemon.send(opt_out_notice(order, None))[0] == 250  # real notices name only the order
    daemon.wait_event("intake_decision", outcome="opt_out")
    assert daemon.query(f"CHECK {buyer}") == ["OK"]
    (first,) = daemon.query(f"CHECK {buyer} {order}")
    assert first.startswith("BLOCKED ")
    wait_until(lambda: daemon.query(f"CHECK {buyer}")[0].startswith("BLOCKED "), timeout=5)
    assert stored_pairs(daemon, {(order, buyer)}) <= exported(daemon)


def test_cli_removal_reaches_the_running_socket_within_two_seconds(daemon: DaemonProcess) -> None:
    daemon.start()
    rng = random.Random(8)
    order, buyer = order_id(rng), relay_address(rng)
    assert daemon.send(opt_out_notice(order, buyer))[0] == 250
    daemon.wait_event("intake_decision", outcome="opt_out")
    assert daemon.cli("check", buyer).returncode == 1
    assert daemon.cli("blocklist", "remove", order).returncode == 2  # --reason is required
    removed = daemon.cli("blocklist", "remove", order, "--reason", "buyer asked by phone", "--by", "ops")
    assert removed.returncode == 0, removed.stderr
    wait_until(lambda: daemon.query(f"CHECK {buyer}", f"ORDER {order}") == ["OK", "OK"], timeout=2.0)
    assert daemon.cli("check", buyer, order).returncode == 0
    shown = daemon.cli("blocklist", "show", order)
    assert "buyer asked by phone" in shown.stdout and "ops" in shown.stdout


def test_sigterm_finishes_processing_and_exits_zero(daemon: DaemonProcess) -> None:
    daemon.start()
    rng = random.Random(9)
    orders = [order_id(rng) for _ in range(30)]
    for order in orders:
        assert daemon.send(opt_out_notice(order, None))[0] == 250
    assert daemon.stop(signal.SIGTERM) == 0  # right after the last 250: processing still queued
    assert any(e.get("event") == "stopped" for e in daemon.events)
    assert not Path(daemon.socket_path).exists()
    assert daemon.cli("messages", "list", "--outcome", "pending").stdout == ""
    assert {o for o, _ in exported(daemon)} == {daemon.stored(o) for o in orders}


def test_sigkill_mid_stream_loses_nothing_acknowledged(daemon: DaemonProcess) -> None:
    daemon.start()
    rng = random.Random(10)
    notices = [(order_id(rng), relay_address(rng)) for _ in range(2000)]
    acked: list[tuple[str, str]] = []
    lock = threading.Lock()
    enough = threading.Event()

    def sender(chunk: list[tuple[str, str]]) -> None:
        for order, buyer in chunk:
            try:
                code, _ = daemon.send(opt_out_notice(order, buyer))
            except OSError:
                return  # the daemon is gone: this one was never acknowledged
            if code == 250:
                with lock:
                    acked.append((order, buyer))
                    if len(acked) >= 150:
                        enough.set()

    threads = [threading.Thread(target=sender, args=(notices[i::8],)) for i in range(8)]
    for t in threads:
        t.start()
    assert enough.wait(60)
    daemon.kill()  # SIGKILL, mid-stream
    for t in threads:
        t.join(30)
    daemon.start()
    want = stored_pairs(daemon, set(acked))
    got = wait_until(lambda: (lambda e: e if {o for o, _ in want} <= {o for o, _ in e} else None)(exported(daemon)), timeout=60)
    assert want <= got
    # the index equals the database: every acknowledged key answers BLOCKED, and the entry counts agree
    lines = [f"ORDER {o}" for o, _ in acked] + [f"CHECK {b}" for _, b in acked if b]
    assert all(r.startswith("BLOCKED ") for r in daemon.query(*lines))
    stats = json.loads(daemon.query("STATS")[0].split(" ", 1)[1])
    assert stats["entries"] == len({o for o, _ in got}) + len({b for _, b in got if b})
    pending = daemon.cli("messages", "list", "--outcome", "pending")
    assert pending.stdout.strip() == ""


def test_database_outage_answers_451_then_retries_apply(tmp_path: Path, fresh_pg_url: str) -> None:
    from sqlalchemy.engine import make_url

    url = make_url(fresh_pg_url)
    proxy = CuttableProxy((url.host or "127.0.0.1", url.port or 5432))
    proxied = url.set(port=proxy.port).render_as_string(hide_password=False)
    config = write_config(tmp_path / "c.toml", {"database": {"url": proxied}, "query": {"sync_seconds": 0.2}})
    daemon = DaemonProcess(tmp_path / "home", config)
    try:
        assert daemon.cli("db", "upgrade").returncode == 0
        daemon.start()
        rng = random.Random(11)
        first = [(order_id(rng), relay_address(rng)) for _ in range(3)]
        for order, buyer in first:
            assert daemon.send(opt_out_notice(order, buyer))[0] == 250
        proxy.cut()
        later = [(order_id(rng), relay_address(rng)) for _ in range(3)]
        for order, buyer in later:
            code, text = daemon.send(opt_out_notice(order, buyer))
            assert code == 451 and b"4.3.0" in text, (code, text)
        proxy.restore()
        for order, buyer in later:  # what the sending MTA does after a 451
            code, _ = wait_until(lambda: (lambda r: r if r[0] == 250 else None)(daemon.send(opt_out_notice(order, buyer))), timeout=30, interval=0.5)
        wait_until(lambda: all(r.startswith("BLOCKED") for r in daemon.query(*[f"ORDER {o}" for o, _ in first + later])), timeout=30)
        assert exported(daemon) == stored_pairs(daemon, set(first + later))
    finally:
        daemon.ensure_stopped()
        proxy.close()


def test_query_socket_serves_other_clients_while_one_misbehaves(daemon: DaemonProcess) -> None:
    import socket

    daemon.start()
    with socket.socket(socket.AF_UNIX) as bad, socket.socket(socket.AF_UNIX) as half:
        bad.connect(daemon.socket_path)
        half.connect(daemon.socket_path)
        half.sendall(b"CHECK abc")  # half a line, never finished
        bad.sendall(b"\x00\xff garbage\n" + b"A" * 5000 + b"\n")
        assert query_socket(daemon.socket_path, ["PING", "CHECK nobody123456789@marketplace.amazon.com"]) == ["PONG", "OK"]


def test_two_daemons_on_one_postgresql_share_the_blocklist(tmp_path: Path, fresh_pg_url: str) -> None:
    config = write_config(tmp_path / "c.toml", {"database": {"url": fresh_pg_url}, "query": {"sync_seconds": 0.2},
                                                "privacy": {"key_file": str(tmp_path / "privacy.key")}})
    first = DaemonProcess(tmp_path / "a", config)
    second = DaemonProcess(tmp_path / "b", config)
    try:
        assert first.cli("db", "upgrade").returncode == 0
        first.start()
        second.start()
        rng = random.Random(12)
        order, buyer = order_id(rng), relay_address(rng)
        assert first.send(opt_out_notice(order, buyer))[0] == 250
        first.wait_event("intake_decision", outcome="opt_out")
        # the other daemon learns it through the change sequence, not a reload
        wait_until(lambda: second.query(f"CHECK {buyer}")[0].startswith("BLOCKED"), timeout=2.0)
        assert second.query(f"ORDER {order}")[0].startswith("BLOCKED")
        assert second.cli("blocklist", "remove", buyer, "--reason", "test").returncode == 0
        wait_until(lambda: first.query(f"CHECK {buyer}", f"ORDER {order}") == ["OK", "OK"], timeout=2.0)
    finally:
        first.ensure_stopped()
        second.ensure_stopped()


def test_optional_tcp_query_listener(tmp_path: Path) -> None:
    import socket

    daemon = DaemonProcess(tmp_path / "home", write_config(tmp_path / "c.toml", {"query": {"tcp": "127.0.0.1:0"}}))
    try:
        ready = daemon.start().wait_event("ready")
        host, port = ready["query_tcp"].rsplit(":", 1)
        with socket.create_connection((host, int(port)), timeout=10) as sock:
            sock.sendall(b"PING\r\nCHECK nobody123456789@marketplace.amazon.com\r\n")
            data = b""
            while data.count(b"\n") < 2:
                data += sock.recv(1024)
        assert data == b"PONG\nOK\n"
    finally:
        daemon.ensure_stopped()
