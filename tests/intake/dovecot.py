"""A real Dovecot for the IMAP intake tests: started per test on a loopback port, with
a throwaway passwd-file user and a Maildir in a temporary directory, and nothing shared with a
system Dovecot. Mail goes in and is inspected through real IMAP (imaplib), as a seller's mail
client would.

Dovecot cannot listen on port 0, so a free port is found by binding one and closing it (and
Dovecot started again on new ports if another process takes one before Dovecot binds it). When
the tests run as root the mail user is ``nobody`` (Dovecot refuses mail access as UID 0) and the
files live in a directory ``nobody`` can reach; otherwise every Dovecot user is the current one.
"""

from __future__ import annotations

import imaplib
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["Dovecot", "dovecot_binary", "free_port"]

USER = "seller@shop.example"
PASSWORD = "correct horse"
READY_SECONDS = 10.0


def dovecot_binary() -> str | None:
    return shutil.which("dovecot") or next(
        (p for p in ("/usr/sbin/dovecot", "/usr/local/sbin/dovecot") if os.access(p, os.X_OK)), None
    )


PORT_ATTEMPTS = 3  # Dovecot starts again on new ports when a found port was taken meanwhile


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _users() -> tuple[str, str, int, int]:
    """(internal user, login user, mail uid, mail gid) for the current privileges."""
    if os.geteuid() == 0:
        nobody = pwd.getpwnam("nobody")
        internal = "dovecot" if _exists("dovecot") else "root"
        login = "dovenull" if _exists("dovenull") else internal
        return internal, login, nobody.pw_uid, nobody.pw_gid
    me = pwd.getpwuid(os.geteuid())
    return me.pw_name, me.pw_name, me.pw_uid, me.pw_gid


def _exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


_CONF = """\
protocols = imap
listen = 127.0.0.1
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
{ssl}
disable_plaintext_auth = no
auth_mechanisms = plain login{mechanisms}
default_internal_user = {internal}
default_login_user = {login}
first_valid_uid = {uid}
first_valid_gid = {gid}
mail_location = maildir:{root}/Maildir
# inotify wakes IDLE at once; this is the fallback poll interval (default 30 s).
mailbox_idle_check_interval = 1 secs
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {root}/passwd
}}
{oauth2}userdb {{
  driver = static
  args = uid={uid} gid={gid} home={root}/home
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {tls_port}
  }}
{login_extra}
}}
service imap {{
{imap_extra}
}}
protocol imap {{
  mail_max_userip_connections = 50
{capability}
}}
"""


