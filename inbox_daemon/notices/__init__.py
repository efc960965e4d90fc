"""Pure parsing of Amazon buyer opt-out notices: raw bytes in, one ``ParseResult`` out.

Data flow inside: ``mime`` (bounded MIME walk over the tree ``mimesplit`` cuts, or FeedParser
for irregular mail; charsets read as mail clients read them through ``charsets`` with the
WHATWG label table ``encoding_labels`` and Windows' Japanese variants in ``jis``; HTML to text
through ``htmltext``) -> ``unwrap`` (candidate messages out of attachments, and out of body text through
``quoting``: forward header blocks, reply attributions, citations) -> ``classify`` (a notice
sender from ``senders``, the reason from the ``languages`` tables read by ``languages.matcher``,
buyers) -> ``parser`` (one result per mail, buyers merged and bounded, with the forwarding
identity from ``forwarder``). ``report`` prints results for the CLI.

Built as a wheel, these modules (but ``result``) are compiled by mypyc (setup.py). So the
objects made per part and per candidate are plain classes with an ``__init__`` of their own:
mypyc compiles that, while a dataclass's generated ``__init__`` runs as interpreted code.
Likewise ``encoded_words`` stands in for ``email.header.decode_header``.
"""

from __future__ import annotations

from typing import Final

from . import parser as _parser
from .addresses import normalise_relay_address
from .parser import parse_notice
from .report import format_result_line, result_to_json, run_parse_cli
from .result import Buyer, Kind, ParseResult

__all__ = [
    "PARSER_VERSION",
    "Buyer",
    "Kind",
    "ParseResult",
    "compiled",
    "format_result_line",
    "normalise_relay_address",
    "parse_notice",
    "result_to_json",
    "run_parse_cli",
]

# Bump when a change alters any result for the same input (stored results can be re-derived).
PARSER_VERSION: Final = "2.1"


def compiled() -> bool:
    """Whether this parser is the build setup.py compiles with mypyc (a wheel, ``pip install .``)
    rather than the pure Python an editable install runs: the bench and the tests that compare
    the two say which they have."""
    return not str(_parser.__file__).endswith(".py")
