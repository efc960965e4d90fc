"""Who may add to the blocklist, end to end: a real daemon process, smtplib, the query socket and the CLI.

Who may add to the blocklist: per-seller envelope addresses and registered forwarders proven
by DKIM, a trusted ARC sealer or a trusted relay; every forged identity is held in quarantine
with what was missing; DKIM evidence; the per-forwarder rate limit; reprocess after a parser
upgrade; removal and imports with their audit trail.
"""

from __future__ import annotations

import os
import json
import random
import threading
from pathlib import Path
from typing import Any

import pytest

from tests.support.daemon import DaemonProcess, wait_until, write_config
from tests.support.notices import opt_out_notice, order_id, relay_address
from tests.support.trust import (
    arc_sealed, forwarded_attached, forwarded_inline, from_header, keys_file, redirected, sign, wrapped,
)

ROOT = Path(__file__).resolve().parents[1]


def make_daemon(tmp_path: Path, security: dict[str, Any], **extra: dict[str, Any]) -> DaemonProcess:
    sections = {"smtp": {"recipients": ["optout@sellers.example"]}, "query": {"sync_seconds": 0.2},
                "security": security, **extra}
    env = {"PYTHONPATH": str(ROOT)}  # the CLI may load tests.support.parser_variant
    return DaemonProcess(tmp_path / "home", write_config(tmp_path / "c.toml", sections), env=env)


@pytest.fixture
def guarded(tmp_path: Path):  # type: ignore[no-untyped-def]
    keys = str(keys_file(tmp_path / "keys"))  # the forwarders' test keys instead of DNS
    proc = make_daemon(tmp_path, {"require_registered_forwarder": True, "dkim_keys_file": keys,
                                  "trusted_arc_sealers": ["sealer.example"]})
    yield proc
    proc.ensure_stopped()


def acme(raw: bytes) -> bytes:
    """Signed by the forwarder's own domain, as its mail system does (DKIM, RFC 6376)."""
    return sign(raw, b"acme.example")


NOT_PROVEN = "forwarder ops@acme.example not authenticated"
STRANGER = ("unregistered forwarder attacker@evil.example (from, not authenticated): no seller token in the "
            "envelope, no authenticated registered forwarder")


def test_forged_forwarder_identities_are_held_naming_what_was_missing(guarded: DaemonProcess) -> None:
    guarded.start()
    guarded.cli("sellers", "add", "acme", "--forwarder", "ops@acme.example", check=True)
    rng = random.Random(50)
    notice = {k: opt_out_notice(order_id(rng), None) for k in range(9)}
    evil = {k: forwarded_inline(notice[k], "attacker@evil.example") for k in (3, 4, 5)}
    forged = [  # (mail, reason it must be held with), sent in this order
        (forwarded_inline(notice[0], "ops@acme.example"), f"{NOT_PROVEN} (from): no DKIM signature aligned with "
         "acme.example, no trusted ARC seal, not from a trusted relay"),
        (redirected(notice[1], "ops@acme.example"), f"{NOT_PROVEN} (resent-from): no DKIM signature aligned with "
         "acme.example covering Resent-From, not from a trusted relay"),
        (b"X-Forwarded-For: ops@acme.example optout@sellers.example\r\n" + notice[2],
         f"{NOT_PROVEN} (x-forwarded-for): x-forwarded-for is evidence, not proof; no seller token in the envelope"),
        (from_header(evil[3], '"<ops@acme.example>" <attacker@evil.example>'), STRANGER),
        (from_header(evil[4], "attacker@evil.example (<ops@acme.example>)"), STRANGER),
        # DMARC passes for the attacker's own domain; the daemon must still credit nobody.
        (sign(from_header(evil[5], '"<ops@acme.example>" <attacker@evil.example>'), b"evil.example"),
         "unregistered forwarder attacker@evil.example (dkim d=evil.example)"),
        # acme.example's signature over the forward, then a sealer that vouches for evil.example only.
        (arc_sealed(forwarded_inline(notice[6], "ops@acme.example"), "dkim=pass header.d=evil.example"),
         f"{NOT_PROVEN} (from): no DKIM signature aligned with acme.example, no trusted ARC seal, "
         "not from a trusted relay"),
    ]
    genuine = [acme(forwarded_inline(notice[7], "ops@acme.example")),
               arc_sealed(forwarded_inline(notice[8], "ops@acme.example"),
                          "dkim=pass header.d=acme.example; dmarc=pass header.from=acme.example")]
    for mail, _ in forged:
        assert guarded.send(mail)[0] == 250
    for mail in genuine:
        assert guarded.send(mail)[0] == 250
    guarded.wait_count("intake_decision", len(forged) + len(genuine))
    assert [blocked(guarded, str(order_of(notice[k]))) for k in range(9)] == [False] * 7 + [True, True]
    holds = held(guarded)
    assert [holds[i] for i in sorted(holds)] == [reason for _, reason in forged]
    shown = guarded.cli("quarantine", "show", str(sorted(holds)[3]), check=True).stdout
    assert "attacker@evil.example" in shown
    evidence = guarded.cli("blocklist", "show", order_of(notice[7]), check=True).stdout
    assert "seller acme reported" in evidence and "forwarder ops@acme.example" in evidence


