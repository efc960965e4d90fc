"""Config: TOML + environment, validated once; a bad key or value names itself (exit 78)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from inbox_daemon.config import load_config, query_tcp_address
from inbox_daemon.errors import ConfigError
from tests.support.daemon import EXE


def test_embedded_defaults_without_any_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("INBOX_DAEMON_HOME", str(tmp_path / "state"))
    cfg = load_config(environ={})
    assert cfg.source == "embedded defaults"
    assert cfg.database_url == f"sqlite:///{tmp_path / 'state' / 'inbox-daemon.db'}"
    assert cfg.query_socket == str(tmp_path / "state" / "query.sock")
    assert (cfg.smtp.host, cfg.smtp.port, cfg.smtp.recipients) == ("127.0.0.1", 2525, ())
    assert cfg.smtp.max_message_bytes == 10 * 1024 * 1024
    assert query_tcp_address(cfg) is None


def test_web_pages_are_on_at_loopback_only_in_the_embedded_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert load_config(environ={}).web.listen == "127.0.0.1:8025"  # the quick start
    assert load_config(environ={"INBOX_DAEMON_WEB_LISTEN": ""}).web.listen == ""  # turned off
    (tmp_path / "c.toml").write_text("[smtp]\nport = 2600\n")
    assert load_config(tmp_path / "c.toml", environ={}).web.listen == ""  # a config file: off unless set
    (tmp_path / "c.toml").write_text('[web]\nlisten = "0.0.0.0:9000"\ntrusted_proxy_header = "X-Remote-User"\n')
    assert load_config(tmp_path / "c.toml", environ={}).web.listen == "0.0.0.0:9000"
    for bad in ('listen = "nope"', 'trusted_proxy_header = "X Remote: User"', "session_hours = 0"):
        (tmp_path / "c.toml").write_text(f"[web]\n{bad}\n")
        with pytest.raises(ConfigError, match="web."):
            load_config(tmp_path / "c.toml", environ={})


def test_file_then_environment(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[smtp]\nport = 2600\nrecipients = ["a@x.example"]\n[query]\ntcp = "127.0.0.1:7400"\n')
    cfg = load_config(path, environ={"INBOX_DAEMON_SMTP_PORT": "2700", "INBOX_DAEMON_SECURITY_REQUIRE_REGISTERED_FORWARDER": "false"})
    assert cfg.source == str(path)
    assert cfg.smtp.port == 2700  # the environment wins
    assert cfg.smtp.recipients == ("a@x.example",)
    assert query_tcp_address(cfg) == ("127.0.0.1", 7400)


def test_search_path_in_working_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "inbox-daemon.toml").write_text("[smtp]\nport = 2999\n")
    assert load_config(environ={}).smtp.port == 2999


@pytest.mark.parametrize(
    ("toml", "env", "names"),
    [
        ("[smtp]\nprot = 25\n", {}, "smtp.prot"),
        ("[smtp]\nport = \"25\"\n", {}, "smtp.port"),
        ("[smtp]\nport = 70000\n", {}, "smtp.port"),
        ("[nonsense]\n", {}, "nonsense"),
        ("", {"INBOX_DAEMON_SMTP_PORT": "twenty"}, "smtp.port"),
        ("", {"INBOX_DAEMON_BOGUS_KEY": "1"}, "INBOX_DAEMON_BOGUS_KEY"),
        ("[security]\nforwarder_rate_per_hour = -1\n", {}, "security.forwarder_rate_per_hour"),
        ("[security]\nrequire_dkim = \"yes\"\n", {}, "security.require_dkim"),
        ("[database]\nurl = \"mysql://x\"\n", {}, "database.url"),
        ("[query]\ntcp = \"nohost\"\n", {}, "query.tcp"),
        ("[intake]\nclaim_seconds = 0.5\n", {}, "intake.claim_seconds"),
        ("[intake]\nbytes_in_flight = 1000\n", {}, "intake.bytes_in_flight"),
        ("[[imap.accounts]]\nhost = \"imap.example\"\nusername = \"u\"\n", {}, "password"),
        ("[[imap.accounts]]\nhost = \"imap.example\"\nusername = \"u\"\npassword = \"p\"\ntls = \"none\"\n", {}, "loopback"),
        ("not toml [", {}, "not valid TOML"),
    ],
)
def test_bad_settings_name_themselves(tmp_path: Path, toml: str, env: dict[str, str], names: str) -> None:
    path = tmp_path / "c.toml"
    path.write_text(toml)
    with pytest.raises(ConfigError, match=names.replace(".", r"\.").replace("[", r"\[")):
        load_config(path, environ=env)


def test_imap_accounts_parse(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text(
        '[[imap.accounts]]\nname = "a"\nhost = "127.0.0.1"\nport = 1143\ntls = "none"\nusername = "u"\n'
        'password = "secret"\non_stored = "move"\nmove_to = "Done"\nidle = false\n'
    )
    (acct,) = load_config(path, environ={}).imap.accounts
    assert (acct.name, acct.port, acct.tls, acct.on_stored, acct.move_to, acct.idle) == ("a", 1143, "none", "move", "Done", False)
    assert "secret" not in repr(acct)


def test_cli_exits_78_with_one_line_naming_the_key(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text("[smtp]\nmax_message_bytes = -1\n")
    proc = subprocess.run([EXE, "serve", "--config", str(path)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 78
    assert proc.stderr.strip().count("\n") == 0
    assert "smtp.max_message_bytes" in proc.stderr


def test_security_settings_parse_from_file_and_environment(tmp_path: Path) -> None:
    """require_registered_forwarder = true is accepted (the registry exists to satisfy it)."""
    path = tmp_path / "c.toml"
    path.write_text('[security]\nrequire_registered_forwarder = true\nrelay_domains = ["marketplace.amazon.de"]\n')
    env = {"INBOX_DAEMON_SECURITY_FORWARDER_RATE_PER_HOUR": "30", "INBOX_DAEMON_SECURITY_REQUIRE_DKIM": "yes"}
    security = load_config(path, environ=env).security
    assert security.require_registered_forwarder and security.require_dkim
    assert (security.relay_domains, security.forwarder_rate_per_hour) == (("marketplace.amazon.de",), 30)
    assert not load_config(environ={}).security.require_registered_forwarder  # the quick start


def test_unusable_parser_module_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[parser]\nmodule = "no_such_parser_module"\n')
    proc = subprocess.run([EXE, "serve", "--config", str(path)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 78
    assert "parser.module" in proc.stderr and "Traceback" not in proc.stderr
