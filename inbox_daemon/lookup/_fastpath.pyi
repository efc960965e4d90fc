# The C accelerator (_fastpath.c); optional: protocol.py falls back to pure Python without it.
from array import array

def answer_lines(
    lines: list[bytes],
    start: int,
    stop: int,
    tables: tuple[array[int], array[int], array[int], int, dict[int, int]],
    /,
) -> tuple[bytes, int, int, int]: ...
