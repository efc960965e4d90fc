"""The web pages at their edges, against a real daemon: a trusted reverse proxy's user header,
Secure cookies behind TLS, and hostile requests (NUL bytes, bad UTF-8, oversize bodies, bad ids)
each answered with a status, never a crash."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from tests.intake.dovecot import free_port
from tests.support.daemon import DaemonProcess
from tests.support.web import PASSWORD, WebUser, add_token, reviewing_daemon


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonProcess]:
    closed = free_port()  # nothing listens: the IMAP account can only fail
    with reviewing_daemon(tmp_path_factory.mktemp("edges"), {
        "web": {"trusted_proxy_header": "X-Remote-User", "secure_cookies": True},
        "imap": {"accounts": [{"name": "shop", "host": "127.0.0.1", "port": closed, "tls": "none",
                               "username": "seller@shop.example", "password": "not used"}]},
    }) as proc:
        yield proc


def test_the_overview_says_an_imap_account_is_failing_and_has_never_succeeded(daemon: DaemonProcess) -> None:
    daemon.wait_event("imap_session_failed")
    page = WebUser(daemon.web).request("GET", "/", headers={"X-Remote-User": "victor"})
    row = next(line for line in page.text.splitlines() if '"row">imap:shop</th>' in line)
    assert "failing (" in row and "ConnectionRefusedError" in row and "never" in row, row


def test_the_user_a_trusted_proxy_names_is_logged_in_with_that_users_role(daemon: DaemonProcess) -> None:
    proxied = WebUser(daemon.web)
    page = proxied.request("GET", "/", headers={"X-Remote-User": "victor"})
    assert page.status == 200 and "victor (viewer)" in page.text
    session = next(h for h in proxied.set_cookie_headers if h.startswith("inbox_session="))
    assert "Secure" in session and "HttpOnly" in session and "SameSite=Strict" in session
    assert proxied.request("GET", "/sellers", headers={"X-Remote-User": "victor"}).status == 200
    # The same cookie while the proxy now names someone else: that someone, never the old session.
    switched = proxied.request("GET", "/", headers={"X-Remote-User": "alice"})
    assert "alice (operator)" in switched.text
    assert WebUser(daemon.web).request("GET", "/", headers={"X-Remote-User": "mallory"}).status == 403
    assert WebUser(daemon.web).get("/").status == 303  # no header, no session: the login page


def test_behind_a_tls_proxy_the_pages_own_https_origin_may_post(daemon: DaemonProcess) -> None:
    """nginx ends TLS and passes Host on (deploy/README.md): the browser's Origin is https:// while
    the daemon hears plain HTTP. ``secure_cookies`` says a TLS proxy fronts the pages, so that
    origin is the pages' own; plain http:// is then another site (RFC 6454: the scheme is part
    of the origin)."""
    user = WebUser(daemon.web)
    form = user.get("/login").csrf()
    fields = {"csrf": form, "user": "alice", "password": PASSWORD}
    assert user.post("/login", fields, origin=f"http://{user.host}:{user.port}").status == 403
    assert user.post("/login", fields, origin=f"https://{user.host}:{user.port}").status == 303
    page = user.get("/sellers")
    assert "alice (operator)" in page.text
    added = user.post("/sellers", {"csrf": page.csrf(), "name": "tls-shop"}, origin=f"https://{user.host}:{user.port}")
    assert added.status == 303


def test_hostile_requests_get_a_status_and_the_daemon_goes_on(daemon: DaemonProcess) -> None:
    alice = WebUser(daemon.web, scheme="https")  # the pages sit behind a TLS proxy (secure_cookies)
    assert alice.login("alice", PASSWORD).status == 303
    assert alice.get("/messages/abc").status == 400
    assert alice.get("/messages/99999999").status == 404
    assert alice.get("/messages/1/parts/999").status == 404
    assert alice.get("/queue?outcome=%00").status == 400
    assert alice.get("/queue?page=-5").status == 200
    assert alice.get("/blocklist?key=%00%ff%fe" + "x" * 5000).status == 200
    assert alice.get("/audit?actor=%ff%00&action=" + "y" * 5000).status == 200
    stranger = WebUser(daemon.web, source="127.0.0.3", scheme="https")
    form = stranger.get("/login").csrf()
    raw = f"csrf={form}&user=alice%00&password=%ff%fe%00".encode()  # NUL and bytes that are not UTF-8
    assert stranger.request("POST", "/login", raw, {"Content-Type": "application/x-www-form-urlencoded",
                                                    "Origin": stranger.origin}).status == 401
    big = stranger.request("POST", "/login", b"user=" + b"a" * (9 * 1024 * 1024),
                           {"Content-Type": "application/x-www-form-urlencoded", "Origin": stranger.origin})
    assert big.status == 413
    token = add_token(daemon, "edge")
    auth = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    odd = alice.request("POST", "/v1/check", json.dumps(["\x00", "a@b.example\r\nPING", {"k": 1}, None]).encode(), auth)
    assert odd.status == 200 and all(a["reply"].startswith("ERR ") for a in odd.json()["answers"])
    assert alice.request("POST", "/v1/check", b"\xff\xfe[", auth).status == 400
    assert alice.request("GET", "/v1/check?key=%ff", headers=auth).status == 200
    assert daemon.query("PING") == ["PONG"] and alice.get("/").status == 200
