"""The one wrapper for secrets (key material, tokens, client secrets): no repr, str, log line or
error message shows one; ``reveal()`` marks each place where the value is used. A leaf module."""

from __future__ import annotations

import hashlib
import hmac
from typing import Generic, TypeVar

__all__ = ["Secret"]

_Value = TypeVar("_Value", str, bytes)


class Secret(Generic[_Value]):
    """A secret ``str`` or ``bytes``, compared in constant time."""

    __slots__ = ("_value",)
    _value: _Value

    def __init__(self, value: _Value) -> None:
        self._value = value

    def reveal(self) -> _Value:
        return self._value

    def _bytes(self) -> bytes:
        return self._value.encode() if isinstance(self._value, str) else self._value

    def __repr__(self) -> str:
        return "Secret(***)"

    __str__ = __repr__

    def __bool__(self) -> bool:
        return bool(self._value)

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, Secret) and type(other._value) is type(self._value)
                and hmac.compare_digest(self._bytes(), other._bytes()))

    def __hash__(self) -> int:
        return hash(hashlib.sha256(self._bytes()).digest())
