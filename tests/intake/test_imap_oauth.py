"""IMAP intake signed in with OAuth 2.0 against a real Dovecot (``passdb oauth2``) that asks the
loopback issuer in ``tests/support/oauth_issuer.py`` about every token (RFC 7662), as Gmail and
Microsoft 365 ask their own: XOAUTH2 and OAUTHBEARER, expiry, revocation, the device flow, the
``imap test`` command, and no secret in any log line or process title."""

from __future__ import annotations

import asyncio
import imaplib
import os
import random
import stat
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from inbox_daemon.config import ImapAccount
from inbox_daemon.intake.oauth import Secret, TokenSource, device_poll
from tests.intake.dovecot import Dovecot, dovecot_binary, free_port
from tests.intake.harness import flagged, processed, query, raw_counts, running_poller, until
from tests.support.daemon import EXE, DaemonProcess, wait_until, write_config
from tests.support.logs import Recorder
from tests.support.notices import opt_out_notice, order_id, relay_address
from tests.support.oauth_issuer import Issuer

CLIENT_ID = "inbox-daemon-test"
CLIENT_SECRET = "cs-" + "Zk3q9Vw2Lp7Rt5Yx"


@pytest.fixture
def issuer() -> Iterator[Issuer]:
    server = Issuer(access_seconds=3600)
    server.register(CLIENT_ID, CLIENT_SECRET)
    with server.running():
        yield server


@pytest.fixture
def oauth_dovecot(issuer: Issuer) -> Iterator[Dovecot]:
    if dovecot_binary() is None:
        if os.environ.get("CI"):
            pytest.fail("dovecot is not installed")
        pytest.skip("dovecot is not installed")
    with Dovecot.running(introspection_url=issuer.introspection_url()) as server:
        yield server


@pytest.fixture
def secrets_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="inbox-oauth-"))
    (path / "client_secret").write_text(CLIENT_SECRET + "\n")
    yield path


def oauth_account(server: Dovecot, issuer: Issuer, secrets_dir: Path, auth: str = "xoauth2", **more: Any) -> ImapAccount:
    token_file = secrets_dir / "refresh.token"
    if not token_file.exists() and more.get("grant") != "client_credentials":
        token_file.write_text(issuer.refresh_token_for(server.user, CLIENT_ID) + "\n")
    values: dict[str, Any] = dict(
        name="shop", host="127.0.0.1", port=server.port, tls="none", username=server.user, poll_seconds=0.2,
        idle=False, auth=auth, client_id=CLIENT_ID, client_secret_file=str(secrets_dir / "client_secret"),
        token_file=str(token_file), token_url=f"{issuer.url}/token", device_url=f"{issuer.url}/device",
        scopes=("imap",),
    )
    values.update(more)
    return ImapAccount(**values)


def notices(seed: int, n: int) -> list[bytes]:
    rng = random.Random(seed)
    return [opt_out_notice(order_id(rng), relay_address(rng), seq=i) for i in range(n)]


def login_methods(server: Dovecot) -> list[str]:
    """The poller's logins (the tests' own imaplib client logs in with PLAIN)."""
    methods = [line.split("method=")[1].split(",")[0] for line in (server.root / "dovecot.log").read_text().splitlines()
               if "imap-login: Info: Login:" in line]
    return [m for m in methods if m != "PLAIN"]


@pytest.mark.parametrize("auth", ["xoauth2", "oauthbearer"])
def test_oauth_signs_in_and_polls(oauth_dovecot: Dovecot, issuer: Issuer, secrets_dir: Path, db_path: Path, auth: str) -> None:
    oauth_dovecot.append(*notices(1, 3))

    async def main() -> None:
        async with running_poller(db_path, oauth_account(oauth_dovecot, issuer, secrets_dir, auth)):
            await until(lambda: processed(db_path) == 3, what="mail processed")
            await until(lambda: flagged(oauth_dovecot.flags()), what="all flagged")

    asyncio.run(asyncio.wait_for(main(), 60))
    assert raw_counts(db_path) == {"opt_out": 3}
    assert login_methods(oauth_dovecot) == [auth.upper()]
    assert issuer.grants == ["refresh_token"]


