"""The web pages and the HTTP API over plain HTTP, against a real daemon process: a held
notice approved in the pages blocks its buyer on the query socket at once; roles, CSRF and the
Origin check hold on the server; cookie flags; the login throttle; the API answers as the socket."""

from __future__ import annotations

import json
import random
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from inbox_daemon.web.mailview import BODY_CSP
from tests.support.daemon import DaemonProcess, wait_until
from tests.support.notices import opt_out_notice, order_id, relay_address
from tests.support.trust import forwarded_inline
from tests.support.web import PASSWORD, WebUser, add_token, add_user, reviewing_daemon


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonProcess]:
    with reviewing_daemon(tmp_path_factory.mktemp("web"), {
        "smtp": {"recipients": ["optout@sellers.example"]},
        "security": {"require_registered_forwarder": True},
    }) as proc:
        yield proc


def held_notice(daemon: DaemonProcess, seed: int) -> tuple[int, str]:
    """Mail a notice forwarded by an unregistered address: held. Its id and order."""
    order = order_id(random.Random(seed))
    code, _ = daemon.send(forwarded_inline(opt_out_notice(order, None), "ops@stranger.example"))
    assert code == 250
    listed = daemon.cli("quarantine", "list", "--outcome", "quarantined", check=True).stdout
    for line in listed.splitlines():
        raw_id = int(line.split("\t")[0])
        if order in daemon.cli("messages", "show", str(raw_id), "--raw").stdout:
            return raw_id, order
    raise AssertionError(f"{order} not held: {listed}")


def test_an_operator_approves_a_held_notice_and_the_socket_blocks_the_buyer(daemon: DaemonProcess) -> None:
    raw_id, order = held_notice(daemon, 1)
    assert daemon.query(f"ORDER {order}") == ["OK"]
    alice = WebUser(daemon.web)
    assert alice.login("alice", PASSWORD).status == 303
    assert f'href="/messages/{raw_id}"' in alice.get("/queue?outcome=quarantined").text
    page = alice.get(f"/messages/{raw_id}")
    assert "unregistered forwarder ops@stranger.example" in page.text and 'id="approve"' in page.text
    policy = {d.strip() for d in page.headers["Content-Security-Policy"].split(";")}
    assert {"default-src 'none'", "frame-ancestors 'none'", "form-action 'self'"} <= policy  # no script-src: none runs
    assert alice.get(f"/messages/{raw_id}/body.html").headers["Content-Security-Policy"] == BODY_CSP
    buyers = page.text[page.text.index('id="buyers"'):page.text.index('id="original"')]
    assert f'<td data-label="Order id">{order}</td>' in buyers  # what approving would apply, read before deciding
    done = alice.post(f"/messages/{raw_id}/approve", {"csrf": page.csrf(), "note": "known seller, checked by phone"})
    assert done.status == 200 and "Approved: 1 new" in done.text
    assert daemon.query(f"ORDER {order}")[0].startswith("BLOCKED ")  # no wait: the index moved with the commit
    again = alice.post(f"/messages/{raw_id}/reprocess", {"csrf": page.csrf()})
    assert again.status == 409 and "only unapplied messages are reprocessed" in again.text  # applied stays applied
    trail = alice.get("/audit?actor=alice&action=approve").text
    assert "known seller, checked by phone" in trail and f'href="/messages/{raw_id}"' in trail


def test_an_operator_reprocesses_a_held_notice_with_a_note_and_the_trail_names_them(daemon: DaemonProcess) -> None:
    raw_id, order = held_notice(daemon, 5)
    alice = WebUser(daemon.web)
    alice.login("alice", PASSWORD)
    page = alice.get(f"/messages/{raw_id}")
    assert 'id="reprocess-note"' in page.text
    done = alice.post(f"/messages/{raw_id}/reprocess", {"csrf": page.csrf(), "note": "rules changed, try again"})
    assert done.status == 200 and "Reprocessed: quarantined (unregistered forwarder" in done.text  # still held
    assert daemon.query(f"ORDER {order}") == ["OK"]
    trail = alice.get("/audit?actor=alice&action=reprocess").text
    assert "quarantined -&gt; quarantined: rules changed, try again" in trail and f'href="/messages/{raw_id}"' in trail


