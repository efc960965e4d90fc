"""A kept message made safe to show: its text as text, its HTML cleaned by nh3 (an allow-list
sanitiser; no script, no event handler, no ``javascript:``, no style, no remote image), and its
attachments listed by index with a safe download name. The page shows the HTML only inside a
sandboxed iframe under a Content-Security-Policy that loads nothing (``app.py``): two guards,
either enough alone."""

from __future__ import annotations

import email
import email.policy
import re
from dataclasses import dataclass
from email.message import EmailMessage, Message

import nh3

__all__ = ["MailView", "view", "attachment", "safe_filename", "BODY_CSP"]

MAX_SHOWN = 512 * 1024  # characters of one text or HTML part shown; the rest is cut, said so
BODY_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; sandbox"
_TAGS = frozenset(nh3.ALLOWED_TAGS)
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class Attachment:
    index: int
    filename: str  # as the message names it: shown escaped, never used as a download name
    content_type: str
    size: int


@dataclass(frozen=True)
class MailView:
    headers: list[tuple[str, str]]
    text: str  # the text parts joined; or the whole message as text when it cannot be read
    html: str | None  # cleaned; None when the message has no HTML part
    attachments: list[Attachment]
    cut: bool  # a part was longer than MAX_SHOWN


_SHOWN_HEADERS = ("From", "To", "Cc", "Subject", "Date", "Message-ID", "Resent-From", "Reply-To")


def _parse(data: bytes) -> EmailMessage:
    return email.message_from_bytes(data, policy=email.policy.default)


def _text_of(part: Message) -> str:
    try:
        content = part.get_content()  # type: ignore[attr-defined]
    except (LookupError, ValueError, AssertionError, UnicodeError):
        payload = part.get_payload(decode=True)
        content = payload.decode("utf-8", "replace") if isinstance(payload, bytes) else str(payload or "")
    return content if isinstance(content, str) else content.decode("utf-8", "replace")


def _img_src(tag: str, name: str, value: str) -> str | None:
    """Only inline ``data:`` images keep their source: a remote one is a tracking pixel."""
    if tag == "img" and name == "src" and not value.lower().startswith("data:image/"):
        return None
    return value


def clean_html(html: str) -> str:
    return nh3.clean(html, tags=set(_TAGS), url_schemes={"http", "https", "mailto", "data"},
                     attribute_filter=_img_src, link_rel="noopener noreferrer nofollow")


def view(data: bytes) -> MailView:
    """What the message page shows. Damaged mail falls back to its bytes as text."""
    try:
        message = _parse(data)
        headers = [(name, _header(message, name)) for name in _SHOWN_HEADERS if message.get(name) is not None]
        texts: list[str] = []
        htmls: list[str] = []
        attachments: list[Attachment] = []
        for index, part in enumerate(message.walk()):
            if part.is_multipart():
                continue
            kind = part.get_content_type()
            if part.get_filename() is None and kind == "text/plain":
                texts.append(_text_of(part))
            elif part.get_filename() is None and kind == "text/html":
                htmls.append(_text_of(part))
            else:
                payload = part.get_payload(decode=True)
                attachments.append(Attachment(index, str(part.get_filename() or "(unnamed)"), kind,
                                              len(payload) if isinstance(payload, bytes) else 0))
    except Exception:  # hostile MIME: show the bytes as text, never fail the page
        return MailView([], data[:MAX_SHOWN].decode("utf-8", "replace"), None, [], len(data) > MAX_SHOWN)
    text = "\n\n".join(texts)
    html = "\n".join(htmls)
    cut = len(text) > MAX_SHOWN or len(html) > MAX_SHOWN
    return MailView(headers, text[:MAX_SHOWN], clean_html(html[:MAX_SHOWN]) if htmls else None, attachments, cut)


def _header(message: EmailMessage, name: str) -> str:
    try:
        return str(message.get(name, ""))[:2000]
    except Exception:  # a header the parser cannot render: its raw form
        return repr(message.get_all(name))[:2000]


def attachment(data: bytes, index: int) -> tuple[bytes, str] | None:
    """The decoded bytes of part ``index`` and a download name that is safe anywhere."""
    try:
        parts = list(_parse(data).walk())
    except Exception:
        return None
    if not 0 <= index < len(parts) or parts[index].is_multipart():
        return None
    payload = parts[index].get_payload(decode=True)
    body = payload if isinstance(payload, bytes) else b""
    return body, safe_filename(str(parts[index].get_filename() or ""), index)


def safe_filename(name: str, index: int) -> str:
    """Letters, digits, dot, dash and underscore only, never starting with a dot; else ``part-N.bin``."""
    cleaned = _SAFE_NAME.sub("_", name).strip("._")[:100]
    return cleaned or f"part-{index}.bin"
