"""Every parse result over the repository's mail samples and damaged copies of them, one line
each: how tests/test_packaging.py holds the parser a wheel compiles (mypyc) to the pure Python
it was compiled from.

Run as a script by any interpreter (``python tests/support/parsed.py [COPIES]``): it imports
only the ``inbox_daemon`` that interpreter has installed, and reads the samples beside itself.
The first line names how that parser was built.
"""

from __future__ import annotations

import pickle
import random
import sys
from collections.abc import Iterator
from pathlib import Path

from inbox_daemon.notices import compiled, parse_notice

SAMPLES = Path(__file__).resolve().parents[1] / "data"
COPIES = 20  # damaged copies per sample


def damaged(raw: bytes, seed: str, copies: int = COPIES) -> Iterator[bytes]:
    """``raw`` and ``copies`` damaged copies of it, the same for the same seed: cut short, bytes
    overwritten, a NUL, a line break and an open encoded word spliced in, LF made CRLF in part,
    upper-cased (each a path compiled code takes with values typeshed did not foresee)."""
    rng = random.Random(seed)
    yield raw
    for _ in range(copies):
        data = bytearray(raw)
        damage = rng.randrange(5)
        if damage == 0:
            del data[rng.randrange(len(data)):]
        elif damage == 1:
            for _ in range(5):
                data[rng.randrange(len(data))] = rng.randrange(256)
        elif damage == 2:
            data[rng.randrange(len(data)):rng.randrange(len(data)) + 1] = b"\x00\r\n=?utf-8?b?"
        elif damage == 3:
            data = bytearray(raw.replace(b"\n", b"\r\n", rng.randrange(50)))
        else:
            data = bytearray(raw.upper())
        yield bytes(data)


def results(copies: int = COPIES) -> Iterator[str]:
    """One line per sample or copy: its name, copy number and the whole ``ParseResult``, after
    a pickle round trip."""
    for path in sorted(SAMPLES.rglob("*.eml")):
        for n, raw in enumerate(damaged(path.read_bytes(), path.name, copies)):
            result = pickle.loads(pickle.dumps(parse_notice(raw)))  # as the parser worker returns it
            yield f"{path.relative_to(SAMPLES)} {n} {result!r}"


def build() -> str:
    """"compiled" where mypyc built the parser (an extension module), else "pure"."""
    return "compiled" if compiled() else "pure"


if __name__ == "__main__":
    print(build())
    for line in results(int(sys.argv[1]) if len(sys.argv) > 1 else COPIES):
        print(line)
