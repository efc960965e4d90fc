"""structlog set-up: JSON lines off a TTY, a readable console on one; secrets redacted."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import MutableMapping
from typing import Any

import structlog

__all__ = ["configure_logging", "get_logger", "set_level", "Throttled"]

_SECRET_KEYS = frozenset({"password", "passwd", "secret", "token", "authorization", "access_token", "refresh_token",
                          "client_secret", "device_code"})
_METHOD_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "warn": logging.WARNING,
                  "error": logging.ERROR, "exception": logging.ERROR, "critical": logging.CRITICAL}
_threshold = [logging.INFO]  # changed in place by set_level: loggers already bound see it


def _filter_level(_logger: Any, method: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """Drop events below the current level. A processor, not structlog's filtering wrapper class,
    because that class is fixed when a logger is bound and a reload (SIGHUP) must reach them all."""
    if _METHOD_LEVELS.get(method, logging.INFO) < _threshold[0]:
        raise structlog.DropEvent
    return event


def set_level(level: str) -> None:
    """Change the level of every logger, bound or not (``log.level`` on a reload)."""
    numeric = logging.getLevelName(level.upper())
    _threshold[0] = numeric
    logging.getLogger().setLevel(max(numeric, logging.WARNING))


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
            _filter_level,
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            _redact,
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.DEBUG),
        logger_factory=structlog.PrintLoggerFactory(file=out),
        cache_logger_on_first_use=True,
    )
    # Libraries log through stdlib logging; keep their warnings, in plain text on the same stream.
    logging.basicConfig(stream=out, level=max(numeric, logging.WARNING), format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("mail.log").setLevel(logging.WARNING)  # aiosmtpd's per-command chatter
    set_level(level)


def get_logger(**context: Any) -> Any:
    """A logger with context bound (component, peer, sha256…)."""
    return structlog.get_logger("inbox_daemon").bind(**context)


class Throttled:
    """A warning that may repeat thousands of times a second (a flood of dropped requests):
    one line per ``interval`` with ``repeated``, how many occurrences it stands for."""

    def __init__(self, logger: Any, event: str, interval: float = 10.0) -> None:
        self._logger, self._event, self._interval = logger, event, interval
        self._count = 0
        self._last = -interval

    def __call__(self, **fields: Any) -> None:
        self._count += 1
        now = time.monotonic()
        if now - self._last >= self._interval:
            self._logger.warning(self._event, repeated=self._count, **fields)
            self._count, self._last = 0, now
