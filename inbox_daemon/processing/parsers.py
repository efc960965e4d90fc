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
from dataclasses import dataclass

from ..errors import ConfigError
from ..notices import PARSER_VERSION, ParseResult, parse_notice

__all__ = ["Parser", "BUILTIN", "load_parser", "ParsePool", "auto_workers"]


@dataclass(frozen=True)
class Parser:
    parse: Callable[[bytes], ParseResult]
    version: str
    module: str = "inbox_daemon.notices"  # what a worker process imports to parse


BUILTIN = Parser(parse_notice, PARSER_VERSION)


def auto_workers(configured: int) -> int:
    """``[parser] workers``: -1 means one worker process when there is a second core to use."""
    if configured >= 0:
        return configured
    return 1 if (os.cpu_count() or 1) >= 2 else 0


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


def _parse_many(module: str, raws: Sequence[bytes]) -> list[ParseResult]:
    parse = importlib.import_module(module).parse_notice
    return [parse(raw) for raw in raws]


class ParsePool:
    """Runs the parser in worker processes, so parsing overlaps the event loop's database work.

    Measured with bench/import.py: the parse is about half of the loop's time per message.
    With ``workers == 0`` it parses in-process, yielding to the loop between messages.
    A broken pool (a worker killed) is rebuilt and the batch parsed in-process: never lost.
    """

    def __init__(self, parser: Parser, workers: int) -> None:
        self.parser = parser
        self._workers = workers
        self._pool: ProcessPoolExecutor | None = None

    def _executor(self) -> ProcessPoolExecutor:
        if self._pool is None:
            ctx = multiprocessing.get_context("spawn")  # no fork of a process with threads
            self._pool = ProcessPoolExecutor(
                self._workers, mp_context=ctx, initializer=_worker_init, initargs=(os.getpid(),)
            )
        return self._pool

    async def parse_many(self, raws: Sequence[bytes]) -> list[ParseResult]:
        if self._workers > 0:
            loop = asyncio.get_running_loop()
            try:
                return await loop.run_in_executor(self._executor(), _parse_many, self.parser.module, list(raws))
            except Exception:  # BrokenProcessPool, pickling trouble: parse here instead
                self.close()
        results = []
        for raw in raws:
            results.append(self.parser.parse(raw))
            await asyncio.sleep(0)  # one parse at a time, so the query socket never waits long
        return results

    def close(self, wait: bool = False) -> None:
        """Stop the workers (``wait``: until they have exited)."""
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=wait, cancel_futures=True)


def load_parser(module: str = "") -> Parser:
    """The parser named by ``[parser] module``; ConfigError if it cannot be used."""
    if not module:
        return BUILTIN
    try:
        found = importlib.import_module(module)
        return Parser(found.parse_notice, str(found.PARSER_VERSION), module)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"parser.module {module!r} unusable: {exc}") from None
