"""The pure SSRF checks: URL reading, every spelling of an address, every refused class."""

from __future__ import annotations

import ipaddress

import pytest

from runtime.errors import OutboundError
from runtime.outbound.address import loose_ipv4, parse_url, refusal

LOOPBACK_SPELLINGS = [
    "http://localhost/",
    "http://LOCALHOST./",
    "http://127.0.0.1/",
    "http://127.1/",
    "http://2130706433/",
    "http://0x7f000001/",
    "http://0177.0.0.1/",
    "http://0x7f.1/",
    "http://[::1]/",
    "http://[::ffff:127.0.0.1]/",
    "http://[::ffff:7f00:1]/",
    "http://[0:0:0:0:0:0:0:1]/",
]


@pytest.mark.parametrize(
    ("spelling", "address"),
    [
        ("127.1", "127.0.0.1"),
        ("2130706433", "127.0.0.1"),
        ("0x7f000001", "127.0.0.1"),
        ("0177.0.0.1", "127.0.0.1"),
        ("0x7f.0.0.1", "127.0.0.1"),
        ("10.1", "10.0.0.1"),
        ("169.254.43518", "169.254.169.254"),
        ("8.8.8.8", "8.8.8.8"),
    ],
)
def test_every_inet_aton_spelling_of_an_ipv4_address_is_read_as_that_address(
    spelling: str, address: str
) -> None:
    assert loose_ipv4(spelling) == ipaddress.IPv4Address(address)
    assert parse_url(f"http://{spelling}/").address == ipaddress.IPv4Address(address)


@pytest.mark.parametrize("host", ["256.1.1.1", "1.2.3.4.5", "0x1g.1", "09.1.1.1", "1.2.3.999"])
def test_a_host_that_looks_numeric_but_is_no_address_is_refused(host: str) -> None:
    with pytest.raises(OutboundError, match="IPv4") as caught:
        parse_url(f"http://{host}/")
    assert caught.value.reason == "refused"


@pytest.mark.parametrize("url", LOOPBACK_SPELLINGS)
def test_every_spelling_of_loopback_is_read_as_a_loopback_address_or_the_name_localhost(
    url: str,
) -> None:
    target = parse_url(url)
    if target.address is None:
        assert target.host == "localhost"
    else:
        assert refusal(target.address) is not None
        assert "loopback" in (refusal(target.address) or "")


@pytest.mark.parametrize(
    ("address", "why"),
    [
        ("0.0.0.0", "unspecified"),
        ("10.2.3.4", "private"),
        ("172.16.0.1", "private"),
        ("172.31.255.255", "private"),
        ("192.168.1.1", "private"),
        ("100.64.0.1", "carrier-grade NAT"),
        ("100.100.100.200", "carrier-grade NAT"),
        ("127.0.0.2", "loopback"),
        ("169.254.169.254", "cloud metadata"),
        ("169.254.1.1", "link-local"),
        ("224.0.0.1", "multicast"),
        ("239.255.255.250", "multicast"),
        ("240.0.0.1", "reserved"),
        ("255.255.255.255", "reserved"),
        ("192.0.2.1", "documentation"),
        ("198.18.0.1", "reserved"),
        ("::", "unspecified"),
        ("::1", "loopback"),
        ("fe80::1", "link-local"),
        ("fc00::1", "private"),
        ("fd12:3456::1", "private"),
        ("fd00:ec2::254", "cloud metadata"),
        ("ff02::1", "multicast"),
        ("2001:db8::1", "documentation"),
        ("fec0::1", "private"),
        ("::ffff:127.0.0.1", "loopback"),
        ("::ffff:10.0.0.1", "private"),
        ("::ffff:169.254.169.254", "cloud metadata"),
        ("::127.0.0.1", "loopback"),
        ("64:ff9b::a9fe:a9fe", "cloud metadata"),
        ("64:ff9b::7f00:1", "loopback"),
        ("64:ff9b:1::1", "private"),
        ("2002:7f00:1::", "loopback"),
        ("2002:a00:1::1", "private"),
        ("2001:0:4136:e378:8000:63bf:f5ff:fffe", "private"),  # Teredo, client 10.0.0.1
        ("2001:0:7f00:1::", "loopback"),  # Teredo, server 127.0.0.1
    ],
)
def test_addresses_that_are_not_public_are_refused_with_their_class(address: str, why: str) -> None:
    reason = refusal(ipaddress.ip_address(address))
    assert reason is not None
    assert reason.startswith(why)


@pytest.mark.parametrize(
    "address",
    ["8.8.8.8", "1.1.1.1", "93.184.216.34", "2606:4700:4700::1111", "::ffff:8.8.8.8"],
)
def test_public_addresses_pass(address: str) -> None:
    assert refusal(ipaddress.ip_address(address)) is None


@pytest.mark.parametrize(
    ("url", "match"),
    [
        ("ftp://example.com/", "only http and https"),
        ("file:///etc/passwd", "only http and https"),
        ("gopher://example.com/", "only http and https"),
        ("//example.com/", "only http and https"),
        ("http://user:pw@example.com/", "user name or password"),
        ("http://example.com@127.0.0.1/", "user name or password"),
        ("http://exa mple.com/", "spaces"),
        ("http://example.com/\r\nHost: evil", "spaces"),
        ("http://example.com\\@evil/", "backslashes"),
        ("http:///path", "no host"),
        ("http://[fe80::1%25eth0]/", "zone"),
        ("http://[not:an:address]/", "IPv6"),
        ("http://example.com:99999/", "cannot be read"),
        ("http://exa_mple..com/", "not a valid name"),
    ],
)
def test_urls_outside_the_rules_are_refused_with_a_reason(url: str, match: str) -> None:
    with pytest.raises(OutboundError, match=match):
        parse_url(url)


def test_a_url_is_read_into_scheme_host_port_and_target() -> None:
    target = parse_url("HTTPS://Api.Example.COM./v1/x?q=1#frag")
    assert (target.scheme, target.host, target.port, target.target) == (
        "https",
        "api.example.com",
        443,
        "/v1/x?q=1",
    )
    assert target.authority == "api.example.com"
    assert parse_url("http://[::1]:8080").authority == "[::1]:8080"
    assert parse_url("http://bücher.example/").host == "xn--bcher-kva.example"
