"""Web users, API tokens, the audit filters and confirmations' lookup, on both engines."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from inbox_daemon.store import Delivery, Store
from inbox_daemon.store.engine import utcnow


def test_users_and_tokens_are_kept_hashed_and_every_change_audited(with_store: Any) -> None:
    async def body(store: Store) -> None:
        assert await store.set_user("ann", "viewer", "$argon2id$h1", who="ops") is True
        assert await store.set_user("ann", "operator", "$argon2id$h2", who="ops") is False  # new password, role
        row = await store.get_user("ann")
        assert row is not None and (row.role, row.password_hash) == ("operator", "$argon2id$h2")
        assert "h2" not in repr(row)
        with pytest.raises(ValueError):
            await store.set_user("bob", "admin", "$argon2id$h", who="ops")
        with pytest.raises(ValueError):
            await store.set_user("bad name", "viewer", "$argon2id$h", who="ops")
        await store.disable_user("ann", who="ops")
        assert (await store.get_user("ann")).disabled_at is not None  # type: ignore[union-attr]
        await store.add_token("shop", "a" * 64, who="ops")
        with pytest.raises(ValueError):
            await store.add_token("shop", "b" * 64, who="ops")
        assert await store.token_name("a" * 64) == "shop" and await store.token_name("b" * 64) is None
        await store.revoke_token("shop", who="ops")
        assert await store.token_name("a" * 64) is None
        with pytest.raises(LookupError):
            await store.revoke_token("shop", who="ops")
        actions = [e.action for e in await store.audit_log(actor="ops")]
        assert actions == ["token_revoke", "token_add", "user_disable", "user_change", "user_add"]
        assert [e.action for e in await store.audit_log(action="token_add")] == ["token_add"]
        assert [e.action for e in await store.audit_log(actor="ops", limit=2, offset=1)] == ["token_add", "user_disable"]

    with_store(body)


def test_outcome_counts_and_messages_by_reason(with_store: Any) -> None:
    async def body(store: Store) -> None:
        saved = await store.save_raw_many([Delivery(b"m%d" % i, "smtp") for i in range(3)])
        for s, reason in zip(saved, ["forwarding confirmation: a@b.example", "other", "forwarding confirmation: c"]):
            await store.mark_error(s.id, reason)  # any outcome will do for the lookup's shape
        assert (await store.outcome_counts(utcnow() - timedelta(hours=1)))["error"] == 3
        found = await store.messages_by_reason("forwarding confirmation", outcome="error", skip_action="done")
        assert [r.id for r in found] == [saved[2].id, saved[0].id] and found[0].data == b"m2"
        await store.add_audit(who="ops", action="done", raw_message_id=saved[2].id)
        found = await store.messages_by_reason("forwarding confirmation", outcome="error", skip_action="done")
        assert [r.id for r in found] == [saved[0].id]
        assert await store.messages_by_reason("forwarding_%", outcome="error", skip_action="done") == []  # no LIKE

    with_store(body)
