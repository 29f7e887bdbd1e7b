"""The broker against real local servers (127.0.0.2, ::1), and against names a stub resolver
maps to private addresses, through a connection layer that fails the test if it is ever asked
to reach anything but loopback."""

from __future__ import annotations

import asyncio
import ipaddress
import shutil
import ssl
import subprocess
import tracemalloc
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from urllib.parse import urlencode

import httpx
import pytest

from runtime.errors import OutboundError
from runtime.outbound.address import Address
from runtime.outbound.broker import MAX_LOOKUPS, Broker, Hop, lookups_in_progress
from runtime.outbound.policy import HttpPolicy, parse_patterns
from runtime.outbound.request import OutboundRequest
from tests.support.origin import Origin, gzip_zeros, origin


class LoopbackOnly(httpx.AsyncBaseTransport):
    """The connection layer: records each connection's address and Host header, and fails on
    any address that is not loopback (so a refusal that leaked would fail loudly)."""

    def __init__(self) -> None:
        self.inner = httpx.AsyncHTTPTransport(limits=httpx.Limits(max_keepalive_connections=0))
        self.sent: list[tuple[str, str | None]] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        host = request.url.host
        self.sent.append((host, request.headers.get("host")))
        assert ipaddress.ip_address(host).is_loopback, f"the broker tried to connect to {host}"
        return await self.inner.handle_async_request(request)


class StubResolver:
    """Maps names to fixed addresses; counts every lookup."""

    def __init__(self, table: Mapping[str, Sequence[str]]) -> None:
        self.table = table
        self.lookups: list[str] = []

    async def __call__(self, host: str, port: int) -> list[Address]:
        self.lookups.append(host)
        return [ipaddress.ip_address(text) for text in self.table.get(host, ())]


@pytest.fixture(scope="module")
def server() -> Iterator[Origin]:
    with origin("127.0.0.2") as running:
        yield running


def rules(server: Origin, **changes: object) -> HttpPolicy:
    allow = changes.pop("allow", [server.host])
    return HttpPolicy(
        allow=parse_patterns(allow),  # type: ignore[arg-type]
        ports=frozenset({80, 443, server.port}),
        **changes,  # type: ignore[arg-type]
    )


async def fetch(
    broker: Broker, policy: HttpPolicy, url: str, **request: object
) -> tuple[object, list[Hop]]:
    hops: list[Hop] = []
    answer = await broker.fetch(
        policy,
        OutboundRequest(request.pop("method", "GET"), url, **request),  # type: ignore[arg-type]
        hops=hops,
    )
    return answer, hops


async def test_a_get_to_an_allowed_local_server_returns_status_headers_and_text(
    server: Origin,
) -> None:
    broker = Broker(transport=LoopbackOnly())
    answer, hops = await fetch(broker, rules(server), f"{server.base}/json")
    assert answer.status == 200  # type: ignore[attr-defined]
    assert answer.headers["content-type"] == "application/json"  # type: ignore[attr-defined]
    assert answer.text == '{"hello": "world"}'  # type: ignore[attr-defined]
    assert [(h.method, h.host, h.status, h.bytes) for h in hops] == [("GET", "127.0.0.2", 200, 18)]
    await broker.close()


async def test_ipv6_loopback_is_reached_when_allowed() -> None:
    with origin("::1") as v6:
        broker = Broker(transport=LoopbackOnly())
        answer, _ = await fetch(broker, rules(v6), f"{v6.base}/echo")
        assert answer.status == 200  # type: ignore[attr-defined]
        assert v6.requests[-1]["host"] == f"[::1]:{v6.port}"
        await broker.close()


@pytest.mark.parametrize(
    "host",
    [
        "localhost",
        "127.1",
        "2130706433",
        "0x7f000001",
        "127.0.0.1",
        "[::1]",
        "[::ffff:127.0.0.1]",
        "[::ffff:7f00:2]",
        "127.0.0.2",
    ],
)
async def test_without_an_allow_entry_loopback_in_every_spelling_is_refused_before_connecting(
    server: Origin, host: str
) -> None:
    connections = LoopbackOnly()
    broker = Broker(transport=connections)
    policy = HttpPolicy(ports=frozenset({80, 443, server.port}))
    with pytest.raises(OutboundError, match="loopback") as caught:
        await fetch(broker, policy, f"http://{host}:{server.port}/json")
    assert caught.value.reason == "refused"
    assert connections.sent == []


