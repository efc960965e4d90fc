"""Which parser processing runs (``[parser] module``): the built-in one, or a module that
exposes ``parse_notice(raw) -> ParseResult`` and ``PARSER_VERSION``.

The hook exists so that a parser upgrade can be tried on kept mail (``quarantine
reprocess``) and so that tests can install a parser variant without patching the package.
"""

from __future__ import annotations

import asyncio
import importlib
import multiprocessing
import os
import signal
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass

from ..errors import ConfigError
from ..notices import PARSER_VERSION, ParseResult, parse_notice

__all__ = ["Parser", "BUILTIN", "load_parser", "ParsePool", "ParseFailed", "PARSE_TIMEOUT", "auto_workers"]


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


def _worker_init(parent: int) -> None:
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


def _parse_many(module: str, raws: Sequence[bytes]) -> list[ParseResult | ParseFailed]:
    parse = importlib.import_module(module).parse_notice
    return [_parse_one(parse, raw) for raw in raws]


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
START_LIMIT_S = 120.0  # a worker process that cannot even start and import the parser is broken


class ParsePool:
    """Runs the parser beside the event loop, with a wall-clock limit per message.

    ``workers > 0``: worker processes, a batch per call. A batch that overruns its limit
    (``timeout`` per message) has its workers killed; each of its messages is then parsed
    alone in a fresh worker, and the one that overruns alone gets ``PARSE_TIMEOUT``: never
    parsed again in a loop (its outcome becomes ``error``). ``workers == 0``: a thread of this
    process, one message at a time; an overrunning parse cannot be stopped there (threads
    cannot be killed): its message gets ``PARSE_TIMEOUT`` and the thread finishes in the
    background.
    """

    def __init__(self, parser: Parser, workers: int, timeout: float = 30.0) -> None:
        self.parser = parser
        self.timeout = timeout
        self._workers = workers
        self._pool: ProcessPoolExecutor | None = None

    async def _executor(self) -> ProcessPoolExecutor:
        """The pool, started and with the parser imported: a worker's start is not parse time."""
        if self._pool is None:
            ctx = multiprocessing.get_context("spawn")  # no fork of a process with threads
            pool = ProcessPoolExecutor(self._workers, mp_context=ctx, initializer=_worker_init, initargs=(os.getpid(),))
            loop = asyncio.get_running_loop()
            await asyncio.wait_for(loop.run_in_executor(pool, _warm, self.parser.module), START_LIMIT_S)
            self._pool = pool
        return self._pool

    async def parse_many(self, raws: Sequence[bytes]) -> list[ParseResult | ParseFailed]:
        if not raws:
            return []
        if self._workers == 0:
            return [await self._in_thread(raw) for raw in raws]
        try:
            return await self._in_worker(list(raws))
        except TimeoutError:
            self.close(kill=True)
        results: list[ParseResult | ParseFailed] = []
        for raw in raws:  # alone, each under its own limit
            try:
                results.extend(await self._in_worker([raw]))
            except TimeoutError:
                self.close(kill=True)
                results.append(PARSE_TIMEOUT)
        return results

    async def _in_worker(self, raws: list[bytes]) -> list[ParseResult | ParseFailed]:
        """One call in a worker. TimeoutError past the limit; a broken pool (a worker killed
        from outside) is replaced and the call made once more."""
        loop = asyncio.get_running_loop()
        limit = self.timeout * len(raws)
        for attempt in (1, 2):
            call = loop.run_in_executor(await self._executor(), _parse_many, self.parser.module, raws)
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