def order_of(raw: bytes) -> str:
    from inbox_daemon.notices import parse_notice

    order = parse_notice(raw).buyers[0].order_id
    assert order is not None
    return order


def test_a_trusted_relay_vouches_for_the_from_it_hands_on(tmp_path: Path) -> None:
    daemon = make_daemon(tmp_path, {"require_registered_forwarder": True, "trusted_relays": ["127.0.0.0/8"]})
    try:
        daemon.start()
        daemon.cli("sellers", "add", "acme", "--forwarder", "ops@acme.example", check=True)
        rng = random.Random(49)
        relayed, traced = order_id(rng), order_id(rng)
        assert daemon.send(forwarded_inline(opt_out_notice(relayed, None), "ops@acme.example"))[0] == 250
        xff = b"X-Forwarded-For: ops@acme.example optout@sellers.example\r\n" + opt_out_notice(traced, None)
        assert daemon.send(xff)[0] == 250  # the relay vouches for From and Resent-From, not for traces
        daemon.wait_count("intake_decision", 2)
        assert blocked(daemon, relayed) and not blocked(daemon, traced)
        assert list(held(daemon).values()) == [
            f"{NOT_PROVEN} (x-forwarded-for): x-forwarded-for is evidence, not proof; no seller token in the envelope"]
        assert "seller acme reported" in daemon.cli("blocklist", "show", relayed, check=True).stdout
    finally:
        daemon.ensure_stopped()


def blocked(daemon: DaemonProcess, order: str) -> bool:
    return daemon.query(f"ORDER {order}")[0].startswith("BLOCKED")


def held(daemon: DaemonProcess) -> dict[int, str]:
    """``quarantine list --outcome quarantined`` as {id: reason}."""
    out = daemon.cli("quarantine", "list", "--outcome", "quarantined", check=True).stdout
    return {int(line.split("\t")[0]): line.split("\t")[-1] for line in out.splitlines()}


def test_unregistered_forwarders_change_nothing_until_approved(guarded: DaemonProcess) -> None:
    guarded.start()
    added = guarded.cli("sellers", "add", "acme", "--forwarder", "Ops@Acme.example", "--by", "ops", check=True)
    name, address, forwarders = added.stdout.strip().split("\t")
    assert (name, forwarders) == ("acme", "ops@acme.example") and address.startswith("optout+")
    rng = random.Random(51)
    good, forged, forged2, direct = (order_id(rng) for _ in range(4))

    assert guarded.send(acme(forwarded_inline(opt_out_notice(good, None), "ops@acme.example")))[0] == 250
    assert guarded.send(forwarded_inline(opt_out_notice(forged, None), "mallory@evil.example"))[0] == 250
    assert guarded.send(redirected(opt_out_notice(forged2, None), "mallory@evil.example"))[0] == 250
    assert guarded.send(opt_out_notice(direct, None), rcpt=address)[0] == 250  # Amazon, directly
    guarded.wait_count("intake_decision", 4)
    assert blocked(guarded, good) and blocked(guarded, direct)
    assert not blocked(guarded, forged) and not blocked(guarded, forged2)  # 250, yet no effect
    holds = held(guarded)
    assert sorted(holds.values()) == [
        f"unregistered forwarder mallory@evil.example ({how}, not authenticated): no seller token in the envelope, "
        "no authenticated registered forwarder" for how in ("from", "resent-from")]

    first, second = sorted(holds)
    assert guarded.cli("quarantine", "approve", str(first), "--by", "ops").returncode == 0
    wait_until(lambda: blocked(guarded, forged), timeout=2.0)  # the running daemon follows
    assert guarded.cli("quarantine", "discard", str(second), "--reason", "forged").returncode == 0
    assert held(guarded) == {} and not blocked(guarded, forged2)
    assert guarded.cli("quarantine", "approve", str(second)).returncode == 1  # discarded stays so
    trail = guarded.cli("audit", check=True).stdout
    assert "\tops\tapprove\t" in trail and "\tdiscard\t" in trail and "\tseller_add\tacme" in trail
    shown = guarded.cli("blocklist", "show", direct, check=True).stdout
    assert "seller acme reported" in shown and "dkim absent" in shown


