"""A user of the web pages over plain HTTP (http.client): cookies kept as a browser keeps them,
the Origin a browser sends, and the source address chosen (the login throttle is per source)."""

from __future__ import annotations

import contextlib
import http.client
import json
import re
import urllib.parse
from collections.abc import Iterator
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any

from tests.support.daemon import DaemonProcess, write_config

PASSWORD = "correct horse battery"


class Page:
    def __init__(self, status: int, headers: http.client.HTTPMessage, body: bytes) -> None:
        self.status, self.headers, self.body = status, headers, body

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")

    def json(self) -> Any:
        return json.loads(self.body)

    def csrf(self) -> str:
        found = re.search(r'name="csrf" value="([^"]*)"', self.text)
        assert found, self.text[:500]
        return found.group(1)


class WebUser:
    def __init__(self, address: tuple[str, int], source: str = "127.0.0.1", scheme: str = "http") -> None:
        self.host, self.port = address
        self.source = source
        self.scheme = scheme  # what the browser sees: https behind a TLS proxy
        self.cookies: dict[str, str] = {}
        self.set_cookie_headers: list[str] = []

    @property
    def origin(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}"

    def request(self, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None) -> Page:
        conn = http.client.HTTPConnection(self.host, self.port, timeout=30, source_address=(self.source, 0))
        try:
            sent = dict(headers or {})
            if self.cookies:
                sent["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
            conn.request(method, path, body=body, headers=sent)
            response = conn.getresponse()
            page = Page(response.status, response.headers, response.read())
        finally:
            conn.close()
        for header in page.headers.get_all("Set-Cookie") or []:
            self.set_cookie_headers.append(header)
            for name, morsel in SimpleCookie(header).items():
                if morsel["max-age"] == "0" or not morsel.value:
                    self.cookies.pop(name, None)
                else:
                    self.cookies[name] = morsel.value
        return page

    def get(self, path: str) -> Page:
        return self.request("GET", path)

    def post(self, path: str, fields: dict[str, str], origin: str | None = "same") -> Page:
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        if origin is not None:
            headers["Origin"] = self.origin if origin == "same" else origin
        return self.request("POST", path, urllib.parse.urlencode(fields).encode(), headers)

    def login(self, user: str, password: str) -> Page:
        form = self.get("/login")
        return self.post("/login", {"csrf": form.csrf(), "user": user, "password": password})


def add_user(daemon: DaemonProcess, name: str, role: str, password: str) -> None:
    import subprocess

    full = [daemon.exe, "users", "add", name, "--role", role] + (["--config", str(daemon.config)] if daemon.config else [])
    subprocess.run(full, env=daemon.env, input=password + "\n", text=True, check=True, capture_output=True, timeout=60)


@contextlib.contextmanager
def reviewing_daemon(tmp: Path, sections: dict[str, Any]) -> Iterator[DaemonProcess]:
    """A running daemon with the review pages on, an operator ``alice`` and a viewer ``victor``
    (both with ``PASSWORD``)."""
    proc = DaemonProcess(tmp / "home", write_config(tmp / "c.toml", sections))
    proc.cli("db", "upgrade", check=True)
    add_user(proc, "alice", "operator", PASSWORD)
    add_user(proc, "victor", "viewer", PASSWORD)
    proc.start()
    try:
        yield proc
    finally:
        proc.ensure_stopped()


def add_token(daemon: DaemonProcess, name: str) -> str:
    return daemon.cli("tokens", "add", name, check=True).stdout.strip()


def hostile_mail(pixel: str, order: str) -> bytes:
    """A forwarded 'notice' whose HTML tries everything: script, event handlers, javascript:
    links, CSS that loads, a tracking pixel, a meta refresh, a form, an iframe, an object, and an
    attachment whose file name is HTML. Every attempt that runs or loads asks ``pixel`` (a
    loopback server that counts): ``?js*`` marks a script that ran, the rest a load."""
    def run(mark: str) -> str:
        return f"fetch('{pixel}/?js-{mark}');new Image().src='{pixel}/?js-{mark}-img';window.top.__pwned='{mark}'"

    html = f"""<html><head><script>{run("script")}</script>
<style>body {{ background: url({pixel}/?css-body) }} @import url({pixel}/?css-import);</style>
<meta http-equiv="refresh" content="0;url={pixel}/?refresh"><base href="{pixel}/">
<link rel="stylesheet" href="{pixel}/?link"></head>
<body onload="{run("onload")}"><p style="background-image:url({pixel}/?style)">Order {order}</p>
<img src="{pixel}/?img" onerror="{run("onerror")}"><img src=x onerror="{run("onerror2")}">
<a id=js href="javascript:{run("href")}">click me</a>
<svg onload="{run("svg")}"><image href="{pixel}/?svg"/></svg><iframe src="{pixel}/?iframe"></iframe>
<iframe srcdoc="<script>{run("srcdoc")}</script>"></iframe>
<form action="{pixel}/?form"><input name=x><button>go</button></form><object data="{pixel}/?object"></object>
<video poster="{pixel}/?poster"></video><div onmouseover="{run("hover")}">hover</div></body></html>"""
    return (
        "From: Ops <ops@stranger.example>\r\nTo: optout@sellers.example\r\n"
        "Subject: Fwd: Your message to a buyer could not be delivered\r\n"
        "Date: Tue, 11 Jun 2024 15:00:00 -0700\r\nMessage-ID: <hostile@stranger.example>\r\n"
        'MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="outer"\r\n\r\n'
        '--outer\r\nContent-Type: multipart/alternative; boundary="alt"\r\n\r\n'
        f"--alt\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nOrder {order}: <script>{run('text')}</script>\r\n"
        "--alt\r\nContent-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        f"{_base64(html)}\r\n--alt--\r\n"
        "--outer\r\nContent-Type: text/html\r\nContent-Transfer-Encoding: base64\r\n"
        "Content-Disposition: attachment;\r\n filename=\"<img src=x onerror=alert(1)><script>alert(2)</script>.html\"\r\n\r\n"
        f"{_base64('<script>' + run('attachment') + '</script>')}\r\n--outer--\r\n"
    ).encode()


def _base64(text: str) -> str:
    import base64

    encoded = base64.b64encode(text.encode()).decode()
    return "\r\n".join(encoded[i:i + 76] for i in range(0, len(encoded), 76))
