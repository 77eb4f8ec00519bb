"""A TCP proxy on loopback that adds network latency, for benchmarks: every byte takes `rtt / 2` to
cross in each direction, so one request/response exchange costs one `rtt` more — as a manager
`rtt` away would. It relays bytes (TLS passes through untouched, the client still verifies the
server's certificate) and models latency, not bandwidth: bytes sent together arrive together.

Bounded: loopback addresses only, at most `max_connections` open at once (more wait in the
listen backlog), and it stops by itself after `lifetime` seconds even if nobody stops it.

    with LatencyProxy(("127.0.0.1", 8443), rtt=0.1) as proxy:
        ... point the client at proxy.address ...
"""

from __future__ import annotations

import heapq
import ipaddress
import socket
import threading
import time
from types import TracebackType

CHUNK = 65536


def _require_loopback(host: str) -> str:
    if not ipaddress.ip_address(host).is_loopback:
        raise ValueError(f"the latency proxy serves loopback only, not {host}")
    return host


class _Pipe:
    """One direction of one connection: a reader stamps each chunk with its arrival time, a writer
    sends it `delay` later, in order."""

    def __init__(self, source: socket.socket, target: socket.socket, delay: float) -> None:
        self.source, self.target, self.delay = source, target, delay
        self._queue: list[tuple[float, int, bytes]] = []
        self._ready = threading.Condition()
        self._count = 0

    def start(self) -> list[threading.Thread]:
        threads = [threading.Thread(target=self._read, daemon=True), threading.Thread(target=self._write, daemon=True)]
        for thread in threads:
            thread.start()
        return threads

    def _read(self) -> None:
        while True:
            try:
                data = self.source.recv(CHUNK)
            except OSError:
                data = b""
            with self._ready:
                self._count += 1
                heapq.heappush(self._queue, (time.monotonic() + self.delay, self._count, data))
                self._ready.notify()
            if not data:
                return

    def _write(self) -> None:
        while True:
            with self._ready:
                while not self._queue:
                    self._ready.wait()
                due, _, data = self._queue[0]
                wait = due - time.monotonic()
                if wait > 0:
                    self._ready.wait(wait)
                    continue
                heapq.heappop(self._queue)
            try:
                if not data:  # the other side closed: pass the close on
                    self.target.shutdown(socket.SHUT_WR)
                    return
                self.target.sendall(data)
            except OSError:
                return


class LatencyProxy:
    def __init__(self, upstream: tuple[str, int], *, rtt: float, listen_host: str = "127.0.0.1",
                 max_connections: int = 32, lifetime: float = 600.0) -> None:
        self.upstream = (_require_loopback(upstream[0]), upstream[1])
        self.rtt = rtt
        self._listener = socket.create_server((_require_loopback(listen_host), 0), backlog=64)
        self._slots = threading.BoundedSemaphore(max_connections)
        self._deadline = time.monotonic() + lifetime
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    @property
    def address(self) -> tuple[str, int]:
        host, port = self._listener.getsockname()[:2]
        return host, port

    def start(self) -> LatencyProxy:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopped.set()
        self._listener.close()
        self._thread.join(timeout=2)

    def __enter__(self) -> LatencyProxy:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def _serve(self) -> None:
        self._listener.settimeout(0.2)
        while not self._stopped.is_set() and time.monotonic() < self._deadline:
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            if not self._slots.acquire(timeout=max(0.0, self._deadline - time.monotonic())):
                client.close()
                continue
            threading.Thread(target=self._relay, args=(client,), daemon=True).start()
        self._listener.close()

    def _relay(self, client: socket.socket) -> None:
        try:
            upstream = socket.create_connection(self.upstream, timeout=5)
            upstream.settimeout(None)
            client.settimeout(None)
            for sock in (client, upstream):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            half = self.rtt / 2
            threads = _Pipe(client, upstream, half).start() + _Pipe(upstream, client, half).start()
            remaining = max(0.0, self._deadline - time.monotonic())
            for thread in threads:
                thread.join(timeout=remaining)
            client.close()
            upstream.close()
        except OSError:
            client.close()
        finally:
            self._slots.release()