def test_without_sasl_ir_the_token_follows_the_continuation(issuer: Issuer, secrets_dir: Path, db_path: Path) -> None:
    if dovecot_binary() is None:
        pytest.skip("dovecot is not installed")
    caps = "IMAP4rev1 LITERAL+ ID ENABLE IDLE AUTH=PLAIN AUTH=XOAUTH2 AUTH=OAUTHBEARER"
    with Dovecot.running(introspection_url=issuer.introspection_url(), capability=caps) as server:
        server.append(*notices(2, 1))
        before_login = imaplib.IMAP4("127.0.0.1", server.port, timeout=10)
        assert "AUTH=OAUTHBEARER" in before_login.capabilities and "SASL-IR" not in before_login.capabilities
        before_login.shutdown()

        async def main() -> None:
            async with running_poller(db_path, oauth_account(server, issuer, secrets_dir, "oauthbearer")) as poller:
                await until(lambda: processed(db_path) == 1, what="mail processed")
                assert poller.stats["failures"] == 0

        asyncio.run(asyncio.wait_for(main(), 60))
        assert login_methods(server) == ["OAUTHBEARER"]


def test_an_expired_token_is_refreshed_mid_run_and_nothing_is_lost_or_taken_twice(
    oauth_dovecot: Dovecot, issuer: Issuer, secrets_dir: Path, db_path: Path,
) -> None:
    """Access tokens live 2 s and rotate their refresh token; the server drops the session
    after the first token expired: the poller signs in again with a fresh one and goes on."""
    issuer.access_seconds, issuer.rotate = 2.0, True
    first, second = notices(3, 3), notices(4, 3)
    oauth_dovecot.append(*first)
    acct = oauth_account(oauth_dovecot, issuer, secrets_dir, "xoauth2")
    old_refresh = Path(acct.token_file).read_text().strip()

    async def main() -> None:
        async with running_poller(db_path, acct) as poller:
            await until(lambda: processed(db_path) == 3, what="first mail processed")
            await until(lambda: all(e.expires <= time.time() for e in issuer.access.values()),
                        what="first access token expired")
            await asyncio.to_thread(oauth_dovecot.stop)  # drops the session, as a server restart does
            await asyncio.to_thread(oauth_dovecot.start)
            await asyncio.to_thread(oauth_dovecot.append, *second)
            await until(lambda: processed(db_path) == 6, what="mail after the restart processed")
            await until(lambda: flagged(oauth_dovecot.flags()), what="all flagged")
            assert poller.stats["stored"] == 6

    asyncio.run(asyncio.wait_for(main(), 90))
    assert raw_counts(db_path) == {"opt_out": 6}
    assert query(db_path, "SELECT count(DISTINCT sha256) FROM raw_messages")[0][0] == 6
    assert issuer.grants.count("refresh_token") >= 2
    assert login_methods(oauth_dovecot) == ["XOAUTH2", "XOAUTH2"]
    saved = Path(acct.token_file)
    assert saved.read_text().strip() != old_refresh and saved.read_text().strip() in issuer.refresh
    assert stat.S_IMODE(saved.stat().st_mode) == 0o600