class Dovecot:
    """One Dovecot master process and its files; ``stop``/``start`` keep port and Maildir."""

    def __init__(self, root: Path, *, capability: str | None = None, tls: bool = False,
                 introspection_url: str | None = None) -> None:
        self.root = root
        self.port = free_port()
        self.tls_port = free_port() if tls else 0  # implicit TLS; STARTTLS is on ``port`` then
        self.cert = root / "cert.pem" if tls else None
        self.user = USER
        self.password = PASSWORD
        self.proc: subprocess.Popen[bytes] | None = None
        internal, login, uid, gid = _users()
        self.uid, self.gid = uid, gid
        unprivileged = os.geteuid() != 0
        conf = _CONF.format(
            root=root, internal=internal, login=login, uid=uid, gid=gid, port=self.port,
            tls_port=self.tls_port, ssl=self._ssl() if tls else "ssl = no",
            # Without root there is no chroot and no privilege drop to other users.
            login_extra="  chroot =\n  user = " + internal if unprivileged else "",
            imap_extra="  user = " + internal if unprivileged else "",
            capability=f"  imap_capability = {capability}" if capability else "",
            mechanisms=" xoauth2 oauthbearer" if introspection_url else "",
            oauth2=self._oauth2(introspection_url) if introspection_url else "",
        )
        for sub in ("run", "state", "home", "Maildir"):
            (root / sub).mkdir(parents=True, exist_ok=True)
        (root / "dovecot.conf").write_text(conf)
        (root / "passwd").write_text(f"{self.user}:{{PLAIN}}{self.password}:{uid}:{gid}::{root}/home\n")
        for sub in ("home", "Maildir"):
            os.chown(root / sub, uid, gid)

    def _oauth2(self, introspection_url: str) -> str:
        """``passdb oauth2`` after the passwd-file: a password logs in as before, a bearer token
        (SASL XOAUTH2 / OAUTHBEARER) is checked at the issuer's RFC 7662 endpoint, at every login
        (no auth cache: a revoked token is refused at once)."""
        (self.root / "dovecot-oauth2.conf.ext").write_text(
            f"introspection_mode = post\nintrospection_url = {introspection_url}\n"
            "username_attribute = username\nactive_attribute = active\nactive_value = true\n"
        )
        return f"passdb {{\n  driver = oauth2\n  mechanisms = xoauth2 oauthbearer\n  args = {self.root}/dovecot-oauth2.conf.ext\n}}\n"

    def _ssl(self) -> str:
        """A throwaway self-signed certificate for 127.0.0.1; clients trust it via SSL_CERT_FILE."""
        key = self.root / "key.pem"
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
             "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost", "-keyout", str(key), "-out", str(self.cert)],
            check=True, capture_output=True, timeout=30,
        )
        return f"ssl = yes\nssl_cert = <{self.cert}\nssl_key = <{key}"

    @classmethod
    @contextmanager
    def running(cls, *, capability: str | None = None, tls: bool = False,
                introspection_url: str | None = None) -> Iterator[Dovecot]:
        for attempt in range(PORT_ATTEMPTS):
            # Not under pytest's tmp_path: that is mode 0700 and the mail user must reach the Maildir.
            root = Path(tempfile.mkdtemp(prefix="inbox-dovecot-"))
            root.chmod(0o755)
            server = cls(root, capability=capability, tls=tls, introspection_url=introspection_url)
            try:
                server.start()
            except RuntimeError as exc:
                server.kill()
                shutil.rmtree(root, ignore_errors=True)
                # The free port was taken between finding it and Dovecot binding it (another
                # test's process): new ports, new files.
                if "Address already in use" in str(exc) and attempt + 1 < PORT_ATTEMPTS:
                    continue
                raise
            break
        try:
            yield server
        finally:
            server.kill()
            shutil.rmtree(root, ignore_errors=True)

    # -- process -------------------------------------------------------------------------------

    def start(self) -> None:
        binary = dovecot_binary()
        assert binary, "dovecot is not installed (bash .ci/install-dovecot.sh)"
        with open(self.root / "master.err", "ab") as err:  # the child keeps its own copy
            self.proc = subprocess.Popen(
                [binary, "-F", "-c", str(self.root / "dovecot.conf")], stdout=subprocess.DEVNULL, stderr=err,
                start_new_session=True,  # its own process group, for stop()
            )
        self._wait_ready()

    def stop(self) -> None:
        """SIGTERM to the master and all its processes at once, as ``systemctl stop`` does (a
        cgroup-wide SIGTERM): each imap process says BYE and exits. (The master alone would
        leave them running for another ~10 s.)"""
        self._signal_group(signal.SIGTERM)

    def kill(self) -> None:
        """SIGKILL the whole group: for teardown, where a graceful stop only costs a second."""
        self._signal_group(signal.SIGKILL)

    def _signal_group(self, sig: int) -> None:
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, sig)  # the group exists until the master is reaped
        except ProcessLookupError:
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=5)
        self.proc = None

    def _wait_ready(self) -> None:
        """Connect until the greeting arrives: bounded, no fixed sleep."""
        deadline = time.monotonic() + READY_SECONDS
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"dovecot exited {self.proc.returncode}: {self.log_tail()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                    if sock.recv(64).startswith(b"* OK"):
                        return
            except OSError:
                time.sleep(0.02)  # a connect retry interval, not a wait for work
        raise RuntimeError(f"dovecot not ready in {READY_SECONDS}s: {self.log_tail()}")

    def log_tail(self) -> str:
        parts = []
        for name in ("master.err", "dovecot.log"):
            path = self.root / name
            if path.exists():
                parts.append(path.read_text(errors="replace")[-2000:])
        return "\n".join(parts)

    # -- mail through real IMAP ------------------------------------------------------------------

    @contextmanager
    def client(self) -> Iterator[imaplib.IMAP4]:
        imap = imaplib.IMAP4("127.0.0.1", self.port, timeout=10)
        try:
            imap.login(self.user, self.password)
            yield imap
        finally:
            try:
                imap.logout()
            except (imaplib.IMAP4.error, OSError):
                pass

    def append(self, *messages: bytes, mailbox: str = "INBOX") -> None:
        with self.client() as imap:
            for raw in messages:
                typ, data = imap.append(mailbox, "", None, raw)  # type: ignore[arg-type]
                assert typ == "OK", data

    def create(self, mailbox: str) -> None:
        self._command("create", mailbox)

    def delete(self, mailbox: str) -> None:
        self._command("delete", mailbox)

    def _command(self, name: str, *args: str) -> None:
        with self.client() as imap:
            typ, data = getattr(imap, name)(*args)
            assert typ == "OK", data

    def flags(self, mailbox: str = "INBOX") -> dict[int, set[str]]:
        """UID -> flags of every message in the mailbox (read-only: EXAMINE)."""
        with self.client() as imap:
            typ, data = imap.select(_quote(mailbox), readonly=True)
            assert typ == "OK", data
            if int(data[0] or 0) == 0:
                return {}
            typ, data = imap.uid("FETCH", "1:*", "(UID FLAGS)")
            assert typ == "OK", data
        out: dict[int, set[str]] = {}
        for item in data:
            text = item.decode() if isinstance(item, bytes) else ""
            m = re.search(r"UID (\d+)", text)
            f = re.search(r"FLAGS \(([^)]*)\)", text)
            if m and f:
                out[int(m.group(1))] = set(f.group(1).split())
        return out

    def count(self, mailbox: str = "INBOX") -> int | None:
        """Messages in the mailbox; None when it does not exist."""
        with self.client() as imap:
            typ, data = imap.status(_quote(mailbox), "(MESSAGES)")
        m = re.search(rb"MESSAGES (\d+)", data[0] or b"") if typ == "OK" else None
        return int(m.group(1)) if m else None

    def uidvalidity(self, mailbox: str = "INBOX") -> int:
        with self.client() as imap:
            typ, data = imap.status(_quote(mailbox), "(UIDVALIDITY)")
            assert typ == "OK", data
        m = re.search(rb"UIDVALIDITY (\d+)", data[0] or b"")
        assert m, data
        return int(m.group(1))


def _quote(mailbox: str) -> str:
    return '"' + mailbox.replace("\\", "\\\\").replace('"', '\\"') + '"'
