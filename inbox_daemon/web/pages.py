"""The operator pages, rendered on the server (Jinja2, autoescaped), usable without JavaScript.
Each handler reads through the store and decides through ``processing.review`` — the same calls
the CLI verbs make — and shows the outcome; no rule lives here."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from aiohttp import web

from ..errors import StoreUnavailable
from ..log import Throttled, get_logger
from ..processing.parsers import ParseFailed
from ..processing.confirmations import dismiss_confirmation, pending_confirmations
from ..processing.review import approve_held, discard_held, reprocess_one
from ..store.engine import utcnow
from ..store.review import UNAPPLIED
from . import mailview
from .api import CONTEXT

__all__ = ["routes", "PAGE_SIZE"]

PAGE_SIZE = 50
_LOG = get_logger(component="web")
_FAILED: web.AppKey[Throttled] = web.AppKey("login_failed", Throttled)
Guard = Callable[[str], Callable[[Any], Any]]


def render(request: web.Request, name: str, code: int = 200, **values: Any) -> web.Response:
    from .app import TEMPLATES

    session = request.get("session")
    html = request.app[TEMPLATES].get_template(name).render(
        user=request.get("user"), role=request.get("role"), csrf=session.csrf if session else "",
        can_change=request.get("role") == "operator", path=request.path, **values)
    return web.Response(text=html, content_type="text/html", status=code)


def _int(value: str | None, default: int = 0) -> int:
    try:
        return max(0, int(value or default))
    except ValueError:
        raise web.HTTPBadRequest(text="not a number\n") from None


# -- login ---------------------------------------------------------------------------------------

async def login_form(request: web.Request, error: str = "", status: int = 200) -> web.StreamResponse:
    from .app import LOGIN_COOKIE, set_cookie

    token = request.cookies.get(LOGIN_COOKIE) or secrets.token_urlsafe(32)  # kept across retries
    users = await request.app[CONTEXT].store.list_users()
    response = render(request, "login.html", status, login_csrf=token, error=error, no_users=not users)
    set_cookie(request, response, LOGIN_COOKIE, token, max_age=3600)
    return response


async def login(request: web.Request) -> web.StreamResponse:
    from .app import LOGIN_COOKIE, SESSION_COOKIE, SESSIONS, THROTTLE, client_address, csrf_equal, set_cookie
    from .auth import verify_password

    form = await request.post()
    expected = request.cookies.get(LOGIN_COOKIE, "")
    if not expected or not csrf_equal(expected, str(form.get("csrf", ""))):
        raise web.HTTPForbidden(text="missing or wrong form token; reload the login page\n")
    name, password = str(form.get("user", ""))[:200], str(form.get("password", ""))[:1024]
    source, throttle = client_address(request), request.app[THROTTLE]
    wait = throttle.wait(source, name)
    if wait > 0:
        request.app[_FAILED](user=name, source=source, throttled=True)
        response = await login_form(request, f"Too many failed logins from here: try again in {wait:.0f} s.", 429)
        response.headers["Retry-After"] = str(int(wait) + 1)
        return response
    row = await request.app[CONTEXT].store.get_user(name)
    stored = row.password_hash if row is not None and row.disabled_at is None else None
    if not await asyncio.to_thread(verify_password, stored, password):
        throttle.failed(source, name)
        request.app[_FAILED](user=name, source=source, throttled=False)
        return await login_form(request, "Wrong user name or password.", 401)
    throttle.succeeded(source, name)
    _LOG.info("web_login", user=name, source=source)
    cookie, _session = request.app[SESSIONS].create(name)
    response = web.HTTPSeeOther("/")
    set_cookie(request, response, SESSION_COOKIE, cookie)
    response.del_cookie(LOGIN_COOKIE, path="/")
    return response


async def logout(request: web.Request) -> web.StreamResponse:
    from .app import SESSION_COOKIE, SESSIONS

    request.app[SESSIONS].drop(request.cookies.get(SESSION_COOKIE))
    response = web.HTTPSeeOther("/login")
    response.del_cookie(SESSION_COOKIE, path="/")
    return response


# -- overview, queue, one message ----------------------------------------------------------------

async def overview(request: web.Request) -> web.StreamResponse:
    ctx = request.app[CONTEXT]
    now = utcnow()
    today = await ctx.store.outcome_counts(now.replace(hour=0, minute=0, second=0, microsecond=0))
    week = await ctx.store.outcome_counts(now - timedelta(days=7))
    state = dict(ctx.status()) if ctx.status else {}
    return render(request, "overview.html", today=today, week=week, status=state, entries=len(ctx.index),
                  outcomes=sorted(set(today) | set(week)), pending=await pending_confirmations(ctx.store),
                  done=request.query.get("done", "")[:300])


async def confirmation_dismiss(request: web.Request) -> web.StreamResponse:
    try:
        await dismiss_confirmation(request.app[CONTEXT].store, _int(request.match_info["id"]), who=request["user"])
    except LookupError as exc:
        raise web.HTTPNotFound(text=f"{exc}\n") from None
    raise web.HTTPSeeOther("/?done=Dismissed.")


async def queue(request: web.Request) -> web.StreamResponse:
    ctx = request.app[CONTEXT]
    outcome = request.query.get("outcome", "")
    if outcome and outcome not in UNAPPLIED:
        raise web.HTTPBadRequest(text="unknown outcome\n")
    page = _int(request.query.get("page"))
    rows = await ctx.store.list_held((outcome,) if outcome else UNAPPLIED, PAGE_SIZE + 1, offset=page * PAGE_SIZE)
    return render(request, "queue.html", rows=rows[:PAGE_SIZE], more=len(rows) > PAGE_SIZE, page=page,
                  outcome=outcome, outcomes=UNAPPLIED)


async def _record(request: web.Request) -> Any:
    record = await request.app[CONTEXT].store.get_message(str(_int(request.match_info["id"])))
    if record is None:
        raise web.HTTPNotFound(text="no such message\n")
    return record


async def message(request: web.Request, notice: str = "", status: int = 200) -> web.StreamResponse:
    ctx = request.app[CONTEXT]
    record = await _record(request)
    held = await ctx.store.get_held(record.id)
    trust = await ctx.store.trust_of(record.id) or {}
    shown = mailview.view(record.data)
    read = await ctx.processor.parse(record.data) if ctx.processor is not None and not record.unreadable else None
    buyers = None if read is None or isinstance(read, ParseFailed) else read.buyers
    return render(request, "message.html", status, m=record, held=held, trust=trust, mail=shown, notice=notice,
                  buyers=buyers, can_reprocess=ctx.processor is not None and record.outcome in UNAPPLIED)


async def message_body(request: web.Request) -> web.StreamResponse:
    """The cleaned HTML alone, for the sandboxed iframe: its own CSP loads and runs nothing."""
    shown = mailview.view((await _record(request)).data)
    page = f"<!doctype html><meta charset=utf-8><body>{shown.html or ''}</body>"
    return web.Response(text=page, content_type="text/html", headers={
        "Content-Security-Policy": mailview.BODY_CSP, "X-Frame-Options": "SAMEORIGIN"})


async def message_part(request: web.Request) -> web.StreamResponse:
    """An attachment: always a download, never rendered, under a name that is safe anywhere."""
    found = mailview.attachment((await _record(request)).data, _int(request.match_info["part"]))
    if found is None:
        raise web.HTTPNotFound(text="no such part\n")
    body, filename = found
    return web.Response(body=body, content_type="application/octet-stream", headers={
        "Content-Disposition": f'attachment; filename="{filename}"', "Content-Security-Policy": "default-src 'none'; sandbox"})


async def _decide(request: web.Request, act: Callable[[Any, str, str], Any]) -> web.StreamResponse:
    raw_id = _int(request.match_info["id"])
    note = str((await request.post()).get("note", "")).strip()[:1000]
    try:
        done = await act(raw_id, request["user"], note)
    except (LookupError, ValueError) as exc:
        return await message(request, str(exc), 409)
    except StoreUnavailable as exc:
        return await message(request, f"database unavailable: {exc}", 503)
    return await message(request, done)


async def approve(request: web.Request) -> web.StreamResponse:
    ctx = request.app[CONTEXT]
    if ctx.processor is None:
        raise web.HTTPServiceUnavailable(text="no parser here\n")
    parser = ctx.processor.parser

    async def act(raw_id: int, who: str, note: str) -> str:
        applied = await approve_held(ctx.store, parser, raw_id, who=who, note=note, on_applied=ctx.on_applied)
        return f"Approved: {applied.buyers_new} new, {applied.buyers_updated} updated."

    return await _decide(request, act)


async def discard(request: web.Request) -> web.StreamResponse:
    ctx = request.app[CONTEXT]

    async def act(raw_id: int, who: str, note: str) -> str:
        await discard_held(ctx.store, raw_id, who=who, reason=note or "discarded in the web pages")
        return "Discarded."

    return await _decide(request, act)


async def reprocess(request: web.Request) -> web.StreamResponse:
    processor = request.app[CONTEXT].processor
    if processor is None:
        raise web.HTTPServiceUnavailable(text="no processor here\n")

    async def act(raw_id: int, who: str, note: str) -> str:
        done = await reprocess_one(request.app[CONTEXT].store, processor, raw_id, who=who, note=note)
        return f"Reprocessed: {done.outcome}" + (f" ({done.reason})" if done.reason else "")

    return await _decide(request, act)


async def audit(request: web.Request) -> web.StreamResponse:
    ctx = request.app[CONTEXT]
    actor, action = request.query.get("actor", "").strip(), request.query.get("action", "").strip()
    page = _int(request.query.get("page"))
    rows = await ctx.store.audit_log(limit=PAGE_SIZE + 1, offset=page * PAGE_SIZE, actor=actor or None,
                                     action=action or None)
    return render(request, "audit.html", rows=rows[:PAGE_SIZE], more=len(rows) > PAGE_SIZE, page=page,
                  actor=actor, action=action)


def routes(app: web.Application, require: Guard) -> None:
    app[_FAILED] = Throttled(_LOG, "web_login_failed")
    operator = require("operator")
    viewer = require("viewer")
    app.router.add_get("/login", login_form)
    app.router.add_post("/login", login)
    app.router.add_post("/logout", logout)
    app.router.add_get("/", viewer(overview))
    app.router.add_get("/queue", viewer(queue))
    app.router.add_get("/messages/{id}", viewer(message))
    app.router.add_get("/messages/{id}/body.html", viewer(message_body))
    app.router.add_get("/messages/{id}/parts/{part}", viewer(message_part))
    app.router.add_post("/messages/{id}/approve", operator(approve))
    app.router.add_post("/messages/{id}/discard", operator(discard))
    app.router.add_post("/messages/{id}/reprocess", operator(reprocess))
    app.router.add_get("/audit", viewer(audit))
    app.router.add_post("/confirmations/{id}/dismiss", operator(confirmation_dismiss))
