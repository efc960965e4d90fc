"""The package list and the optional C accelerator; all metadata is in pyproject.toml.

``migrations/`` stays at the top of the source tree (Alembic's layout) and is installed inside
the package as ``inbox_daemon.migrations``, which pyproject.toml's ``packages.find`` cannot
express next to a ``package-dir`` mapping.

``optional=True``: without a compiler, or if the build fails, the install still succeeds and the
query protocol runs in pure Python (inbox_daemon/lookup/protocol.py is the reference). It links
OpenSSL's libcrypto (headers: libssl-dev) for keyed pseudonyms (HMAC-SHA-256, as privacy.py).
"""

from setuptools import Extension, find_packages, setup

setup(
    packages=[*find_packages(include=["inbox_daemon", "inbox_daemon.*"]),
              "inbox_daemon.migrations", "inbox_daemon.migrations.versions"],
    package_dir={"inbox_daemon.migrations": "migrations"},
    ext_modules=[Extension("inbox_daemon.lookup._fastpath", ["inbox_daemon/lookup/_fastpath.c", "inbox_daemon/lookup/_loop.c", "inbox_daemon/lookup/_pseudonym.c"], depends=["inbox_daemon/lookup/_tables.h"], libraries=["crypto"], optional=True)],
)
