"""Only the optional C accelerator; all metadata is in pyproject.toml.

``optional=True``: without a compiler, or if the build fails, the install still succeeds and the
query protocol runs in pure Python (inbox_daemon/lookup/protocol.py is the reference).
"""

from setuptools import Extension, setup

setup(ext_modules=[Extension("inbox_daemon.lookup._fastpath", ["inbox_daemon/lookup/_fastpath.c", "inbox_daemon/lookup/_loop.c"], depends=["inbox_daemon/lookup/_tables.h"], optional=True)])
