"""Which parser the pipeline runs (``[parser] module``): the built-in one, or a module that
exposes ``parse_notice(raw) -> ParseResult`` and ``PARSER_VERSION``.

The hook exists so that a parser upgrade can be tried on kept mail (``quarantine
reprocess``) and so that tests can install a parser variant without patching the package.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass

from ..errors import ConfigError
from ..notices import PARSER_VERSION, ParseResult, parse_notice

__all__ = ["Parser", "BUILTIN", "load_parser"]


@dataclass(frozen=True)
class Parser:
    parse: Callable[[bytes], ParseResult]
    version: str


BUILTIN = Parser(parse_notice, PARSER_VERSION)


def load_parser(module: str = "") -> Parser:
    """The parser named by ``[parser] module``; ConfigError if it cannot be used."""
    if not module:
        return BUILTIN
    try:
        found = importlib.import_module(module)
        return Parser(found.parse_notice, str(found.PARSER_VERSION))
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"parser.module {module!r} unusable: {exc}") from None
