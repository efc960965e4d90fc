"""The exception tree, in its own module so that every layer can import it without loops."""

from __future__ import annotations

__all__ = ["InboxDaemonError", "ConfigError", "StoreUnavailable", "StoreRefused", "MessageRejected", "Busy", "LeaseLost", "QueryError"]


class InboxDaemonError(Exception):
    """Base of every error the daemon raises on purpose."""


class ConfigError(InboxDaemonError):
    """The configuration is invalid; the message names the key. Exit status 78 (EX_CONFIG)."""


class StoreUnavailable(InboxDaemonError):
    """The database could not commit; intake answers a temporary failure (SMTP 451)."""


class StoreRefused(ConfigError):
    """The database answered and refused these credentials or this database name: the
    configuration is wrong, and retrying will not help (exit 78 like any invalid setting)."""


class MessageRejected(InboxDaemonError):
    """This one message cannot be stored (the database refuses its data); others still can.
    SMTP answers a permanent failure for it alone."""


class Busy(InboxDaemonError):
    """Too much mail waiting (backlog or bytes in flight): SMTP answers 451 4.3.2 and the
    sending MTA holds the mail a while."""


class LeaseLost(InboxDaemonError):
    """Another daemon holds the IMAP mailbox now: this one's late write was refused."""


class QueryError(InboxDaemonError):
    """The query socket could not be reached or answered something unexpected."""