def test_registering_the_forwarder_then_reprocess_applies_what_was_held(guarded: DaemonProcess) -> None:
    guarded.start()
    order = order_id(random.Random(52))
    assert guarded.send(acme(forwarded_inline(opt_out_notice(order, None), "new@acme.example")))[0] == 250
    guarded.wait_event("intake_decision", outcome="quarantined")
    assert list(held(guarded).values()) == ["unregistered forwarder new@acme.example (dkim d=acme.example)"]
    guarded.cli("sellers", "add", "acme", "--forwarder", "new@acme.example", check=True)
    out = guarded.cli("quarantine", "reprocess", "--by", "carol", check=True).stdout
    assert "1 opt_out" in out
    wait_until(lambda: blocked(guarded, order), timeout=2.0)
    trail = [json.loads(line) for line in guarded.cli("audit", "--json", check=True).stdout.splitlines()]
    runs = [row for row in trail if row["action"] == "reprocess"]
    assert len(runs) == 1 and runs[0]["actor"] == "carol" and "1 opt_out" in runs[0]["detail"], runs


def test_dkim_verified_failed_and_absent_are_recorded_and_only_verified_applies(tmp_path: Path) -> None:
    daemon = make_daemon(tmp_path, {"require_dkim": True, "dkim_keys_file": str(keys_file(tmp_path / "keys"))})
    try:
        daemon.start()
        rng = random.Random(53)
        orders = {k: order_id(rng) for k in ("direct", "redirect", "attached", "tampered", "inline", "unsigned")}
        mails = {k: sign(opt_out_notice(o, None)) for k, o in orders.items()}
        mails["redirect"] = redirected(mails["redirect"], "ops@acme.example")
        mails["attached"] = forwarded_attached(mails["attached"], "ops@acme.example")
        mails["tampered"] = mails["tampered"].replace(b"Dear Seller", b"Dear seller")
        mails["inline"] = forwarded_inline(mails["inline"], "ops@acme.example")
        mails["unsigned"] = opt_out_notice(orders["unsigned"], None)
        for raw in mails.values():
            assert daemon.send(raw)[0] == 250
        daemon.wait_count("intake_decision", len(mails))
        passed = {k for k, o in orders.items() if blocked(daemon, o)}
        assert passed == {"direct", "redirect", "attached"}
        assert sorted(held(daemon).values()) == ["dkim absent", "dkim absent", "dkim failed"]
        shown = daemon.cli("blocklist", "show", orders["attached"], check=True).stdout
        assert "dkim verified" in shown
    finally:
        daemon.ensure_stopped()


