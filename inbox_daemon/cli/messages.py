"""``messages`` (kept mail with its outcome and reason) and ``import`` (back-fill archives)."""

from __future__ import annotations

import sys

import click

from ..log import configure_logging
from ..store import RawRecord, Store
from .common import config_option, emit, iso, json_option, load, open_store, run, with_store

__all__ = ["messages", "import_"]

OUTCOMES = ["pending", "opt_out", "not_opt_out", "malformed", "error", "quarantined", "discarded"]


@click.group()
def messages() -> None:
    """Review kept mail with its outcome and reason."""


@messages.command("list")
@click.option("--outcome", type=click.Choice(OUTCOMES))
@click.option("--limit", default=50, show_default=True)
@json_option
@with_store
async def messages_list(store: Store, outcome: str | None, limit: int, as_json: bool) -> None:
    """List kept messages, newest first."""
    for row in await store.list_messages(outcome=outcome, limit=limit):
        emit(row, f"{row.id}\t{iso(row.received_at)}\t{row.source}\t{row.outcome}\t{row.reason or ''}", as_json)


@messages.command("show")
@click.argument("ref")
@click.option("--raw", is_flag=True, help="Print the original bytes.")
@json_option
@with_store
async def messages_show(store: Store, ref: str, raw: bool, as_json: bool) -> None:
    """Show one kept message by id or sha256 prefix."""
    rec = await store.get_message(ref)
    if rec is None:
        click.echo(f"{ref}: no such message")
        sys.exit(1)
    if raw:
        if rec.unreadable:  # purged by retention, or sealed under a key this host lacks
            click.echo(f"{ref}: no bytes to show: {_why(rec)}", err=True)
            sys.exit(1)
        sys.stdout.buffer.write(rec.data)
        return
    names = ("id", "sha256", "source", "envelope_from", "envelope_to", "peer", "message_id",
             "received_at", "times_received", "outcome", "reason", "forwarder", "parser_version")
    if as_json:
        emit({name: getattr(rec, name, None) for name in names}, "", True)
        return
    for name in names:
        value = getattr(rec, name, None)
        click.echo(f"{name}: {iso(value) if hasattr(value, 'isoformat') else value}")
    if rec.unreadable:
        click.echo(f"bytes: {_why(rec)}")


def _why(rec: RawRecord) -> str:
    """Why a kept message has no bytes to show, with the purge date when retention took them."""
    if rec.purged_at is not None:
        return f"purged by retention at {iso(rec.purged_at)} (privacy.retain_days)"
    return str(rec.unreadable)


@click.command("import")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True))
@config_option
def import_(paths: tuple[str, ...], config_path: str | None) -> None:
    """Back-fill from mbox files, Maildir folders and .eml files.

    Exit status: 0 every message was decided (held for review included), 1 some input was
    not taken (unreadable, a symbolic link, not a regular file, over smtp.max_message_bytes),
    2 some stored message could not be processed."""
    cfg = load(config_path)
    configure_logging("warning", cfg.log.format)
    from ..intake.files import ImportSummary, import_paths
    from ..processing import build_flow
    from ..processing.processor import tune_collector

    tune_collector()

    async def body() -> ImportSummary:
        store = await open_store(cfg)
        flow = build_flow(cfg, store)  # the trust rules apply; imports are rate-exempt
        await flow.start()
        try:
            return await import_paths(
                list(paths), flow, progress=sys.stderr.isatty(), max_message_bytes=cfg.smtp.max_message_bytes,
            )
        finally:
            await flow.stop()
            await store.close()

    summary = run(body())
    click.echo(str(summary))
    sys.exit(summary.exit_status)  # 0 all decided (held for review too), 1 input skipped, 2 errors