@pytest.mark.parametrize(
    "address",
    [
        "10.0.0.7",
        "172.20.1.1",
        "192.168.0.1",
        "169.254.169.254",
        "100.100.100.200",
        "fd00:ec2::254",
        "fe80::1",
        "::ffff:10.0.0.7",
        "64:ff9b::a9fe:a9fe",
        "2002:a9fe:a9fe::1",
        "0.0.0.0",
        "224.0.0.251",
    ],
)
async def test_a_name_resolving_to_a_private_address_is_refused_and_never_connected(
    address: str,
) -> None:
    connections = LoopbackOnly()
    resolver = StubResolver({"inside.test": [address]})
    broker = Broker(resolver=resolver, transport=connections)
    policy = HttpPolicy(allow=parse_patterns(["*"]))
    with pytest.raises(OutboundError, match="only public addresses") as caught:
        await fetch(broker, policy, "http://inside.test/latest/meta-data/")
    assert caught.value.host == "inside.test"
    assert "meta-data" not in caught.value.message  # the path may carry secrets
    assert resolver.lookups == ["inside.test"]
    assert connections.sent == []


async def test_the_connection_goes_to_the_checked_address_with_the_original_host_header(
    server: Origin,
) -> None:
    """The stub resolver answers once; the system resolver does not know the name at all, so
    the request can only succeed if nothing resolves it again (DNS rebinding gets nowhere)."""
    connections = LoopbackOnly()
    resolver = StubResolver({"api.rebind.test": [server.host]})
    broker = Broker(resolver=resolver, transport=connections)
    answer, _ = await fetch(broker, rules(server), f"http://api.rebind.test:{server.port}/echo")
    assert answer.status == 200  # type: ignore[attr-defined]
    assert resolver.lookups == ["api.rebind.test"]
    assert connections.sent == [(server.host, f"api.rebind.test:{server.port}")]
    assert server.requests[-1]["host"] == f"api.rebind.test:{server.port}"


async def test_a_name_whose_answers_mix_public_and_private_connects_only_to_a_checked_one(
    server: Origin,
) -> None:
    connections = LoopbackOnly()
    resolver = StubResolver({"mixed.test": ["10.0.0.1", server.host]})
    broker = Broker(resolver=resolver, transport=connections)
    await fetch(broker, rules(server), f"http://mixed.test:{server.port}/json")
    assert [address for address, _ in connections.sent] == [server.host]


async def test_redirects_are_followed_with_the_same_checks_at_every_hop(server: Origin) -> None:
    connections = LoopbackOnly()
    resolver = StubResolver({"metadata.test": ["169.254.169.254"]})
    broker = Broker(resolver=resolver, transport=connections)
    to_json = f"{server.base}/redirect?to=/json&status=301"
    answer, hops = await fetch(broker, rules(server), to_json)
    assert answer.status == 200  # type: ignore[attr-defined]
    assert [h.status for h in hops] == [301, 200]
    connections.sent.clear()
    for target in (
        "http://metadata.test/latest/",
        "http://127.0.0.1/",
        "http://[::1]/",
        "http://0x7f000001/",
    ):
        with pytest.raises(OutboundError, match="only public addresses") as caught:
            await fetch(
                broker,
                rules(server, allow=[server.host, "*"]),
                f"{server.base}/redirect?to={target}",
            )
        assert caught.value.reason == "refused"
    assert {address for address, _ in connections.sent} == {server.host}  # hop 1 only


async def test_a_redirect_to_another_scheme_is_refused(server: Origin) -> None:
    broker = Broker(transport=LoopbackOnly())
    with pytest.raises(OutboundError, match="only http and https"):
        await fetch(broker, rules(server), f"{server.base}/redirect?to=file:///etc/passwd")


async def test_redirects_stop_at_the_limit(server: Origin) -> None:
    broker = Broker(transport=LoopbackOnly())
    loop = f"{server.base}/redirect?to=/redirect%3Fto%3D/json"
    _, hops = await fetch(broker, rules(server, max_redirects=2), loop)
    assert len(hops) == 3
    with pytest.raises(OutboundError, match="more than 1 redirects") as caught:
        await fetch(broker, rules(server, max_redirects=1), loop)
    assert caught.value.reason == "redirects"


