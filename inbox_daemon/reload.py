"""What a configuration reload (SIGHUP) may change in a running daemon, what it may not, and
which changes weaken who may add to the blocklist.

Safe: ``log.level`` and the admission rules of ``[security]`` (which forwarders count, rate
limits, relay and DKIM domains): they are read per message, so a new value applies from the
next message on. Everything else (listeners, database, parser, IMAP accounts, log format) is
bound into running parts; a changed value is reported and needs a restart.

A reload is all or nothing. A file that lost a setting the running configuration read from
it, or that sets nothing at all, is refused: a config file is rewritten in place by editors
and configuration management, and one read half-written would silently fall back to the
embedded defaults (``require_registered_forwarder = false``: forged notices would apply).
To drop a setting, write its default value, or restart.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import ipaddress
from dataclasses import dataclass, fields
from typing import Any

from .config import Config, SecurityConfig

__all__ = ["Reload", "plan_reload", "refusal", "weakened", "Weakening", "RELOADABLE", "BASELINE"]

RELOADABLE = ("log.level", "security.")  # a dotted key, or a section prefix ending in "."

# What a start is compared with: the embedded defaults, except that only sellers' notices
# apply, as deploy/config.example.toml sets. The embedded default of false (so that the quick
# start works) is reported at each start.
BASELINE = SecurityConfig(require_registered_forwarder=True)


@dataclass(frozen=True)
class Reload:
    config: Config  # the running config with the safe changes applied
    applied: tuple[str, ...]  # dotted keys that changed and now apply
    ignored: tuple[str, ...]  # dotted keys that changed and need a restart


@dataclass(frozen=True)
class Weakening:
    """One ``[security]`` setting that now lets more through than before."""

    key: str  # dotted, e.g. security.require_dkim
    was: str
    now: str


def plan_reload(running: Config, new: Config) -> Reload:
    """Compare the running config with a freshly read one, key by key."""
    changed = [key for key in _keys(running) if _get(running, key) != _get(new, key)]
    applied = tuple(k for k in changed if k.startswith(RELOADABLE))
    ignored = tuple(k for k in changed if k not in applied)
    config = dataclasses.replace(
        running,
        log=dataclasses.replace(running.log, level=new.log.level),
        security=new.security,
        file_keys=new.file_keys,
    )
    return Reload(config, applied, ignored)


def refusal(running: Config, new: Config) -> str | None:
    """Why ``new`` must not replace ``running`` (a half-written file), or None."""
    if new.source == "embedded defaults":
        return None  # no file then and none now: nothing was read
    if running.file_keys and not new.file_keys:
        return f"config file {new.source} sets nothing (empty or half-written): nothing changed"
    lost = sorted(running.file_keys - new.file_keys) if new.source == running.source else []
    if lost:
        return (f"config file {new.source} no longer sets {', '.join(lost)} (half-written?): nothing changed; "
                "write the default value to return to it, or restart")
    return None


def weakened(before: SecurityConfig, after: SecurityConfig) -> list[Weakening]:
    """Each ``[security]`` setting by which ``after`` admits more than ``before``: a switch
    turned off, a list that names more (relays, sealers, domains), a cap raised or removed."""
    found: list[Weakening] = []

    def add(name: str, was: Any, now: Any) -> None:
        found.append(Weakening(f"security.{name}", _show(was), _show(now)))

    for name in ("require_registered_forwarder", "require_dkim"):
        if getattr(before, name) and not getattr(after, name):
            add(name, True, False)
    for name in ("relay_domains", "dkim_domains", "trusted_arc_sealers"):
        was, now = getattr(before, name), getattr(after, name)
        if any(not any(fnmatch.fnmatchcase(p.lower(), q.lower()) for q in was) for p in now):
            add(name, was, now)
    if _wider_networks(before.trusted_relays, after.trusted_relays):
        add("trusted_relays", before.trusted_relays, after.trusted_relays)
    if before.forwarder_rate_per_hour and not 0 < after.forwarder_rate_per_hour <= before.forwarder_rate_per_hour:
        add("forwarder_rate_per_hour", before.forwarder_rate_per_hour, after.forwarder_rate_per_hour)
    if after.max_buyers_per_notice > before.max_buyers_per_notice:
        add("max_buyers_per_notice", before.max_buyers_per_notice, after.max_buyers_per_notice)
    if before.dkim_keys_file and after.dkim_keys_file != before.dkim_keys_file:
        add("dkim_keys_file", before.dkim_keys_file, after.dkim_keys_file or "DNS")
    if after.group and after.group != before.group:  # another group may read the database
        add("group", before.group, after.group)
    return found


def _wider_networks(before: tuple[str, ...], after: tuple[str, ...]) -> bool:
    """Some address of ``after`` is in none of ``before`` (both validated IP/CIDR lists)."""
    old = [ipaddress.ip_network(n, strict=False) for n in before]
    return any(
        not any(net.version == o.version and net.subnet_of(o) for o in old)  # type: ignore[arg-type]
        for net in (ipaddress.ip_network(n, strict=False) for n in after)
    )


def _show(value: Any) -> str:
    if isinstance(value, tuple):
        return ", ".join(value) or "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value) if value != 0 else "0 (no cap)"


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
