"""A TCP proxy the test can cut and restore: a database that goes away the way networks do;
and one that holds a client's command, so that a test can act (SIGKILL) at that point."""

from __future__ import annotations

import socket
import threading


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
