"""A TCP forwarder that keeps one address across server restarts.

A restarted strata-server listens on a new port (the tests use port 0), but a
Client dials one target for its lifetime. TcpProxy listens on 127.0.0.1 (a
port the OS picks), forwards each connection to the current backend, and
cuts the client's side as soon as the backend's side ends - so a SIGKILLed
server looks to the client like a dropped connection, and set_backend() to
the restarted server is a server coming back at the same address. While the
backend is down, connections are accepted and closed at once (the client sees
UNAVAILABLE and retries).
"""

from __future__ import annotations

import socket
import threading
from typing import Any, Callable, List, Optional, Set

ACCEPT_POLL_S = 0.1
CONNECT_TIMEOUT_S = 5.0


class TcpProxy:
    def __init__(self, backend: str) -> None:
        self._lock = threading.Lock()
        self._backend = backend
        self._sockets: Set[socket.socket] = set()
        self._threads: List[threading.Thread] = []
        self._closed = False
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(64)
        self._listener.settimeout(ACCEPT_POLL_S)  # so close() ends the accept loop
        self.address = f"127.0.0.1:{self._listener.getsockname()[1]}"
        self.connections = 0  # accepted so far
        self._accepted = threading.Condition(self._lock)
        self._spawn(self._accept_loop)

    def set_backend(self, backend: str) -> None:
        """Forwards new connections to backend ("host:port") from now on."""
        with self._lock:
            self._backend = backend

    def wait_connections(self, n: int, timeout: float) -> bool:
        """Waits until n connections were accepted in all; False on timeout."""
        with self._accepted:
            return self._accepted.wait_for(lambda: self.connections >= n, timeout)

    def close(self) -> None:
        """Stops listening and cuts every connection; waits for the threads."""
        with self._lock:
            self._closed = True
            sockets = list(self._sockets)
        for s in sockets:
            _shutdown(s)
        with self._lock:
            threads = list(self._threads)
        for t in threads:
            t.join(timeout=10)
        self._listener.close()

    def _spawn(self, target: Callable[..., None], *args: Any) -> None:
        t = threading.Thread(target=target, args=args, daemon=True)
        with self._lock:
            self._threads = [x for x in self._threads if x.is_alive()] + [t]
        t.start()

    def _accept_loop(self) -> None:
        while True:
            with self._lock:
                if self._closed:
                    return
            try:
                client, _ = self._listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            client.settimeout(None)
            with self._accepted:
                self.connections += 1
                self._accepted.notify_all()
            self._spawn(self._serve, client)

    def _register(self, *socks: socket.socket) -> bool:
        with self._lock:
            if self._closed:
                return False
            self._sockets.update(socks)
            return True

    def _serve(self, client: socket.socket) -> None:
        with self._lock:
            host, port = self._backend.rsplit(":", 1)
        upstream: Optional[socket.socket] = None
        try:
            upstream = socket.create_connection((host, int(port)), timeout=CONNECT_TIMEOUT_S)
            upstream.settimeout(None)
        except OSError:
            client.close()  # the backend is down: the client sees the connection drop
            return
        if not self._register(client, upstream):
            client.close()
            upstream.close()
            return
        back = threading.Thread(target=_pump, args=(upstream, client), daemon=True)
        back.start()
        _pump(client, upstream)
        back.join(timeout=10)
        with self._lock:
            self._sockets.discard(client)
            self._sockets.discard(upstream)
        client.close()
        upstream.close()


def _pump(src: socket.socket, dst: socket.socket) -> None:
    """Copies src to dst until either ends, then ends both directions."""
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            dst.sendall(data)
    except OSError:
        pass
    finally:
        _shutdown(src)
        _shutdown(dst)


def _shutdown(s: socket.socket) -> None:
    try:
        s.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
