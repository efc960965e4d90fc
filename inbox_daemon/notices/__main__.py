"""``python -m inbox_daemon.notices [parse] [--json|--text] FILE...``: the parse CLI by module.

The shared scorer is run as ``corpus-check --cmd "python -m inbox_daemon.notices"`` (no
``--json``), so this module entry prints JSON lines by default; ``--text`` gives the readable
line. ``inbox-daemon parse`` (click, in cli.py) keeps the issue's contract: readable unless
``--json``. Both call ``run_parse_cli``; exit status 0 when all files were read, 2 otherwise.
"""

from __future__ import annotations

import argparse
import sys

from .report import run_parse_cli


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["parse"]:
        args = args[1:]
    ap = argparse.ArgumentParser(prog="python -m inbox_daemon.notices", description=__doc__)
    style = ap.add_mutually_exclusive_group()
    style.add_argument("--json", dest="as_json", action="store_true", default=True,
                       help="one JSON object per file and line (default)")
    style.add_argument("--text", dest="as_json", action="store_false", help="a readable line per file")
    ap.add_argument("files", nargs="+", metavar="FILE")
    parsed = ap.parse_args(args)
    return run_parse_cli(parsed.files, parsed.as_json)


if __name__ == "__main__":
    sys.exit(main())
