"""A TCP proxy in front of the tests' S3 server that stops the server in the middle of a multipart upload:
as soon as the server has answered the first UploadPart, the server is stopped and every connection cut."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable

_PART = b"partNumber="


class CutAfterFirstPart:
    def __init__(self, upstream_port: int, stop_server: Callable[[], None]) -> None:
        self._upstream = upstream_port
        self._stop_server = stop_server
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.cut = threading.Event()
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self) -> None:
        self._listener.close()
        self._cut_all()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(("127.0.0.1", self._upstream), timeout=5)
            except OSError:  # the server is stopped: the client sees its connection closed
                client.close()
                continue
            with self._lock:
                self._sockets += [client, server]
            state = {"part": False}
            threading.Thread(target=self._pump, args=(client, server, state, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, state, False), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, state: dict[str, bool], upstream: bool) -> None:
        tail = b""
        try:
            while not self.cut.is_set():
                data = src.recv(1 << 16)
                if not data:
                    break
                if upstream:
                    state["part"] = state["part"] or _PART in tail + data[:2048]  # in a request line
                    tail = data[-16:]
                    dst.sendall(data)
                    continue
                final = data.startswith(b"HTTP/1.") and data[9:12] != b"100"  # not an interim 100 Continue
                dst.sendall(data)
                if state["part"] and final:  # the server received a part and said so: it goes away now
                    self.cut.set()
                    self._stop_server()
                    self._cut_all()
                    return
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def _cut_all(self) -> None:
        with self._lock:
            for s in self._sockets:
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                s.close()
            self._sockets.clear()
