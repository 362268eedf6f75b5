"""A TCP proxy in front of the test server that can break connections on purpose."""
import socket
import threading
from typing import Callable


class FlakyProxy:
    """Forwards 127.0.0.1:<port> to the upstream port. `plan(n)` says what to do with the n-th
    connection's response (n from 0): None relays it all; "drop" relays the request, waits until
    the server starts answering, then closes both sockets without relaying a byte; an int cuts
    the connection after relaying that many response bytes."""

    def __init__(self, upstream_port: int, plan: Callable[[int], object]):
        self.upstream_port = upstream_port
        self.plan = plan
        self.connections = 0
        self.broken = 0
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        """Base URL clients use."""
        return f"http://127.0.0.1:{self.port}"

    def close(self) -> None:
        """Stop accepting connections."""
        self._listener.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                index, self.connections = self.connections, self.connections + 1
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
            mode = self.plan(index)
            threading.Thread(target=self._pipe, args=(client, upstream, None), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client, mode), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket, mode) -> None:
        relayed, cut = 0, False
        try:
            while True:
                chunk = source.recv(65536)
                if not chunk:
                    break
                if mode == "drop":
                    cut = True
                    break  # the server has answered: the reply is lost on the way back
                if isinstance(mode, int) and relayed + len(chunk) >= mode:
                    sink.sendall(chunk[: mode - relayed])
                    cut = True
                    break
                sink.sendall(chunk)
                relayed += len(chunk)
        except OSError:
            pass
        if cut:
            with self._lock:
                self.broken += 1
        for sock in (source, sink):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()
