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
import ipaddress
import socket
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Final
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


async def system_resolver(host: str, port: int) -> list[Address]:
    """Resolve with the system's resolver (``getaddrinfo``), once."""
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
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
    ) -> OutboundResponse:
        """Make ``request`` under ``policy``, following redirects; each hop is appended to
        ``hops`` (even when it fails). Raise :class:`OutboundError` when refused or failed."""
        host = "?"
        began = time.perf_counter()
        try:
            async with asyncio.timeout(request.timeout):
                return await self._follow(policy, request, hops, before_hop)
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
                address = await self._address(policy, target)
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

    async def _address(self, policy: HttpPolicy, target: Target) -> Address:
        """The checked address to connect to: the URL's own, or the first one its name
        resolved to that passes (the first refusal is raised when none does)."""
        if target.address is not None:
            policy.check_address(target, target.address)
            return target.address
        found = await self.resolver(target.host, target.port)
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
        prepared = self.client().build_request(
            method,
            target.url_to(address),
            headers=[("Host", target.authority), ("User-Agent", USER_AGENT), *headers],
            content=body,
            extensions=extensions,
            timeout=timeout,
        )
        try:
            return await self.client().send(prepared, stream=True)
        except httpx.TimeoutException:
            raise TimeoutError from None
        except httpx.HTTPError as exc:
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
    try:
        async for chunk in response.aiter_bytes():
            size += len(chunk)
            if size > policy.max_bytes:
                hops[-1] = Hop(method, host, response.status_code, size, _ms(started), "too_large")
                raise _too_large(host, policy)
            chunks.append(chunk)
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
    encoding = response.charset_encoding or "utf-8"
    try:
        return data.decode(encoding, errors="replace"), size
    except LookupError:
        return data.decode("utf-8", errors="replace"), size


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