def _overview(user: WebUser) -> tuple[dict[str, tuple[int, int]], int]:
    """The overview's counts by outcome (today, last 7 days) and its index size."""
    text = user.get("/").text
    rows = re.findall(r'<tr><th scope="row">(\w+)</th><td>(\d+)</td><td>(\d+)</td></tr>', text)
    entries = re.search(r"<dt>Blocklist keys in the index</dt><dd>(\d+)</dd>", text)
    assert entries, text
    return {outcome: (int(today), int(week)) for outcome, today, week in rows}, int(entries.group(1))


def test_the_overview_counts_outcomes_today_and_over_seven_days_and_the_index_size(daemon: DaemonProcess) -> None:
    raw_id, _order = held_notice(daemon, 6)
    alice = WebUser(daemon.web)
    alice.login("alice", PASSWORD)
    counts, entries = _overview(alice)
    kept = [json.loads(line) for line in daemon.cli("messages", "list", "--json", "--limit", "10000", check=True).stdout.splitlines()]
    expected: dict[str, int] = {}
    for row in kept:  # every message of this module came today
        expected[row["outcome"]] = expected.get(row["outcome"], 0) + 1
    assert counts == {outcome: (n, n) for outcome, n in expected.items()} and counts["quarantined"][0] >= 1
    alice.post(f"/messages/{raw_id}/approve", {"csrf": alice.get(f"/messages/{raw_id}").csrf()})
    after, grown = _overview(alice)
    assert grown == entries + 1  # the notice's order id, in the index with the commit
    assert after.get("quarantined", (0, 0))[0] == counts["quarantined"][0] - 1  # a row only for what came
    assert after["opt_out"][0] == counts.get("opt_out", (0, 0))[0] + 1


def test_an_operator_discards_a_held_notice_with_a_reason_and_the_trail_names_them(daemon: DaemonProcess) -> None:
    raw_id, order = held_notice(daemon, 8)
    alice = WebUser(daemon.web)
    alice.login("alice", PASSWORD)
    page = alice.get(f"/messages/{raw_id}")
    done = alice.post(f"/messages/{raw_id}/discard", {"csrf": page.csrf(), "note": "not our seller's buyer"})
    assert done.status == 200 and "Discarded." in done.text and 'id="approve"' not in done.text
    assert alice.post(f"/messages/{raw_id}/approve", {"csrf": page.csrf()}).status == 409  # decided for good
    assert daemon.query(f"ORDER {order}") == ["OK"]
    trail = alice.get("/audit?actor=alice&action=discard").text
    assert "not our seller&#39;s buyer" in trail and f'href="/messages/{raw_id}"' in trail


def test_a_viewer_sees_no_approve_button_and_a_forged_post_is_refused(daemon: DaemonProcess) -> None:
    raw_id, order = held_notice(daemon, 2)
    victor = WebUser(daemon.web)
    assert victor.login("victor", PASSWORD).status == 303
    page = victor.get(f"/messages/{raw_id}")
    assert page.status == 200 and 'id="approve"' not in page.text and "/approve" not in page.text
    forged = victor.post(f"/messages/{raw_id}/approve", {"csrf": page.csrf()})
    assert forged.status == 403
    alice = WebUser(daemon.web)
    alice.login("alice", PASSWORD)
    assert alice.post(f"/messages/{raw_id}/approve", {"csrf": "wrong"}).status == 403  # no CSRF token
    csrf = alice.get(f"/messages/{raw_id}").csrf()
    assert alice.post(f"/messages/{raw_id}/approve", {"csrf": csrf}, origin="http://evil.example").status == 403
    assert daemon.query(f"ORDER {order}") == ["OK"]
    assert "quarantined" in daemon.cli("quarantine", "show", str(raw_id)).stdout