def test_a_refused_access_token_is_replaced_once_on_the_same_connection(
    oauth_dovecot: Dovecot, issuer: Issuer, secrets_dir: Path,
) -> None:
    """The server answers the error challenge; the client acknowledges it, fetches a fresh
    token and signs in on the same connection."""
    from inbox_daemon.intake.imap_auth import sign_in_for
    from inbox_daemon.intake.imap_client import ImapConnection

    acct = oauth_account(oauth_dovecot, issuer, secrets_dir, "oauthbearer")
    sign_in = sign_in_for(acct)

    async def session() -> int:
        conn = ImapConnection(acct, command_timeout=10, connect_timeout=5)
        try:
            await conn.open()
            await sign_in(conn)
            return await conn.select("INBOX")
        finally:
            await conn.close(logout=True, timeout=2)

    async def main() -> None:
        await session()
        issuer.revoke_access(oauth_dovecot.user)  # the cached token is void now; the grant is not
        await asyncio.wait_for(session(), 20)

    asyncio.run(main())
    assert issuer.grants == ["refresh_token", "refresh_token"]
    log = (oauth_dovecot.root / "dovecot.log").read_text()
    assert "Login:" in log.splitlines()[-1] or log.count("Login:") == 2


def test_the_device_grant_respects_interval_and_slow_down(issuer: Issuer, secrets_dir: Path) -> None:
    """RFC 8628 3.5: wait ``interval`` between polls; each ``slow_down`` adds 5 s for good."""
    acct = ImapAccount(name="dev", host="127.0.0.1", username="u@x", tls="none", auth="xoauth2", client_id=CLIENT_ID,
                       client_secret_file=str(secrets_dir / "client_secret"), token_file=str(secrets_dir / "t"),
                       token_url=f"{issuer.url}/token", device_url=f"{issuer.url}/device", scopes=("imap",))
    waits: list[float] = []
    clock = [0.0]

    async def main() -> Secret:
        from inbox_daemon.intake.oauth import device_authorize

        grant = await device_authorize(acct)
        device = issuer.devices[grant.device_code.reveal()]
        device.busy = 1  # the server is loaded: its first answer is slow_down

        async def sleep(seconds: float) -> None:
            waits.append(seconds)
            clock[0] += seconds
            device.last_poll -= seconds  # the issuer sees the time pass
            if len(waits) == 3:
                issuer.approve(grant.user_code, "u@x")

        return await device_poll(acct, grant, sleep=sleep)

    refresh = asyncio.run(asyncio.wait_for(main(), 20))
    assert waits == [1.0, 6.0, 6.0]  # 1: slow_down; 6: authorization_pending; 6: approved
    assert refresh.reveal() in issuer.refresh
    assert repr(refresh) == "Secret(***)" and refresh.reveal() not in f"{refresh} {refresh!r}"


