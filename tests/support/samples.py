"""The notice samples with their expectation table (expected.json): the repository's own in
tests/data/notices, and the shared corpus beside the checkout as an extra check."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

SAMPLES = Path(__file__).resolve().parents[1] / "data" / "notices"
SHARED_CORPUS = Path(__file__).resolve().parents[3] / "shared" / "corpus"


@dataclass(frozen=True)
class Samples:
    """A folder of .eml files with its expectation table."""

    folder: Path
    cases: list[tuple[str, bytes, dict[str, Any]]]

    @classmethod
    def of(cls, folder: Path) -> Samples:
        table = json.loads((folder / "expected.json").read_text())
        return cls(folder, [(c["file"], (folder / c["file"]).read_bytes(), c) for c in table])

    @property
    def raws(self) -> list[bytes]:
        return [raw for _, raw, _ in self.cases]


def shared_corpus() -> Samples:
    """The shared corpus: it must be there under CI (``CI`` set: fail); on a machine without
    it the extra check is skipped, and the repository's samples still cover the behaviour."""
    if not SHARED_CORPUS.is_dir():
        message = f"shared corpus not at {SHARED_CORPUS}"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return Samples.of(SHARED_CORPUS)