def test_session_cookies_are_httponly_samesite_strict_and_logout_ends_the_session(daemon: DaemonProcess) -> None:
    alice = WebUser(daemon.web)
    alice.login("alice", PASSWORD)
    session = next(h for h in alice.set_cookie_headers if h.startswith("inbox_session="))
    flags = {part.strip().lower() for part in session.split(";")[1:]}
    assert {"httponly", "samesite=strict", "path=/"} <= flags and "secure" not in flags  # plain HTTP here
    stolen = dict(alice.cookies)
    assert alice.get("/").status == 200
    assert alice.post("/logout", {"csrf": alice.get("/").csrf()}).status == 303
    replay = WebUser(daemon.web)
    replay.cookies = stolen
    assert replay.get("/").status == 303  # the old cookie is worth nothing
    add_user(daemon, "dora", "viewer", PASSWORD)
    dora = WebUser(daemon.web)
    assert dora.login("dora", PASSWORD).status == 303 and dora.get("/").status == 200
    daemon.cli("users", "disable", "dora", check=True)
    assert dora.get("/").status == 303  # a disabled user's session ends at the next request
    assert WebUser(daemon.web).login("dora", PASSWORD).status == 401


def test_a_thousand_wrong_passwords_are_slowed_while_the_right_user_logs_in(daemon: DaemonProcess) -> None:
    attacker = WebUser(daemon.web, source="127.0.0.1")
    token = attacker.get("/login").csrf()
    statuses: dict[int, int] = {}
    for i in range(1000):
        page = attacker.post("/login", {"csrf": token, "user": "alice", "password": f"guess{i}"})
        statuses[page.status] = statuses.get(page.status, 0) + 1
        if page.status == 429:
            assert int(page.headers["Retry-After"]) >= 1
    assert statuses.get(303, 0) == 0
    # Checked only a few: three free, then one per doubling delay (0.25 s, 0.5 s, ...); 20 checks
    # would take the attacker over nine hours of waiting.
    assert statuses.get(401, 0) <= 20 and statuses.get(429, 0) >= 980, statuses
    owner = WebUser(daemon.web, source="127.0.0.2")  # the right user, from their own machine
    assert owner.login("alice", PASSWORD).status == 303
    assert owner.get("/").status == 200


def test_the_api_answers_as_the_query_socket_does(daemon: DaemonProcess) -> None:
    raw_id, order = held_notice(daemon, 3)
    daemon.cli("quarantine", "approve", str(raw_id), check=True)
    token = add_token(daemon, "shop")
    rng = random.Random(7)
    keys: list[object] = [relay_address(rng) for _ in range(9_000)] + [order_id(rng) for _ in range(990)]
    keys += [order, [relay_address(rng), order], "", "not an address", "é@x.example", "a\nb@c.example", "x" * 2000,
             [relay_address(rng), "bad-order"], "PING", 42]
    keys = keys[:10_000]
    api = WebUser(daemon.web)
    auth = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    page = api.request("POST", "/v1/check", json.dumps(keys).encode(), auth)
    assert page.status == 200
    answers = page.json()["answers"]
    assert len(answers) == 10_000 and [a["key"] for a in answers] == keys
    lines = [_line(k) for k in keys]
    socket_replies = daemon.query(*[line for line in lines if line is not None])
    it = iter(socket_replies)
    for key, line, answer in zip(keys, lines, answers):
        if line is not None:
            assert answer["reply"] == next(it), key
        else:
            assert answer["reply"].startswith("ERR ") and not answer["blocked"], key
    assert sum(a["blocked"] for a in answers) >= 2
    one = api.request("GET", f"/v1/check?key={order}", headers=auth).json()
    assert one["blocked"] and one["reply"].startswith("BLOCKED ") and one["count"] == 1
    assert api.request("GET", f"/v1/check?key={order}", headers={"Authorization": "Bearer nope"}).status == 401
    assert api.request("GET", f"/v1/check?key={order}").status == 401
    assert api.request("POST", "/v1/check", b"[not json", auth).status == 400
    assert api.request("POST", "/v1/check", b'{"keys": 5}', auth).status == 400
    assert api.request("POST", "/v1/check", json.dumps(["a@b.example"] * 10_001).encode(), auth).status == 413
    spec = api.get("/v1/openapi.json").json()
    assert spec["openapi"].startswith("3.") and "/v1/check" in spec["paths"]
    daemon.cli("tokens", "revoke", "shop", check=True)
    assert api.request("GET", f"/v1/check?key={order}", headers=auth).status == 401  # from the next request on


def _line(key: object) -> str | None:
    """The socket request for a key the socket can take as one line; None for the rest."""
    from inbox_daemon.client import request_line

    if isinstance(key, list):
        key = tuple(key)
    if not isinstance(key, (str, tuple)):
        return None
    line = request_line(key)  # type: ignore[arg-type]
    if "\n" in line or len(line.encode()) > 1024:
        return None
    return line


