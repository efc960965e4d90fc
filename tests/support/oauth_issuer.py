"""An OAuth 2.0 authorization server on loopback, for the tests: what Google and Microsoft are to
a real deployment, and what Dovecot's ``passdb oauth2`` asks about a token.

Endpoints, each as its RFC says:
- ``POST /token`` (RFC 6749 3.2): grants ``refresh_token`` (6), ``client_credentials`` (4.4) and
  ``urn:ietf:params:oauth:grant-type:device_code`` (RFC 8628 3.4); the client authenticates with
  HTTP Basic or form fields (2.3.1); errors are 400 JSON with ``error`` (5.2).
- ``POST /device`` (RFC 8628 3.1/3.2): a device code, user code and ``verification_uri``;
  polling faster than ``interval`` answers ``slow_down`` and adds 5 s (3.5).
- ``POST /introspect`` (RFC 7662): ``active`` and the token's user, scope, client and ``exp``;
  the caller (Dovecot) authenticates with HTTP Basic.
- ``POST /revoke`` (RFC 7009).

Access tokens live ``access_seconds``; refresh tokens may rotate on each use. Every secret it
issued is in ``secrets()``, for the tests that look for leaks.
"""

from __future__ import annotations

import base64
import json
import secrets
import threading
import time
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["Issuer", "Client"]

DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"


@dataclass
class Client:
    client_id: str
    secret: str = ""  # empty: a public client (RFC 6749 2.1)
    mailbox: str = ""  # app-only access: the mailbox its service principal was given


@dataclass
class _Access:
    user: str
    client_id: str
    scope: str
    expires: float
    revoked: bool = False


@dataclass
class _Device:
    client_id: str
    scope: str
    user_code: str
    expires: float
    interval: float
    busy: int = 0  # polls still to be told slow_down however long the client waited
    user: str = ""  # set once approved
    denied: bool = False
    last_poll: float = 0.0