async def test_a_303_turns_a_post_into_a_get_without_its_body(server: Origin) -> None:
    broker = Broker(transport=LoopbackOnly())
    url = f"{server.base}/redirect?to=/echo&status=303"
    await fetch(
        broker,
        rules(server),
        url,
        method="POST",
        body=b"secret=1",
        headers=(("Content-Type", "text/plain"),),
    )
    assert server.requests[-1]["method"] == "GET"
    assert server.requests[-1]["body"] == ""
    assert "content-type" not in server.requests[-1]["headers"]


async def test_credentials_are_not_carried_to_another_origin(server: Origin) -> None:
    with origin("127.0.0.3") as other:
        broker = Broker(transport=LoopbackOnly())
        policy = HttpPolicy(
            allow=parse_patterns([server.host, other.host]),
            ports=frozenset({80, 443, server.port, other.port}),
        )
        await fetch(
            broker,
            policy,
            f"{server.base}/redirect?to={other.base}/echo&status=307",
            headers=(("Authorization", "Bearer x"), ("X-Trace", "1")),
        )
        assert "authorization" not in other.requests[-1]["headers"]
        assert "x-trace" in other.requests[-1]["headers"]


@pytest.mark.parametrize("route", ["big", "stream"])
async def test_an_answer_over_the_size_cap_fails_without_being_read_whole(
    server: Origin, route: str
) -> None:
    broker = Broker(transport=LoopbackOnly())
    policy = rules(server, max_bytes=100_000)
    answer, _ = await fetch(broker, policy, f"{server.base}/{route}?n=100000")
    assert len(answer.text) == 100_000  # type: ignore[attr-defined]
    hops: list[Hop] = []
    with pytest.raises(OutboundError, match="larger than 100000 bytes") as caught:
        await broker.fetch(
            policy, OutboundRequest("GET", f"{server.base}/{route}?n=50000000"), hops=hops
        )
    assert caught.value.reason == "too_large"
    assert hops[-1].error == "too_large"
    assert hops[-1].bytes <= 100_000 + 65_536


async def test_a_slow_answer_ends_with_a_timeout(server: Origin) -> None:
    broker = Broker(transport=LoopbackOnly())
    hops: list[Hop] = []
    with pytest.raises(OutboundError, match=r"longer than 0\.3 s") as caught:
        await broker.fetch(
            rules(server), OutboundRequest("GET", f"{server.base}/hang", timeout=0.3), hops=hops
        )
    assert caught.value.reason == "timeout"
    assert hops[-1].error == "timeout"


async def test_a_port_outside_the_rules_is_refused_before_resolving() -> None:
    connections = LoopbackOnly()
    resolver = StubResolver({"example.test": ["93.184.216.34"]})
    broker = Broker(resolver=resolver, transport=connections)
    with pytest.raises(OutboundError, match="port 6379"):
        await fetch(broker, HttpPolicy(), "http://example.test:6379/")
    assert resolver.lookups == []
    assert connections.sent == []


async def test_an_unknown_name_is_unreachable() -> None:
    broker = Broker(resolver=StubResolver({}), transport=LoopbackOnly())
    with pytest.raises(OutboundError, match="could not be resolved") as caught:
        await fetch(broker, HttpPolicy(), "http://nowhere.test/")
    assert caught.value.reason == "unreachable"


