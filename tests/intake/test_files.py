"""Back-fill from archives: an mbox, a Maildir and loose .eml files built from the samples in
tests/data/notices (and, as an extra check, the shared corpus beside the checkout) go through
the real Store and processing; a second run adds nothing."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from inbox_daemon.intake.files import ImportSummary, import_paths, iter_mbox
from tests.conftest import stored
from tests.intake.harness import query, running_flow
from tests.support.samples import SAMPLES, Samples, shared_corpus

Run = Callable[..., Any]


@pytest.fixture(params=["repository", "shared"])
def samples(request: pytest.FixtureRequest) -> Samples:
    return Samples.of(SAMPLES) if request.param == "repository" else shared_corpus()


def write_mboxrd(path: Path, messages: list[bytes]) -> Path:
    """As mutt writes it: a From_ line, ``>``-quoted From lines, a blank line after each."""
    with open(path, "wb") as out:
        for raw in messages:
            out.write(b"From MAILER-DAEMON Thu Nov 26 06:00:00 2026\n")
            for line in raw.splitlines(keepends=True):
                out.write(b">" + line if re.match(rb">*From ", line) else line)
            out.write(b"\n" if raw.endswith(b"\n") else b"\n\n")
    return path


def write_maildir(root: Path, messages: list[bytes]) -> Path:
    for sub in ("cur", "new", "tmp"):
        (root / sub).mkdir(parents=True)
    for i, raw in enumerate(messages):  # some read (cur, with an info suffix), some not yet
        target = root / "cur" / f"{i}.host:2,S" if i % 2 else root / "new" / f"{i}.host"
        target.write_bytes(raw)
    return root


def import_twice(db: Path, paths: list[Path], run: Run, again: list[Path] | None = None) -> tuple[ImportSummary, ImportSummary]:
    async def main() -> tuple[ImportSummary, ImportSummary]:
        async with running_flow(db) as (_store, flow):
            first = await import_paths(paths, flow, progress=False)
            second = await import_paths(again or paths, flow, progress=False)
            return first, second

    return run(main(), 60)


def check_import(db: Path, samples: Samples, first: ImportSummary, second: ImportSummary) -> None:
    """Every sample stored once with the kind expected.json gives it (or an ``also_ok`` one; a
    malformed case may be called not_opt_out, as corpus-check allows), every order id of an
    applied notice blocked, the summary agreeing with the database, the second run all
    duplicates."""
    cases = samples.cases
    n = len(cases)
    assert first.messages_read == n and (first.duplicates, first.errors) == (0, 0)
    rows = dict(query(db, "SELECT sha256, outcome FROM raw_messages"))
    assert len(rows) == n
    orders: set[str] = set()
    for name, raw, case in cases:
        sha = hashlib.sha256(raw).hexdigest()
        if sha not in rows:  # only an mbox may change a message: one that lacked a final newline
            assert not raw.endswith(b"\n"), name
            sha = hashlib.sha256(raw + b"\n").hexdigest()
        allowed = {case["kind"], *(a["kind"] for a in case.get("also_ok", []))}
        if case["kind"] == "malformed":
            allowed.add("not_opt_out")
        assert rows[sha] in allowed, (name, rows[sha])
        if rows[sha] == "opt_out" and case["kind"] == "opt_out":
            orders.update(stored(b["order_id"]) for b in case["buyers"] if b["order_id"])  # as the rows hold them
    outcomes = list(rows.values())
    assert first.opt_out_notices == outcomes.count("opt_out") > 0
    assert first.not_notices == outcomes.count("not_opt_out")
    assert first.malformed == outcomes.count("malformed")
    assert first.buyers_added == query(db, "SELECT count(*) FROM opt_outs")[0][0]
    assert orders <= {o for (o,) in query(db, "SELECT order_id FROM opt_outs WHERE active")}
    assert second == ImportSummary(messages_read=n, duplicates=n)
    assert query(db, "SELECT count(*), max(times_received) FROM raw_messages") == [(n, 2)]
    assert query(db, "SELECT count(*) FROM evidence")[0][0] == query(
        db, "SELECT count(*) FROM evidence e JOIN raw_messages r ON r.id = e.raw_message_id WHERE r.times_received = 2"
    )[0][0]


def test_mbox(samples: Samples, tmp_path: Path, db_path: Path, run: Run) -> None:
    mbox = write_mboxrd(tmp_path / "notices.mbox", samples.raws)
    check_import(db_path, samples, *import_twice(db_path, [mbox], run))


def test_maildir(samples: Samples, tmp_path: Path, db_path: Path, run: Run) -> None:
    maildir = write_maildir(tmp_path / "Maildir", samples.raws)
    check_import(db_path, samples, *import_twice(db_path, [maildir], run))


def test_loose_eml_files_then_the_same_in_a_maildir_adds_nothing(tmp_path: Path, db_path: Path, run: Run) -> None:
    samples = Samples.of(SAMPLES)
    folder = tmp_path / "loose"  # the samples without their subfolders of other samples
    folder.mkdir()
    for name, raw, _ in samples.cases:
        (folder / name).write_bytes(raw)
    files = sorted(folder.glob("*.eml"))
    check_import(db_path, samples, *import_twice(db_path, files, run, again=[folder]))  # files, then their folder

    maildir = write_maildir(tmp_path / "Maildir", [p.read_bytes() for p in files])

    async def again() -> ImportSummary:
        async with running_flow(db_path) as (_store, flow):
            return await import_paths([maildir], flow, progress=False)

    n = len(files)
    assert run(again()) == ImportSummary(messages_read=n, duplicates=n)


def test_mboxrd_from_quoting_round_trips_exactly(tmp_path: Path) -> None:
    original = [
        b"Subject: one\r\n\r\nFrom the desk of Amazon\r\n>From quoted once\r\n\r\nFrom again\r\n",
        b"Subject: two\n\nFromage is not a From_ line\n",
    ]
    mbox = write_mboxrd(tmp_path / "q.mbox", original)
    assert b"\n>From the desk" in mbox.read_bytes() and b"\n>>From quoted" in mbox.read_bytes()
    with open(mbox, "rb") as fh:
        assert [raw for raw, _ in iter_mbox(fh)] == original


def test_a_tree_of_formats_and_an_unreadable_path(tmp_path: Path, db_path: Path, run: Run) -> None:
    cases = Samples.of(SAMPLES).cases
    tree = tmp_path / "archive"
    write_maildir(tree / "Maildir", [raw for _, raw, _ in cases[:5]])
    write_maildir(tree / "Maildir" / ".Archive.2019", [raw for _, raw, _ in cases[5:10]])  # Maildir++
    (tree / "2019").mkdir()
    write_mboxrd(tree / "2019" / "old-notices", [raw for _, raw, _ in cases[10:20]])  # no suffix: sniffed
    for name, raw, _ in cases[20:]:
        (tree / "loose").mkdir(exist_ok=True)
        (tree / "loose" / name).write_bytes(raw)
    (tree / "loose" / "README.txt").write_text("not mail, not picked up in a folder walk\n")

    async def main() -> ImportSummary:
        async with running_flow(db_path) as (_store, flow):
            return await import_paths([tree, tmp_path / "missing.mbox"], flow, progress=False)

    summary = run(main())
    assert summary.messages_read == len(cases) and summary.duplicates == 0
    assert summary.skipped == 1 and summary.errors == 0 and "missing.mbox" in summary.problems[0]
    assert query(db_path, "SELECT count(*) FROM raw_messages") == [(len(cases),)]


def test_summary_lines_and_no_progress_bar_off_a_terminal(tmp_path: Path, db_path: Path, run: Run, capsys: pytest.CaptureFixture[str]) -> None:
    raws = Samples.of(SAMPLES).raws
    mbox = write_mboxrd(tmp_path / "n.mbox", raws)

    async def main() -> ImportSummary:
        async with running_flow(db_path) as (_store, flow):
            return await import_paths([mbox], flow, progress=True)

    summary = run(main())
    err = capsys.readouterr().err
    assert "\r" not in err and "%|" not in err  # captured stderr is no terminal (the bar: tests/test_progress.py)
    lines = summary.lines()
    assert lines[0] == f"messages read: {len(raws)}" and any(line.startswith("opt-out notices: ") for line in lines)
