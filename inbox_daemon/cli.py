"""The ``inbox-daemon`` command: each subcommand maps to a function elsewhere.

Exit codes: 0 success; 1 ``check`` found a blocked key; 2 usage or runtime error (a file that
cannot be read, the daemon not answering); 78 (EX_CONFIG) an invalid configuration.
"""

from __future__ import annotations

import asyncio
import csv
import functools
import inspect
import sys
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import click

from . import __version__
from .config import Config, load_config
from .errors import ConfigError, QueryError, StoreUnavailable
from .log import configure_logging

__all__ = ["main", "cli"]

EX_CONFIG = 78
F = TypeVar("F", bound=Callable[..., Any])

config_option = click.option(
    "--config", "config_path", type=click.Path(dir_okay=False), default=None, envvar="INBOX_DAEMON_CONFIG",
    help="TOML config file (default: ./inbox-daemon.toml, then /etc/inbox-daemon/config.toml, else embedded defaults).",
)


def _config(path: str | None) -> Config:
    try:
        cfg = load_config(path)
        if cfg.parser.module:  # a parser that cannot be imported is a config error, not a crash
            from .intake.parsers import load_parser

            load_parser(cfg.parser.module)
        return cfg
    except ConfigError as exc:
        click.echo(f"inbox-daemon: config error: {exc}", err=True)
        sys.exit(EX_CONFIG)


def _run(coro: Coroutine[Any, Any, Any]) -> Any:
    """Run one coroutine; a store that cannot be reached is a clear error, exit 2."""
    try:
        return asyncio.run(coro)
    except StoreUnavailable as exc:
        click.echo(f"inbox-daemon: database unavailable: {exc}", err=True)
        sys.exit(2)


def with_store(func: Callable[..., Awaitable[Any]]) -> Callable[..., Any]:
    """Decorator for operator commands: open the configured store, run, close. A function
    with a ``cfg`` parameter gets the Config too."""
    wants_config = "cfg" in inspect.signature(func).parameters

    @functools.wraps(func)
    def wrapper(config_path: str | None, **kwargs: Any) -> Any:
        cfg = _config(config_path)
        configure_logging("warning", cfg.log.format)
        if wants_config:
            kwargs["cfg"] = cfg

        async def body() -> Any:
            from .daemon import open_store

            store = await open_store(cfg, migrate=cfg.is_embedded_sqlite and cfg.database.auto_upgrade)
            try:
                return await func(store, **kwargs)
            finally:
                await store.close()

        return _run(body())

    return config_option(wrapper)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="inbox-daemon")
def cli() -> None:
    """Take in Amazon's buyer opt-out notices and keep the blocklist seller tools ask before sending."""


@cli.command()
@config_option
def serve(config_path: str | None) -> None:
    """Run the daemon: SMTP intake, IMAP pollers, the query socket."""
    cfg = _config(config_path)
    configure_logging(cfg.log.level, cfg.log.format)
    from .daemon import Daemon

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


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="One JSON object per file and line.")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
@config_option
def parse(files: tuple[str, ...], as_json: bool, config_path: str | None) -> None:
    """Parse .eml FILES as the daemon would, without storing anything."""
    from .notices.report import run_parse_cli

    sys.exit(run_parse_cli(list(files), as_json))


@cli.command()
@click.argument("keys", nargs=-1, required=True)
@config_option
def check(keys: tuple[str, ...], config_path: str | None) -> None:
    """Ask the running daemon about relay ADDRESSES or ORDER-IDs (exit 1 if any is blocked).

    ``-`` reads the keys from stdin, one a line (or ``ADDRESS ORDER-ID``), and asks for them pipelined."""
    cfg = _config(config_path)
    from .client import Client

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


def _key_batches(keys: tuple[str, ...], size: int = 10_000) -> Any:
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


@cli.group()
def db() -> None:
    """Database schema (Alembic migrations)."""


@db.command("upgrade")
@click.option("--revision", default="head", show_default=True)
@config_option
def db_upgrade(revision: str, config_path: str | None) -> None:
    """Create or upgrade the schema to REVISION."""
    cfg = _config(config_path)
    from .store.migrate import upgrade

    if cfg.is_embedded_sqlite:
        Path(cfg.state_dir).mkdir(parents=True, exist_ok=True)
    try:
        upgrade(cfg.database_url, revision)
    except Exception as exc:
        click.echo(f"inbox-daemon: upgrade failed: {exc}", err=True)
        sys.exit(2)
    click.echo(f"database at {revision}")


@cli.group()
def blocklist() -> None:
    """Review and change the blocklist."""


@blocklist.command("list")
@click.option("--all", "show_all", is_flag=True, help="Include removed entries.")
@click.option("--limit", default=100, show_default=True)
@with_store
async def blocklist_list(store: Any, show_all: bool, limit: int) -> None:
    """List opt-outs, newest first."""
    for row in await store.list_opt_outs(active=None if show_all else True, limit=limit):
        click.echo(_optout_line(row))