class Recording(httpx.AsyncBaseTransport):
    """A connection layer that answers 200 itself and keeps what it was asked (no network)."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return httpx.Response(200, stream=httpx.ByteStream(b"ok"))  # streamed, as on a network


async def test_https_connects_to_the_checked_address_with_the_names_sni_and_host() -> None:
    """The TLS server name (SNI, and so the certificate's name check) is the URL's name,
    while the connection goes to the address the broker checked."""
    connections = Recording()
    resolver = StubResolver({"secure.test": ["127.0.0.2"]})
    broker = Broker(resolver=resolver, transport=connections)
    policy = HttpPolicy(allow=parse_patterns(["127.0.0.2"]))
    answer, _ = await fetch(broker, policy, "https://secure.test/pay?k=1")
    assert answer.status == 200  # type: ignore[attr-defined]
    (sent,) = connections.requests
    assert (sent.url.scheme, sent.url.host, sent.url.port) == ("https", "127.0.0.2", None)
    assert sent.url.raw_path == b"/pay?k=1"
    assert sent.headers["host"] == "secure.test"
    assert sent.extensions["sni_hostname"] == "secure.test"


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for the name secure.test (made with the openssl tool)."""
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is needed to make a test certificate")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-subj",
            "/CN=secure.test",
            "-addext",
            "subjectAltName=DNS:secure.test",
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


async def test_tls_is_checked_against_the_urls_name_while_connecting_to_the_checked_address(
    certificate: tuple[Path, Path],
) -> None:
    """A real TLS server on 127.0.0.2 with a certificate for secure.test: reached as
    secure.test (SNI and the certificate check use the name), refused as another name that
    resolves to the same address (the certificate does not cover it)."""
    cert, key = certificate
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(cert, key)
    client_tls = ssl.create_default_context(cafile=str(cert))
    with origin("127.0.0.2", tls=server_tls) as secure:
        connections = LoopbackOnly()
        connections.inner = httpx.AsyncHTTPTransport(
            verify=client_tls, limits=httpx.Limits(max_keepalive_connections=0)
        )
        resolver = StubResolver({"secure.test": ["127.0.0.2"], "other.test": ["127.0.0.2"]})
        broker = Broker(resolver=resolver, transport=connections)
        policy = rules(secure)
        answer, _ = await fetch(broker, policy, f"https://secure.test:{secure.port}/echo")
        assert answer.status == 200  # type: ignore[attr-defined]
        assert secure.requests[-1]["host"] == f"secure.test:{secure.port}"
        with pytest.raises(OutboundError, match="could not be reached") as caught:
            await fetch(broker, policy, f"https://other.test:{secure.port}/echo")
        assert caught.value.reason == "unreachable"
        assert len(secure.requests) == 1
        await broker.close()


async def test_a_compressed_answer_is_decoded_no_further_than_the_size_cap(
    server: Origin,
) -> None:
    """A gzip body of 100 KB that decodes to 100 MB (a decompression bomb) fails as too
    large without the server holding more than about the cap in memory at once: one network
    read must not be inflated whole."""
    size = 100_000_000
    gzip_zeros(size)  # made before measuring
    broker = Broker(transport=LoopbackOnly())
    policy = rules(server, max_bytes=1_000_000)
    small, _ = await fetch(broker, policy, f"{server.base}/gzip?n=1000")
    assert small.text == "\0" * 1000  # type: ignore[attr-defined]
    tracemalloc.start()
    try:
        with pytest.raises(OutboundError, match="larger than 1000000 bytes") as caught:
            await fetch(broker, policy, f"{server.base}/gzip?n={size}")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert caught.value.reason == "too_large"
    assert peak < 16_000_000, f"{peak} bytes held at once"


class HangingResolver:
    """Names under ``.hang.test`` never resolve until :attr:`release` is set (a lookup stuck in
    a resolver thread, which no timeout can take back); others map to 127.0.0.2."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.started = 0

    async def __call__(self, host: str, port: int) -> list[Address]:
        if host.endswith(".hang.test"):
            self.started += 1
            await self.release.wait()
            return []
        return [ipaddress.ip_address("127.0.0.2")]


async def test_one_bots_stuck_name_lookups_do_not_hold_every_resolver_thread(
    server: Origin,
) -> None:
    """A bot asking for names whose DNS never answers times out, but its lookups live on in
    the resolver's threads: past MAX_LOOKUPS of them it is refused at once (reason ``limit``),
    while another bot's lookups go on; once they end, the bot may look names up again."""
    resolver = HangingResolver()
    broker = Broker(resolver=resolver, transport=LoopbackOnly())
    policy = rules(server, allow=["*", "127.0.0.2"])

    async def ask(owner: str, url: str) -> OutboundError | None:
        try:
            await broker.fetch(
                policy, OutboundRequest("GET", url, timeout=0.2), hops=[], owner=owner
            )
        except OutboundError as exc:
            return exc
        return None

    for n in range(MAX_LOOKUPS):
        stuck = await ask("hostile", f"http://n{n}.hang.test:{server.port}/")
        assert stuck is not None and stuck.reason == "timeout"
    refused = await ask("hostile", f"http://more.hang.test:{server.port}/")
    assert refused is not None and refused.reason == "limit"
    assert resolver.started == MAX_LOOKUPS
    assert await ask("other", f"http://fine.test:{server.port}/json") is None
    resolver.release.set()
    deadline = asyncio.get_running_loop().time() + 5
    while await ask("hostile", f"http://fine.test:{server.port}/json") is not None:
        assert asyncio.get_running_loop().time() < deadline, "the lookups never ended"
        await asyncio.sleep(0.01)


@pytest.mark.xfail(
    strict=True,
    reason="finding (review): a bot's own http.allow opens loopback and private addresses of "
    "the server's network with no operator consent; with author deploys any author can reach "
    "services on the host (127.0.0.1) or its LAN. Needs an operator setting.",
)
async def test_a_bots_allow_list_alone_does_not_open_the_servers_loopback(
    server: Origin,
) -> None:
    broker = Broker(transport=LoopbackOnly())
    with pytest.raises(OutboundError) as caught:
        await fetch(broker, rules(server, allow=[server.host]), f"{server.base}/json")
    assert caught.value.reason == "refused"


async def test_the_lookup_cap_holds_across_brokers_of_one_process(server: Origin) -> None:
    """Each try makes a broker of its own: a bot must not get MAX_LOOKUPS more stuck lookups
    per try."""
    resolver = HangingResolver()
    policy = rules(server, allow=["*"])
    errors: list[str] = []
    for n in range(MAX_LOOKUPS + 1):
        broker = Broker(resolver=resolver, transport=LoopbackOnly())
        try:
            await broker.fetch(
                policy,
                OutboundRequest("GET", f"http://t{n}.hang.test/", timeout=0.2),
                hops=[],
                owner="tries",
            )
        except OutboundError as exc:
            errors.append(exc.reason)
    resolver.release.set()
    assert errors == ["timeout"] * MAX_LOOKUPS + ["limit"]
    assert resolver.started == MAX_LOOKUPS
    deadline = asyncio.get_running_loop().time() + 5
    while lookups_in_progress("tries"):
        assert asyncio.get_running_loop().time() < deadline, "the lookups never ended"
        await asyncio.sleep(0.01)


@pytest.mark.parametrize("charset", ["punycode", "idna", "unicode_escape", "rot13", "nonesuch"])
async def test_an_answer_is_decoded_only_in_a_web_charset_else_as_utf8(
    server: Origin, charset: str
) -> None:
    """A charset the answer names is used only if it is a web text encoding: punycode's decoder
    is quadratic (a 160 KB body held the server's event loop, every bot's, for 3.6 s)."""
    broker = Broker(transport=LoopbackOnly())
    answer, _ = await fetch(broker, rules(server), f"{server.base}/charset?name={charset}")
    assert answer.text == "bcher-kva"  # type: ignore[attr-defined]


@pytest.mark.parametrize(("charset", "text"), [("latin-1", "bcher-kva"), ("utf-16-le", None)])
async def test_an_answer_in_a_web_charset_is_decoded_in_it(
    server: Origin, charset: str, text: str | None
) -> None:
    broker = Broker(transport=LoopbackOnly())
    answer, _ = await fetch(broker, rules(server), f"{server.base}/charset?name={charset}")
    expected = text if text is not None else b"bcher-kva".decode(charset, "replace")
    assert answer.text == expected  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "location",
    ["hop:|{", "http://\u00ff\u00fe/", "http://[::1/", "http://a b/", "http:0x/"],
)
async def test_a_redirect_to_a_location_httpx_cannot_read_is_an_http_error(
    server: Origin, location: str
) -> None:
    """httpx reads a 3xx's Location even when it follows no redirect; one it cannot read must
    fail the request as refused or unreachable, not crash the capability inside the host."""
    broker = Broker(transport=LoopbackOnly())
    url = f"{server.base}/redirect?{urlencode({'to': location})}"
    with pytest.raises(OutboundError) as caught:
        await fetch(broker, rules(server), url)
    assert caught.value.reason in ("refused", "unreachable")


async def test_a_raw_deflate_answer_is_decoded_as_httpx_would(server: Origin) -> None:
    broker = Broker(transport=LoopbackOnly())
    answer, _ = await fetch(broker, rules(server), f"{server.base}/deflate?n=5000")
    assert answer.text == "z" * 5000  # type: ignore[attr-defined]
