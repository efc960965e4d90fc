"""The web server on the daemon's own event loop (aiohttp's AppRunner and TCPSite: no second
server, no thread): security headers, who is asking, the CSRF check, then the pages and the API.

Every response carries a Content-Security-Policy that loads nothing from elsewhere and runs no
script; forms post only to this origin; the pages are not to be framed."""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
from collections.abc import Awaitable, Callable
from pathlib import Path

import jinja2
from aiohttp import web

from ..log import get_logger
from . import api, pages, registry
from .auth import ROLE_RANK, LoginThrottle, Session, Sessions
from .context import WebContext

__all__ = ["WebServer", "build_app", "SESSION_COOKIE", "PAGE_CSP"]

SESSION_COOKIE = "inbox_session"
LOGIN_COOKIE = "inbox_login"  # the CSRF token of the login form (no session yet)
PAGE_CSP = ("default-src 'none'; style-src 'self'; img-src 'self'; frame-src 'self'; form-action 'self'; "
            "frame-ancestors 'none'; base-uri 'none'")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
CONTEXT = api.CONTEXT
SESSIONS: web.AppKey[Sessions] = web.AppKey("sessions", Sessions)
THROTTLE: web.AppKey[LoginThrottle] = web.AppKey("throttle", LoginThrottle)
TEMPLATES: web.AppKey[jinja2.Environment] = web.AppKey("templates", jinja2.Environment)
_OPEN = ("/login", "/static/", "/v1/")  # reachable without a session (the API has its own tokens)


