"""The outbound HTTP broker: a script's request, made by the host with httpx, SSRF-safe.

Each hop (the request, then each redirect) is checked by :class:`HttpPolicy` before anything is
sent: the URL (:func:`parse_url`), the port and deny list, then the host is resolved *here*
(through the injected :data:`Resolver`) and every address it resolved to is checked; the
connection is made to a checked address (the URL's host replaced by it), with the ``Host``
header and, for https, the TLS server name (SNI, and so the certificate check) of the original
name. Nothing resolves the name a second time, so DNS rebinding gets nowhere.

Redirects are followed here (httpx never follows them), with the same checks at every hop, up
to ``max_redirects``. The whole request (resolution, redirects, body) must end within
``timeout``; a body over ``max_bytes`` (decoded) is cut off and fails the request. Connections
are not kept alive: a pooled TLS connection would otherwise be reused for another name served
at the same address, whose certificate was never checked.
"""

from __future__ import annotations

import asyncio
import codecs
import functools
import ipaddress
import socket
import time
import zlib
from collections.abc import Awaitable, Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import urljoin

import httpx

from runtime.errors import OutboundError
from runtime.outbound.address import Address, Target, parse_url
from runtime.outbound.policy import HttpPolicy
from runtime.outbound.request import OutboundRequest
from sandbox.jsontypes import JSON

Resolver = Callable[[str, int], Awaitable[Sequence[Address]]]
"""Resolves a host name (and port) to its addresses."""
BeforeHop = Callable[[Target], Awaitable[None]]
"""Called before each hop is sent (to count it against limits; may raise OutboundError)."""

REDIRECTS: Final = frozenset({301, 302, 303, 307, 308})
CROSS_ORIGIN_DROP: Final = frozenset({"authorization", "cookie", "proxy-authorization"})
BODY_HEADERS: Final = frozenset({"content-type", "content-length", "content-encoding"})
USER_AGENT: Final = "botbox"
MAX_LOOKUPS: Final = 2
"""Name lookups one owner (bot) may have in progress at once, counted until the resolver's
thread is done with them: a lookup outlives the request that timed out waiting for it."""
RESOLVER_THREADS: Final = 16
_RESOLVER = ThreadPoolExecutor(RESOLVER_THREADS, thread_name_prefix="botbox-dns")
_LOOKUPS: dict[str, int] = {}
"""Lookups in progress by owner, for every broker of the process (a try makes its own)."""


def lookups_in_progress(owner: str) -> int:
    """How many name lookups of ``owner`` are still running in this process."""
    return _LOOKUPS.get(owner, 0)


ACCEPT_ENCODING: Final = "gzip, deflate"
WEB_CHARSETS: Final = (
    *("utf-8", "utf-16", "utf-32", "ascii", "latin-1", "iso8859", "cp", "mac-", "koi8"),
    *("shift_jis", "euc_", "gb2312", "gbk", "gb18030", "big5", "iso2022", "tis-620"),
)
"""Prefixes of the codec names (``codecs.lookup(...).name``) an answer is decoded with."""


async def system_resolver(host: str, port: int) -> list[Address]:
    """Resolve with the system's resolver (``getaddrinfo``), once."""
    loop = asyncio.get_running_loop()
    lookup = functools.partial(socket.getaddrinfo, host, port, type=socket.SOCK_STREAM)
    try:
        # Threads of its own: lookups that hang hold these, never the loop's default executor.
        infos = await loop.run_in_executor(_RESOLVER, lookup)
    except OSError:
        return []
    found: list[Address] = []
    for info in infos:
        text = str(info[4][0]).partition("%")[0]  # a zone id: link-local, refused anyway
        address = ipaddress.ip_address(text)
        if address not in found:
            found.append(address)
    return found


@dataclass(frozen=True, slots=True)
class Hop:
    """One request sent (or refused) on the way: metadata only, for the run log."""

    method: str
    host: str
    status: int | None
    bytes: int
    ms: float
    error: str | None = None

    def as_log(self) -> dict[str, JSON]:
        """The hop as a run-log entry (no path, query, header value or body)."""
        return {
            "method": self.method,
            "host": self.host,
            "status": self.status,
            "bytes": self.bytes,
            "ms": round(self.ms, 2),
            "error": self.error,
        }


