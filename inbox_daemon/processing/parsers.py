"""Which parser processing runs (``[parser] module``): the built-in one, or a module that
exposes ``parse_notice(raw) -> ParseResult`` and ``PARSER_VERSION``.

The hook exists so that a parser upgrade can be tried on kept mail (``quarantine
reprocess``) and so that tests can install a parser variant without patching the package.
"""

from __future__ import annotations

import asyncio
import faulthandler
import importlib
import multiprocessing
import os
import signal
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import TypeVar

from ..errors import ConfigError
from ..notices import PARSER_VERSION, ParseResult, parse_notice

T = TypeVar("T")

__all__ = ["Parser", "BUILTIN", "load_parser", "ParsePool", "ParseFailed", "PARSE_TIMEOUT", "auto_workers", "worker_init"]


@dataclass(frozen=True)
class Parser:
    parse: Callable[[bytes], ParseResult]
    version: str
    module: str = "inbox_daemon.notices"  # what a worker process imports to parse


BUILTIN = Parser(parse_notice, PARSER_VERSION)


def auto_workers(configured: int) -> int:
    """``[parser] workers``: -1 means one worker process. Even on one core a process, not a
    thread: a parse that runs away can then be stopped (the worker is killed and replaced),
    and the event loop never waits behind it."""
    return configured if configured >= 0 else 1


def worker_init(parent: int) -> None:
    """Die with the daemon: a SIGKILLed parent must not leave parsers behind (Linux prctl)."""
    try:
        import ctypes

        ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # pragma: no cover - not Linux
        pass
    if os.getppid() != parent:  # the daemon died while this worker was starting
        os._exit(0)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the daemon decides when to stop


def _warm(module: str) -> None:
    importlib.import_module(module)


def _parse_many(module: str, raws: Sequence[bytes], timeout: float,
                also: Callable[[Sequence[bytes]], list[T]] | None = None) -> tuple[list[ParseResult | ParseFailed], bool, list[T] | None]:
    """In a worker: each message under its own deadline (SIGALRM), so one runaway costs one
    ``timeout`` and the rest of the batch goes on. Returns the results, whether a parse ran
    away (the worker is then replaced: a parse cut mid-way may leave the parser's state odd),
    and ``also(raws)`` (None without it, after a runaway, or when it fails): the same bytes,
    one hand-off."""
    parse = importlib.import_module(module).parse_notice
    results: list[ParseResult | ParseFailed] = []
    ran_away = False
    previous = signal.signal(signal.SIGALRM, _on_alarm)
    watchdog = _Watchdog(timeout)
    try:
        for raw in raws:
            watchdog.arm()
            result, cut = _parse_by(parse, raw, timeout)
            results.append(result)
            ran_away = ran_away or cut
    finally:
        watchdog.cancel()  # an idle worker is not stuck
        signal.signal(signal.SIGALRM, previous)
    return results, ran_away, None if also is None or ran_away else _also(also, raws)


def _also(also: Callable[[Sequence[bytes]], list[T]], raws: Sequence[bytes]) -> list[T] | None:
    """The companion work on a batch, None when it fails: its caller then does it itself."""
    try:
        return also(raws)
    except Exception:
        return None


class _Runaway(BaseException):
    """Raised at a message's deadline: a BaseException, so a parser's ``except Exception``
    cannot swallow it."""


_armed = False  # a late SIGALRM (delivered after the parse returned) is ignored


def _on_alarm(_signum: int, _frame: object) -> None:
    if _armed:
        raise _Runaway


def _parse_by(parse: Callable[[bytes], ParseResult], raw: bytes, timeout: float) -> tuple[ParseResult | ParseFailed, bool]:
    """One parse under ``timeout``. SIGALRM interrupts Python code (and ``re``, which checks
    for signals); a parse stuck in C code that never returns to the interpreter is ended by
    the ``_Watchdog``, which exits the worker (the pool then finds it broken)."""
    global _armed
    result: ParseResult | ParseFailed = PARSE_TIMEOUT
    try:
        _armed = True
        signal.setitimer(signal.ITIMER_REAL, timeout)
        result = _parse_one(parse, raw)
        _armed = False
    except _Runaway:
        return result, True
    finally:
        _armed = False
        signal.setitimer(signal.ITIMER_REAL, 0)
    return result, False


class _Watchdog:
    """faulthandler's hard stop (exit) for a parse stuck in C code, which SIGALRM cannot reach.
    Each arming starts a thread and cancels (joins) the one before: 35 us, a sixth of an average
    parse, when it was armed for every message. It is armed for ``timeout + HARD_STOP_GRACE_S``
    and armed again before a message only once half the grace has gone by since: every message
    then has between ``timeout`` + half the grace and ``timeout`` + the grace before the stop."""

    __slots__ = ("timeout", "armed_at")

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self.armed_at: float | None = None

    def arm(self) -> None:
        now = time.monotonic()
        if self.armed_at is None or now - self.armed_at > HARD_STOP_GRACE_S / 2:
            faulthandler.dump_traceback_later(self.timeout + HARD_STOP_GRACE_S, exit=True)
            self.armed_at = now

    def cancel(self) -> None:
        if self.armed_at is not None:
            faulthandler.cancel_dump_traceback_later()
            self.armed_at = None


def _parse_one(parse: Callable[[bytes], ParseResult], raw: bytes) -> ParseResult | ParseFailed:
    try:
        return parse(raw)
    except Exception as exc:  # a parser plug-in's bug stays with its message
        return ParseFailed(f"parser error: {type(exc).__name__}: {exc}"[:300])


@dataclass(frozen=True, slots=True)
class ParseFailed:
    """No result for this message: the reason becomes its ``error`` outcome."""

    reason: str


