"""Amazon's own bulk mail: newsletters and forum digests, which may quote an opt-out notice but
never are one (replies_mime_oddities_bulk_mail/lookalike_seller_forum_digest_quotes_notice.eml,
replies_mime_oddities_bulk_mail/lookalike_news_marketing_quotes_example_notice.eml).

The list headers (RFC 2369 List-Unsubscribe/List-Post, RFC 2919 List-Id) name who runs the list.
When that is Amazon, Amazon sent the message as bulk mail, not as a per-message delivery notice.
A list that merely redistributes a notice names its own host (Google Groups,
wrappings_marketplaces_lookalikes/google_groups_dmarc_rewrite.eml), so it is not caught. Precedence: bulk alone proves
nothing (lists set it too) and is not used.
"""

from __future__ import annotations

import re
from typing import Final

from .addresses import is_amazon_host
from .mime import Headers

__all__ = ["is_amazon_bulk_mail"]

_LIST_HEADERS: Final = ("list-unsubscribe", "list-id", "list-post")
# Hosts in URIs (https://host/…, mailto:x@host) and in a List-Id's <list.host>.
_HOST: Final = re.compile(r"(?:https?://|mailto:[^@<>\s,]*@|<(?!https?:|mailto:))([a-z0-9.-]+)", re.IGNORECASE)


def is_amazon_bulk_mail(headers: Headers) -> bool:
    """Whether the message's list headers show a list run by Amazon."""
    for name in _LIST_HEADERS:
        for value in headers.get_all(name):
            if any(is_amazon_host(host) for host in _HOST.findall(value)):
                return True
    return False

