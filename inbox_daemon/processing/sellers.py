"""What a seller's per-seller address is, for every front end (the CLI and the web pages)."""

from __future__ import annotations

from ..config import Config
from ..store import SellerRow
from ..trust import seller_address

__all__ = ["address_base", "recipient"]


def address_base(cfg: Config) -> str:
    """``<local>@<domain>`` the per-seller addresses extend: the setting, else the first SMTP
    recipient, else a placeholder that says what to configure."""
    return cfg.security.seller_address or next(iter(cfg.smtp.recipients), "optout@opt-out.invalid")


def recipient(cfg: Config, row: SellerRow) -> str:
    """The seller's own opt-out address, ``<local>+<token>@<domain>``."""
    return seller_address(address_base(cfg), row.token)
