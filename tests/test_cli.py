"""The command line as an operator uses it: help everywhere, clear exit codes."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.support.daemon import EXE

COMMANDS = [
    [], ["serve"], ["parse"], ["check"], ["db"], ["db", "upgrade"], ["blocklist"], ["blocklist", "list"],
    ["blocklist", "show"], ["blocklist", "remove"], ["blocklist", "export"], ["messages"], ["messages", "list"],
    ["messages", "show"], ["import"], ["privacy"], ["privacy", "init"], ["privacy", "purge"], ["privacy", "rotate-key"],
]


def run(*args: str, home: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = None
    if home is not None:
        import os

        env = {**os.environ, "INBOX_DAEMON_HOME": str(home)}
    return subprocess.run([EXE, *args], capture_output=True, text=True, timeout=60, env=env)


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "top")
def test_every_command_has_help(command: list[str]) -> None:
    proc = run(*command, "--help")
    assert proc.returncode == 0 and "Usage:" in proc.stdout
    if command and command[0] not in ("db", "blocklist", "messages") and command != ["privacy"]:
        assert "--config" in proc.stdout


def test_check_without_a_daemon_is_exit_2(tmp_path: Path) -> None:
    proc = run("check", "abcdefghijklmno@marketplace.amazon.com", home=tmp_path)
    assert proc.returncode == 2 and "cannot ask the daemon" in proc.stderr


def test_parse_exit_codes(tmp_path: Path) -> None:
    notice = tmp_path / "n.eml"
    notice.write_bytes(b"From: a@b.example\r\nSubject: hello\r\n\r\nnot a notice\r\n")
    ok = run("parse", "--json", str(notice))
    assert ok.returncode == 0 and '"kind": "not_opt_out"' in ok.stdout
    missing = run("parse", str(notice), str(tmp_path / "missing.eml"))
    assert missing.returncode == 2


def test_db_upgrade_then_empty_listings(tmp_path: Path) -> None:
    assert run("db", "upgrade", home=tmp_path).returncode == 0
    assert (tmp_path / "inbox-daemon.db").exists()
    listing = run("blocklist", "list", home=tmp_path)
    assert listing.returncode == 0 and listing.stdout == ""
    shown = run("messages", "show", "42", home=tmp_path)
    assert shown.returncode == 1 and "no such message" in shown.stdout


def test_config_on_the_group_and_json_on_listings(tmp_path: Path) -> None:
    """``inbox-daemon --config PATH VERB`` reads that file as ``VERB --config PATH`` does; a
    command's own --config wins; --json prints one JSON object per line, never a secret."""
    import json
    import os

    db = tmp_path / "elsewhere.db"
    config = tmp_path / "c.toml"
    config.write_text(f'[database]\nurl = "sqlite:///{db}"\n')
    env = {**os.environ, "INBOX_DAEMON_HOME": str(tmp_path / "home")}

    def cli(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        return subprocess.run([EXE, *args], capture_output=True, text=True, timeout=60, env=env, input=stdin)

    assert cli("--config", str(config), "db", "upgrade").returncode == 0 and db.exists()
    assert cli("--config", str(config), "users", "add", "ann", "--role", "viewer", stdin="long enough pw\n").returncode == 0
    assert cli("--config", str(config), "sellers", "add", "acme", "--forwarder", "ops@acme.example").returncode == 0
    users = [json.loads(line) for line in cli("--config", str(config), "users", "list", "--json").stdout.splitlines()]
    assert [(u["name"], u["role"]) for u in users] == [("ann", "viewer")] and "password_hash" not in users[0]
    sellers = cli("sellers", "list", "--json", "--config", str(config)).stdout.splitlines()
    assert json.loads(sellers[0])["forwarders"] == ["ops@acme.example"]
    trail = [json.loads(line) for line in cli("--config", str(config), "audit", "--json").stdout.splitlines()]
    assert {t["action"] for t in trail} >= {"user_add", "seller_add", "forwarder_add"}
    assert cli("--config", str(tmp_path / "nope.toml"), "sellers", "list", "--config", str(config)).returncode == 0
    assert cli("--config", str(tmp_path / "nope.toml"), "sellers", "list").returncode == 78
    assert cli("users", "list").stdout == ""  # without --config: the embedded database, not the other one
    short = cli("--config", str(config), "users", "add", "bo", "--role", "operator", stdin="short\n")
    assert short.returncode == 2 and "at least 8 characters" in short.stderr
    assert "bo\t" not in cli("--config", str(config), "users", "list").stdout


def _leaves(group: object, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], object]]:
    import click

    if isinstance(group, click.Group):
        return [leaf for name, command in sorted(group.commands.items()) for leaf in _leaves(command, (*path, name))]
    return [(path, group)]


def test_every_command_takes_config_and_every_list_and_show_command_json() -> None:
    """``--config`` on each command as on the group; ``--json`` wherever a command lists or
    shows something (``audit`` lists the trail, ``forwarders pending`` the confirmations)."""
    import click

    from inbox_daemon.cli import cli

    leaves = _leaves(cli)
    listing = [path for path, _ in leaves if path[-1] in ("list", "show", "pending") or path == ("audit",)]
    assert len(listing) >= 12, listing  # the walk found the commands
    for path, command in leaves:
        assert isinstance(command, click.Command)
        options = {o for param in command.params for o in getattr(param, "opts", [])}
        assert "--config" in options, path
        assert path not in listing or "--json" in options, path


def test_privacy_init_makes_one_key_file_at_0600_and_keeps_it(tmp_path: Path) -> None:
    first = run("privacy", "init", home=tmp_path / "home")
    assert first.returncode == 0 and "(created)" in first.stdout, first.stderr
    key = tmp_path / "home" / "privacy.key"
    content = key.read_bytes()
    assert key.stat().st_mode & 0o777 == 0o600
    again = run("privacy", "init", home=tmp_path / "home")
    assert "(exists)" in again.stdout and key.read_bytes() == content
    key.chmod(0o644)
    refused = run("privacy", "init", home=tmp_path / "home")
    assert refused.returncode == 1 and "open to others" in refused.stderr and content.decode() not in refused.stderr


def test_a_list_with_a_row_that_is_no_csv_ends_with_its_line_not_a_traceback(tmp_path: Path) -> None:
    assert run("db", "upgrade", home=tmp_path).returncode == 0
    listed = tmp_path / "list.csv"
    listed.write_bytes(b"order_id,email\n111-2222222-3333333,\n" + b"x" * (10 * 2**20) + b",\n")
    done = run("blocklist", "import", str(listed), "--by", "test", home=tmp_path)
    assert done.returncode == 1, done.stderr
    assert "line 3: field larger than field limit" in done.stderr and "Traceback" not in done.stderr