@blocklist.command("show")
@click.argument("key")
@with_store
async def blocklist_show(store: Any, key: str) -> None:
    """Show the opt-outs for an ADDRESS or ORDER-ID, with their evidence."""
    rows = await store.find_opt_outs(key)
    if not rows:
        click.echo(f"{key}: not on the blocklist")
        sys.exit(1)
    for row in rows:
        click.echo(_optout_line(row))
        for ev in await store.evidence_details(row.id):
            click.echo(f"    evidence: {_iso(ev.seen_at)} seller {ev.seller or '-'} reported {row.order_id or row.email} "
                       f"in message {ev.raw_message_id} ({ev.source}, forwarder {ev.forwarder or '-'}, "
                       f"dkim {ev.dkim or 'not checked'})")
        for entry in await store.audit_log(opt_out_ids=[row.id]):
            click.echo(f"    audit: {_iso(entry.at)} {entry.action} by {entry.actor}: {entry.detail or ''}")


@blocklist.command("remove")
@click.argument("key")
@click.option("--reason", required=True, help="Why (kept in the history).")
@click.option("--by", "who", default=None, help="Who removes it (default: the login name).")
@with_store
async def blocklist_remove(store: Any, key: str, reason: str, who: str | None) -> None:
    """Remove an ADDRESS or ORDER-ID from the blocklist (history is kept)."""
    import getpass

    if not reason.strip():
        raise click.UsageError("--reason must not be empty")
    entries = await store.remove(key, reason=reason, who=who or getpass.getuser())
    if not entries:
        click.echo(f"{key}: not on the blocklist")
        sys.exit(1)
    click.echo(f"removed {key}: {len(entries)} key(s) no longer blocked")


@blocklist.command("export")
@click.option("--csv", "as_csv", is_flag=True, required=True, help="CSV on standard output.")
@with_store
async def blocklist_export(store: Any, as_csv: bool) -> None:
    """Export the active blocklist."""
    out = csv.writer(sys.stdout)
    out.writerow(["order_id", "email", "marketplace", "first_seen", "last_seen", "notice_count"])
    async for row in store.export_rows():
        out.writerow([row.order_id or "", row.email or "", row.marketplace or "", _iso(row.first_seen),
                      _iso(row.last_seen), row.notice_count])


@cli.group()
def messages() -> None:
    """Review kept mail with its outcome and reason."""


@messages.command("list")
@click.option("--outcome", type=click.Choice(["pending", "opt_out", "not_opt_out", "malformed", "error", "quarantined",
                                              "discarded"]))
@click.option("--limit", default=50, show_default=True)
@with_store
async def messages_list(store: Any, outcome: str | None, limit: int) -> None:
    """List kept messages, newest first."""
    for row in await store.list_messages(outcome=outcome, limit=limit):
        click.echo(f"{row.id}\t{_iso(row.received_at)}\t{row.source}\t{row.outcome}\t{row.reason or ''}")


@messages.command("show")
@click.argument("ref")
@click.option("--raw", is_flag=True, help="Print the original bytes.")
@with_store
async def messages_show(store: Any, ref: str, raw: bool) -> None:
    """Show one kept message by id or sha256 prefix."""
    rec = await store.get_message(ref)
    if rec is None:
        click.echo(f"{ref}: no such message")
        sys.exit(1)
    if raw:
        sys.stdout.buffer.write(rec.data)
        return
    for name in ("id", "sha256", "source", "envelope_from", "envelope_to", "peer", "message_id",
                 "received_at", "times_received", "outcome", "reason", "forwarder", "parser_version"):
        value = getattr(rec, name, None)
        click.echo(f"{name}: {_iso(value) if hasattr(value, 'isoformat') else value}")


@cli.command("import")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True))
@config_option
def import_(paths: tuple[str, ...], config_path: str | None) -> None:
    """Back-fill from mbox files, Maildir folders and .eml files."""
    cfg = _config(config_path)
    configure_logging("warning", cfg.log.format)
    from .intake.files import import_paths
    from .intake.parsers import auto_workers, load_parser
    from .intake.pipeline import Intake
    from .trust import Gatekeeper

    async def body() -> Any:
        from .daemon import open_store

        store = await open_store(cfg, migrate=cfg.is_embedded_sqlite and cfg.database.auto_upgrade)
        # A running daemon follows the change sequence; the trust rules apply (imports are rate-exempt).
        intake = Intake(store, lambda entries: None, Gatekeeper.from_config(cfg.security), load_parser(cfg.parser.module),
                        parse_workers=auto_workers(cfg.parser.workers))
        await intake.start()
        try:
            return await import_paths(list(paths), intake, progress=sys.stderr.isatty())
        finally:
            await intake.stop()
            await store.close()

    summary = _run(body())
    click.echo(str(summary))
    if summary.errors:  # an unreadable path or a message that could not be applied
        sys.exit(2)


def _optout_line(row: Any) -> str:
    state = "active" if row.active else f"removed {_iso(row.removed_at)} by {row.removed_by}: {row.removed_reason}"
    return (f"{row.id}\t{row.order_id or '-'}\t{row.email or '-'}\t{row.marketplace or '-'}\t"
            f"first {_iso(row.first_seen)}\tnotices {row.notice_count}\t{state}")


def _iso(value: Any) -> str:
    if value is None:
        return "-"
    return str(value.strftime("%Y-%m-%dT%H:%M:%SZ") if hasattr(value, "strftime") else value)


def main() -> None:
    cli(prog_name="inbox-daemon")


# The trust commands (issue 5) live in their own module; it imports ``with_store`` from
# here, so it is loaded last.
from .cli_trust import audit, blocklist_import, forwarders, quarantine, sellers  # noqa: E402

for _command in (sellers, forwarders, quarantine, audit):
    cli.add_command(_command)
blocklist.add_command(blocklist_import)