def test_blocklist_search_shows_evidence_and_removal_unblocks_at_once(daemon: DaemonProcess, tmp_path: Path) -> None:
    raw_id, order = held_notice(daemon, 4)
    alice = WebUser(daemon.web)
    alice.login("alice", PASSWORD)
    rng = random.Random(9)
    relay, imported = relay_address(rng), order_id(rng)
    (tmp_path / "list.csv").write_text(f"order_id,email\n{imported},{relay}\n")
    daemon.cli("blocklist", "import", str(tmp_path / "list.csv"), "--by", "alice", check=True)
    by_address = alice.get(f"/blocklist?key={relay.upper()}").text  # as a seller might paste it
    assert by_address.count('<section class="entry"') == 1 and ": blocked</h2>" in by_address
    assert "(csv:list.csv, forwarder -" in by_address and "block by alice" in by_address  # its evidence and trail
    alice.post(f"/messages/{raw_id}/approve", {"csrf": alice.get(f"/messages/{raw_id}").csrf()})
    page = alice.get(f"/blocklist?key={order}")
    assert "blocked" in page.text and f'href="/messages/{raw_id}"' in page.text and "block by alice" in page.text
    victor = WebUser(daemon.web)
    victor.login("victor", PASSWORD)
    viewer_page = victor.get(f"/blocklist?key={order}")
    assert 'id="remove"' not in viewer_page.text
    assert victor.post("/blocklist/remove", {"csrf": viewer_page.csrf(), "key": order, "reason": "x"}).status == 403
    assert alice.post("/blocklist/remove", {"csrf": page.csrf(), "key": order, "reason": " "}).status == 400
    assert daemon.query(f"ORDER {order}")[0].startswith("BLOCKED ")
    done = alice.post("/blocklist/remove", {"csrf": page.csrf(), "key": order, "reason": "buyer asked in writing"})
    assert done.status == 303
    assert daemon.query(f"ORDER {order}") == ["OK"]  # the index moved with the commit
    shown = daemon.cli("blocklist", "show", order).stdout
    assert "removed" in shown and "by alice: buyer asked in writing" in shown


def test_sellers_are_added_forwarders_registered_and_addresses_rotated(daemon: DaemonProcess) -> None:
    alice = WebUser(daemon.web)
    alice.login("alice", PASSWORD)
    csrf = alice.get("/sellers").csrf()
    assert alice.post("/sellers", {"csrf": csrf, "name": "acme", "forwarder": "ops@acme.example"}).status == 303
    assert alice.post("/sellers", {"csrf": csrf, "name": "acme"}).status == 409  # exists: said, not raised
    assert alice.post("/sellers/acme/forwarders", {"csrf": csrf, "address": "not an address"}).status == 409
    assert alice.post("/sellers/acme/forwarders", {"csrf": csrf, "address": "Desk@Acme.example"}).status == 303
    before = daemon.cli("sellers", "list", check=True).stdout
    assert "desk@acme.example, ops@acme.example" in before
    assert alice.post("/sellers/acme/rotate", {"csrf": csrf}).status == 303
    after = daemon.cli("sellers", "list", check=True).stdout
    assert before.split("\t")[1] != after.split("\t")[1] and after.split("\t")[1] in alice.get("/sellers").text
    assert alice.post("/forwarders/remove", {"csrf": csrf, "address": "desk@acme.example"}).status == 303
    assert "desk@acme.example" not in daemon.cli("sellers", "list", check=True).stdout
    trail = daemon.cli("audit", check=True).stdout
    assert "alice\tseller_rotate\tacme" in trail and "alice\tforwarder_add\tdesk@acme.example" in trail


