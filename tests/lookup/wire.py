"""Pipelined lines through a real query server over TCP: what the lookup tests compare."""

from __future__ import annotations

import asyncio

from inbox_daemon.lookup import BlocklistIndex, QueryServer


def serve_lines(index: BlocklistIndex, lines: list[bytes], size: int, *, native: bool) -> bytes:
    """Start a server on port 0 with ``index``, send ``lines`` in one write, read ``size`` bytes."""

    async def main() -> bytes:
        server = QueryServer(index, unix_path=None, tcp=("127.0.0.1", 0), native=native)
        await server.start()
        try:
            address = server.tcp_address
            assert address is not None
            reader, writer = await asyncio.open_connection(*address)
            writer.write(b"".join(line + b"\n" for line in lines))
            data = await reader.readexactly(size)
            writer.close()
            return data
        finally:
            await server.stop()

    return asyncio.run(asyncio.wait_for(main(), 10))
