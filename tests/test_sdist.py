"""A packager's path: the sdist unpacked, installed with its test extra, its tests run there.

A file of its own (the suite runs file by file in its workers): this is its longest test, and
runs beside tests/test_packaging.py, not after it.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.support.installed import Dists, dists, make_venv, unpack

__all__ = ["dists"]  # the fixture

pytestmark = pytest.mark.timeout(600)  # a cold pip cache downloads every dependency


def test_tests_run_from_the_unpacked_sdist(dists: Dists, tmp_path: Path) -> None:
    """Unpack the sdist, install it with its test extra, run tests that read the migrations
    and the sample mail it must carry."""
    source = unpack(dists.sdist, tmp_path)
    python = make_venv(tmp_path / "venv", "-e", f"{source}[test]")
    ran = subprocess.run(
        [str(python), "-m", "pytest", "-q", "-n", "0", "-p", "no:cacheprovider", "tests/store/test_migrations.py",
         "tests/notices/test_samples.py", "-k", "not postgresql"],
        cwd=source, capture_output=True, text=True, timeout=300,
    )
    assert ran.returncode == 0, ran.stdout[-3000:] + ran.stderr[-2000:]
    assert " passed" in ran.stdout