def test_a_gmail_forwarding_confirmation_is_shown_until_dealt_with(daemon: DaemonProcess) -> None:
    sample = (Path(__file__).resolve().parents[1] / "data" / "confirmations" / "gmail-en.eml").read_bytes()
    assert daemon.send(sample)[0] == 250
    warned = daemon.wait_event("forwarding_confirmation", requester="ops.acme@gmail.com")
    assert warned["level"] == "warning" and warned["code"] == "482915736"
    listed = daemon.cli("forwarders", "pending", "--json", check=True).stdout.splitlines()
    pending = [json.loads(line) for line in listed]
    assert [(p["requester"], p["code"]) for p in pending] == [("ops.acme@gmail.com", "482915736")]
    assert pending[0]["link"].startswith("https://mail-settings.google.com/mail/vf-")
    alice = WebUser(daemon.web)
    alice.login("alice", PASSWORD)
    overview = alice.get("/")
    assert "ops.acme@gmail.com" in overview.text and "482915736" in overview.text
    smtp_row = next(line for line in overview.text.splitlines() if '"row">smtp</th>' in line)
    assert "never" not in smtp_row, smtp_row  # the 250 just given is SMTP's last success
    # Dealt with by registering the address as a forwarder: off the list, without a dismissal.
    daemon.cli("sellers", "add", "gmail-seller", check=True)
    assert alice.post("/sellers/gmail-seller/forwarders", {"csrf": overview.csrf(), "address": "ops.acme@gmail.com"}).status == 303
    assert daemon.cli("forwarders", "pending", check=True).stdout == ""
    assert "482915736" not in alice.get("/").text
    # Another one, dismissed in the pages by an operator (a viewer may not).
    other = sample.replace(b"ops.acme@gmail.com", b"shop.two@gmail.com").replace(b"fwd-confirm-1", b"fwd-confirm-2")
    assert daemon.send(other)[0] == 250
    daemon.wait_event("forwarding_confirmation", requester="shop.two@gmail.com")
    raw_id = json.loads(daemon.cli("forwarders", "pending", "--json", check=True).stdout)["raw_id"]
    victor = WebUser(daemon.web)
    victor.login("victor", PASSWORD)
    assert victor.post(f"/confirmations/{raw_id}/dismiss", {"csrf": victor.get("/").csrf()}).status == 403
    assert alice.post(f"/confirmations/{raw_id}/dismiss", {"csrf": alice.get("/").csrf()}).status == 303
    assert daemon.cli("forwarders", "pending", check=True).stdout == ""
    assert "alice\tconfirmation_done" in daemon.cli("audit", check=True).stdout
    daemon.recent()  # everything logged so far
    warned = [e for e in daemon.events if e.get("event") == "forwarding_confirmation"]
    assert [e["requester"] for e in warned] == ["ops.acme@gmail.com", "shop.two@gmail.com"]  # once each, however often shown


def test_the_queue_filters_by_outcome_and_pages_fifty_at_a_time(daemon: DaemonProcess) -> None:
    for i in range(51):
        plain = (f"From: Someone <s{i}@else.example>\r\nTo: optout@sellers.example\r\nSubject: hello {i}\r\n"
                 f"Message-ID: <queue-{i}@else.example>\r\n\r\nnot a notice {i}\r\n")
        assert daemon.send(plain.encode())[0] == 250
    held_id, _order = held_notice(daemon, 7)

    def listed(outcome: str) -> set[int]:
        out = daemon.cli("quarantine", "list", "--outcome", outcome, "--limit", "10000", check=True).stdout
        return {int(line.split("\t")[0]) for line in out.splitlines()}

    wait_until(lambda: len(listed("not_opt_out")) >= 51, 60)
    alice = WebUser(daemon.web, source="127.0.0.4")  # not the source the password guesses came from
    assert alice.login("alice", PASSWORD).status == 303

    def shown(outcome: str, page: int) -> tuple[list[int], bool]:
        text = alice.get(f"/queue?outcome={outcome}&page={page}").text
        ids = [int(i) for i in re.findall(r'<td data-label="Id"><a href="/messages/(\d+)">', text)]
        return ids, f"/queue?outcome={outcome}&amp;page={page + 1}" in text

    first, older = shown("not_opt_out", 0)
    assert len(first) == 50 and older and first == sorted(first, reverse=True)  # newest first
    pages, page = [first], 0
    while older:
        page += 1
        ids, older = shown("not_opt_out", page)
        pages.append(ids)
    every = [i for ids in pages for i in ids]
    assert len(every) == len(set(every)) and set(every) == listed("not_opt_out") and held_id not in every
    held, _ = shown("quarantined", 0)
    assert held_id in held and not set(held) & set(every)
    both, _ = shown("", 0)
    assert held_id in both and first[0] in both
