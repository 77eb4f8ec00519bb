"""HTTP(S) transport: a standard-library ThreadingHTTPServer that turns bytes into an api.Request
and writes the api.Response back. It binds loopback addresses only — the emulator is a lab tool
and must never be reachable from elsewhere."""

from __future__ import annotations

import ipaddress
import json
import socket
import ssl
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from nsxkube.lab.nsx.api import Request, Response, error_response
from nsxkube.lab.nsx.errors import INTERNAL_ERROR, NsxApiError, field_errors

CONNECTION_TIMEOUT = 30.0  # seconds an idle keep-alive connection may stay open


def require_loopback(host: str) -> str:
    """The host to bind, if it is a loopback address; `localhost` means 127.0.0.1."""
    if host in ("localhost", ""):
        return "127.0.0.1"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(f"the NSX emulator binds only loopback addresses, not {host!r}") from None
    if not address.is_loopback:
        raise ValueError(f"the NSX emulator binds only loopback addresses, not {host!r}")
    return host


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as NSX clients expect
    server_version = "NSX-Emulator"
    # Headers and body go out in separate writes; with Nagle on, each response waits ~40 ms for
    # the client's delayed ACK.
    disable_nagle_algorithm = True
    sys_version = ""
    server: EmulatorHttpServer

    def setup(self) -> None:
        self.request.settimeout(CONNECTION_TIMEOUT)
        if isinstance(self.request, ssl.SSLSocket):
            self.request.do_handshake()  # here, in the connection's thread, not in accept()
        super().setup()

    def do_GET(self) -> None:
        self._serve()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_GET

    def _serve(self) -> None:
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            self.close_connection = True
            self._send(error_response(field_errors(["Content-Length is not a number"])))
            return
        body = self.rfile.read(length) if length > 0 else b""
        url = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        request = Request(self.command, url.path, query, self.headers, body)  # type: ignore[arg-type]
        try:
            response = self.server.respond(request)
        except Exception:  # the API answers its own errors; this is the last line of defence
            response = error_response(NsxApiError(500, INTERNAL_ERROR, "General error has occurred."))
        self._send(response)

    def _send(self, response: Response) -> None:
        payload = b"" if response.body is None else json.dumps(response.body).encode()
        self.send_response(response.status)
        if response.body is not None:
            self.send_header("Content-Type", "application/json")
        for name, value in response.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        """Silent: the request log is the record of traffic."""


class EmulatorHttpServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(
        self,
        host: str,
        port: int,
        respond: Callable[[Request], Response],
        ssl_context: ssl.SSLContext | None,
    ) -> None:
        host = require_loopback(host)
        self.address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.respond = respond
        self.ssl_context = ssl_context
        super().__init__((host, port), _Handler)

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, address = super().get_request()
        if self.ssl_context is not None:
            sock = self.ssl_context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        return sock, address

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Quiet: a client that drops the connection or rejects our certificate is no server error."""

    def serve_in_thread(self) -> threading.Thread:
        thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        thread.start()
        return thread
