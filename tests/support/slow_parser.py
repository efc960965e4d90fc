"""A parser for tests and the flood bench (``[parser] module = "tests.support.slow_parser"``):
the built-in parser, except that a message with ``X-Test-Hang: yes`` never finishes (a
runaway parse, as a pathological input would make), one with ``X-Test-Hang: deaf`` never
finishes and never sees SIGALRM (as a parse stuck in C code), and one with ``X-Test-Sleep: S``
takes S seconds first (a slow parser); ``SLOW_PARSER_SLEEP=S`` in the environment slows every one."""

from __future__ import annotations

import os
import re
import signal
import time

from inbox_daemon.notices import PARSER_VERSION as BUILTIN_VERSION
from inbox_daemon.notices import ParseResult
from inbox_daemon.notices import parse_notice as builtin_parse

PARSER_VERSION = f"{BUILTIN_VERSION}+slow"
_SLEEP = re.compile(rb"^X-Test-Sleep: ([0-9.]+)", re.M)


def parse_notice(raw: bytes) -> ParseResult:
    head = raw.split(b"\r\n\r\n", 1)[0]
    if head.startswith(b"X-Test-Hang: deaf"):
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})  # never delivered: only the hard stop ends it
        while True:
            pass
    if b"\nX-Test-Hang: yes" in head or head.startswith(b"X-Test-Hang: yes"):
        while True:  # CPU-bound, in pure Python or not: only killing the worker ends it
            pass
    slow = _SLEEP.search(head)
    pause = float(slow.group(1)) if slow else float(os.environ.get("SLOW_PARSER_SLEEP", "0"))
    if pause:
        time.sleep(pause)
    return builtin_parse(raw)
