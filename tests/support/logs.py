"""A logger for parts that take one (``logger=``): it keeps what they log, in order."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


class Recorder:
    """A logger that keeps (event, fields)."""

    def __init__(self) -> None:
        self.lines: list[tuple[str, dict[str, Any]]] = []

    def __getattr__(self, level: str) -> Callable[..., None]:
        return lambda event, **fields: self.lines.append((event, fields))

    def events(self, name: str) -> list[dict[str, Any]]:
        return [fields for event, fields in self.lines if event == name]
