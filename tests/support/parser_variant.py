"""A parser variant for the reprocess test (``[parser] module = "tests.support.parser_variant"``):
the built-in parser plus one wrapping it does not know, the base64 ticket attachment of
``tests.support.trust.wrapped``. Stands for "a parser upgrade learnt a new wrapping"."""

from __future__ import annotations

import base64
import binascii
import dataclasses
import re

from inbox_daemon.notices import PARSER_VERSION as BUILTIN_VERSION
from inbox_daemon.notices import ParseResult
from inbox_daemon.notices import parse_notice as builtin_parse

PARSER_VERSION = f"{BUILTIN_VERSION}+ticket"
_BLOCK = re.compile(rb"-----BEGIN TICKET ATTACHMENT-----\s+(.+?)\s+-----END TICKET ATTACHMENT-----", re.S)
_FROM = re.compile(rb"^From:.*<([^>]+)>", re.M | re.I)


def parse_notice(raw: bytes) -> ParseResult:
    found = _BLOCK.search(raw)
    if found is None:
        return builtin_parse(raw)
    try:
        inner = base64.b64decode(b"".join(found.group(1).split()), validate=True)
    except (binascii.Error, ValueError):
        return builtin_parse(raw)
    sender = _FROM.search(raw.split(b"\r\n\r\n", 1)[0])
    result = builtin_parse(inner)
    by = sender.group(1).decode().lower() if sender else None
    return dataclasses.replace(result, forwarder=by, forwarded_via="ticket")
