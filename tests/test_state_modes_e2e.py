"""File modes of the daemon's state under umask 022, with a real daemon process: the state
directory 0750, the SQLite database and its WAL/SHM 0600 (0640 with ``security.group``), the
query socket 0660; modes left world-readable by an older version are tightened at start."""

from __future__ import annotations

import grp
import os
import random
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.support.daemon import DaemonProcess, write_config
from tests.support.notices import opt_out_notice, order_id, relay_address


@contextmanager
def umask(value: int) -> Iterator[None]:
    old = os.umask(value)  # the daemon process inherits it
    try:
        yield
    finally:
        os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def run_and_look(home: Path, config: Path) -> dict[str, tuple[int, int]]:
    """Start a daemon under umask 022, store a message, return {name: (mode, gid)} while it runs."""
    daemon = DaemonProcess(home, config)
    try:
        with umask(0o022):
            daemon.start()
        rng = random.Random(70)
        assert daemon.send(opt_out_notice(order_id(rng), relay_address(rng)))[0] == 250
        daemon.wait_event("intake_decision", outcome="opt_out")
        names = {"dir": home, "db": home / "inbox-daemon.db", "wal": home / "inbox-daemon.db-wal",
                 "shm": home / "inbox-daemon.db-shm", "socket": Path(daemon.socket_path)}
        return {k: (mode(p), p.stat().st_gid) for k, p in names.items()}
    finally:
        daemon.ensure_stopped()


def test_modes_without_a_group_under_umask_022(tmp_path: Path) -> None:
    home = tmp_path / "home"
    seen = run_and_look(home, write_config(tmp_path / "c.toml", {"smtp": {"max_connections": 8}}))
    assert {k: oct(m) for k, (m, _) in seen.items()} == {
        "dir": "0o750", "db": "0o600", "wal": "0o600", "shm": "0o600", "socket": "0o660"}


def test_modes_with_a_group_and_world_readable_leftovers_tightened(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir(mode=0o755)
    os.chmod(home, 0o755)  # as an older version left them
    (home / "inbox-daemon.db").touch()
    os.chmod(home / "inbox-daemon.db", 0o644)
    group = grp.getgrgid(os.getgid()).gr_name  # a group this process belongs to
    seen = run_and_look(home, write_config(tmp_path / "c.toml", {"security": {"group": group}}))
    assert {k: oct(m) for k, (m, _) in seen.items()} == {
        "dir": "0o750", "db": "0o640", "wal": "0o640", "shm": "0o640", "socket": "0o660"}
    assert {gid for _, gid in seen.values()} == {os.getgid()}


def test_db_upgrade_gives_the_state_its_modes_and_leaves_other_folders_alone(tmp_path: Path) -> None:
    """``db upgrade`` is often the first command of a deployment: the state it creates has the
    daemon's modes, and with an explicit database URL it makes no state folder of its own."""
    embedded = DaemonProcess(tmp_path / "home", write_config(tmp_path / "e.toml", {}))
    with umask(0o022):
        assert embedded.cli("db", "upgrade").returncode == 0
    assert (oct(mode(tmp_path / "home")), oct(mode(tmp_path / "home" / "inbox-daemon.db"))) == ("0o750", "0o600")

    elsewhere = tmp_path / "db" / "inbox.db"
    elsewhere.parent.mkdir()
    explicit = DaemonProcess(tmp_path / "unused", write_config(
        tmp_path / "x.toml", {"database": {"url": f"sqlite:///{elsewhere}"}}))
    with umask(0o022):
        assert explicit.cli("db", "upgrade").returncode == 0
    assert oct(mode(elsewhere)) == "0o600"
    assert not (tmp_path / "unused").exists()
