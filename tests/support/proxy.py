"""A TCP proxy the test can cut and restore: a database that goes away the way networks do;
and one that holds a client's command, so that a test can act (SIGKILL) at that point."""

from __future__ import annotations

import collections
import socket
import threading
import time


class CuttableProxy:
    """Forwards 127.0.0.1:<port> to a target; ``cut()`` drops every connection and refuses new ones;
    ``freeze()`` keeps them open and carries nothing, as a network partition does."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._open = threading.Event()
        self._open.set()
        self._flowing = threading.Event()
        self._flowing.set()
        self._conns: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            if not self._open.is_set():
                client.close()  # refused while cut
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self._lock:
                self._conns |= {client, upstream}
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                self._flowing.wait()
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                s.close()  # closing twice (both pipes do it) is harmless
            with self._lock:
                self._conns -= {src, dst}

    def cut(self) -> None:
        self._open.clear()
        with self._lock:
            conns, self._conns = self._conns, set()
        for s in conns:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def freeze(self) -> None:
        self._flowing.clear()

    def restore(self) -> None:
        self._open.set()
        self._flowing.set()

    def close(self) -> None:
        self._closed = True
        self.cut()
        self._flowing.set()
        self._listener.close()
        with self._lock:
            conns, self._conns = self._conns, set()
        for s in conns:
            s.close()


class HoldingProxy(CuttableProxy):
    """Forwards like ``CuttableProxy`` until the client sends ``marker`` (e.g. an IMAP ``UID
    STORE``): that data is never forwarded, ``held`` is set, and the connection stays open and
    silent, as a server that takes its time would."""

    def __init__(self, target: tuple[str, int], marker: bytes) -> None:
        self.marker = marker
        self.held = threading.Event()
        super().__init__(target)

    def _pipe(self, src: socket.socket, dst: socket.socket) -> None:
        if src.getpeername()[1] == self.target[1]:  # the server's side: forwarded as it is
            super()._pipe(src, dst)
            return
        try:
            while data := src.recv(65536):
                if self.marker in data.upper():
                    self.held.set()
                    while src.recv(65536):  # swallow everything until the client is gone
                        pass
                    return
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                s.close()


class MeddlingProxy(CuttableProxy):
    """Forwards like ``CuttableProxy``; each chunk the server sends takes the next armed action
    (``arm``), and ``inject`` sends bytes of its own to every client at once: a stream out of
    step the way a buggy server, a cancelled caller or a hostile middlebox leaves one.

    Actions: ``garbage_before``/``garbage_after`` (bytes glued to the reply, no LF after),
    ``extra_before``/``extra_after`` (an ``OK`` line glued to it), ``delay`` (held ``delay``
    seconds), ``trickle`` (one byte every ``pace`` seconds).
    """

    ACTIONS = ("garbage_before", "garbage_after", "extra_before", "extra_after", "delay", "trickle")

    def __init__(self, target: tuple[str, int], *, delay: float = 0.5, pace: float = 0.25) -> None:
        self.delay, self.pace = delay, pace
        self._armed: collections.deque[str] = collections.deque()
        self._clients: set[socket.socket] = set()
        super().__init__(target)

    def arm(self, *actions: str) -> None:
        assert set(actions) <= set(self.ACTIONS), actions
        self._armed.extend(actions)

    def disarm(self) -> None:
        self._armed.clear()

    def inject(self, data: bytes) -> None:
        """Send ``data`` to every client now (returns once the kernel has it)."""
        with self._lock:
            clients = list(self._clients)
        for client in clients:
            try:
                client.sendall(data)
            except OSError:
                pass

    def _pipe(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            from_server = src.getpeername()[1] == self.target[1]
        except OSError:
            from_server = False
        if not from_server:
            super()._pipe(src, dst)
            return
        # No Nagle towards the client: an injected line must be in the client's socket when
        # inject() returns, not held back until the previous reply is acknowledged.
        with self._lock:
            self._clients.add(dst)
        try:
            dst.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            while data := src.recv(65536):
                self._forward(data, dst)
        except OSError:
            pass
        finally:
            with self._lock:
                self._clients.discard(dst)
            for s in (src, dst):
                s.close()

    def _forward(self, data: bytes, dst: socket.socket) -> None:
        try:
            action = self._armed.popleft()
        except IndexError:
            action = ""
        if action == "delay":
            time.sleep(self.delay)
        if action == "trickle":
            for i in range(len(data)):
                dst.sendall(data[i : i + 1])
                time.sleep(self.pace)
            return
        glued = {"garbage_before": b"\x00garbage" + data, "garbage_after": data + b"garbage",
                 "extra_before": b"OK\n" + data, "extra_after": data + b"OK\n"}
        dst.sendall(glued.get(action, data))
