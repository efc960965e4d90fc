"""The HTTP API for sender tools: ``GET /v1/check?key=…`` and ``POST /v1/check`` with a JSON list
of up to 10,000 keys, bearer tokens, and the OpenAPI document.

Each key becomes the query-protocol line the client library would send (``request_line``) and
is answered by the same ``Responder`` as the query socket, so both say the same thing: the
reply line itself is in every answer, with its meaning spelt out beside it."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from ..lookup.client import request_line
from ..lookup.protocol import MAX_LINE, Responder
from .auth import token_digest
from .context import WebContext

__all__ = ["routes", "MAX_KEYS", "OPENAPI"]

MAX_KEYS = 10_000
MAX_BODY = 8 * 1024 * 1024  # 10,000 keys of a pair each fit with room to spare
CONTEXT: web.AppKey[WebContext] = web.AppKey("context", WebContext)
RESPONDER: web.AppKey[Responder] = web.AppKey("api_responder", Responder)


def _problem(status: int, detail: str, **headers: str) -> web.Response:
    return web.json_response({"error": detail}, status=status, headers=headers)


def _key_line(key: Any) -> bytes | str:
    """The request line for one key, or why there is none (a reason, answered as ``ERR``)."""
    if isinstance(key, list) and len(key) == 2 and all(isinstance(k, str) for k in key):
        key = (key[0], key[1])
    elif not isinstance(key, str):
        return "key must be a string or [address, order id]"
    line = request_line(key)
    if any(c in line for c in "\r\n\x00"):
        return "line break in key"
    try:
        encoded = line.encode("ascii")
    except UnicodeEncodeError:
        return "line is not ASCII"  # what the socket answers for such a line
    if len(encoded) > MAX_LINE:
        return "line too long"
    return encoded


def _answer(responder: Responder, key: Any, client: str) -> dict[str, Any]:
    line = _key_line(key)
    reply = f"ERR {line}" if isinstance(line, str) else responder.respond(line, client).decode("ascii").rstrip("\n")
    words = reply.split(" ")
    answer: dict[str, Any] = {"key": key, "reply": reply, "blocked": words[0] == "BLOCKED"}
    if words[0] == "BLOCKED":
        answer.update(first_seen=words[1], count=int(words[2]))
    elif words[0] == "ERR":
        answer["error"] = reply[4:]
    return answer


async def _client(request: web.Request) -> str | web.Response:
    """``api token <name>`` for a live bearer token, else the 401 to send."""
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return _problem(401, "a bearer token is required", **{"WWW-Authenticate": 'Bearer realm="inbox-daemon"'})
    name = await request.app[CONTEXT].store.token_name(token_digest(token.strip()))
    if name is None:
        return _problem(401, "unknown or revoked token", **{"WWW-Authenticate": 'Bearer error="invalid_token"'})
    return f"api token {name}"


async def check_get(request: web.Request) -> web.StreamResponse:
    client = await _client(request)
    if isinstance(client, web.Response):
        return client
    keys = request.query.getall("key", [])
    if len(keys) != 1:
        return _problem(400, "give exactly one key=")
    return web.json_response(_answer(request.app[RESPONDER], keys[0], client))


async def check_post(request: web.Request) -> web.StreamResponse:
    client = await _client(request)
    if isinstance(client, web.Response):
        return client
    if request.content_length is not None and request.content_length > MAX_BODY:
        return _problem(413, f"at most {MAX_BODY} bytes")
    try:
        body = json.loads(await request.read())
    except (ValueError, UnicodeDecodeError):
        return _problem(400, "the body is not JSON")
    keys = body.get("keys") if isinstance(body, dict) else body
    if not isinstance(keys, list):
        return _problem(400, 'send a JSON list of keys, or {"keys": [...]}')
    if len(keys) > MAX_KEYS:
        return _problem(413, f"at most {MAX_KEYS} keys per request")
    responder = request.app[RESPONDER]
    return web.json_response({"answers": [_answer(responder, key, client) for key in keys]})


async def openapi(_request: web.Request) -> web.StreamResponse:
    return web.json_response(OPENAPI)


def routes(app: web.Application, context: WebContext) -> None:
    """Add the API to ``app``; its own Responder counts its lookups apart from the socket's."""
    app[RESPONDER] = Responder(context.index, on_address_learned=context.on_address_learned)
    app.router.add_get("/v1/check", check_get)
    app.router.add_post("/v1/check", check_post)
    app.router.add_get("/v1/openapi.json", openapi)


_ANSWER = {
    "type": "object",
    "required": ["key", "reply", "blocked"],
    "properties": {
        "key": {"description": "the key as sent"},
        "reply": {"type": "string", "description": "the query socket's reply line: OK, BLOCKED <first-seen> <count> or ERR <reason>"},
        "blocked": {"type": "boolean", "description": "true only for BLOCKED; an ERR is not an OK: do not send"},
        "first_seen": {"type": "string", "format": "date-time"},
        "count": {"type": "integer", "minimum": 1},
        "error": {"type": "string"},
    },
}
_KEY = {"oneOf": [{"type": "string", "description": "a relay address or an order id"},
                  {"type": "array", "items": {"type": "string"}, "minItems": 2, "maxItems": 2,
                   "description": "[relay address, order id]"}]}
_ERRORS = {
    "400": {"description": "malformed request"},
    "401": {"description": "no, unknown or revoked bearer token"},
}
OPENAPI: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {"title": "inbox-daemon blocklist API", "version": "1",
             "description": "Ask whether buyers opted out of seller messages. Anything but blocked=false "
                            "with reply OK means: do not send (docs/query-protocol.md)."},
    "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
                   "schemas": {"Answer": _ANSWER, "Key": _KEY}},
    "security": [{"bearer": []}],
    "paths": {"/v1/check": {
        "get": {"summary": "one key", "parameters": [{"name": "key", "in": "query", "required": True,
                                                      "schema": {"type": "string"}}],
                "responses": {"200": {"description": "the answer", "content": {"application/json": {
                    "schema": {"$ref": "#/components/schemas/Answer"}}}}, **_ERRORS}},
        "post": {"summary": f"up to {MAX_KEYS} keys, answered in order",
                 "requestBody": {"required": True, "content": {"application/json": {"schema": {"oneOf": [
                     {"type": "array", "items": {"$ref": "#/components/schemas/Key"}, "maxItems": MAX_KEYS},
                     {"type": "object", "properties": {"keys": {"type": "array", "maxItems": MAX_KEYS,
                                                                "items": {"$ref": "#/components/schemas/Key"}}}}]}}}},
                 "responses": {"200": {"description": "one answer per key, in order", "content": {
                     "application/json": {"schema": {"type": "object", "properties": {"answers": {
                         "type": "array", "items": {"$ref": "#/components/schemas/Answer"}}}}}}},
                     "413": {"description": f"more than {MAX_KEYS} keys"}, **_ERRORS}},
    }},
}
