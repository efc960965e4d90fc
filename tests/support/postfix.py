"""A throwaway Postfix instance on loopback (Debian's package), for tests that need a real MTA.

Its config directory is listed in the default instance's ``alternate_config_directories`` (the
only way ``postfix -c DIR start`` is allowed), it has its own queue and data directories, listens
on 127.0.0.1 only and discards what it accepts. Root is needed to start Postfix.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

DEFAULT_MAIN_CF = Path("/etc/postfix/main.cf")
_LOCK = Path("/etc/postfix/.inbox-daemon-tests.lock")
# The package installed with "No configuration" has no main.cf; postconf needs one.
_MINIMAL_MAIN_CF = "compatibility_level = 3.6\nalternate_config_directories =\n"

# Every service smtpd needs, none chrooted (a chroot would need copies of /etc files).
_MASTER_CF = """\
pickup    unix  n - n 60 1 pickup
cleanup   unix  n - n -  0 cleanup
qmgr      unix  n - n 300 1 qmgr
rewrite   unix  - - n -  - trivial-rewrite
bounce    unix  - - n -  0 bounce
defer     unix  - - n -  0 bounce
trace     unix  - - n -  0 bounce
verify    unix  - - n -  1 verify
flush     unix  n - n 1000? 0 flush
proxymap  unix  - - n -  - proxymap
showq     unix  n - n -  - showq
error     unix  - - n -  - error
retry     unix  - - n -  - error
discard   unix  - - n -  - discard
anvil     unix  - - n -  1 anvil
scache    unix  - - n -  1 scache
postlog   unix-dgram n - n - 1 postlogd
"""


def require_postfix() -> None:
    """Skip without Postfix or root (CI installs it and runs as root, so there it fails)."""
    missing = shutil.which("postfix") is None or shutil.which("postconf") is None
    reason = "Postfix is not installed (.ci/install-postfix.sh)" if missing else "starting Postfix needs root"
    if missing or os.geteuid() != 0:
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def _default_config_lock() -> Iterator[None]:
    """Several test runs (and helpers) edit the default main.cf: one at a time."""
    DEFAULT_MAIN_CF.parent.mkdir(parents=True, exist_ok=True)
    with open(_LOCK, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not DEFAULT_MAIN_CF.exists():
            DEFAULT_MAIN_CF.write_text(_MINIMAL_MAIN_CF)
        yield


def _alternates(change: str, directory: str) -> None:
    with _default_config_lock():
        current = subprocess.run(["postconf", "-h", "alternate_config_directories"], check=True,
                                 capture_output=True, text=True).stdout.replace(",", " ").split()
        wanted = [d for d in current if d != directory] + ([directory] if change == "add" else [])
        subprocess.run(["postconf", "-e", f"alternate_config_directories = {' '.join(wanted)}"], check=True)


class PostfixInstance:
    """``services``: master.cf lines for the smtpd listeners; ``main``: extra main.cf settings."""

    def __init__(self, main: dict[str, str], services: list[str]) -> None:
        # Its own directory under /tmp: the postfix user must walk to it, and pytest's are 0700.
        self.root = Path(tempfile.mkdtemp(prefix="inbox-postfix-"))
        self.config_dir = self.root / "etc"
        self.maillog = self.root / "maillog"
        self.main = main
        self.services = services

    def start(self) -> PostfixInstance:
        require_postfix()
        for sub in ("etc", "queue", "data"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        os.chmod(self.root, 0o755)  # the postfix user walks into queue/ and data/
        shutil.chown(self.root / "data", user="postfix")
        settings = {
            "compatibility_level": "3.6", "queue_directory": str(self.root / "queue"),
            "data_directory": str(self.root / "data"), "meta_directory": "/etc/postfix",
            "inet_interfaces": "127.0.0.1", "inet_protocols": "ipv4", "myhostname": "mta.test.example",
            "mydomain": "test.example", "mydestination": "", "mynetworks": "127.0.0.0/8", "alias_maps": "",
            "alias_database": "", "local_recipient_maps": "", "default_transport": "discard",
            "relay_transport": "discard", "maillog_file": str(self.maillog),
            "maillog_file_prefixes": str(self.root), "syslog_name": "inbox-daemon-test", **self.main,
        }
        (self.config_dir / "main.cf").write_text("".join(f"{k} = {v}\n" for k, v in settings.items()))
        (self.config_dir / "master.cf").write_text("\n".join(self.services) + "\n" + _MASTER_CF)
        _alternates("add", str(self.config_dir))
        self._postfix("start")
        return self

    def stop(self) -> None:
        try:
            if (self.root / "data" / "master.lock").exists():
                self._postfix("stop", check=False)
        finally:
            _alternates("remove", str(self.config_dir))
            shutil.rmtree(self.root, ignore_errors=True)

    def _postfix(self, command: str, check: bool = True) -> None:
        done = subprocess.run(["postfix", "-c", str(self.config_dir), command], capture_output=True,
                              text=True, timeout=60)
        if check and done.returncode != 0:
            log = self.maillog.read_text() if self.maillog.exists() else ""
            raise AssertionError(f"postfix {command} failed ({done.returncode}): {done.stderr}\n{log[-3000:]}")

    def log(self) -> str:
        return self.maillog.read_text() if self.maillog.exists() else ""
