"""The sanitiser and the download name on their own (the browser test shows both guards
together): nh3 keeps no script, event handler, ``javascript:`` link, style or remote image; an
attachment's name keeps only letters, digits, dot, dash and underscore."""

from __future__ import annotations

import re

from inbox_daemon.web.mailview import BODY_CSP, attachment, clean_html, safe_filename, view
from tests.support.web import hostile_mail

PIXEL = "http://127.0.0.1:9/pixel"


def test_the_cleaned_html_keeps_no_script_handler_style_or_remote_load() -> None:
    shown = view(hostile_mail(PIXEL, "114-2038475-6619203"))
    assert shown.html is not None and "114-2038475-6619203" in shown.html and "click me" in shown.html
    html = shown.html.lower()
    for left in ("<script", "javascript:", "<style", "style=", "<iframe", "srcdoc", "<form", "<object", "<meta",
                 "<base", "<link", "<svg", "poster=", PIXEL):
        assert left not in html, left
    assert not re.search(r"\son\w+\s*=", html)  # no event handler attribute of any name
    assert clean_html('<img src="data:image/png;base64,AAAA">') == '<img src="data:image/png;base64,AAAA">'


def test_the_body_policy_runs_and_loads_nothing_and_attachments_get_a_safe_name() -> None:
    assert {"default-src 'none'", "img-src data:", "sandbox"} <= {d.strip() for d in BODY_CSP.split(";")}
    raw = hostile_mail(PIXEL, "114-2038475-6619203")
    (part,) = view(raw).attachments
    assert part.filename.startswith("<img src=x onerror=alert(1)>")  # shown escaped by the template
    body, name = attachment(raw, part.index) or (b"", "")
    assert b"<script>" in body and re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", name)
    assert safe_filename("../../etc/passwd", 5) == "etc_passwd" and safe_filename("...", 4) == "part-4.bin"
