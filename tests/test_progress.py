"""The import progress line: tqdm's bar with rate and ETA on a terminal, nothing off one."""

from __future__ import annotations

import io
import os
import select
import subprocess
from dataclasses import dataclass
from pathlib import Path

from inbox_daemon.progress import ImportProgress
from tests.support.daemon import EXE
from tests.support.installed import EXAMPLE


@dataclass
class Counts:
    messages_read: int = 0
    opt_out_notices: int = 0


def _read_until_newline(fd: int, timeout: float = 10.0) -> str:
    """What the bar wrote to the terminal, up to the newline its ``close`` ends with."""
    data = b""
    while b"\n" not in data:
        ready, _, _ = select.select([fd], [], [], timeout)
        assert ready, f"no newline from the bar: {data!r}"
        data += os.read(fd, 65536)
    return data.decode()


def test_quiet_when_the_stream_is_not_a_terminal() -> None:
    out = io.StringIO()
    bar = ImportProgress(1000, out)
    bar.advance(500, Counts(1, 1))
    bar.finish()
    assert out.getvalue() == ""


def test_rate_eta_and_counts_on_a_terminal() -> None:
    leader, follower = os.openpty()
    try:
        with open(follower, "w", closefd=False) as tty:
            bar = ImportProgress(10_000, tty)
            counts = Counts()
            for _ in range(4):
                counts.messages_read += 1
                counts.opt_out_notices += 1
                bar.advance(1000, counts)
            bar.finish()
            tty.flush()
        shown = _read_until_newline(leader)
    finally:
        os.close(leader)
        os.close(follower)
    last = shown.replace("\r", "\n").strip().splitlines()[-1]
    assert "import:" in last and "40%" in last
    assert "B/s" in last  # the rate
    assert "<" in last  # elapsed<remaining: the ETA
    assert "4 messages, 4 notices" in last


def test_cli_import_through_a_pipe_prints_no_progress(tmp_path: Path) -> None:
    env = {**os.environ, "INBOX_DAEMON_HOME": str(tmp_path / "home")}
    done = subprocess.run([EXE, "import", str(EXAMPLE)], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "opt-out notices: 1" in done.stdout
    assert "\r" not in done.stderr and "B/s" not in done.stderr
