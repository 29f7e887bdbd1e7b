"""A local HTTP server for outbound HTTP tests, on a loopback address (127.0.0.2, ::1...).

Routes: ``/json`` (``{"hello": "world"}``), ``/echo`` (the method, Host header, query, body and
header names it got, as JSON), ``/big?n=N`` (N bytes, with Content-Length), ``/stream?n=N``
(N bytes, chunked, no length), ``/redirect?to=URL&status=302``, ``/hang`` (headers, then no body
until :meth:`Origin.release`), ``/status?code=N``, ``/gzip?n=N`` (N zero bytes,
gzip-compressed: a small body that decodes to a large one), ``/charset?name=X`` (``bcher-kva``
in charset X), ``/deflate?n=N`` (N bytes, raw deflate, as some servers send "deflate").
Every request is recorded in ``requests``.
"""

from __future__ import annotations

import functools
import json
import socket
import ssl
import threading
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


@functools.cache
def gzip_zeros(size: int) -> bytes:
    """``size`` zero bytes, gzip-compressed, made a megabyte at a time (cached)."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    block = bytes(min(size, 1 << 20))
    parts = []
    for start in range(0, size, len(block) or 1):
        parts.append(packer.compress(block[: size - start]))
    parts.append(packer.flush())
    return b"".join(parts)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    origin: Origin


class _V6Server(_Server):
    address_family = socket.AF_INET6


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body are two writes: no 40 ms delayed ACK

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""

    def do_GET(self) -> None:
        """Serve every method the same way."""
        self._serve()

    do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = do_GET

    def _serve(self) -> None:
        parts = urlsplit(self.path)
        query = {key: values[0] for key, values in parse_qs(parts.query).items()}
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        record = {
            "method": self.command,
            "path": parts.path,
            "query": query,
            "host": self.headers.get("Host"),
            "headers": sorted(name.lower() for name in self.headers),
            "body": body.decode(errors="replace"),
        }
        self.server.origin.requests.append(record)
        if parts.path == "/json":
            self._send(200, json.dumps({"hello": "world"}).encode(), "application/json")
        elif parts.path == "/echo":
            self._send(200, json.dumps(record).encode(), "application/json")
        elif parts.path == "/big":
            self._send(200, b"x" * int(query.get("n", "0")), "text/plain")
        elif parts.path == "/stream":
            self._stream(int(query.get("n", "0")))
        elif parts.path == "/redirect":
            self.send_response(int(query.get("status", "302")))
            self.send_header("Location", query["to"])
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif parts.path == "/hang":
            self.send_response(200)
            self.send_header("Content-Length", "10")
            self.end_headers()
            self.wfile.flush()
            self.server.origin.released.wait(30)
        elif parts.path == "/status":
            self._send(int(query.get("code", "200")), b"status", "text/plain")
        elif parts.path == "/charset":
            self._send(200, b"bcher-kva", f"text/plain; charset={query.get('name', 'utf-8')}")
        elif parts.path == "/deflate":
            packer = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)  # raw: no zlib header
            body = packer.compress(b"z" * int(query.get("n", "0"))) + packer.flush()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Encoding", "deflate")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        elif parts.path == "/gzip":
            body = gzip_zeros(int(query.get("n", "0")))
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Encoding", "gzip")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        else:
            self._send(404, b"not found", "text/plain")

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _stream(self, size: int) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        chunk = b"y" * 16384
        sent = 0
        try:
            while sent < size:
                piece = chunk[: size - sent]
                self.wfile.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
                sent += len(piece)
            self.wfile.write(b"0\r\n\r\n")
        except OSError:
            pass  # the client stopped reading: what the size cap does


class Origin:
    """A running origin server: its address, port, base URL and the requests it got."""

    def __init__(self, host: str, tls: ssl.SSLContext | None = None) -> None:
        self.host = host
        self.scheme = "https" if tls else "http"
        server_class = _V6Server if ":" in host else _Server
        self.server = server_class((host, 0), _Handler)
        if tls is not None:
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
        self.server.origin = self
        self.port: int = self.server.server_address[1]
        self.requests: list[dict[str, Any]] = []
        self.released = threading.Event()
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def base(self) -> str:
        """``http://HOST:PORT`` (IPv6 in brackets; https when serving TLS)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"

    def release(self) -> None:
        """Let every hanging request end."""
        self.released.set()


@contextmanager
def origin(host: str = "127.0.0.2", tls: ssl.SSLContext | None = None) -> Iterator[Origin]:
    """Serve on ``host`` (a loopback address), over TLS with ``tls``, until the block ends."""
    running = Origin(host, tls)
    running.thread.start()
    try:
        yield running
    finally:
        running.release()
        running.server.shutdown()
        running.server.server_close()
