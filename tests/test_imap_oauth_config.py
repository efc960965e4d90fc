"""``[[imap.accounts]]`` with OAuth 2.0: provider presets fill the rest, a grant missing what it
needs is one ConfigError naming the account, and secrets come from files or systemd credentials
and never show in a repr or an error."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from inbox_daemon.config import load_config
from inbox_daemon.errors import ConfigError
from inbox_daemon.intake.oauth import GrantInvalid, Secret, read_secret, save_token


def config(tmp_path: Path, account: str) -> Path:
    path = tmp_path / "c.toml"
    path.write_text("[[imap.accounts]]\n" + account)
    return path


def test_microsoft365_preset_fills_server_endpoints_and_scopes(tmp_path: Path) -> None:
    cfg = load_config(config(tmp_path, 'provider = "microsoft365"\nusername = "o@s.example"\nclient_id = "c"\n'
                                       'tenant = "s.example"\ntoken_file = "/var/lib/x.token"\n'), environ={})
    acct = cfg.imap.accounts[0]
    assert (acct.host, acct.port, acct.tls, acct.auth) == ("outlook.office365.com", 993, "implicit", "xoauth2")
    assert acct.token_url == "https://login.microsoftonline.com/s.example/oauth2/v2.0/token"
    assert acct.device_url == "https://login.microsoftonline.com/s.example/oauth2/v2.0/devicecode"
    assert acct.scopes == ("https://outlook.office365.com/IMAP.AccessAsUser.All", "offline_access")
    assert acct.name == "o@s.example@outlook.office365.com"


def test_app_only_access_takes_the_default_scope_and_needs_a_secret_and_tenant(tmp_path: Path) -> None:
    base = 'provider = "microsoft365"\nusername = "o@s.example"\nclient_id = "c"\ngrant = "client_credentials"\n'
    with pytest.raises(ConfigError, match="needs a client secret"):
        load_config(config(tmp_path, base + 'tenant = "s.example"\n'), environ={})
    with pytest.raises(ConfigError, match="needs tenant"):
        load_config(config(tmp_path, base + 'client_secret_credential = "ms"\n'), environ={})
    cfg = load_config(config(tmp_path, base + 'tenant = "s.example"\nclient_secret_file = "/etc/s"\n'), environ={})
    assert cfg.imap.accounts[0].scopes == ("https://outlook.office365.com/.default",)


def test_gmail_preset(tmp_path: Path) -> None:
    cfg = load_config(config(tmp_path, 'provider = "gmail"\nusername = "o@gmail.com"\nclient_id = "c"\n'
                                       'client_secret_file = "/etc/s"\ntoken_file = "/t"\n'), environ={})
    acct = cfg.imap.accounts[0]
    assert (acct.host, acct.scopes, acct.token_auth) == ("imap.gmail.com", ("https://mail.google.com/",), "client_secret_post")
    assert (acct.port, acct.tls, acct.auth) == (993, "implicit", "xoauth2")
    assert (acct.token_url, acct.device_url) == ("https://oauth2.googleapis.com/token",
                                                 "https://oauth2.googleapis.com/device/code")


def test_the_generic_provider_fills_nothing(tmp_path: Path) -> None:
    """``generic``: an RFC 6749 server of the operator's; host and endpoints are theirs to give."""
    base = 'provider = "generic"\nusername = "o@s.example"\nauth = "oauthbearer"\nclient_id = "c"\ntoken_file = "/t"\n'
    with pytest.raises(ConfigError, match="token_url must be https"):
        load_config(config(tmp_path, base + 'host = "imap.s.example"\n'), environ={})
    cfg = load_config(config(tmp_path, base + 'host = "imap.s.example"\ntoken_url = "https://idp.s.example/token"\n'),
                      environ={})
    acct = cfg.imap.accounts[0]
    assert (acct.host, acct.auth, acct.token_url, acct.device_url, acct.scopes) == (
        "imap.s.example", "oauthbearer", "https://idp.s.example/token", "", ())


