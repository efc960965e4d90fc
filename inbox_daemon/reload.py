"""What a configuration reload (SIGHUP) may change in a running daemon, and what it may not.

Safe: ``log.level`` and the admission rules of ``[security]`` (which forwarders count, rate
limits, relay and DKIM domains): they are read per message, so a new value applies from the
next message on. Everything else (listeners, database, parser, IMAP accounts, log format) is
bound into running parts; a changed value is reported and needs a restart.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, fields
from typing import Any

from .config import Config

__all__ = ["Reload", "plan_reload", "RELOADABLE"]

RELOADABLE = ("log.level", "security.")  # a dotted key, or a section prefix ending in "."


@dataclass(frozen=True)
class Reload:
    config: Config  # the running config with the safe changes applied
    applied: tuple[str, ...]  # dotted keys that changed and now apply
    ignored: tuple[str, ...]  # dotted keys that changed and need a restart


def plan_reload(running: Config, new: Config) -> Reload:
    """Compare the running config with a freshly read one, key by key."""
    changed = [key for key in _keys(running) if _get(running, key) != _get(new, key)]
    applied = tuple(k for k in changed if k.startswith(RELOADABLE))
    ignored = tuple(k for k in changed if k not in applied)
    config = dataclasses.replace(
        running,
        log=dataclasses.replace(running.log, level=new.log.level),
        security=new.security,
    )
    return Reload(config, applied, ignored)


def _keys(cfg: Config) -> list[str]:
    """``section.key`` for every setting; ``imap.accounts`` as one key."""
    keys = []
    for section in fields(cfg):
        value = getattr(cfg, section.name)
        if dataclasses.is_dataclass(value):
            keys += [f"{section.name}.{f.name}" for f in fields(value)]
    return keys


def _get(cfg: Config, key: str) -> Any:
    section, name = key.split(".", 1)
    return getattr(getattr(cfg, section), name)
