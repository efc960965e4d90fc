"""Runs ``inbox-daemon serve`` as a real subprocess and talks to it as users do."""

from __future__ import annotations

import contextlib
import json
import os
import queue
import signal
import smtplib
import socket
import subprocess
import sys
import threading
import time
import tomllib
from pathlib import Path
from typing import Any

from inbox_daemon import keys
from inbox_daemon.privacy import KeyRing, load_keyring

EXE = str(Path(sys.executable).with_name("inbox-daemon"))


def write_config(path: Path, sections: dict[str, dict[str, Any]]) -> Path:
    """A TOML config from nested dicts (strings, numbers, bools, lists of strings; a list of
    dicts is an array of tables, as ``[[imap.accounts]]``).

    A config naming a database gets a privacy key file beside it unless it names one: every
    daemon started with it shares the database, so they share the key, as deployments do."""
    if "database" in sections and "privacy" not in sections:
        sections = {**sections, "privacy": {"key_file": str(path.parent / "privacy.key")}}
    lines = []
    for section, values in sections.items():
        lines.append(f"[{section}]")
        tables = {k: v for k, v in values.items() if isinstance(v, list) and v and isinstance(v[0], dict)}
        lines.extend(f"{key} = {json.dumps(value)}" for key, value in values.items() if key not in tables)
        for key, rows in tables.items():
            for row in rows:
                lines.append(f"[[{section}.{key}]]")
                lines.extend(f"{name} = {json.dumps(value)}" for name, value in row.items())
    path.write_text("\n".join(lines) + "\n")
    return path


