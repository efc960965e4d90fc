"""The blocklist and seller pages: search by relay address or order id with the evidence and
audit trail, remove with a reason; sellers with their address, add, rotate the address, register
and remove forwarders. The same calls as ``blocklist show/remove``, ``sellers`` and ``forwarders``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from ..errors import StoreUnavailable
from ..processing.review import blocklist_entries, remove_from_blocklist
from ..processing.sellers import recipient
from .api import CONTEXT
from .pages import Guard, render

__all__ = ["routes"]


async def _form(request: web.Request) -> dict[str, str]:
    return {k: str(v).strip()[:1000] for k, v in (await request.post()).items()}


async def blocklist(request: web.Request, notice: str = "", code: int = 200) -> web.StreamResponse:
    key = (request.query.get("key") or "").strip()[:400]
    entries = await blocklist_entries(request.app[CONTEXT].store, key) if key else []
    done = request.query.get("done", "")[:300]
    return render(request, "blocklist.html", code, key=key, entries=entries, notice=notice, done=done,
                  searched=bool(key))


async def blocklist_remove(request: web.Request) -> web.StreamResponse:
    ctx = request.app[CONTEXT]
    form = await _form(request)
    key = form.get("key", "")
    try:
        removed = await remove_from_blocklist(ctx.store, key, reason=form.get("reason", ""), who=request["user"],
                                              on_applied=ctx.on_applied)
    except ValueError as exc:
        return await blocklist(request, str(exc), 400)
    notice = f"Removed {key}: {len(removed)} key(s) no longer blocked." if removed else f"{key}: nothing was blocked."
    raise web.HTTPSeeOther(f"/blocklist?key={_quote(key)}&done={_quote(notice)}")


def _quote(text: str) -> str:
    from urllib.parse import quote

    return quote(text, safe="")


async def sellers(request: web.Request, notice: str = "", code: int = 200) -> web.StreamResponse:
    ctx = request.app[CONTEXT]
    rows = [(row, recipient(ctx.config, row)) for row in await ctx.store.list_sellers()]
    return render(request, "sellers.html", code, rows=rows, notice=notice or request.query.get("done", "")[:300])


async def _change(request: web.Request, act: Callable[[Any, dict[str, str], str], Awaitable[str]]) -> web.StreamResponse:
    """Run one registry change; a refusal (exists, no such seller, bad address) is shown, not raised."""
    form = await _form(request)
    try:
        done = await act(request.app[CONTEXT].store, form, request["user"])
    except (ValueError, LookupError) as exc:
        return await sellers(request, str(exc), 409)
    except StoreUnavailable as exc:
        return await sellers(request, f"database unavailable: {exc}", 503)
    raise web.HTTPSeeOther(f"/sellers?done={_quote(done)}")


async def seller_add(request: web.Request) -> web.StreamResponse:
    async def act(store: Any, form: dict[str, str], who: str) -> str:
        forwarders = [f for f in form.get("forwarder", "").split() if f]
        row = await store.add_seller(form.get("name", ""), forwarders, who=who)
        return f"Added seller {row.name}."
    return await _change(request, act)


async def seller_rotate(request: web.Request) -> web.StreamResponse:
    async def act(store: Any, form: dict[str, str], who: str) -> str:
        row = await store.rotate_seller_token(request.match_info["name"], who=who)
        return f"New address for {row.name}: {recipient(request.app[CONTEXT].config, row)}"
    return await _change(request, act)


async def forwarder_add(request: web.Request) -> web.StreamResponse:
    async def act(store: Any, form: dict[str, str], who: str) -> str:
        await store.add_forwarder(request.match_info["name"], form.get("address", ""), who=who)
        return f"{form.get('address', '').lower()} forwards for {request.match_info['name']}."
    return await _change(request, act)


async def forwarder_remove(request: web.Request) -> web.StreamResponse:
    async def act(store: Any, form: dict[str, str], who: str) -> str:
        await store.remove_forwarder(form.get("address", ""), who=who)
        return f"Removed forwarder {form.get('address', '').lower()}."
    return await _change(request, act)


def routes(app: web.Application, require: Guard) -> None:
    operator, viewer = require("operator"), require("viewer")
    app.router.add_get("/blocklist", viewer(blocklist))
    app.router.add_post("/blocklist/remove", operator(blocklist_remove))
    app.router.add_get("/sellers", viewer(sellers))
    app.router.add_post("/sellers", operator(seller_add))
    app.router.add_post("/sellers/{name}/rotate", operator(seller_rotate))
    app.router.add_post("/sellers/{name}/forwarders", operator(forwarder_add))
    app.router.add_post("/forwarders/remove", operator(forwarder_remove))
