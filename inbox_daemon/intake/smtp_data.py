"""SMTP DATA read in chunks into one buffer (RFC 5321 4.1.1.4 and 4.5.2).

aiosmtpd reads DATA a line at a time and keeps one bytearray per line until the end of the
message: about 11,000 objects for a 10 MB message of 900-octet lines, and when the client goes
away mid-DATA the list lives on inside the CancelledError's traceback until the cyclic garbage
collector runs. Measured with bench/flood.py (128 concurrent 10 MiB messages), such lists held
200+ MiB after the burst, freed only by ``gc.collect()``. Here a message is one bytearray that
grows by the chunks the socket delivers and is emptied as soon as the transfer ends, however
it ends.

``DataBody`` is sans-IO (fed bytes, in pieces of any size); ``read_body`` takes them from an
asyncio StreamReader and never reads past the end-of-data line, so commands a client pipelines
after it (RFC 2920) stay in the reader for the command loop.
"""

from __future__ import annotations

import asyncio
import enum

__all__ = ["END", "DataBody", "Refusal", "read_body"]

END = b"\r\n.\r\n"  # RFC 5321 4.1.1.4: the CRLF ending the last line, then a line of one "."
_STUFFED = b"\r\n."  # RFC 5321 4.5.2: a line's leading period was doubled (or added) by the client


class Refusal(enum.Enum):
    """Why the content is not kept (aiosmtpd's replies; once one is found, only the end is looked for)."""

    LINE_TOO_LONG = "500 Line too long (see RFC5321 4.5.3.1.6)"
    TOO_MUCH = "552 Error: Too much mail data"


class DataBody:
    """The bytes after the 354 reply, fed in pieces; the message without transparency.

    ``max_bytes``: the largest message kept (after dot-unstuffing; None: no limit).
    ``max_line``: the longest line as sent, CRLF included (RFC 5321 4.5.3.1.6 allows 1000;
    aiosmtpd's default ``line_length_limit`` is 1001). Past either, the rest is only scanned
    for the end and ``refusal`` says why.
    """

    def __init__(self, max_bytes: int | None, max_line: int) -> None:
        self._max_bytes = max_bytes
        self._max_line = max_line
        self._content = bytearray()
        # The stream as if the DATA command's CRLF came first: a "." on the first line is
        # unstuffed and a lone "." first line ends an empty message.
        self._tail = b"\r\n"  # last stuffed bytes seen (at most len(END) - 1)
        self._line = b""  # the current line's stuffed bytes so far, shorter than max_line
        self.refusal: Refusal | None = None
        self.ended = False

    @property
    def end_started(self) -> int:
        """How many bytes of END the data seen so far ends with (0 to 4): the reader then
        takes only the rest of it, so as never to read past the end."""
        for size in range(len(END) - 1, 0, -1):
            if self._tail.endswith(END[:size]):
                return size
        return 0

    def feed(self, piece: bytes) -> None:
        """The next bytes; none may follow the end-of-data line."""
        assert not self.ended, "fed past the end of data"
        if self.refusal is None:
            self._check_lines(piece)
        if self.refusal is None:
            self._append(piece)
        window = (self._tail + piece[-len(END):])[-len(END):]
        self.ended = window == END
        self._tail = window[1 - len(END):]

    def _append(self, piece: bytes) -> None:
        """Undo transparency: a period that begins a line is dropped. The end-of-data line
        itself becomes an empty line, dropped by ``finish``."""
        joined = self._tail[-2:] + piece
        if _STUFFED in joined:
            self._content += joined.replace(_STUFFED, b"\r\n")[2:]
        else:
            self._content += piece
        if self._max_bytes is not None and len(self._content) > self._max_bytes + 2:
            self._refuse(Refusal.TOO_MUCH)

    def _check_lines(self, piece: bytes) -> None:
        """Refuse a line longer than max_line: one scan step per max_line bytes at most (the
        last CRLF within reach), never one per line."""
        scan = self._line + piece
        start, limit = 0, self._max_line
        while len(scan) - start >= limit:
            crlf = scan.rfind(b"\r\n", start, start + limit)
            if crlf == -1:
                self._refuse(Refusal.LINE_TOO_LONG)
                return
            start = crlf + 2
        self._line = scan[start:]

    def _refuse(self, why: Refusal) -> None:
        self.refusal = why
        self._content = bytearray()  # nothing of it is kept: free it now
        self._line = b""

    def finish(self) -> bytes:
        """The message (after the end); the buffer is released."""
        assert self.ended and self.refusal is None
        del self._content[-2:]  # the end-of-data line, unstuffed to an empty line
        if self._max_bytes is not None and len(self._content) > self._max_bytes:
            self._refuse(Refusal.TOO_MUCH)
            return b""
        content = bytes(self._content)
        self.close()
        return content

    def close(self) -> None:
        """Release the buffer (the transfer ended, or the connection went away)."""
        self._content = bytearray()
        self._line = b""


async def read_body(reader: asyncio.StreamReader, body: DataBody) -> None:
    """Feed ``body`` from ``reader`` up to and including the end-of-data line.

    In chunks: ``readuntil(END)`` returns at the end or raises LimitOverrunError once the
    reader holds more than its limit without it (asyncio keeps the last len(END) - 1 bytes, so
    an END split between two chunks is still found); those bytes are then taken whole. An END
    that began in data already taken is completed with ``readexactly``.
    """
    while not body.ended:
        started = body.end_started
        if started:
            piece = await reader.readexactly(len(END) - started)
        else:
            try:
                piece = await reader.readuntil(END)
            except asyncio.LimitOverrunError as exc:
                piece = await reader.read(exc.consumed)
        body.feed(piece)
