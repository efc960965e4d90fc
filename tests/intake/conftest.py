"""Fixtures for the intake tests: a real Dovecot (it must run, not skip, under CI) and a
migrated SQLite database file per test."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.intake.dovecot import Dovecot, dovecot_binary


def _need_dovecot() -> None:
    if dovecot_binary() is None:
        message = "dovecot is not installed (bash .ci/install-dovecot.sh)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture
def dovecot() -> Iterator[Dovecot]:
    _need_dovecot()
    with Dovecot.running() as server:
        yield server


@pytest.fixture
def dovecot_factory() -> Iterator[type[Dovecot]]:
    """For tests that need a Dovecot with other capabilities (``Dovecot.running(capability=…)``)."""
    _need_dovecot()
    yield Dovecot