class DaemonProcess:
    """One daemon process in its own state directory; readiness read from its JSON log."""

    def __init__(self, home: Path, config: Path | None = None, env: dict[str, str] | None = None,
                 exe: str = EXE, cwd: Path | None = None) -> None:
        self.home = home
        self.exe, self.cwd = exe, cwd  # another install (tests/support/installed.py) and where it runs
        self.pass_fds: tuple[int, ...] = ()  # sockets handed over as systemd does (tests/test_systemd.py)
        self.stdout: Path | None = None  # where its standard output goes (appended); discarded when None
        self.config = config
        self.env = {**os.environ, "INBOX_DAEMON_HOME": str(home), "INBOX_DAEMON_SMTP_PORT": "0",
                    "INBOX_DAEMON_WEB_LISTEN": "127.0.0.1:0",
                    "INBOX_DAEMON_LOG_FORMAT": "json", **(env or {})}
        self.proc: subprocess.Popen[bytes] | None = None
        self.events: list[dict[str, Any]] = []
        self._lines: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self.smtp: tuple[str, int] = ("", 0)
        self.socket_path = ""
        self.web: tuple[str, int] | None = None  # the web pages' address, when they are on

    def start(self, timeout: float = 30.0) -> DaemonProcess:
        args = [self.exe, "serve"] + (["--config", str(self.config)] if self.config else [])
        self.events.clear()
        self._lines = queue.Queue()
        with contextlib.ExitStack() as files:  # the child keeps its own copy of the file
            out = files.enter_context(self.stdout.open("ab")) if self.stdout else subprocess.DEVNULL
            self.proc = subprocess.Popen(args, env=self.env, cwd=self.cwd, pass_fds=self.pass_fds,
                                         stdout=out, stderr=subprocess.PIPE)
        self._reader = threading.Thread(target=self._read, args=(self.proc, self._lines), daemon=True)
        self._reader.start()
        ready = self.wait_event("ready", timeout)
        host, port = ready["smtp"].rsplit(":", 1)
        self.smtp = (host, int(port))
        self.socket_path = ready["query_socket"]
        web = ready.get("web", "off")
        self.web = None if web == "off" else (web.rsplit(":", 1)[0], int(web.rsplit(":", 1)[1]))
        return self

    def _read(self, proc: subprocess.Popen[bytes], out: queue.Queue[dict[str, Any] | None]) -> None:
        assert proc.stderr is not None
        for raw in proc.stderr:
            try:
                event = json.loads(raw)
            except ValueError:
                event = {"event": "text", "text": raw.decode(errors="replace").rstrip()}
            out.put(event)
        out.put(None)

    def wait_event(self, name: str, timeout: float = 30.0, **match: Any) -> dict[str, Any]:
        """Block until the daemon logs ``name`` (with the given fields); fail on exit or timeout."""
        def wanted(e: dict[str, Any]) -> bool:
            return e.get("event") == name and all(e.get(k) == v for k, v in match.items())

        return self._wait(wanted, 1, timeout, f"{name!r} {match or ''}")[0]

    def wait_count(self, name: str, count: int, timeout: float = 30.0) -> list[dict[str, Any]]:
        """Block until the daemon has logged ``name`` at least ``count`` times."""
        return self._wait(lambda e: e.get("event") == name, count, timeout, repr(name))

    def _wait(self, wanted: Any, count: int, timeout: float, what: str) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while True:
            found = [e for e in self.events if wanted(e)]
            if len(found) >= count:
                return found
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"{len(found)} of {count} {what} events in {timeout}s; log: {self.events[-20:]}")
            try:
                event = self._lines.get(timeout=left)
            except queue.Empty:
                continue
            if event is None:
                raise AssertionError(f"daemon exited with {len(found)} of {count} {what} events; log: {self.events[-20:]}")
            self.events.append(event)

    def recent(self, count: int = 15) -> list[dict[str, Any]]:
        """The last ``count`` events logged so far, without waiting for more."""
        while True:
            try:
                event = self._lines.get_nowait()
            except queue.Empty:
                break
            if event is None:  # the process ended: leave the mark for _wait and _drain_log
                self._lines.put(None)
                break
            self.events.append(event)
        return self.events[-count:]

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        code = self.proc.wait(timeout)
        self._drain_log()
        return code

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(10)
        self._drain_log()

    def _drain_log(self, timeout: float = 30.0) -> None:
        """Collect what the exited process logged, then close its pipe once the reader is done."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                event = self._lines.get(timeout=left)
            except queue.Empty:
                break
            if event is None:
                break
            self.events.append(event)
        self._reader.join(max(0.0, deadline - time.monotonic()))
        if not self._reader.is_alive() and self.proc is not None and self.proc.stderr is not None:
            self.proc.stderr.close()  # never under a reader still blocked in read()

    def ensure_stopped(self) -> None:
        """Teardown: kill the process if it still runs, and release its pipe."""
        if self.proc is None or self.proc.stderr is None or self.proc.stderr.closed:
            return
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self._drain_log()

    # -- clients -----------------------------------------------------------------------------

    def send(self, raw: bytes, rcpt: str = "optout@sellers.example", sender: str = "fwd@seller.example") -> tuple[int, bytes]:
        """One SMTP transaction with smtplib; returns the DATA reply (code, text)."""
        with smtplib.SMTP(*self.smtp, timeout=30) as client:
            client.ehlo("test.example")
            code, msg = client.mail(sender)
            assert code == 250, (code, msg)
            code, msg = client.rcpt(rcpt)
            if code != 250:
                return code, msg
            return client.data(raw)

    def query(self, *lines: str) -> list[str]:
        """Pipelined lines over the Unix socket; one reply each, in order."""
        return query_socket(self.socket_path, lines)

    def keyring(self) -> KeyRing:
        """This daemon's privacy key (its key file, made by ``db upgrade`` or the first start)."""
        path = self.home / "privacy.key"
        if self.config is not None:
            path = Path(tomllib.loads(self.config.read_text()).get("privacy", {}).get("key_file", path))
        return load_keyring(path, create=False)

    def tag(self, key: str) -> str:
        """What this daemon's log lines show for a relay address or order id (``BuyerKey.tag``
        under its privacy key)."""
        parsed = keys.parse(key)
        assert parsed is not None, key
        return parsed.tag(self.keyring())

    def message_tag(self, message_id: str) -> str:
        """What this daemon's log lines show for a Message-ID (``keys.message_id_tag``)."""
        return keys.message_id_tag(self.keyring(), message_id)

    def stored(self, key: str) -> str:
        """What this daemon's database holds for a relay address or order id (``BuyerKey.stored``)."""
        parsed = keys.parse(key)
        assert parsed is not None, key
        return parsed.stored(self.keyring())

    def cli(self, *args: str, check: bool = False) -> subprocess.CompletedProcess[str]:
        full = [self.exe, *args] + (["--config", str(self.config)] if self.config else [])
        return subprocess.run(full, env=self.env, cwd=self.cwd, capture_output=True, text=True, timeout=60, check=check)


def query_socket(path: str, lines: Any, timeout: float = 10.0) -> list[str]:
    lines = list(lines)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(path)
        sock.sendall("".join(f"{line}\n" for line in lines).encode())
        buf = b""
        while buf.count(b"\n") < len(lines):
            chunk = sock.recv(65536)
            if not chunk:
                break
            buf += chunk
    return buf.decode().splitlines()


def ask_unix(path: str, request: bytes, timeout: float = 10.0) -> bytes:
    """One request on a Unix stream socket and the first reply read (the Postfix policy service
    and socketmap answer each request in one write)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(path)
        sock.sendall(request)
        return sock.recv(4096)


def wait_until(predicate: Any, timeout: float = 10.0, interval: float = 0.05, explain: Any = None) -> Any:
    """Poll a condition with a deadline (for state in another process; never a bare sleep).
    ``explain``: called on failure, its text joins the error (what the daemons were doing)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s" + (f"; {explain()}" if explain else ""))
        time.sleep(interval)
