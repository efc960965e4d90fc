"""The blocklist's stored form of a key: its keyed pseudonym in hex, never the plain text.

Amazon's Data Protection Policy asks that buyer data is never stored unprotected: the
``opt_outs.email`` and ``opt_outs.order_id`` columns, the change feed's entries and the audit
subjects hold ``BuyerKey.stored`` (HMAC-SHA-256 under the privacy key, 128 bits, hex), so a dump
or a backup alone names no buyer. Every entry point that takes a key from outside (a notice, a
CSV row, an operator's ``blocklist`` argument, a learnt address) converts it here.

The key ring travels with the session (``Store`` puts it in ``session.info``): a store without
one refuses blocklist work rather than write a plain key.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy.ext.asyncio import AsyncSession

from inbox_daemon.notices.result import Buyer

from .. import keys

__all__ = ["INFO", "ring", "stored", "given_form", "stored_buyers", "stored_text", "stored_raw"]

INFO = "inbox_daemon.pseudonyms"


def ring(session: AsyncSession) -> keys.Pseudonyms:
    """The session's key ring; RuntimeError when the store was opened without one."""
    found = session.info.get(INFO)
    if found is None:
        raise RuntimeError("the store has no privacy key (open it with daemon.open_store): blocklist keys are stored as pseudonyms")
    return found  # type: ignore[no-any-return]


def stored(session: AsyncSession, key: keys.BuyerKey) -> str:
    """The stored form of a parsed key."""
    return key.stored(ring(session))


def given_form(keyring: keys.Pseudonyms, kind: keys.Kind, given: str | None) -> str | None:
    """The stored form of a buyer's key as a notice or an import gives it: a plain key
    (``keys``), or a pseudonym already (an import of ``blocklist export``, whose key id the CSV
    reader checked); None when it is neither. A notice never yields 32 hex digits: an address has
    an "@", an order id dashes. The key ring is given, not a session's: an import digests its
    batches in another process (``processing.csvfile.DigestingReader``)."""
    if not given:
        return None
    if keys.is_stored(given):
        return given
    parsed = keys.BuyerKey.email(given) if kind == "email" else keys.BuyerKey.order(given)
    return None if parsed is None else parsed.stored(keyring)


def stored_buyers(keyring: keys.Pseudonyms, buyers: Iterable[Buyer]) -> list[Buyer]:
    """The buyers with their keys in stored form (``given_form``), marketplaces as they are."""
    return [Buyer(given_form(keyring, "email", b.email), given_form(keyring, "order", b.order_id), b.marketplace)
            for b in buyers]


def stored_text(session: AsyncSession, kind: keys.Kind, text: str) -> str:
    """The stored form of what an operator typed: a key (parsed first), or any other text
    digested as given, which finds a row the migration to pseudonyms digested that way (one
    written before every key was validated)."""
    parsed = keys.BuyerKey.order(text) if kind == "order" else keys.BuyerKey.email(text)
    if parsed is not None:
        return stored(session, parsed)
    text = text.strip()
    return stored_raw(ring(session), kind, text.lower() if kind == "email" else text)


def stored_raw(keyring: keys.Pseudonyms, kind: keys.Kind, value: str) -> str:
    """The stored form of a value that is no valid key (a row written before every key was
    validated): the same digest over ``kind:value`` as given, so it still names its row."""
    return keys.BuyerKey(kind, value).stored(keyring)
