"""``inbox-daemon import`` trusts the filesystem no more than a sender: nothing is read through
a symbolic link, a message is capped at ``smtp.max_message_bytes`` as over SMTP, a large mbox
is read with bounded memory, and the exit status says what happened (0 all decided, held for
review included; 1 input not taken; 2 messages that could not be processed)."""

from __future__ import annotations

import os
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.support.daemon import DaemonProcess, write_config
from tests.support.notices import opt_out_notice, order_id, relay_address
from tests.support.trust import forwarded_inline

MB = 1024 * 1024
SECRET = b"root:$6$not-a-notice:19000:0:99999:7:::\n"  # what /etc/shadow holds


def cli(tmp_path: Path, sections: dict[str, dict[str, Any]] | None = None) -> DaemonProcess:
    config = write_config(tmp_path / "c.toml", sections or {"smtp": {"max_message_bytes": 10 * MB}})
    return DaemonProcess(tmp_path / "home", config)


def stored(daemon: DaemonProcess) -> list[str]:
    """sha256 of every kept message, through ``messages show --raw``."""
    rows = daemon.cli("messages", "list", "--limit", "1000", check=True).stdout.splitlines()
    return [daemon.cli("messages", "show", row.split("\t")[0], "--raw", check=True).stdout for row in rows]


def notices(seed: int, n: int) -> list[bytes]:
    rng = random.Random(seed)
    return [opt_out_notice(order_id(rng), relay_address(rng), seq=i) for i in range(n)]


def maildir(root: Path) -> Path:
    for sub in ("cur", "new", "tmp"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    return root


def test_symlinked_files_and_folders_are_not_read(tmp_path: Path) -> None:
    """A message file linked to a secret, a Maildir whose ``new/`` links to a folder of secrets,
    and a linked subfolder in a walked tree: none is read, each is reported; real mail goes in."""
    secrets = tmp_path / "etc"
    secrets.mkdir()
    (secrets / "shadow").write_bytes(SECRET)
    good = notices(71, 3)
    linked_file = maildir(tmp_path / "a" / "Maildir")
    (linked_file / "cur" / "1.host:2,S").write_bytes(good[0])
    (linked_file / "new" / "2.host").symlink_to(secrets / "shadow")
    linked_new = tmp_path / "b" / "Maildir"
    (linked_new / "cur").mkdir(parents=True)
    (linked_new / "cur" / "3.host:2,S").write_bytes(good[1])
    (linked_new / "new").symlink_to(secrets)
    tree = tmp_path / "c"
    (tree / "real").mkdir(parents=True)
    (tree / "real" / "n.eml").write_bytes(good[2])
    (tree / "linked").symlink_to(secrets)
    (tree / "shadow.eml").symlink_to(secrets / "shadow")

    daemon = cli(tmp_path)
    done = daemon.cli("import", str(linked_file), str(linked_new), str(tree))
    assert done.returncode == 1, done.stdout + done.stderr
    assert "messages read: 3" in done.stdout and "skipped: 4" in done.stdout
    assert done.stdout.count("a symbolic link, not followed") == 4
    kept = stored(daemon)
    assert len(kept) == 3 and not any("not-a-notice" in raw for raw in kept)


def test_a_message_over_the_cap_is_refused_and_reported_not_stored(tmp_path: Path) -> None:
    """Over ``smtp.max_message_bytes``: a loose .eml and one message of an mbox. The rest of
    the mbox goes in; exit 1 lists what was not taken."""
    small = notices(72, 2)
    big = opt_out_notice(order_id(random.Random(73)), None) + b"\r\n" + b"y" * 300_000 + b"\r\n"
    (tmp_path / "big.eml").write_bytes(big)
    with open(tmp_path / "n.mbox", "wb") as out:
        for raw in (small[0], big, small[1]):
            out.write(b"From MAILER-DAEMON Thu Nov 26 06:00:00 2026\n" + raw + b"\n")
    daemon = cli(tmp_path, {"smtp": {"max_message_bytes": 200_000}})
    done = daemon.cli("import", str(tmp_path / "big.eml"), str(tmp_path / "n.mbox"))
    assert done.returncode == 1, done.stdout + done.stderr
    assert "messages read: 2" in done.stdout and "skipped: 2" in done.stdout
    assert done.stdout.count("more than 200000 bytes (smtp.max_message_bytes)") == 2
    assert len(stored(daemon)) == 2


PEAK = """
import resource, subprocess, sys
done = subprocess.run(sys.argv[1:], capture_output=True, text=True)
print(done.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, done.stdout.replace("\\n", "|"))
"""


def test_a_large_mbox_is_read_with_bounded_memory(tmp_path: Path) -> None:
    """A 300 MB mbox: notices around one message of 100 MB of lines and 200 MB in one line
    (a sparse hole of NUL bytes, so the disk does not fill). Peak RSS of the import process
    stays far below the file (reading a message or a line whole needs several times it)."""
    good = notices(74, 3)
    mbox = tmp_path / "big.mbox"
    with open(mbox, "wb") as out:
        out.write(b"From a Thu Nov 26 06:00:00 2026\n" + good[0] + b"\n")
        out.write(b"From b Thu Nov 26 06:00:00 2026\nSubject: huge\n\n")
        line = b"z" * 999 + b"\n"
        for _ in range(100 * MB // len(line)):
            out.write(line)
        out.seek(200 * MB, os.SEEK_CUR)  # one 200 MB line of NUL bytes
        out.write(b"\n\nFrom c Thu Nov 26 06:00:00 2026\n" + good[1] + b"\n")
        out.write(b"From d Thu Nov 26 06:00:00 2026\n" + good[2] + b"\n")
    assert mbox.stat().st_size > 300 * MB
    daemon = cli(tmp_path)
    command = [daemon.exe, "import", str(mbox), "--config", str(daemon.config)]
    peak = subprocess.run([sys.executable, "-c", PEAK, *command], env=daemon.env, capture_output=True,
                          text=True, timeout=300, check=True)
    status, max_rss_kib, summary = peak.stdout.split(" ", 2)
    assert int(max_rss_kib) < 300 * 1024, f"peak RSS {int(max_rss_kib) // 1024} MiB"
    assert int(status) == 1 and "messages read: 3|" in summary and "skipped: 1|" in summary, peak.stdout


def test_held_for_review_is_not_an_error(tmp_path: Path) -> None:
    """A notice forwarded by an address no seller registered is held for review: decided, and
    the import exits 0 (it exited 2 as if something had failed)."""
    raw = forwarded_inline(opt_out_notice(order_id(random.Random(75)), None), "stranger@elsewhere.example")
    (tmp_path / "held.eml").write_bytes(raw)
    daemon = cli(tmp_path, {"security": {"require_registered_forwarder": True}})
    done = daemon.cli("import", str(tmp_path / "held.eml"))
    assert "held: 1" in done.stdout or "errors: 1" in done.stdout, done.stdout + done.stderr
    assert done.returncode == 0, done.stdout
    listed = daemon.cli("quarantine", "list", "--outcome", "quarantined", check=True).stdout
    assert len(listed.splitlines()) == 1