@web.middleware
async def headers(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Security headers on every answer, errors included."""
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        response = exc
    response.headers.setdefault("Content-Security-Policy", PAGE_CSP)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "same-origin")  # "no-referrer" makes Chrome send Origin: null
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("Cache-Control", "no-store")
    if isinstance(response, web.HTTPException) and response.status >= 400 and not response.text:
        response.text = f"{response.status} {response.reason}\n"
    if isinstance(response, web.HTTPException):
        raise response
    return response


def same_origin(request: web.Request) -> bool:
    """A state-changing request must come from these pages: its Origin (or, without one, its
    Sec-Fetch-Site) says so. SameSite=Strict already keeps the cookie off cross-site posts.
    Behind a TLS proxy (``web.secure_cookies``) the browser's origin is https:// though this
    hop is plain HTTP; the scheme is part of the origin (RFC 6454 section 4)."""
    origin = request.headers.get("Origin")
    if origin is not None:
        scheme = "https" if request.app[CONTEXT].config.web.secure_cookies else request.scheme
        return origin == f"{scheme}://{request.host}"
    return request.headers.get("Sec-Fetch-Site", "same-origin") in ("same-origin", "none")


@web.middleware
async def identify(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Attach ``user``, ``role`` and ``session`` to the request; send the rest to /login;
    refuse a POST without this origin and the session's CSRF token."""
    path = request.path
    if path.startswith("/v1/"):
        return await handler(request)
    ctx = request.app[CONTEXT]
    session, cookie = await _session(request, ctx)
    request["session"], request["user"], request["role"] = session, None, None
    if session is not None:
        row = await ctx.store.get_user(session.user)
        if row is None or row.disabled_at is not None:
            request.app[SESSIONS].drop(request.cookies.get(SESSION_COOKIE))
            session = request["session"] = None
        else:
            request["user"], request["role"] = row.name, row.role
    if request.method not in ("GET", "HEAD") and not same_origin(request):
        raise web.HTTPForbidden(text="cross-site request refused\n")
    if session is None and not path.startswith(_OPEN):
        if ctx.config.web.trusted_proxy_header and request.headers.get(ctx.config.web.trusted_proxy_header):
            raise web.HTTPForbidden(text="the user the proxy names has no account here\n")
        raise web.HTTPSeeOther("/login")
    if request.method not in ("GET", "HEAD") and session is not None:
        form = await request.post()
        if not session.csrf_ok(str(form.get("csrf", "")) or None):
            raise web.HTTPForbidden(text="missing or wrong form token; reload the page\n")
    response = await handler(request)
    if cookie is not None:
        set_cookie(request, response, SESSION_COOKIE, cookie)
    return response


async def _session(request: web.Request, ctx: WebContext) -> tuple[Session | None, str | None]:
    """The request's session, and a new cookie to set when a trusted proxy vouched for a user."""
    sessions = request.app[SESSIONS]
    session = sessions.get(request.cookies.get(SESSION_COOKIE))
    header = ctx.config.web.trusted_proxy_header
    if not header:
        return session, None
    named = request.headers.get(header, "").strip()
    if session is not None and session.proxied and session.user != named:
        session = None  # the proxy now vouches for someone else, or for no one
    if session is None and named and await ctx.store.get_user(named) is not None:
        cookie, session = sessions.create(named, proxied=True)
        return session, cookie
    return session, None


def set_cookie(request: web.Request, response: web.StreamResponse, name: str, value: str, max_age: int | None = None) -> None:
    """HttpOnly, SameSite=Strict, path /; Secure over TLS or when ``web.secure_cookies`` says a
    TLS proxy fronts the pages."""
    secure = request.secure or request.app[CONTEXT].config.web.secure_cookies
    response.set_cookie(name, value, httponly=True, samesite="Strict", secure=secure, path="/", max_age=max_age)


def require(role: str) -> Callable[[Handler], Handler]:
    """Handlers for ``role`` and above only: checked here, on the server, whatever a page shows."""
    def wrap(handler: Handler) -> Handler:
        async def guarded(request: web.Request) -> web.StreamResponse:
            if ROLE_RANK.get(request.get("role") or "", -1) < ROLE_RANK[role]:
                raise web.HTTPForbidden(text=f"this needs the {role} role\n")
            return await handler(request)
        return guarded
    return wrap


def client_address(request: web.Request) -> str:
    """The peer's IP (the login throttle's source)."""
    peer = request.transport.get_extra_info("peername") if request.transport else None
    try:
        return str(ipaddress.ip_address(peer[0])) if peer else "unknown"
    except ValueError:
        return "unix"


def csrf_equal(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode("utf-8", "replace"), b.encode("utf-8", "replace"))


def build_app(context: WebContext) -> web.Application:
    app = web.Application(middlewares=[headers, identify], client_max_size=api.MAX_BODY)
    app[CONTEXT] = context
    app[SESSIONS] = Sessions(context.config.web.session_hours * 3600)
    app[THROTTLE] = LoginThrottle()
    app[TEMPLATES] = jinja2.Environment(
        loader=jinja2.PackageLoader("inbox_daemon.web", "templates"), autoescape=True, undefined=jinja2.StrictUndefined,
    )
    app.router.add_static("/static/", Path(__file__).with_name("static"), show_index=False, follow_symlinks=False)
    api.routes(app, context)
    pages.routes(app, require)
    registry.routes(app, require)
    return app


class WebServer:
    """start()/stop() like every part; serves ``[web] listen``."""

    def __init__(self, context: WebContext) -> None:
        host, _, port = context.config.web.listen.rpartition(":")
        self._host, self._port = host.strip("[]"), int(port)
        self.app = build_app(context)
        self._runner: web.AppRunner | None = None
        self._log = get_logger(component="web")

    async def start(self) -> None:
        self._runner = web.AppRunner(self.app, access_log=None, handle_signals=False, shutdown_timeout=2.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._host, self._port)
        await site.start()
        self._log.info("web_listening", address="%s:%d" % self.address)

    @property
    def address(self) -> tuple[str, int]:
        assert self._runner is not None
        host, port = self._runner.addresses[0][:2]  # port 0 resolved
        return str(host), int(port)

    async def stop(self) -> None:
        if self._runner is not None:
            await asyncio.wait_for(self._runner.cleanup(), 5.0)
            self._runner = None
