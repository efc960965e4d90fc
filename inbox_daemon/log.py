"""structlog set-up: JSON lines off a TTY, a readable console on one; secrets redacted."""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

__all__ = ["configure_logging", "get_logger"]

_SECRET_KEYS = frozenset({"password", "passwd", "secret", "token", "authorization"})


def _redact(_logger: Any, _name: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """Never write a secret (a password, a token), whatever a caller bound: logs travel far."""
    for key in event:
        if key.lower() in _SECRET_KEYS:
            event[key] = "***"
    return event


def configure_logging(level: str = "info", fmt: str = "auto", stream: Any = None) -> None:
    """Route structlog (and stdlib logging from aiosmtpd, SQLAlchemy…) to one stream."""
    out = stream or sys.stderr
    console = fmt == "console" or (fmt == "auto" and out.isatty())
    renderer: Any = structlog.dev.ConsoleRenderer() if console else structlog.processors.JSONRenderer()
    numeric = logging.getLevelName(level.upper())
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            _redact,
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(file=out),
        cache_logger_on_first_use=True,
    )
    # Libraries log through stdlib logging; keep their warnings, in plain text on the same stream.
    logging.basicConfig(stream=out, level=max(numeric, logging.WARNING), format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("mail.log").setLevel(logging.WARNING)  # aiosmtpd's per-command chatter


def get_logger(**context: Any) -> Any:
    """A logger with context bound (component, peer, sha256…)."""
    return structlog.get_logger("inbox_daemon").bind(**context)
