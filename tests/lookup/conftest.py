"""The query server's two paths: the C loop thread and the pure Python reference.

Server tests take the ``native`` fixture and run on both. The C path is skipped where the
extension is not built, except under CI (``CI`` set), whose install builds it: there its absence
fails.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator

import pytest

from inbox_daemon.lookup.native import AVAILABLE


@pytest.fixture(params=["c", "python"])
def native(request: pytest.FixtureRequest) -> bool:
    if request.param == "c" and not AVAILABLE:
        if os.environ.get("CI"):
            pytest.fail("inbox_daemon.lookup._fastpath is not built (CI's install builds it)")
        pytest.skip("the C query loop is not built here")
    return bool(request.param == "c")


@pytest.fixture
def sock_path() -> Iterator[str]:
    with tempfile.TemporaryDirectory(prefix="lookup-") as directory:  # short: sun_path is 108 bytes
        yield os.path.join(directory, "query.sock")