@pytest.mark.parametrize("source", ["file", "systemd-credential"])
def test_app_only_access_with_client_credentials_polls(
    oauth_dovecot: Dovecot, issuer: Issuer, secrets_dir: Path, db_path: Path, source: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Microsoft 365 app-only access: the service principal was given the mailbox; no refresh
    token, a client_credentials grant at every expiry. The client secret is a file, or a
    systemd credential (LoadCredential= puts it in $CREDENTIALS_DIRECTORY, systemd.exec(5))."""
    issuer.register("app-principal", "app-secret-Qw8", mailbox=oauth_dovecot.user)
    credentials = secrets_dir / "credentials"
    credentials.mkdir()
    (credentials / "app_secret").write_text("app-secret-Qw8")
    if source == "file":
        where = {"client_secret_file": str(credentials / "app_secret")}
        monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    else:
        where = {"client_secret_file": "", "client_secret_credential": "app_secret"}
        monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(credentials))
    oauth_dovecot.append(*notices(9, 2))
    acct = oauth_account(oauth_dovecot, issuer, secrets_dir, "xoauth2", grant="client_credentials",
                         client_id="app-principal", token_file="", **where)

    async def main() -> None:
        async with running_poller(db_path, acct):
            await until(lambda: processed(db_path) == 2, what="mail processed")

    asyncio.run(asyncio.wait_for(main(), 60))
    assert raw_counts(db_path) == {"opt_out": 2}
    assert issuer.grants == ["client_credentials"]


def test_a_token_source_refreshes_ahead_of_expiry(issuer: Issuer, secrets_dir: Path) -> None:
    issuer.access_seconds = 100.0
    acct = ImapAccount(name="t", host="127.0.0.1", username="u@x", tls="none", auth="xoauth2", client_id=CLIENT_ID,
                       client_secret_file=str(secrets_dir / "client_secret"), token_file=str(secrets_dir / "t"),
                       token_url=f"{issuer.url}/token")
    Path(acct.token_file).write_text(issuer.refresh_token_for("u@x", CLIENT_ID))
    now = [0.0]
    source = TokenSource(acct, clock=lambda: now[0])

    async def main() -> list[str]:
        got = [(await source.token()).reveal()]
        now[0] = 74.0  # a quarter of the lifetime before expiry: still the cached one
        got.append((await source.token()).reveal())
        now[0] = 75.5  # inside the last quarter: a fresh one, before the old one expires
        got.append((await source.token()).reveal())
        return got

    first, cached, fresh = asyncio.run(main())
    assert first == cached != fresh
    assert issuer.grants == ["refresh_token", "refresh_token"]


@pytest.fixture
def small_disk() -> Iterator[Path]:
    """A real 64 KiB tmpfs (mount(8); root, as CI runs): a disk that can be filled."""
    path = Path(tempfile.mkdtemp(prefix="inbox-oauth-disk-"))
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k,mode=0700", "tmpfs", str(path)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        if os.environ.get("CI"):
            pytest.fail(f"cannot mount a tmpfs: {mounted.stderr.strip()}")
        pytest.skip(f"cannot mount a tmpfs: {mounted.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", str(path)], check=True)
        path.rmdir()


def test_a_rotated_token_the_disk_cannot_take_is_kept_in_memory_and_saved_later(
        issuer: Issuer, secrets_dir: Path, small_disk: Path) -> None:
    """The issuer voids the old refresh token as it rotates (RFC 6749 6), so the new one must
    not be dropped when the token file cannot be written: refreshes go on with it from memory
    and it is saved once there is room."""
    issuer.rotate, issuer.access_seconds = True, 100.0
    token_file = small_disk / "refresh.token"
    token_file.write_text(issuer.refresh_token_for("u@x", CLIENT_ID) + "\n")
    filler = small_disk / "filler"
    with filler.open("wb", buffering=0) as fh:  # the disk full, as a log or a mail spool fills it
        with pytest.raises(OSError):
            while True:
                fh.write(b"x" * 4096)
    acct = ImapAccount(name="shop", host="127.0.0.1", username="u@x", tls="none", auth="xoauth2", client_id=CLIENT_ID,
                       client_secret_file=str(secrets_dir / "client_secret"), token_file=str(token_file),
                       token_url=f"{issuer.url}/token")
    now, log = [0.0], Recorder()
    source = TokenSource(acct, logger=log, clock=lambda: now[0])

    async def main() -> list[str]:
        got = [(await source.token()).reveal()]  # rotated; the save fails
        now[0] = 80.0
        got.append((await source.token()).reveal())  # the void file token would be invalid_grant
        filler.unlink()
        now[0] = 160.0
        got.append((await source.token()).reveal())  # rotated again, and saved
        return got

    tokens = asyncio.run(main())
    assert len(set(tokens)) == 3 and issuer.grants == ["refresh_token"] * 3
    unsaved = log.events("imap_oauth_token_unsaved")
    assert len(unsaved) == 2 and all(f["account"] == "shop" and "space" in f["error"] for f in unsaved)
    saved = token_file.read_text().strip()
    assert saved in issuer.refresh and saved not in str(log.lines)  # the live token, never logged
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600


# -- the daemon and the command line, as operators run them ---------------------------------------


def _config(home: Path, server: Dovecot, issuer: Issuer, secrets_dir: Path) -> Path:
    """An OAuth account (INBOX) and a password account (its own folder) on one Dovecot; logging
    at debug level, so that the scans for secrets see every line the daemon can write."""
    server.create("Other")
    oauth = {
        "name": "seller-oauth", "host": "127.0.0.1", "port": server.port, "tls": "none", "username": server.user,
        "auth": "xoauth2", "client_id": CLIENT_ID, "client_secret_file": str(secrets_dir / "client_secret"),
        "token_file": str(secrets_dir / "refresh.token"), "token_url": f"{issuer.url}/token",
        "device_url": f"{issuer.url}/device", "scopes": ["imap"], "idle": False, "poll_seconds": 0.2,
    }
    password = {"name": "seller-password", "host": "127.0.0.1", "port": server.port, "tls": "none",
                "username": server.user, "password_file": str(secrets_dir / "password"), "mailbox": "Other",
                "idle": False, "poll_seconds": 0.2}
    (secrets_dir / "password").write_text(server.password)
    path = write_config(home / "config.toml", {"smtp": {"recipients": ["optout@sellers.example"]},
                                               "log": {"level": "debug"}})
    with path.open("a") as fh:
        for acct in (oauth, password):
            fh.write("[[imap.accounts]]\n" + "".join(f"{k} = {_toml(v)}\n" for k, v in acct.items()))
    return path


def _toml(value: Any) -> str:
    import json

    return json.dumps(value)


def _cli(config: Path, home: Path, *args: str, **kw: Any) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "INBOX_DAEMON_HOME": str(home)}
    return subprocess.run([EXE, *args, "--config", str(config)], env=env, capture_output=True, text=True, timeout=60, **kw)


def test_a_revoked_grant_is_one_clear_error_while_smtp_and_a_password_account_go_on(
    oauth_dovecot: Dovecot, issuer: Issuer, secrets_dir: Path, tmp_path: Path,
) -> None:
    config = _config(tmp_path, oauth_dovecot, issuer, secrets_dir)
    (secrets_dir / "refresh.token").write_text(issuer.refresh_token_for(oauth_dovecot.user, CLIENT_ID) + "\n")
    first = notices(5, 2)
    oauth_dovecot.append(*first)
    daemon = DaemonProcess(tmp_path, config)
    try:
        daemon.start()
        daemon.wait_count("imap_stored", 2)
        ps_during = subprocess.run(["ps", "axww", "-o", "pid,args"], capture_output=True, text=True).stdout
        issuer.revoke_user(oauth_dovecot.user)
        oauth_dovecot.stop()  # the session ends; signing in again needs the revoked grant
        oauth_dovecot.start()
        error = daemon.wait_event("imap_oauth_grant_invalid", timeout=60)
        assert error["account"] == "seller-oauth" and error["run"] == "inbox-daemon imap authorize seller-oauth"
        assert "invalid_grant" in error["error"]
        # The password account, SMTP intake and lookups go on.
        other = notices(6, 2)
        oauth_dovecot.append(*other, mailbox="Other")
        code, _ = daemon.send(notices(7, 1)[0])
        assert code == 250
        stored = daemon.wait_count("imap_stored", 4, timeout=60)
        assert {e["account"] for e in stored[2:]} == {"seller-password"}
        daemon.wait_count("intake_decision", 5, timeout=60)
        assert daemon.query("CHECK nobody@marketplace.amazon.com") == ["OK"]
        test_bad = _cli(config, tmp_path, "imap", "test", "seller-oauth")
    finally:
        daemon.ensure_stopped()
    assert len([e for e in daemon.events if e.get("event") == "imap_oauth_grant_invalid"]) == 1
    assert test_bad.returncode == 1
    assert "seller-oauth" in test_bad.stderr and "invalid_grant" in test_bad.stderr
    _no_secret_in(issuer, oauth_dovecot, [str(daemon.events), test_bad.stdout, test_bad.stderr, ps_during])


def _no_secret_in(issuer: Issuer, server: Dovecot, texts: list[str]) -> None:
    import base64

    found = []
    for secret in issuer.secrets() + [server.password]:
        forms = {secret, base64.b64encode(secret.encode()).decode()}
        found += [secret[:6] + "…" for text in texts for form in forms if form in text]
    assert found == []


def test_imap_test_reports_the_counts_and_takes_nothing(
    oauth_dovecot: Dovecot, issuer: Issuer, secrets_dir: Path, tmp_path: Path,
) -> None:
    config = _config(tmp_path, oauth_dovecot, issuer, secrets_dir)
    (secrets_dir / "refresh.token").write_text(issuer.refresh_token_for(oauth_dovecot.user, CLIENT_ID) + "\n")
    oauth_dovecot.append(*notices(8, 3))
    good = _cli(config, tmp_path, "imap", "test", "seller-oauth")
    assert good.returncode == 0, good.stderr
    assert "INBOX: 3 messages; the next poll would take 3" in good.stdout
    assert all(not f for f in oauth_dovecot.flags().values())  # nothing flagged, nothing taken
    daemon = DaemonProcess(tmp_path, config)  # the daemon takes those three and keeps its position
    try:
        daemon.start()
        daemon.wait_count("imap_stored", 3)
        wait_until(lambda: flagged(oauth_dovecot.flags()), timeout=30)  # the position is saved next
        assert daemon.stop() == 0
    finally:
        daemon.ensure_stopped()
    oauth_dovecot.append(*notices(10, 2))
    later = _cli(config, tmp_path, "imap", "test", "seller-oauth")
    assert later.returncode == 0, later.stderr
    assert "INBOX: 5 messages; the next poll would take 2" in later.stdout  # past the daemon's position
    assert [uid for uid, f in oauth_dovecot.flags().items() if not f] == [4, 5]
    (secrets_dir / "password").write_text("wrong horse")
    bad = _cli(config, tmp_path, "imap", "test", "seller-password")
    assert bad.returncode == 1
    assert "seller-password" in bad.stderr and "AUTHENTICATIONFAILED" in bad.stderr.upper()
    unknown = _cli(config, tmp_path, "imap", "test", "nosuch")
    assert unknown.returncode == 78
    closed = tmp_path / "closed.toml"
    closed.write_text(f'[[imap.accounts]]\nname = "gone"\nhost = "127.0.0.1"\nport = {free_port()}\ntls = "none"\n'
                      'username = "u@x"\npassword_file = "/nonexistent"\n')
    down = _cli(closed, tmp_path, "imap", "test", "gone")
    assert down.returncode == 2 and "gone" in down.stderr and "ConnectionRefused" in down.stderr
    _no_secret_in(issuer, oauth_dovecot, [good.stdout, good.stderr, later.stdout, later.stderr, bad.stdout, bad.stderr,
                                          str(daemon.events)])


def test_imap_authorize_runs_the_device_flow_and_stores_the_token_at_0600(
    oauth_dovecot: Dovecot, issuer: Issuer, secrets_dir: Path, tmp_path: Path,
) -> None:
    config = _config(tmp_path, oauth_dovecot, issuer, secrets_dir)
    token_file = secrets_dir / "refresh.token"
    assert not token_file.exists()
    env = {**os.environ, "INBOX_DAEMON_HOME": str(tmp_path)}
    proc = subprocess.Popen([EXE, "imap", "authorize", "seller-oauth", "--config", str(config)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        shown = proc.stdout.readline() + proc.stdout.readline()
        code = shown.split("enter the code ")[1].split()[0]
        ps_waiting = subprocess.run(["ps", "axww", "-o", "pid,args"], capture_output=True, text=True).stdout
        assert str(proc.pid) in [line.split()[0] for line in ps_waiting.splitlines()[1:]]  # it is listed
        assert f"{issuer.url}/activate" in shown
        issuer.approve(code, oauth_dovecot.user)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    assert token_file.read_text().strip() in issuer.refresh
    _no_secret_in(issuer, oauth_dovecot, [shown, out, err, ps_waiting])
    good = _cli(config, tmp_path, "imap", "test", "seller-oauth")  # the stored token signs in
    assert good.returncode == 0, good.stderr

