"""structlog set-up: JSON lines off a TTY, a readable console on one; secrets redacted."""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from collections.abc import Callable, Hashable, MutableMapping
from dataclasses import dataclass, field
from typing import Any

import structlog

__all__ = ["configure_logging", "get_logger", "set_level", "set_repeat_interval", "Throttled"]

_SECRET_KEYS = frozenset({"password", "passwd", "secret", "token", "authorization", "access_token", "refresh_token",
                          "client_secret", "device_code"})
_METHOD_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "warn": logging.WARNING,
                  "error": logging.ERROR, "exception": logging.ERROR, "critical": logging.CRITICAL}
_threshold = [logging.INFO]  # changed in place by set_level: loggers already bound see it
_repeat_seconds = [10.0]  # Throttled's default interval; set_repeat_interval changes it for all


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


def configure_logging(level: str = "info", fmt: str = "auto", stream: Any = None, repeat_seconds: float = 10.0) -> None:
    """Route structlog (and stdlib logging from aiosmtpd, SQLAlchemy…) to one stream."""
    set_repeat_interval(repeat_seconds)
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
    """The one rule for a warning a peer can repeat thousands of times a second (a flood of
    malformed requests, refused connections, deferred messages): at most one line per kind per
    ``interval``. The first occurrence of a kind is logged at once; the ones after it within the
    interval are counted, and a summary line (``summary=True``) at the end of the interval says
    how many were ``suppressed`` — so a flood costs two lines per interval, not one per request.

    ``kind`` splits one event into independent streams (a limit's name, a client); kinds must
    come from a small set. Outside a running event loop the summary waits for the next
    occurrence after the interval (then that line carries ``suppressed``).
    """

    def __init__(self, logger: Any, event: str, interval: float | None = None) -> None:
        self._logger, self._event, self._interval = logger, event, interval
        self._kinds: dict[Hashable, _Kind] = {}

    @property
    def interval(self) -> float:
        return self._interval if self._interval is not None else _repeat_seconds[0]

    def __call__(self, kind: Hashable = None, /, *, occurrences: int = 1, **fields: Any) -> None:
        """``occurrences`` of ``kind`` at once (a sweep may report many), with ``fields``; the
        keyword is the one field name a caller cannot use (``kind`` is positional only, so a
        ``kind=`` field is logged, not taken for the stream)."""
        state = self._kinds.get(kind)
        now = time.monotonic()
        if state is None or now - state.logged >= self.interval:
            suppressed = state.suppressed if state is not None else 0
            if state is not None and state.timer is not None:
                state.timer.cancel()
            extra = {"occurrences": occurrences} if occurrences != 1 else {}
            self._logger.warning(self._event, suppressed=suppressed, **extra, **fields)
            self._kinds[kind] = _Kind(now)
            return
        state.suppressed += occurrences
        state.fields = fields
        if state.timer is None:
            state.timer = _call_later(state.logged + self.interval - now, self._summary, kind)

    def _summary(self, kind: Hashable) -> None:
        state = self._kinds.get(kind)
        if state is None:
            return
        state.timer = None
        if not state.suppressed:
            return  # nothing to tell; the interval still runs from the last line
        self._logger.warning(self._event, suppressed=state.suppressed, summary=True, **state.fields)
        self._kinds[kind] = _Kind(time.monotonic())

    def flush(self) -> None:
        """Write the pending summaries now (at stop: no count is lost)."""
        for kind in list(self._kinds):
            timer = self._kinds[kind].timer
            if timer is not None:
                timer.cancel()
            self._summary(kind)


@dataclass(slots=True)
class _Kind:
    """One kind's pacing: when its last line went out, what was suppressed since."""

    logged: float
    suppressed: int = 0
    fields: dict[str, Any] = field(default_factory=dict)  # the last suppressed occurrence's
    timer: asyncio.TimerHandle | None = None


def _call_later(delay: float, callback: Callable[[Hashable], None], kind: Hashable) -> asyncio.TimerHandle | None:
    """A timer on the running loop, or None outside one (then the next occurrence reports)."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return None
    return loop.call_later(max(delay, 0.0), callback, kind)


def set_repeat_interval(seconds: float) -> None:
    """The interval of every Throttled warning made without its own (``log.repeat_seconds``)."""
    _repeat_seconds[0] = seconds
