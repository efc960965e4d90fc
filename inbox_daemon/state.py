"""File modes of the daemon's state, whatever the umask (docs/threat-model.md, "The database").

Raw mail holds seller and buyer addresses, and the database holds the sellers' secret tokens:
the state directory is 0750, the SQLite database and its WAL/SHM/journal files 0640 when
``security.group`` names the group that may read them (0600 otherwise), the query socket 0660
(sender tools reach it through the daemon's group). SQLite gives the files it creates beside a
database the database's own mode (https://www.sqlite.org/tempfiles.html, unix VFS
``findCreateFileMode``), so the database file is created here first, with its mode.
"""

from __future__ import annotations

import grp
import os
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url

from .config import Config
from .log import get_logger

__all__ = ["secure_state", "DIR_MODE", "SOCKET_MODE", "database_mode"]

DIR_MODE, SOCKET_MODE = 0o750, 0o660
_SIDE_FILES = ("-wal", "-shm", "-journal")


def database_mode(config: Config) -> int:
    """0640 where a group may read the database, else 0600."""
    return 0o640 if config.security.group else 0o600


def _gid(config: Config) -> int | None:
    return grp.getgrnam(config.security.group).gr_gid if config.security.group else None


def _database_path(config: Config) -> Path | None:
    url = make_url(config.database_url)
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return None
    return Path(url.database)


def secure_state(config: Config) -> None:
    """Create the state directory and the SQLite file with their modes, and set the modes (and
    group) of what exists: the database's side files, the query socket. Call before the store
    opens, and again once the daemon's sockets are bound."""
    log = get_logger(component="state")
    gid = _gid(config)
    mode = database_mode(config)
    if config.is_embedded_sqlite and not config.database.url:
        state = Path(config.state_dir)
        state.mkdir(parents=True, exist_ok=True, mode=DIR_MODE)
        _apply(state, DIR_MODE, gid, log)
    database = _database_path(config)
    if database is not None:
        try:
            os.close(os.open(database, os.O_CREAT | os.O_EXCL | os.O_WRONLY, mode))
        except FileExistsError:
            pass
        except FileNotFoundError:  # its directory is missing: the store's own error says so
            return
        for path in [database] + [Path(f"{database}{suffix}") for suffix in _SIDE_FILES]:
            if path.exists():
                _apply(path, mode, gid, log)
    socket_path = Path(config.query_socket)
    if socket_path.is_socket():
        _apply(socket_path, SOCKET_MODE, gid, log)


def _apply(path: Path, mode: int, gid: int | None, log: Any) -> None:
    """chmod (and chgrp) one path. A failure is logged; a database file whose group could not
    be set falls back to 0600 rather than be readable by whatever group it has."""
    try:
        if gid is not None:
            os.chown(path, -1, gid)
    except OSError as exc:
        log.error("state_group_failed", path=str(path), error=str(exc))
        if path.is_file():
            mode = 0o600
    try:
        os.chmod(path, mode)
    except OSError as exc:
        log.warning("state_mode_failed", path=str(path), mode=oct(mode), error=str(exc))
