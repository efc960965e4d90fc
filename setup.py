"""The package list and the optional compiled parts; all metadata is in pyproject.toml.

``migrations/`` stays at the top of the source tree (Alembic's layout) and is installed inside
the package as ``inbox_daemon.migrations``, which pyproject.toml's ``packages.find`` cannot
express next to a ``package-dir`` mapping.

Two optional compiled parts; without a compiler, or if a build fails, the install still
succeeds and runs the same code in pure Python:

- ``lookup._fastpath``: the query protocol in C (inbox_daemon/lookup/protocol.py is the
  reference). It links OpenSSL's libcrypto (headers: libssl-dev) for keyed pseudonyms
  (HMAC-SHA-256, as privacy.py).
- The parser, ``inbox_daemon/notices``, compiled by mypyc from its typed Python, as black and
  mypy ship themselves. A built wheel or ``pip install .`` has it; an editable install
  (``pip install -e .``) does not, so an edited module runs as written.
"""

from __future__ import annotations

import sys
from pathlib import Path

from setuptools import Extension, find_packages, setup
from setuptools.command.build_ext import build_ext

# What mypyc compiles: the parser, but for its result types. The parser worker hands those back
# by pickle, and a frozen dataclass compiled to a native class does not unpickle.
PURE = {"inbox_daemon/notices/result.py"}
COMPILED = sorted({p.as_posix() for p in Path("inbox_daemon/notices").rglob("*.py")} - PURE)


class BuildExt(build_ext):
    """setuptools' build_ext, plus the parser compiled by mypyc outside editable installs,
    built all or nothing: its modules share one library and run only beside it."""

    def finalize_options(self) -> None:
        if not self.editable_mode and not any(getattr(e, "_mypyc", False) for e in self.distribution.ext_modules or []):
            self.distribution.ext_modules = [*(self.distribution.ext_modules or []), *_mypyc_extensions()]
        super().finalize_options()

    def build_extensions(self) -> None:
        compiled = [e for e in self.extensions if getattr(e, "_mypyc", False)]
        for ext in self.extensions:
            if ext not in compiled:
                with self._filter_build_errors(ext):  # what ``optional=True`` means to setuptools
                    self.build_extension(ext)
        built: list[Path] = []
        try:
            for ext in compiled:
                self.build_extension(ext)
                built.append(Path(self.get_ext_fullpath(ext.name)))
        except Exception as exc:  # a compiler error or none at all: the parser stays pure Python
            for path in built:
                path.unlink(missing_ok=True)
            print(f"warning: the parser is not compiled, it runs in pure Python ({exc})", file=sys.stderr)


def _mypyc_extensions() -> list[Extension]:
    """mypyc's C for ``COMPILED`` (type-checked with pyproject.toml's mypy settings), or none
    where mypyc cannot run."""
    try:
        from mypyc.build import mypycify

        extensions: list[Extension] = mypycify(COMPILED, opt_level="3", group_name="inbox_daemon_parser")
    except (Exception, SystemExit) as exc:  # mypyc missing, or its type check failed
        print(f"warning: the parser is not compiled, it runs in pure Python ({exc!r})", file=sys.stderr)
        return []
    for ext in extensions:
        ext._mypyc = True  # type: ignore[attr-defined]
    return extensions


setup(
    packages=[*find_packages(include=["inbox_daemon", "inbox_daemon.*"]),
              "inbox_daemon.migrations", "inbox_daemon.migrations.versions"],
    package_dir={"inbox_daemon.migrations": "migrations"},
    ext_modules=[Extension("inbox_daemon.lookup._fastpath", ["inbox_daemon/lookup/_fastpath.c", "inbox_daemon/lookup/_loop.c", "inbox_daemon/lookup/_pseudonym.c"], depends=["inbox_daemon/lookup/_tables.h"], libraries=["crypto"], optional=True)],
    cmdclass={"build_ext": BuildExt},
)
