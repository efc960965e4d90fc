"""The shared corpus (../shared/corpus beside the repository): every case right, as corpus-check
scores it.

Skipped when the folder is absent on a developer's checkout; under CI (the ``CI`` environment
variable set) its absence is a failure, so a CI run cannot pass without scoring the corpus.
"""

from __future__ import annotations

import os
from typing import Any

import pytest

from .expectations import SHARED_CORPUS, check_case, load_cases

CASES = load_cases(SHARED_CORPUS)
UNDER_CI = bool(os.environ.get("CI"))
pytestmark = pytest.mark.skipif(
    not CASES and not UNDER_CI, reason=f"shared corpus absent at {SHARED_CORPUS}"
)


def test_shared_corpus_is_present() -> None:
    assert CASES, f"shared corpus absent at {SHARED_CORPUS}"


@pytest.mark.parametrize("case", CASES, ids=[c["file"] for c in CASES])
def test_shared_corpus_case(case: dict[str, Any]) -> None:
    check_case(SHARED_CORPUS, case)


def test_shared_corpus_is_complete() -> None:
    assert len(CASES) == len(list(SHARED_CORPUS.glob("*.eml")))
