"""``blocklist``: list, show with evidence and audit trail, remove, export and import."""

from __future__ import annotations

import csv
import sys
from pathlib import Path
import click

from ..store import AuditEntry, OptOutRow, Store
from ..store.blocklist import LEARN, LEARN_CONFLICT
from .common import by_option, emit, fail, iso, json_option, who as login, with_store

__all__ = ["blocklist"]


@click.group()
def blocklist() -> None:
    """Review and change the blocklist."""


def _optout_line(row: OptOutRow) -> str:
    state = "active" if row.active else f"removed {iso(row.removed_at)} by {row.removed_by}: {row.removed_reason}"
    return (f"{row.id}\t{row.order_id or '-'}\t{row.email or '-'}\t{row.marketplace or '-'}\t"
            f"first {iso(row.first_seen)}\tnotices {row.notice_count}\t{state}")


@blocklist.command("list")
@click.option("--all", "show_all", is_flag=True, help="Include removed entries.")
@click.option("--limit", default=100, show_default=True)
@json_option
@with_store
async def blocklist_list(store: Store, show_all: bool, limit: int, as_json: bool) -> None:
    """List opt-outs, oldest first."""
    for row in await store.list_opt_outs(active=None if show_all else True, limit=limit):
        emit(row, _optout_line(row), as_json)


@blocklist.command("show")
@click.argument("key")
@json_option
@with_store
async def blocklist_show(store: Store, key: str, as_json: bool) -> None:
    """Show the opt-outs for an ADDRESS or ORDER-ID, with their evidence."""
    from ..processing.review import blocklist_entries

    entries = await blocklist_entries(store, key)
    if not entries:
        click.echo(f"{key}: not on the blocklist")
        sys.exit(1)
    for entry in entries:
        row, trail = entry.row, entry.trail
        if as_json:
            emit({"opt_out": _fields(row), "evidence": [_fields(e) for e in entry.evidence],
                  "audit": [_fields(a) for a in trail]}, "", True)
            continue
        click.echo(_optout_line(row))
        for line in _address_lines(row, trail):
            click.echo(line)
        for ev in entry.evidence:
            click.echo(f"    evidence: {iso(ev.seen_at)} seller {ev.seller or '-'} reported {row.order_id or row.email} "
                       f"in message {ev.raw_message_id} ({ev.source}, forwarder {ev.forwarder or '-'}, "
                       f"dkim {ev.dkim or 'not checked'})")
        for audit_entry in trail:
            click.echo(f"    audit: {iso(audit_entry.at)} {audit_entry.action} by {audit_entry.actor}: {audit_entry.detail or ''}")


def _fields(record: object) -> dict[str, object]:
    import dataclasses

    return {f.name: getattr(record, f.name) for f in dataclasses.fields(record)}  # type: ignore[arg-type]


def _address_lines(row: OptOutRow, trail: list[AuditEntry]) -> list[str]:
    """Where the row's relay address came from: a CHECK by a sender tool (which client, when)
    or the notices below; and addresses other CHECKs named, held for review."""
    lines = []
    learned = next((e for e in trail if e.action == LEARN and e.subject == row.email), None)
    if learned is not None:
        lines.append(f"    address: {row.email} learned from CHECK by {learned.actor} at {iso(learned.at)}; "
                     "no notice named it")
    elif row.email:
        lines.append(f"    address: {row.email} from notice evidence")
    for entry in trail:
        if entry.action == LEARN_CONFLICT:
            lines.append(f"    held for review: {entry.subject} named by CHECK from {entry.actor} at {iso(entry.at)}, "
                         "not merged")
    return lines


@blocklist.command("remove")
@click.argument("key")
@click.option("--reason", required=True, help="Why (kept in the history).")
@click.option("--by", "who", default=None, help="Who removes it (default: the login name).")
@with_store
async def blocklist_remove(store: Store, key: str, reason: str, who: str | None) -> None:
    """Remove an ADDRESS or ORDER-ID from the blocklist (history is kept)."""
    from ..processing.review import remove_from_blocklist

    if not reason.strip():
        raise click.UsageError("--reason must not be empty")
    entries = await remove_from_blocklist(store, key, reason=reason, who=login(who))
    if not entries:
        click.echo(f"{key}: not on the blocklist")
        sys.exit(1)
    click.echo(f"removed {key}: {len(entries)} key(s) no longer blocked")


@blocklist.command("export")
@click.option("--csv", "as_csv", is_flag=True, required=True, help="CSV on standard output.")
@with_store
async def blocklist_export(store: Store, as_csv: bool) -> None:
    """Export the blocklist, removed entries included: keys as the pseudonyms the database holds,
    with the key id of the privacy key they were made with (``import`` takes them back)."""
    key_id = _key_id(store)
    out = csv.writer(sys.stdout)
    out.writerow(["order_id", "email", "marketplace", "first_seen", "last_seen", "notice_count", "key_id"])
    async for row in store.export_rows():
        out.writerow([row.order_id or "", row.email or "", row.marketplace or "", iso(row.first_seen),
                      iso(row.last_seen), row.notice_count, key_id])


def _key_id(store: Store) -> str:
    """The privacy key's id: its check value, which the database keeps too (not a secret)."""
    if store.keyring is None:
        fail("the store has no privacy key")
    return store.keyring.check_value()


@blocklist.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@by_option
@with_store
async def blocklist_import(store: Store, file: str, who: str | None) -> None:
    """Import FILE.csv (columns order_id, email[, marketplace, key_id]: as ``export`` writes
    them): plain order ids and addresses, or pseudonyms made with this database's key.
    The file is kept as the evidence of its rows; the audit trail names it, who and when.
    Rows are read and applied in batches (one transaction each) with a progress bar."""
    from ..processing.csvfile import DigestingReader, check
    from ..progress import ListProgress

    data = Path(file).read_bytes()
    try:
        check(data)  # before anything is written: a bad header or bad UTF-8 applies nothing
    except ValueError as exc:
        fail(f"{file}: {exc}")
    key_id = _key_id(store)
    assert store.keyring is not None  # _key_id has checked
    bar = ListProgress(len(data))
    with DigestingReader(data, store.keyring.pseudonym_key, key_id) as reader:
        try:
            try:
                done = await store.import_batches(
                    data, Path(file).name, reader,
                    who=login(who), progress=lambda _, so_far: bar.at(reader.position, so_far.rows, so_far.new),
                    digested=True,
                )
            finally:
                bar.finish()
        except (ValueError, RuntimeError) as exc:  # the reader's: a row that is no CSV, or its process gone
            fail(f"{file}: {exc}; the batches before it are applied, and importing the file again is harmless")
    for why in done.skipped:
        click.echo(f"skipped {why}", err=True)
    click.echo(f"imported {done.rows} rows from {file}: {done.new} new, {done.updated} updated, {len(done.skipped)} skipped")
