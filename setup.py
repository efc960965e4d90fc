"""The package list and the optional compiled parts; all metadata is in pyproject.toml.

``migrations/`` stays at the top of the source tree (Alembic's layout) and is installed inside
the package as ``inbox_daemon.migrations``, which pyproject.toml's ``packages.find`` cannot
express next to a ``package-dir`` mapping.

Two optional compiled parts; without a compiler, or if a build fails, the install still
succeeds and runs the same code in pure Python:

- ``lookup._fastpath``: the query protocol in C (inbox_daemon/lookup/protocol.py is the
  reference). It links OpenSSL's libcrypto (headers: libssl-dev) for keyed pseudonyms
  (HMAC-SHA-256, as privacy.py).
- The parser, ``inbox_daemon/notices`` (but ``result.py``), compiled by mypyc from its typed
  Python, as black and mypy ship themselves: the ``build_parser`` step. A built wheel or
  ``pip install .`` has it; an editable install (``pip install -e .``) does not, so an edited
  module runs as written.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import ClassVar

from setuptools import Extension, find_packages, setup
from setuptools.command.build import build
from setuptools.command.build_ext import build_ext

# What mypyc compiles: the parser, but for its result types. The parser worker hands those back
# by pickle, and a frozen dataclass compiled to a native class does not unpickle.
PURE = {"inbox_daemon/notices/result.py"}
COMPILED = sorted({p.as_posix() for p in Path("inbox_daemon/notices").rglob("*.py")} - PURE)


class BuildParser(build_ext):
    """The parser compiled by mypyc, outside editable installs (setuptools marks this step
    editable as it does build_ext), all or nothing: its modules share one library and run only
    beside it. A step of its own, so nothing else (the sdist's file list) runs mypyc."""

    description = "compile the parser (inbox_daemon/notices) with mypyc"

    def finalize_options(self) -> None:
        listed = self.distribution.ext_modules
        self.distribution.ext_modules = [] if self.editable_mode else _mypyc_extensions()
        try:
            super().finalize_options()  # takes the distribution's list, as build_ext does
        finally:
            self.distribution.ext_modules = listed

    def build_extensions(self) -> None:
        try:
            super().build_extensions()
        except Exception as exc:  # a compiler error or none at all: the parser stays pure Python
            for ext in self.extensions:
                Path(self.get_ext_fullpath(ext.name)).unlink(missing_ok=True)
            print(f"warning: the parser is not compiled, it runs in pure Python ({exc})", file=sys.stderr)


class Build(build):
    sub_commands: ClassVar = [*build.sub_commands, ("build_parser", None)]


def _mypyc_extensions() -> list[Extension]:
    """mypyc's C for ``COMPILED`` (type-checked with pyproject.toml's mypy settings), or none
    where mypyc cannot run."""
    try:
        from mypyc.build import mypycify

        return list(mypycify(COMPILED, opt_level="3", group_name="inbox_daemon_parser"))
    except (Exception, SystemExit) as exc:  # mypyc missing, or its type check failed
        print(f"warning: the parser is not compiled, it runs in pure Python ({exc!r})", file=sys.stderr)
        return []


setup(
    packages=[*find_packages(include=["inbox_daemon", "inbox_daemon.*"]),
              "inbox_daemon.migrations", "inbox_daemon.migrations.versions"],
    package_dir={"inbox_daemon.migrations": "migrations"},
    ext_modules=[Extension("inbox_daemon.lookup._fastpath", ["inbox_daemon/lookup/_fastpath.c", "inbox_daemon/lookup/_loop.c", "inbox_daemon/lookup/_pseudonym.c"], depends=["inbox_daemon/lookup/_tables.h"], libraries=["crypto"], optional=True)],
    cmdclass={"build": Build, "build_parser": BuildParser},
)