@pytest.mark.parametrize(("extra", "message"), [
    ('provider = "yahoo"\n', "provider must be"),
    ('provider = "gmail"\nclient_id = "c"\n', "needs token_file"),
    ('provider = "gmail"\ntoken_file = "/t"\n', "needs client_id"),
    ('provider = "gmail"\nclient_id = "c"\ntoken_file = "/t"\npassword = "p"\n', "takes no password"),
    ('auth = "xoauth2"\nhost = "h"\nclient_id = "c"\ntoken_file = "/t"\ntoken_url = "http://idp.example/token"\n',
     "must be https"),
    ('auth = "kerberos"\nhost = "h"\n', "auth must be"),
    ('host = "h"\n', "exactly one of password"),
])
def test_an_account_missing_what_its_sign_in_needs_is_a_config_error(tmp_path: Path, extra: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(config(tmp_path, 'username = "o@s.example"\n' + extra), environ={})


def test_secrets_come_from_files_or_systemd_credentials_and_never_show(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "ms-secret").write_text("s3cr3t-value\n")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    secret = read_secret(credential="ms-secret")
    assert secret.reveal() == "s3cr3t-value"
    assert "s3cr3t" not in repr(secret) + str(secret) + f"{secret}"
    (tmp_path / "bad").write_bytes(b"x\x00y")
    with pytest.raises(GrantInvalid, match="control characters") as info:
        read_secret(str(tmp_path / "bad"))
    assert "x\x00y" not in str(info.value)
    with pytest.raises(GrantInvalid, match="cannot read"):
        read_secret(str(tmp_path / "missing"))
    monkeypatch.delenv("CREDENTIALS_DIRECTORY")
    with pytest.raises(GrantInvalid, match=r"CREDENTIALS_DIRECTORY is not set .*systemd-run .*LoadCredential=ms-secret:"):
        read_secret(credential="ms-secret")  # outside the service: the error says how to run it


def test_a_saved_token_replaces_the_old_one_whole_at_0600(tmp_path: Path) -> None:
    path = tmp_path / "oauth" / "a.token"
    save_token(str(path), Secret("rt-one"))
    os.chmod(path, 0o644)  # an old file with a looser mode: the new one does not inherit it
    save_token(str(path), Secret("rt-two"))
    assert path.read_text() == "rt-two\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in path.parent.iterdir()] == ["a.token"]  # no temporary left behind


def test_a_save_that_fails_leaves_the_old_token_whole(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The new token is written beside the old one and renamed over it: a disk that fills up
    (or a crash) before the rename leaves the old token as it was, and no temporary file."""
    path = tmp_path / "a.token"
    save_token(str(path), Secret("rt-one"))

    def disk_full(*_args: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", disk_full)
    with pytest.raises(OSError, match="No space"):
        save_token(str(path), Secret("rt-two"))
    assert path.read_text() == "rt-one\n"
    assert [p.name for p in tmp_path.iterdir()] == ["a.token"]


@pytest.mark.skipif(os.geteuid() != 0, reason="only root can hand a file to another user")
def test_a_token_rotated_by_root_stays_the_daemon_users(tmp_path: Path) -> None:
    """An operator running ``imap test`` as root must not leave the daemon a token it cannot read."""
    import pwd

    nobody = pwd.getpwnam("nobody")
    path = tmp_path / "a.token"
    save_token(str(path), Secret("rt-one"))
    os.chown(path, nobody.pw_uid, nobody.pw_gid)
    save_token(str(path), Secret("rt-two"))
    assert (path.stat().st_uid, path.stat().st_gid) == (nobody.pw_uid, nobody.pw_gid)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_oauth_fields_bound_to_a_log_line_are_redacted() -> None:
    import io

    from inbox_daemon.log import configure_logging, get_logger

    import structlog

    out = io.StringIO()
    configure_logging("info", "json", stream=out)
    try:
        get_logger().info("x", access_token="at-abc", refresh_token="rt-abc", client_secret="cs-abc",
                          device_code="dc-abc", held=Secret("sec-abc"))
    finally:
        structlog.reset_defaults()
    line = out.getvalue()
    assert "abc" not in line and line.count("***") >= 5