@dataclass
class Issuer:
    """The server and its state; thread-safe (the HTTP server runs in a thread)."""

    access_seconds: float = 3600.0
    rotate: bool = False
    device_interval: float = 1.0
    introspection_user: str = "dovecot"
    introspection_password: str = field(default_factory=lambda: secrets.token_urlsafe(12))
    clients: dict[str, Client] = field(default_factory=dict)
    access: dict[str, _Access] = field(default_factory=dict)
    refresh: dict[str, tuple[str, str, str]] = field(default_factory=dict)  # token -> user, client, scope
    devices: dict[str, _Device] = field(default_factory=dict)
    grants: list[str] = field(default_factory=list)  # grant_type of every token issued
    issued: list[str] = field(default_factory=list)  # every secret handed out
    lock: threading.Lock = field(default_factory=threading.Lock)
    port: int = 0

    # -- the test's side ---------------------------------------------------------------------

    def register(self, client_id: str, secret: str = "", mailbox: str = "") -> Client:
        client = Client(client_id, secret, mailbox)
        self.clients[client_id] = client
        if secret:
            self.issued.append(secret)
        return client

    def refresh_token_for(self, user: str, client_id: str, scope: str = "imap") -> str:
        """A refresh token as if the user had consented earlier."""
        with self.lock:
            return self._new_refresh(user, client_id, scope)

    def revoke_user(self, user: str) -> None:
        """The user (or an administrator) withdraws consent: every token of theirs is void."""
        with self.lock:
            for token in [t for t, v in self.refresh.items() if v[0] == user]:
                del self.refresh[token]
            for entry in self.access.values():
                if entry.user == user:
                    entry.revoked = True

    def revoke_access(self, user: str) -> None:
        """Void the user's access tokens only (as a password change does at some providers)."""
        with self.lock:
            for entry in self.access.values():
                if entry.user == user:
                    entry.revoked = True

    def approve(self, user_code: str, user: str) -> None:
        with self.lock:
            for device in self.devices.values():
                if device.user_code == user_code:
                    device.user = user
                    return
        raise KeyError(user_code)

    def pending_user_codes(self) -> list[str]:
        with self.lock:
            return [d.user_code for d in self.devices.values() if not d.user]

    def secrets(self) -> list[str]:
        with self.lock:
            return [s for s in self.issued + [self.introspection_password] if s]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def introspection_url(self) -> str:
        return f"http://{self.introspection_user}:{self.introspection_password}@127.0.0.1:{self.port}/introspect"

    @contextmanager
    def running(self) -> Iterator[Issuer]:
        server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        server.daemon_threads = True
        self.port = server.server_address[1]
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            server.shutdown()
            server.server_close()
            thread.join(5)

    # -- issuing (under the lock) --------------------------------------------------------------

    def _new_refresh(self, user: str, client_id: str, scope: str) -> str:
        token = "rt-" + secrets.token_urlsafe(24)
        self.refresh[token] = (user, client_id, scope)
        self.issued.append(token)
        return token

    def _new_access(self, user: str, client_id: str, scope: str) -> dict[str, Any]:
        token = "at-" + secrets.token_urlsafe(24)
        self.access[token] = _Access(user, client_id, scope, time.time() + self.access_seconds)
        self.issued.append(token)
        return {"access_token": token, "token_type": "Bearer", "expires_in": int(self.access_seconds), "scope": scope}

    def token(self, form: dict[str, str], client: Client) -> tuple[int, dict[str, Any]]:
        grant = form.get("grant_type", "")
        with self.lock:
            if grant == "refresh_token":
                found = self.refresh.get(form.get("refresh_token", ""))
                if found is None or found[1] != client.client_id:
                    return 400, {"error": "invalid_grant", "error_description": "refresh token unknown or revoked"}
                user, _, scope = found
                reply = self._new_access(user, client.client_id, scope)
                if self.rotate:
                    del self.refresh[form["refresh_token"]]
                    reply["refresh_token"] = self._new_refresh(user, client.client_id, scope)
            elif grant == "client_credentials":
                if not client.secret:
                    return 400, {"error": "unauthorized_client"}
                user = client.mailbox or f"app:{client.client_id}"
                reply = self._new_access(user, client.client_id, form.get("scope", ""))
            elif grant == DEVICE_GRANT:
                return self._device_token(form, client)
            else:
                return 400, {"error": "unsupported_grant_type"}
            self.grants.append(grant)
            return 200, reply

    def _device_token(self, form: dict[str, str], client: Client) -> tuple[int, dict[str, Any]]:
        device = self.devices.get(form.get("device_code", ""))
        now = time.monotonic()
        if device is None or device.client_id != client.client_id:
            return 400, {"error": "invalid_grant"}
        if now > device.expires:
            return 400, {"error": "expired_token"}
        if now - device.last_poll < device.interval or device.busy:  # RFC 8628 3.5: +5 s from now on
            device.busy = max(0, device.busy - 1)
            device.interval += 5.0
            device.last_poll = now
            return 400, {"error": "slow_down"}
        device.last_poll = now
        if device.denied:
            return 400, {"error": "access_denied"}
        if not device.user:
            return 400, {"error": "authorization_pending"}
        del self.devices[form["device_code"]]
        reply = self._new_access(device.user, client.client_id, device.scope)
        reply["refresh_token"] = self._new_refresh(device.user, client.client_id, device.scope)
        self.grants.append(DEVICE_GRANT)
        return 200, reply

    def device(self, form: dict[str, str], client: Client) -> tuple[int, dict[str, Any]]:
        with self.lock:
            code = secrets.token_urlsafe(24)
            user_code = "-".join(secrets.token_hex(2).upper() for _ in range(2))
            self.devices[code] = _Device(client.client_id, form.get("scope", ""), user_code,
                                         time.monotonic() + 600, self.device_interval)
            self.issued.append(code)
        return 200, {"device_code": code, "user_code": user_code, "verification_uri": f"{self.url}/activate",
                     "expires_in": 600, "interval": int(self.device_interval)}

    def introspect(self, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        with self.lock:
            entry = self.access.get(form.get("token", ""))
            if entry is None or entry.revoked or entry.expires <= time.time():
                return 200, {"active": False}  # RFC 7662 2.2: nothing more for an inactive token
            return 200, {"active": True, "username": entry.user, "email": entry.user, "scope": entry.scope,
                         "client_id": entry.client_id, "token_type": "Bearer", "exp": int(entry.expires)}

    def revoke(self, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        with self.lock:
            token = form.get("token", "")
            self.refresh.pop(token, None)
            if token in self.access:
                self.access[token].revoked = True
        return 200, {}


def _handler(issuer: Issuer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length > 65536:
                return self._reply(413, {"error": "invalid_request"})
            body = self.rfile.read(length).decode("utf-8", "replace")
            form = dict(urllib.parse.parse_qsl(body, keep_blank_values=True))
            path = self.path.split("?", 1)[0]
            if path == "/introspect":
                if self._basic() != (issuer.introspection_user, issuer.introspection_password):
                    return self._reply(401, {"error": "invalid_client"})
                return self._reply(*issuer.introspect(form))
            client = self._client(form)
            if client is None:
                return self._reply(401, {"error": "invalid_client"})
            if path == "/token":
                return self._reply(*issuer.token(form, client))
            if path == "/device":
                return self._reply(*issuer.device(form, client))
            if path == "/revoke":
                return self._reply(*issuer.revoke(form))
            return self._reply(404, {"error": "not_found"})

        def _basic(self) -> tuple[str, str] | None:
            auth = self.headers.get("Authorization", "")
            if not auth.lower().startswith("basic "):
                return None
            try:
                user, _, password = base64.b64decode(auth[6:]).decode().partition(":")
            except ValueError:
                return None
            return urllib.parse.unquote(user), urllib.parse.unquote(password)

        def _client(self, form: dict[str, str]) -> Client | None:
            """RFC 6749 2.3.1: Basic, else the form's client_id (and client_secret)."""
            basic = self._basic()
            client_id, secret = basic if basic else (form.get("client_id", ""), form.get("client_secret", ""))
            client = issuer.clients.get(client_id)
            if client is None or client.secret != secret:
                return None
            return client

        def _reply(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Cache-Control", "no-store")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    return Handler
