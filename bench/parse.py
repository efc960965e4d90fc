"""Notices parsed per second on one core, and the share of time inside the stdlib ``email``.

Prints figures, asserts nothing. Run: ``.venv/bin/python bench/parse.py [SAMPLE_DIR]``.
Target: at least 2,000 notices/s per core for a ~4 KB forwarded multipart notice. The second
figure is over the repository's own samples (tests/data/notices, every folder) unless another
folder of .eml files is named; nothing outside the repository is read by default.
"""

from __future__ import annotations

import cProfile
import email
import os
import pstats
import sys
import time
from pathlib import Path

from inbox_daemon.notices import parse_notice

SAMPLES = Path(__file__).resolve().parents[1] / "tests" / "data" / "notices"
FORWARD = SAMPLES / "fwd_gmail_4k.eml"


def rate(messages: list[bytes], seconds: float = 2.0) -> float:
    """Messages parsed per CPU second of this process (per core, whatever else the machine
    runs), looping over ``messages`` for about ``seconds`` of CPU time."""
    done, start = 0, time.process_time()
    while time.process_time() - start < seconds:
        for raw in messages:
            parse_notice(raw)
        done += len(messages)
    return done / (time.process_time() - start)


def email_share(messages: list[bytes], rounds: int = 200) -> float:
    """Share of wall time spent in functions defined under the stdlib ``email`` package."""
    email_dir = os.path.dirname(email.__file__)
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(rounds):
        for raw in messages:
            parse_notice(raw)
    profiler.disable()
    stats = pstats.Stats(profiler)
    total = stats.total_tt  # type: ignore[attr-defined]
    inside = 0.0
    for (filename, _, _), (_, _, _, _, callers) in stats.stats.items():  # type: ignore[attr-defined]
        if not filename.startswith(email_dir):
            continue
        # Cumulative time of calls *entering* email from outside it: summing every email
        # function's cumulative time would count nested email calls several times.
        for (caller_file, _, _), (_, _, _, cumtime) in callers.items():
            if not caller_file.startswith(email_dir):
                inside += cumtime
    return inside / total if total else 0.0


def main() -> int:
    corpus_dir = Path(sys.argv[1]) if len(sys.argv) > 1 else SAMPLES
    forward = FORWARD.read_bytes()
    print(f"forwarded notice: {FORWARD.name}, {len(forward)} bytes")
    print(f"  {rate([forward]):,.0f} notices/s on one core")
    print(f"  {email_share([forward]):.0%} of the time inside the stdlib email package")
    files = sorted(corpus_dir.rglob("*.eml"))
    if files:
        corpus = [f.read_bytes() for f in files]
        print(f"samples: {len(files)} files under {corpus_dir}")
        print(f"  {rate(corpus):,.0f} notices/s on one core")
        print(f"  {email_share(corpus, 50):.0%} of the time inside the stdlib email package")
    else:
        print(f"samples: none under {corpus_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