PARSE_TIMEOUT = ParseFailed("parse timeout")
WORKER_DIED = ParseFailed("parser worker died")
START_LIMIT_S = 120.0  # a worker process that cannot even start and import the parser is broken
HARD_STOP_GRACE_S = 5.0  # past the deadline, a worker whose parse ignores SIGALRM ends itself


class ParsePool:
    """Runs the parser beside the event loop, with a wall-clock limit per message.

    ``workers > 0``: worker processes, a batch per call; inside the worker each message has
    its own deadline (``timeout``), so a runaway costs one timeout, gets ``PARSE_TIMEOUT`` and
    the rest of its batch is parsed on; the worker it ran in is then replaced. A worker that
    dies (or a call past even the whole batch's limit) has each message of its batch parsed
    alone in a fresh worker; the one that fails alone gets ``PARSE_TIMEOUT`` or
    ``WORKER_DIED``: never parsed again in a loop (its outcome becomes ``error``).
    ``workers == 0``: a thread of this process, one message at a time; an overrunning parse
    cannot be stopped there (threads cannot be killed): its message gets ``PARSE_TIMEOUT``
    and the thread finishes in the background.
    """

    def __init__(self, parser: Parser, workers: int, timeout: float = 30.0) -> None:
        self.parser = parser
        self.timeout = timeout
        self._workers = workers
        self._pool: ProcessPoolExecutor | None = None
        self.replaced = 0  # workers killed and replaced after a runaway (tests, metrics)

    async def _executor(self) -> ProcessPoolExecutor:
        """The pool, started and with the parser imported: a worker's start is not parse time."""
        if self._pool is None:
            ctx = multiprocessing.get_context("spawn")  # no fork of a process with threads
            pool = ProcessPoolExecutor(self._workers, mp_context=ctx, initializer=worker_init, initargs=(os.getpid(),))
            loop = asyncio.get_running_loop()
            await asyncio.wait_for(loop.run_in_executor(pool, _warm, self.parser.module), START_LIMIT_S)
            self._pool = pool
        return self._pool

    async def parse_many(self, raws: Sequence[bytes], also: Callable[[Sequence[bytes]], list[T]] | None = None
                         ) -> tuple[list[ParseResult | ParseFailed], list[T] | None]:
        """Parse each of ``raws``; with ``also`` (pure, bounded, module-level work on the same
        bytes), run ``also(raws)`` in the same worker call, off the event loop. Its result is
        None when it could not run there (the caller then does the work itself)."""
        if not raws:
            return [], [] if also is not None else None
        if self._workers == 0:
            results = [await self._in_thread(raw) for raw in raws]
            return results, None if also is None else await self._also_in_thread(also, raws)
        try:
            results, ran_away, extra = await self._in_worker(list(raws), also)
        except (TimeoutError, BrokenProcessPool):
            self._replace()
            return [await self._alone(raw) for raw in raws], None
        if ran_away:
            self._replace()
        return results, extra

    async def _also_in_thread(self, also: Callable[[Sequence[bytes]], list[T]], raws: Sequence[bytes]) -> list[T] | None:
        try:
            return await asyncio.wait_for(asyncio.to_thread(_also, also, raws), self.timeout)
        except TimeoutError:
            return None

    async def _alone(self, raw: bytes) -> ParseResult | ParseFailed:
        try:
            (result,), ran_away, _ = await self._in_worker([raw])
        except TimeoutError:
            self._replace()
            return PARSE_TIMEOUT
        except BrokenProcessPool:
            self._replace()
            return WORKER_DIED
        if ran_away:
            self._replace()
        return result

    def _replace(self) -> None:
        """Kill the workers; the next call starts fresh ones."""
        self.replaced += 1
        self.close(kill=True)

    async def _in_worker(self, raws: list[bytes], also: Callable[[Sequence[bytes]], list[T]] | None = None
                         ) -> tuple[list[ParseResult | ParseFailed], bool, list[T] | None]:
        """One call in a worker. The worker keeps each message's deadline; the limit here is
        only the backstop for a worker that does not answer at all. TimeoutError past it; a
        broken pool (a worker killed from outside) is replaced and the call made once more."""
        loop = asyncio.get_running_loop()
        limit = (self.timeout + HARD_STOP_GRACE_S) * len(raws) + HARD_STOP_GRACE_S
        for attempt in (1, 2):
            call = loop.run_in_executor(await self._executor(), _parse_many, self.parser.module, raws, self.timeout, also)
            try:
                return await asyncio.wait_for(call, limit)
            except BrokenProcessPool:
                self.close(kill=True)
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    async def _in_thread(self, raw: bytes) -> ParseResult | ParseFailed:
        try:
            return await asyncio.wait_for(asyncio.to_thread(_parse_one, self.parser.parse, raw), self.timeout)
        except TimeoutError:
            return PARSE_TIMEOUT

    def close(self, wait: bool = False, *, kill: bool = False) -> None:
        """Stop the workers (``wait``: until they have exited; ``kill``: now, mid-parse)."""
        pool, self._pool = self._pool, None
        if pool is None:
            return
        if kill:
            for process in list(getattr(pool, "_processes", {}).values()):
                process.kill()
        pool.shutdown(wait=wait and not kill, cancel_futures=True)


def load_parser(module: str = "") -> Parser:
    """The parser named by ``[parser] module``; ConfigError if it cannot be used."""
    if not module:
        return BUILTIN
    try:
        found = importlib.import_module(module)
        return Parser(found.parse_notice, str(found.PARSER_VERSION), module)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"parser.module {module!r} unusable: {exc}") from None
