"""The shared corpus (/work/shared/corpus): every case right, as corpus-check scores it.

Skipped only when the shared folder is absent (e.g. a checkout without the sibling folder).
"""

from __future__ import annotations

from typing import Any

import pytest

from .expectations import SHARED_CORPUS, check_case, load_cases

CASES = load_cases(SHARED_CORPUS)
pytestmark = pytest.mark.skipif(not CASES, reason=f"shared corpus absent at {SHARED_CORPUS}")


@pytest.mark.parametrize("case", CASES, ids=[c["file"] for c in CASES])
def test_shared_corpus_case(case: dict[str, Any]) -> None:
    check_case(SHARED_CORPUS, case)


def test_shared_corpus_is_complete() -> None:
    assert len(CASES) == len(list(SHARED_CORPUS.glob("*.eml")))
