"""What every ``inbox-daemon`` subcommand shares: ``--config``, loading the configuration,
opening the store, exit codes and output formats.

Exit codes: 0 success; 1 not found, refused, or ``check`` found a blocked key; 2 usage or
runtime error (a file that cannot be read, the daemon or the database not answering);
78 (EX_CONFIG) an invalid configuration.
"""

from __future__ import annotations

import asyncio
import functools
import getpass
import inspect
import sys
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, NoReturn, TypeVar

import click

from ..config import Config, load_config
from ..errors import ConfigError, StoreUnavailable
from ..log import configure_logging
from ..store import Store

__all__ = [
    "EX_CONFIG", "config_option", "by_option", "load", "run", "with_store", "open_store", "who", "fail",
    "refusable", "iso", "json_option", "emit",
]

EX_CONFIG = 78
T = TypeVar("T")

def _group_config(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """A command's own ``--config`` wins; else the one given to the group (``inbox-daemon
    --config PATH blocklist list``); else $INBOX_DAEMON_CONFIG; else the search paths."""
    source = ctx.get_parameter_source(param.name or "")
    if source in (click.core.ParameterSource.COMMANDLINE, click.core.ParameterSource.PROMPT):
        return value
    given = (ctx.find_root().obj or {}).get("config_path")
    return given if given is not None else value


config_option = click.option(
    "--config", "config_path", type=click.Path(dir_okay=False), default=None, envvar="INBOX_DAEMON_CONFIG",
    callback=_group_config,
    help="TOML config file (default: ./inbox-daemon.toml, then /etc/inbox-daemon/config.toml, else embedded defaults).",
)
json_option = click.option("--json", "as_json", is_flag=True, help="One JSON object per line instead of text.")


def emit(record: Any, text: str, as_json: bool) -> None:
    """One output line: ``text``, or ``record`` (a dataclass or dict) as a JSON object; times as ISO 8601."""
    if not as_json:
        click.echo(text)
        return
    import dataclasses
    import json

    if dataclasses.is_dataclass(record) and not isinstance(record, type):
        record = {f.name: getattr(record, f.name) for f in dataclasses.fields(record) if f.repr}
    click.echo(json.dumps(record, default=lambda v: iso(v) if hasattr(v, "strftime") else str(v), ensure_ascii=False))
by_option = click.option("--by", "who", default=None, help="Who does it, for the audit trail (default: login name).")


def load(path: str | None) -> Config:
    """The configuration, or exit 78 with one line naming the bad key."""
    try:
        cfg = load_config(path)
        if cfg.parser.module:  # a parser that cannot be imported is a config error, not a crash
            from ..processing import load_parser

            load_parser(cfg.parser.module)
        return cfg
    except ConfigError as exc:
        click.echo(f"inbox-daemon: config error: {exc}", err=True)
        sys.exit(EX_CONFIG)


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run one coroutine; a store that cannot be reached is a clear error, exit 2."""
    try:
        return asyncio.run(coro)
    except StoreUnavailable as exc:
        click.echo(f"inbox-daemon: database unavailable: {exc}", err=True)
        sys.exit(2)
    except ConfigError as exc:  # StoreRefused too: wrong credentials or no such database
        click.echo(f"inbox-daemon: config error: {exc}", err=True)
        sys.exit(EX_CONFIG)


async def open_store(cfg: Config) -> Store:
    """The configured store; an embedded SQLite is upgraded first when allowed."""
    from ..daemon import open_store as open_configured

    return await open_configured(cfg, migrate=cfg.is_embedded_sqlite and cfg.database.auto_upgrade)


def with_store(func: Callable[..., Awaitable[Any]]) -> Callable[..., Any]:
    """Decorator for operator commands: open the configured store, run, close. A function
    with a ``cfg`` parameter gets the Config too."""
    wants_config = "cfg" in inspect.signature(func).parameters

    @functools.wraps(func)
    def wrapper(config_path: str | None, **kwargs: Any) -> Any:
        cfg = load(config_path)
        configure_logging("warning", cfg.log.format)
        if wants_config:
            kwargs["cfg"] = cfg

        async def body() -> Any:
            store = await open_store(cfg)
            try:
                return await func(store, **kwargs)
            finally:
                await store.close()

        return run(body())

    return config_option(wrapper)


def who(given: str | None) -> str:
    return given or getpass.getuser()


def fail(message: str) -> NoReturn:
    click.echo(f"inbox-daemon: {message}", err=True)
    sys.exit(1)


async def refusable(change: Awaitable[T]) -> T:
    """Await a store change; a refusal (no such thing, already there) exits 1 with the reason."""
    try:
        return await change
    except (ValueError, LookupError) as exc:
        fail(str(exc))


def iso(value: Any) -> str:
    """A time as ``YYYY-MM-DDTHH:MM:SSZ``; ``-`` for none."""
    if value is None:
        return "-"
    return str(value.strftime("%Y-%m-%dT%H:%M:%SZ") if hasattr(value, "strftime") else value)