@dataclass(frozen=True, slots=True)
class OutboundResponse:
    """The final answer: status, headers (lower-case names), the decoded text, the final URL."""

    status: int
    headers: dict[str, str]
    text: str
    url: str
    hops: tuple[Hop, ...] = field(default=())


class Broker:
    """Makes scripts' HTTP requests; one per server process, shared by all runs."""

    def __init__(
        self,
        *,
        resolver: Resolver | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.resolver = resolver or system_resolver
        self._transport = transport
        self._client: httpx.AsyncClient | None = None

    def client(self) -> httpx.AsyncClient:
        """The httpx client (made on first use): no proxies from the environment, no
        redirects, no kept-alive connections."""
        if self._client is None:
            transport = self._transport or httpx.AsyncHTTPTransport(
                limits=httpx.Limits(max_keepalive_connections=0), retries=0
            )
            self._client = httpx.AsyncClient(
                transport=transport, trust_env=False, follow_redirects=False
            )
        return self._client

    async def close(self) -> None:
        """Close the client, if one was made."""
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def fetch(
        self,
        policy: HttpPolicy,
        request: OutboundRequest,
        *,
        hops: list[Hop],
        before_hop: BeforeHop | None = None,
        owner: str = "",
    ) -> OutboundResponse:
        """Make ``request`` under ``policy``, following redirects; each hop is appended to
        ``hops`` (even when it fails). Raise :class:`OutboundError` when refused or failed.
        ``owner`` (the bot) may have at most :data:`MAX_LOOKUPS` name lookups in progress."""
        host = "?"
        began = time.perf_counter()
        try:
            async with asyncio.timeout(request.timeout):
                return await self._follow(policy, request, hops, before_hop, owner)
        except asyncio.CancelledError:  # the run ended meanwhile (its wall time, say)
            _cut_off(hops, "cancelled", began)
            raise
        except TimeoutError:
            _cut_off(hops, "timeout", began)
            host = hops[-1].host if hops else host
            raise OutboundError(
                f"the request to {host} took longer than {request.timeout:g} s",
                reason="timeout",
                host=host,
            ) from None

    async def _follow(
        self,
        policy: HttpPolicy,
        request: OutboundRequest,
        hops: list[Hop],
        before_hop: BeforeHop | None,
        owner: str,
    ) -> OutboundResponse:
        method, url, body = request.method, request.url, request.body
        headers = list(request.headers)
        origin: tuple[str, str, int] | None = None
        for _ in range(policy.max_redirects + 1):
            target = parse_url(url)
            if origin is not None and origin != (target.scheme, target.host, target.port):
                headers = [(k, v) for k, v in headers if k.lower() not in CROSS_ORIGIN_DROP]
            origin = (target.scheme, target.host, target.port)
            started = time.perf_counter()
            try:
                policy.check_target(target)
                if before_hop is not None:
                    await before_hop(target)
                address = await self._address(policy, target, owner)
            except OutboundError as exc:
                hops.append(Hop(method, target.host, None, 0, _ms(started), exc.reason))
                raise
            hops.append(Hop(method, target.host, None, 0, 0.0))
            try:
                response = await self._send(target, address, method, headers, body, request.timeout)
            except OutboundError as exc:
                hops[-1] = Hop(method, target.host, None, 0, _ms(started), exc.reason)
                raise
            hops[-1] = Hop(method, target.host, response.status_code, 0, _ms(started))
            try:
                location = response.headers.get("location")
                if response.status_code in REDIRECTS and location is not None:
                    hops[-1] = Hop(method, target.host, response.status_code, 0, _ms(started))
                    url = urljoin(target.url(), location)
                    if response.status_code == 303 or (
                        response.status_code in (301, 302) and method == "POST"
                    ):
                        method = "GET" if method != "HEAD" else method
                        body = None
                        headers = [(k, v) for k, v in headers if k.lower() not in BODY_HEADERS]
                    continue
                text, size = await _read(response, policy, target.host, hops, method, started)
                hops[-1] = Hop(method, target.host, response.status_code, size, _ms(started))
                return OutboundResponse(
                    response.status_code,
                    _headers(response.headers),
                    text,
                    target.url(),
                    tuple(hops),
                )
            finally:
                await response.aclose()
        raise OutboundError(
            f"more than {policy.max_redirects} redirects (http.max_redirects in bot.yaml)",
            reason="redirects",
            host=hops[-1].host if hops else None,
        )

    async def _address(self, policy: HttpPolicy, target: Target, owner: str) -> Address:
        """The checked address to connect to: the URL's own, or the first one its name
        resolved to that passes (the first refusal is raised when none does)."""
        if target.address is not None:
            policy.check_address(target, target.address)
            return target.address
        found = await self._resolve(target, owner)
        if not found:
            raise OutboundError(
                f"{target.host} could not be resolved", reason="unreachable", host=target.host
            )
        first: OutboundError | None = None
        for address in found:
            try:
                policy.check_address(target, address)
            except OutboundError as exc:
                first = first or exc
                continue
            return address
        assert first is not None
        raise first

    async def _resolve(self, target: Target, owner: str) -> Sequence[Address]:
        """Resolve through the resolver, counted against ``owner`` until the lookup itself
        ends (a request that gives up waiting does not end it)."""
        if _LOOKUPS.get(owner, 0) >= MAX_LOOKUPS:
            raise OutboundError(
                f"{MAX_LOOKUPS} name lookups of this bot are still in progress (their DNS does "
                "not answer); try again later",
                reason="limit",
                host=target.host,
            )
        _LOOKUPS[owner] = _LOOKUPS.get(owner, 0) + 1
        lookup = asyncio.ensure_future(self.resolver(target.host, target.port))

        def ended(done: asyncio.Future[Sequence[Address]]) -> None:
            left = _LOOKUPS.pop(owner, 1) - 1
            if left > 0:
                _LOOKUPS[owner] = left
            if not done.cancelled():
                done.exception()  # retrieved: a failed lookup nobody waits for is not an error

        lookup.add_done_callback(ended)
        return await asyncio.shield(lookup)

    async def _send(
        self,
        target: Target,
        address: Address,
        method: str,
        headers: list[tuple[str, str]],
        body: bytes | None,
        timeout: float,
    ) -> httpx.Response:
        extensions = {}
        if target.scheme == "https" and target.address is None:
            extensions["sni_hostname"] = target.host
        ours = [("Host", target.authority), ("User-Agent", USER_AGENT)]
        if not any(name.lower() == "accept-encoding" for name, _ in headers):
            ours.append(("Accept-Encoding", ACCEPT_ENCODING))  # what _read decodes, no more
        prepared = self.client().build_request(
            method,
            target.url_to(address),
            headers=[*ours, *headers],
            content=body,
            extensions=extensions,
            timeout=timeout,
        )
        try:
            return await self.client().send(prepared, stream=True)
        except httpx.TimeoutException:
            raise TimeoutError from None
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            # InvalidURL: httpx reads a 3xx's Location even when it follows no redirect.
            raise OutboundError(
                f"{target.host} could not be reached ({type(exc).__name__})",
                reason="unreachable",
                host=target.host,
            ) from None


async def _read(
    response: httpx.Response,
    policy: HttpPolicy,
    host: str,
    hops: list[Hop],
    method: str,
    started: float,
) -> tuple[str, int]:
    """The body as text, at most ``policy.max_bytes`` (decoded), or OutboundError."""
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > policy.max_bytes:
        hops[-1] = Hop(method, host, response.status_code, 0, _ms(started), "too_large")
        raise _too_large(host, policy)
    chunks: list[bytes] = []
    size = 0
    inflater = _inflater(response.headers.get("content-encoding", ""))
    if inflater is None:
        hops[-1] = Hop(method, host, response.status_code, 0, _ms(started), "unreachable")
        raise OutboundError(
            f"the answer of {host} is in a content encoding the platform does not decode "
            "(gzip and deflate are)",
            reason="unreachable",
            host=host,
        )
    try:
        async for raw in response.aiter_raw():
            for chunk in _inflated(inflater, raw, policy.max_bytes - size):
                size += len(chunk)
                if size > policy.max_bytes:
                    hops[-1] = Hop(
                        method, host, response.status_code, size, _ms(started), "too_large"
                    )
                    raise _too_large(host, policy)
                chunks.append(chunk)
    except zlib.error:
        hops[-1] = Hop(method, host, response.status_code, size, _ms(started), "unreachable")
        raise OutboundError(
            f"the answer of {host} is not validly compressed", reason="unreachable", host=host
        ) from None
    except httpx.TimeoutException:
        raise TimeoutError from None
    except httpx.HTTPError as exc:
        hops[-1] = Hop(method, host, response.status_code, size, _ms(started), "unreachable")
        raise OutboundError(
            f"the answer of {host} broke off ({type(exc).__name__})",
            reason="unreachable",
            host=host,
        ) from None
    data = b"".join(chunks)
    return data.decode(_charset(response.charset_encoding), errors="replace"), size


def _charset(named: str | None) -> str:
    """The codec for the charset an answer names: a web text encoding, else UTF-8. Python's
    other codecs decode in a time the remote server may choose (punycode's is quadratic), in
    the event loop every bot shares."""
    try:
        name = codecs.lookup(named or "utf-8").name
    except LookupError:
        return "utf-8"
    return name if name.startswith(WEB_CHARSETS) else "utf-8"


def _inflater(encoding: str) -> Any:
    """A zlib decompressor for a ``Content-Encoding`` (gzip, deflate), ``False`` for none, or
    None for one the platform does not decode. httpx's own decoders inflate each network read
    whole (a 64 KiB read of a gzip bomb is 64 MiB): this one is read ``max_length`` at a time."""
    name = encoding.strip().lower()
    if name in ("", "identity"):
        return False
    if name in ("gzip", "x-gzip", "deflate"):
        return _Inflater()
    return None


class _Inflater:
    """A zlib decompressor picked by the first bytes: gzip or zlib headers, else raw deflate
    (what some servers send as ``deflate``; httpx takes it too)."""

    def __init__(self) -> None:
        self._zlib: Any = None

    def decompress(self, data: bytes, max_length: int) -> bytes:
        """Up to ``max_length`` bytes of ``data`` inflated (the rest is ``unconsumed_tail``)."""
        if self._zlib is None:
            header = len(data) >= 2 and (
                data[:2] == b"\x1f\x8b"
                or (data[0] & 0x0F == 8 and (data[0] << 8 | data[1]) % 31 == 0)
            )
            self._zlib = zlib.decompressobj(32 + zlib.MAX_WBITS if header else -zlib.MAX_WBITS)
        return self._zlib.decompress(data, max_length)  # type: ignore[no-any-return]

    @property
    def unconsumed_tail(self) -> bytes:
        """What the last call left to inflate."""
        return self._zlib.unconsumed_tail  # type: ignore[no-any-return]


def _inflated(inflater: Any, raw: bytes, room: int) -> Iterator[bytes]:
    """``raw`` decoded, in pieces; at most ``room + 1`` bytes are made before the caller can
    stop (it fails the request as too large past ``room``)."""
    if inflater is False:
        yield raw
        return
    data = raw
    while data:
        piece = inflater.decompress(data, max(room, 0) + 1)
        room -= len(piece)
        yield piece
        data = inflater.unconsumed_tail


def _too_large(host: str, policy: HttpPolicy) -> OutboundError:
    return OutboundError(
        f"the answer of {host} is larger than {policy.max_bytes} bytes (http.max_kb in bot.yaml)",
        reason="too_large",
        host=host,
    )


def _headers(headers: httpx.Headers) -> dict[str, str]:
    merged: dict[str, str] = {}
    for name, value in headers.multi_items():
        key = name.lower()
        merged[key] = f"{merged[key]}, {value}" if key in merged else value
    return merged


def _cut_off(hops: list[Hop], error: str, began: float) -> None:
    """Mark the hop in progress (if any) as ended by ``error``, with the time it had."""
    if not hops or hops[-1].error is not None:
        return
    last = hops[-1]
    if last.status in REDIRECTS:
        return  # that hop was done; the next one had not started
    ms = _ms(began) - sum(hop.ms for hop in hops[:-1])
    hops[-1] = Hop(last.method, last.host, last.status, last.bytes, ms, error)


def _ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000
