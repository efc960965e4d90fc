"""Processes for tests/lookup/test_lookup_limits.py: an abusive peer and a well-behaved one.

    python flood.py flood HOST PORT SOURCE COUNT   abusive connections from SOURCE until SIGTERM
    python flood.py probe HOST PORT SOURCE N       N requests one after the other; JSON figures

``flood`` opens COUNT connections from the address SOURCE, a third each idle, slow-byte (one byte
every 50 ms, never a whole line) and non-reading (pipelined CHECKs, replies never read); prints
``READY {json}`` once all were tried, reopens those the server closed (at most 50 a tick) and
on SIGTERM prints its counts. ``probe`` prints ``{"latencies_us": [...], "errors": n}``. Own
processes, so that neither competes with the server for the test's event loop or GIL.
"""

from __future__ import annotations

import errno
import json
import resource
import signal
import socket
import sys
import time

KINDS = ("idle", "slow", "deaf")
PIPELINE = b"CHECK jxxvbothd0wtflh@marketplace.amazon.com\n" * 2000
REFUSAL = b"ERR too many connections\n"


def connect(host: str, port: int, source: str) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setblocking(False)
    sock.bind((source, 0))
    sock.connect_ex((host, port))
    return sock


def poke(kind: str, sock: socket.socket) -> bool:
    """One tick of abuse; False when the server closed the connection (or refused it)."""
    try:
        if kind == "slow":
            sock.send(b"C")
        elif kind == "deaf":
            sock.send(PIPELINE)
        else:
            data = sock.recv(64)
            return data != b"" and data != REFUSAL
    except BlockingIOError:
        return True
    except OSError as exc:
        return exc.errno in (errno.ENOTCONN, errno.EINPROGRESS)
    return True


def flood(host: str, port: int, source: str, count: int) -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (count + 256, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    conns = [(KINDS[i % 3], connect(host, port, source)) for i in range(count)]
    opened, closed = count, 0
    print("READY " + json.dumps({"opened": opened}), flush=True)
    while not stop:
        reopen = 50
        for i, (kind, sock) in enumerate(conns):
            if poke(kind, sock):
                continue
            sock.close()
            closed += 1
            if reopen:
                conns[i] = (kind, connect(host, port, source))
                opened += 1
                reopen -= 1
        time.sleep(0.05)
    print(json.dumps({"opened": opened, "closed": closed}), flush=True)


def probe(host: str, port: int, source: str, n: int) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.settimeout(10)
    sock.bind((source, 0))
    sock.connect((host, port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    reader = sock.makefile("rb")
    latencies, errors = [], 0
    for i in range(n):
        request = b"CHECK jxxvbothd0wtflh@marketplace.amazon.com\n" if i % 2 else b"CHECK nobody@marketplace.amazon.com\n"
        started = time.perf_counter()
        sock.sendall(request)
        reply = reader.readline()
        latencies.append(round((time.perf_counter() - started) * 1e6))
        errors += reply != (b"OK\n" if i % 2 == 0 else b"BLOCKED 2026-11-26T06:17:34Z 3\n")
    print(json.dumps({"latencies_us": latencies, "errors": errors}), flush=True)


if __name__ == "__main__":
    mode, host, port, source, number = sys.argv[1:6]
    (flood if mode == "flood" else probe)(host, int(port), source, int(number))
