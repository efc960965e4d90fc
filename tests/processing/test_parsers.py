"""The parser pool: a batch and its companion work (the headers' forwarding claims) go to a
real worker process in one call, and a runaway or a failing companion costs only itself."""

from __future__ import annotations

import asyncio
import multiprocessing
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import pytest

from inbox_daemon.notices import Kind
from inbox_daemon.processing.parsers import HARD_STOP_GRACE_S, PARSE_TIMEOUT, ParsePool, Parser, _parse_many
from inbox_daemon.trust.identity import claims_of, header_claims
from tests.support import slow_parser
from tests.support.notices import opt_out_notice

ROOT = Path(__file__).resolve().parents[2]
SLOW = Parser(slow_parser.parse_notice, slow_parser.PARSER_VERSION, module="tests.support.slow_parser")
FORWARDED = (b"X-Forwarded-For: fwd@example.net\r\n"  # a redirect's trace: one forwarding claim
             + opt_out_notice("111-2222222-3333333", "abcdefghij12345@marketplace.amazon.com"))
HANG = b"X-Test-Hang: yes\r\n" + opt_out_notice("111-2222222-4444444", None)


def sizes(raws: Sequence[bytes]) -> list[int]:
    return [len(raw) for raw in raws]


def fails(raws: Sequence[bytes]) -> list[int]:
    raise ValueError("companion bug")


def run_pool(workers: int, raws: list[bytes], also: object, timeout: float = 30.0) -> tuple[list[object], object, int]:
    async def body() -> tuple[list[object], object, int]:
        pool = ParsePool(SLOW, workers, timeout=timeout)
        try:
            results, extra = await pool.parse_many(raws, also)  # type: ignore[arg-type]
            return list(results), extra, pool.replaced
        finally:
            pool.close(wait=True, kill=True)

    return asyncio.run(body())


@pytest.mark.parametrize("workers", [1, 0])
def test_the_claims_come_back_with_the_parse_in_one_call(workers: int) -> None:
    plain = opt_out_notice("111-2222222-5555555", "zyxwvutsrq54321@marketplace.amazon.com")
    results, extra, _ = run_pool(workers, [FORWARDED, plain], header_claims)
    assert [r.kind for r in results] == [Kind.OPT_OUT, Kind.OPT_OUT]  # type: ignore[attr-defined]
    assert extra == [claims_of(FORWARDED)[1], claims_of(plain)[1]]
    assert extra[0]  # type: ignore[index]  # the forwarding header is a claim: the check can fail


def test_a_failing_companion_is_none_and_the_parse_stands() -> None:
    results, extra, _ = run_pool(1, [FORWARDED], fails)
    assert extra is None and results[0].kind is Kind.OPT_OUT  # type: ignore[attr-defined]
    _, extra, _ = run_pool(1, [FORWARDED], sizes)
    assert extra == [len(FORWARDED)]


def test_a_runaway_leaves_the_companion_to_the_caller() -> None:
    results, extra, replaced = run_pool(1, [FORWARDED, HANG], sizes, timeout=1.0)
    assert results[1] == PARSE_TIMEOUT and results[0].kind is Kind.OPT_OUT  # type: ignore[attr-defined]
    assert extra is None and replaced == 1


def _batch_in_a_process(raws: list[bytes], timeout: float) -> tuple[int | None, float]:
    """``_parse_many`` as a worker runs it, in a process of its own: its exit code (0 when the
    batch was parsed) and the seconds it took."""
    context = multiprocessing.get_context("spawn")
    process = context.Process(target=_parse_many, args=("tests.support.slow_parser", raws, timeout))
    started = time.monotonic()
    process.start()
    process.join(timeout + len(raws) * (timeout + HARD_STOP_GRACE_S) + 30)
    elapsed = time.monotonic() - started
    if process.is_alive():
        process.kill()
        process.join()
    return process.exitcode, elapsed


def test_a_parse_deaf_to_sigalrm_is_ended_by_the_hard_stop() -> None:
    """A parse stuck where SIGALRM never reaches it (C code; here the signal is blocked) ends
    the worker at its deadline plus the grace, after quick ones before it in the batch."""
    deaf = b"X-Test-Hang: deaf\r\n" + opt_out_notice("111-2222222-6666666", None)
    code, elapsed = _batch_in_a_process([opt_out_notice("111-2222222-7777777", None)] * 3 + [deaf], timeout=0.5)
    assert code not in (0, None), code
    assert elapsed < 0.5 + HARD_STOP_GRACE_S + 10, elapsed  # spawning and importing included


def test_a_batch_longer_than_the_hard_stop_is_not_cut() -> None:
    """Slow but honest parses that together outlast ``timeout + HARD_STOP_GRACE_S``: the hard
    stop is armed again as the batch goes on, so the worker finishes the batch."""
    slow = [b"X-Test-Sleep: 0.4\r\n" + opt_out_notice(f"111-2222222-{n:07d}", None) for n in range(20)]
    code, elapsed = _batch_in_a_process(slow, timeout=1.0)
    assert elapsed > 1.0 + HARD_STOP_GRACE_S  # the batch did outlast one arming
    assert code == 0


_SCRIPT = """import sys
sys.path[:0] = [{root!r}]
from inbox_daemon.cli import main  # what the console script pip writes imports
if __name__ == "__main__":
    import asyncio
    from inbox_daemon.cli import _children_skip_this_script
    from inbox_daemon.processing.parsers import BUILTIN, ParsePool
    from tests.support.worker_modules import heavy_modules
    if sys.argv[1:] == ["skip"]:
        _children_skip_this_script()

    async def ask():
        pool = ParsePool(BUILTIN, 1)
        try:
            return (await pool.parse_many([b"x"], heavy_modules))[1]
        finally:
            pool.close(wait=True)

    print(asyncio.run(ask()))
"""


@pytest.mark.parametrize(("argument", "imported"), [("skip", "['']"), ("", "['sqlalchemy ")])
def test_a_worker_spawned_from_the_console_script_imports_only_the_parser(
        tmp_path: Path, argument: str, imported: str) -> None:
    """spawn runs the parent's main script again in each child; under ``inbox-daemon`` that
    imported the whole command package into every parser worker. With the script's module
    named as ``python -m inbox_daemon`` names it, the worker imports the parser and no more."""
    script = tmp_path / "inbox-daemon"
    script.write_text(_SCRIPT.format(root=str(ROOT)))
    done = subprocess.run([sys.executable, str(script), *([argument] if argument else [])],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().startswith(imported)  # without the skip, the worker has the store
