"""``serve``, ``parse`` and ``check``: run the daemon, parse as it would, ask it."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Iterator
from typing import Any

import click

from ..errors import ConfigError, QueryError, StoreUnavailable
from ..log import configure_logging
from .common import EX_CONFIG, config_option, load

__all__ = ["serve", "parse", "check"]


@click.command()
@config_option
def serve(config_path: str | None) -> None:
    """Run the daemon: SMTP intake, IMAP pollers, the query socket."""
    from ..systemd import catch_early_hangup

    catch_early_hangup()  # first: a reload (SIGHUP) while starting must not end the process
    cfg = load(config_path)
    configure_logging(cfg.log.level, cfg.log.format, repeat_seconds=cfg.log.repeat_seconds)
    from ..daemon import Daemon
    from ..processing.processor import tune_allocator, tune_collector

    tune_allocator()
    tune_collector()

    try:
        import uvloop  # the query socket's loop when available: ~2.5x lookups/s (bench/lookup.py)
    except ImportError:  # pragma: no cover - not on Windows
        runner: Callable[[Any], Any] = asyncio.run
    else:
        runner = uvloop.run

    async def main() -> int:
        return await Daemon(cfg).run()

    try:
        sys.exit(runner(main()))
    except StoreUnavailable as exc:
        click.echo(f"inbox-daemon: database unavailable at start: {exc}", err=True)
        sys.exit(2)
    except ConfigError as exc:
        click.echo(f"inbox-daemon: config error: {exc}", err=True)
        sys.exit(EX_CONFIG)
    except OSError as exc:
        click.echo(f"inbox-daemon: cannot start: {exc}", err=True)
        sys.exit(2)


@click.command()
@click.option("--json", "as_json", is_flag=True, help="One JSON object per file and line.")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
@config_option
def parse(files: tuple[str, ...], as_json: bool, config_path: str | None) -> None:
    """Parse .eml FILES as the daemon would, without storing anything."""
    from ..notices.report import run_parse_cli

    sys.exit(run_parse_cli(list(files), as_json))


@click.command()
@click.argument("keys", nargs=-1, required=True)
@config_option
def check(keys: tuple[str, ...], config_path: str | None) -> None:
    """Ask the running daemon about relay ADDRESSES or ORDER-IDs (exit 1 if any is blocked).

    ``-`` reads the keys from stdin, one a line (or ``ADDRESS ORDER-ID``), and asks for them pipelined."""
    cfg = load(config_path)
    from ..client import Client

    blocked = False
    try:
        with Client(cfg.query_socket) as client:
            for batch in _key_batches(keys):
                for key, reply in zip(batch, client.check_many(batch)):
                    click.echo(f"{key}\t{reply}")
                    blocked = blocked or reply.blocked
    except QueryError as exc:
        click.echo(f"inbox-daemon: cannot ask the daemon at {cfg.query_socket}: {exc}", err=True)
        sys.exit(2)
    sys.exit(1 if blocked else 0)


def _key_batches(keys: tuple[str, ...], size: int = 10_000) -> Iterator[list[str]]:
    """The keys in pipelined batches; ``-`` stands for stdin's lines (blank ones skipped)."""
    source = (line.strip() for line in sys.stdin) if keys == ("-",) else iter(keys)
    batch: list[str] = []
    for key in source:
        if key:
            batch.append(key)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch
