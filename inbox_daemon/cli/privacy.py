"""``privacy``: the data keys that seal the evidence, and retention (docs/privacy.md)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import click
from tqdm import tqdm

from ..config import Config
from ..errors import ConfigError
from ..privacy import load_keyring
from ..processing.privacy import BATCH, purge, reseal, retention_rule
from ..store import Store
from .common import config_option, fail, iso, load, with_store

__all__ = ["privacy"]


@click.group()
def privacy() -> None:
    """Sealed evidence: rotate data keys, purge what retention says is due."""


@privacy.command("init")
@click.option("--key-file", type=click.Path(dir_okay=False), default=None,
              help="Where to write it (default: privacy.key_file), e.g. the file LoadCredential= reads.")
@config_option
def init(key_file: str | None, config_path: str | None) -> None:
    """Create the privacy key file (0600) if there is none, and say where it is. Back it up:
    without it the blocklist's pseudonyms and the sealed evidence mean nothing."""
    cfg = load(config_path)
    path = Path(key_file) if key_file else cfg.privacy_key_file
    existed = path.exists()
    try:
        ring = load_keyring(path, create=True)
    except ConfigError as exc:
        fail(str(exc))
    click.echo(f"privacy key file {path} ({'exists' if existed else 'created'}); data keys {', '.join(sorted(ring.data_keys))}")


@privacy.command("rotate-key")
@click.option("--resume", is_flag=True, help="Add no key: finish sealing under the current one (after a kill).")
@click.option("--no-reseal", is_flag=True, help="Only add the new data key (copy the key file to every daemon, then --resume).")
@click.option("--retire", is_flag=True, help="At the end, remove data keys no kept message uses any more.")
@click.option("--batch", default=BATCH, show_default=True, help="Messages per transaction.")
@with_store
async def rotate_key(store: Store, cfg: Config, resume: bool, no_reseal: bool, retire: bool, batch: int) -> None:
    """Add a data key, make it current and seal every kept message again under it, a batch at
    a time while the daemon goes on. Every daemon sharing the database needs the new key file
    before messages sealed with it reach it (docs/privacy.md)."""
    ring = store.keyring
    assert ring is not None  # open_store always loads one
    if not resume:
        ring = ring.with_new_data_key()
        ring.save(cfg.privacy_key_file)  # atomically; the old keys stay to open old rows
        store.keyring = ring
        click.echo(f"data key {ring.current} added to {cfg.privacy_key_file} and made current")
    if not no_reseal:
        total = await store.count_to_reseal()
        with tqdm(total=total, unit="msg", desc="reseal", disable=None, mininterval=0.2) as bar:
            done = await reseal(store, plain_only=False, batch=batch, on_batch=bar.update)
        await store.drop_old_pages()
        click.echo(f"{done.resealed} messages sealed under {ring.current}; {done.unreadable} could not be opened here")
    await _report_keys(store, cfg, retire)


async def _report_keys(store: Store, cfg: Config, retire: bool) -> None:
    """Which old keys kept messages still need; with ``retire``, drop the ones none needs."""
    ring = store.keyring
    assert ring is not None
    in_use = await store.key_ids_in_use()
    old = set(ring.data_keys) - {ring.current}
    needed = {k for k in old if in_use.get(k)}
    for key_id in sorted(needed):
        click.echo(f"data key {key_id} still seals {in_use[key_id]} messages: run rotate-key --resume")
    if in_use.get(None):
        click.echo(f"{in_use[None]} messages are still plain: run rotate-key --resume")
    free = old - needed
    if free and retire:
        store.keyring = ring.without_data_keys(free)
        store.keyring.save(cfg.privacy_key_file)
        click.echo(f"retired data keys {', '.join(sorted(free))}")
    elif free:
        click.echo(f"data keys {', '.join(sorted(free))} seal nothing any more: they can be retired (--retire) "
                   "once every daemon runs with this key file")


@privacy.command("purge")
@click.option("--dry-run", is_flag=True, help="Say what is due, delete nothing.")
@click.option("--batch", default=BATCH, show_default=True, help="Messages per transaction.")
@click.option("--now", "now", type=click.DateTime(["%Y-%m-%dT%H:%M:%S%z"]), default=None, hidden=True)
@with_store
async def purge_command(store: Store, cfg: Config, dry_run: bool, batch: int, now: datetime | None) -> None:
    """Delete the bytes of messages older than privacy.retain_days (held ones: retain_days_held);
    the blocklist, its counts and first-seen dates stay."""
    if batch < 1:
        fail("--batch must be at least 1")
    rule = retention_rule(cfg.privacy, now)
    due = await store.purge_due(rule)
    for outcome, count in sorted(due.items()):
        click.echo(f"due\t{outcome}\t{count}")
    click.echo(f"{sum(due.values())} messages received before {iso(rule.now - rule.keep)} are due"
               f" (held ones: before {iso(rule.now - rule.keep_held)})")
    if dry_run:
        return
    purged = 0

    def progress(count: int) -> None:
        nonlocal purged
        purged += count
        click.echo(f"purged {purged}")

    await purge(store, rule, batch=batch, on_batch=progress)
    click.echo(f"purged {purged} messages at {iso(rule.now)}")