def test_rate_limit_holds_a_burst_from_one_forwarder_and_spares_another(tmp_path: Path) -> None:
    daemon = make_daemon(tmp_path, {"forwarder_rate_per_hour": 5})
    try:
        daemon.start()
        rng = random.Random(54)
        burst = [(order_id(rng), relay_address(rng)) for _ in range(20)]
        calm = [order_id(rng) for _ in range(3)]

        def send(chunk: list[tuple[str, str]]) -> None:
            for order, buyer in chunk:
                assert daemon.send(forwarded_inline(opt_out_notice(order, buyer), "flood@x.example"))[0] == 250

        threads = [threading.Thread(target=send, args=(burst[i::4],)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        for order in calm:
            assert daemon.send(forwarded_inline(opt_out_notice(order, None), "calm@y.example"))[0] == 250
        daemon.wait_count("intake_decision", len(burst) + len(calm))
        assert sum(blocked(daemon, o) for o, _ in burst) == 5
        assert all(blocked(daemon, o) for o in calm)
        assert list(held(daemon).values()) == ["rate limit"] * 15
    finally:
        daemon.ensure_stopped()


def test_reprocess_applies_a_message_once_the_parser_learns_its_wrapping(guarded: DaemonProcess) -> None:
    guarded.start()
    guarded.cli("sellers", "add", "acme", "--forwarder", "desk@acme.example", check=True)
    order = order_id(random.Random(55))
    assert guarded.send(acme(wrapped(opt_out_notice(order, None), "desk@acme.example")))[0] == 250
    guarded.wait_event("intake_decision", outcome="not_opt_out")
    assert "not_opt_out" in guarded.cli("quarantine", "list", check=True).stdout
    assert "nothing to do" in guarded.cli("quarantine", "reprocess", check=True).stdout  # same parser
    guarded.env["INBOX_DAEMON_PARSER_MODULE"] = "tests.support.parser_variant"  # the upgrade
    out = guarded.cli("quarantine", "reprocess", check=True).stdout
    assert "+ticket: 1 opt_out" in out
    wait_until(lambda: blocked(guarded, order), timeout=2.0)
    shown = guarded.cli("blocklist", "show", order, check=True).stdout
    assert "seller acme reported" in shown


def test_removal_and_import_reach_the_socket_and_the_audit_trail(tmp_path: Path) -> None:
    daemon = make_daemon(tmp_path, {})
    try:
        daemon.start()
        rng = random.Random(56)
        order, buyer = order_id(rng), relay_address(rng)
        assert daemon.send(opt_out_notice(order, buyer))[0] == 250
        daemon.wait_event("intake_decision", outcome="opt_out")
        removed = daemon.cli("blocklist", "remove", buyer, "--reason", "buyer wrote to support", "--by", "ana")
        assert removed.returncode == 0, removed.stderr
        wait_until(lambda: daemon.query(f"CHECK {buyer}", f"ORDER {order}") == ["OK", "OK"], timeout=2.0)
        shown = daemon.cli("blocklist", "show", order, check=True).stdout
        assert "audit:" in shown and "block by intake" in shown and "remove by ana: buyer wrote to support" in shown

        imported = [(order_id(rng), relay_address(rng)) for _ in range(3)]
        csv_file = tmp_path / "old-tool-export.csv"
        csv_file.write_text("order_id,email\n" + "".join(f"{o},{e}\n" for o, e in imported) + "bad,\n")
        out = daemon.cli("blocklist", "import", str(csv_file), "--by", "ana", check=True)
        assert "imported 3 rows" in out.stdout and "1 skipped" in out.stdout
        wait_until(lambda: all(blocked(daemon, o) for o, _ in imported), timeout=2.0)
        trail = daemon.cli("audit", check=True).stdout
        assert "\tana\timport\told-tool-export.csv\tfile old-tool-export.csv sha256 " in trail
        assert "\tana\tremove\t" in trail
        assert "csv:old-tool-export.csv" in daemon.cli("blocklist", "show", imported[0][0], check=True).stdout
    finally:
        daemon.ensure_stopped()


def test_seller_figures_count_notices_buyers_and_amazon_blocks_per_month(guarded: DaemonProcess) -> None:
    guarded.start()
    address = guarded.cli("sellers", "add", "acme", check=True).stdout.split("\t")[1]
    rng = random.Random(57)
    for _ in range(3):
        assert guarded.send(opt_out_notice(order_id(rng), relay_address(rng)), rcpt=address)[0] == 250
    guarded.wait_count("intake_decision", 3)
    shown = guarded.cli("sellers", "show", "acme", check=True).stdout.splitlines()
    assert shown[-2] == "month\tnotices_received\tbuyers_blocked\tamazon_blocked"
    assert shown[-1].split("\t")[1:] == ["3", "3", "3"]
    assert os.path.basename(address).startswith("optout+")
