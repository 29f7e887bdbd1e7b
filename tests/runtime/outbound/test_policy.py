"""A bot's http: rules, decided without I/O: ports, deny, allow, and private addresses."""

from __future__ import annotations

import ipaddress

import pytest

from runtime.errors import OutboundError
from runtime.outbound.address import parse_url
from runtime.outbound.policy import HostPattern, HttpPolicy, parse_patterns


def policy(**changes: object) -> HttpPolicy:
    allow = parse_patterns(changes.pop("allow", []))  # type: ignore[arg-type]
    deny = parse_patterns(changes.pop("deny", []))  # type: ignore[arg-type]
    return HttpPolicy(allow=allow, deny=deny, **changes)  # type: ignore[arg-type]


def check(rules: HttpPolicy, url: str, address: str | None = None) -> None:
    target = parse_url(url)
    rules.check_target(target)
    resolved = target.address or ipaddress.ip_address(address or "93.184.216.34")
    rules.check_address(target, resolved)


def test_a_public_host_on_a_default_port_passes_with_no_rules() -> None:
    check(HttpPolicy(), "https://example.com/")
    check(HttpPolicy(), "http://example.com:443/")


def test_a_port_other_than_80_and_443_is_refused_unless_configured() -> None:
    with pytest.raises(OutboundError, match=r"port 8080 of example.com is not allowed"):
        check(HttpPolicy(), "http://example.com:8080/")
    check(HttpPolicy(ports=frozenset({80, 443, 8080})), "http://example.com:8080/")


def test_a_denied_name_pattern_refuses_the_name_and_its_subdomains() -> None:
    rules = policy(deny=["*.evil.test", "bad.test"])
    for url in ("http://a.evil.test/", "http://x.y.evil.test/", "http://bad.test/"):
        with pytest.raises(OutboundError, match=r"http\.deny"):
            check(rules, url)
    check(rules, "http://evil.test/")  # *.evil.test is under it, not the name itself


def test_a_denied_network_refuses_the_addresses_a_name_resolves_to() -> None:
    rules = policy(deny=["93.184.216.0/24"])
    with pytest.raises(OutboundError, match=r"http\.deny"):
        check(rules, "http://example.com/", "93.184.216.34")
    check(rules, "http://example.com/", "93.184.217.1")


def test_with_an_allow_list_only_hosts_matching_it_are_reached() -> None:
    rules = policy(allow=["api.example.com", "*.cdn.test"])
    check(rules, "https://api.example.com/")
    check(rules, "https://img.cdn.test/")
    with pytest.raises(OutboundError, match=r"not in http\.allow"):
        check(rules, "https://example.com/")


def test_a_name_pattern_never_opens_a_private_address() -> None:
    rules = policy(allow=["*", "intranet.test"])
    for address in ("10.0.0.5", "169.254.169.254", "127.0.0.1", "fd00::1", "::ffff:10.0.0.1"):
        with pytest.raises(OutboundError, match="only public addresses") as caught:
            check(rules, "http://intranet.test/", address)
        assert caught.value.reason == "refused"


def test_an_address_entry_opens_exactly_that_private_address() -> None:
    rules = policy(allow=["127.0.0.2", "10.1.0.0/16", "[::1]"])
    check(rules, "http://127.0.0.2/")
    check(rules, "http://[::1]/")
    check(rules, "http://intranet.test/", "10.1.2.3")
    for url in ("http://127.0.0.1/", "http://127.1/", "http://10.2.0.1/"):
        with pytest.raises(OutboundError):
            check(rules, url)


def test_deny_wins_over_allow() -> None:
    rules = policy(allow=["127.0.0.0/8"], deny=["127.0.0.3"])
    check(rules, "http://127.0.0.2/")
    with pytest.raises(OutboundError, match=r"http\.deny"):
        check(rules, "http://127.0.0.3/")


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("api.example.com", "name"),
        ("*.example.com", "name"),
        ("*", "name"),
        ("127.0.0.2", "network"),
        ("[::1]", "network"),
        ("10.0.0.0/8", "network"),
        ("fd00::/8", "network"),
    ],
)
def test_host_patterns_are_names_or_networks(text: str, kind: str) -> None:
    pattern = HostPattern.parse(text)
    assert (pattern.name is not None) == (kind == "name")
    assert (pattern.network is not None) == (kind == "network")


@pytest.mark.parametrize("text", ["", "a b", "10.0.0.0/99", "*.", "http://x", 5, None])
def test_a_bad_host_pattern_is_a_value_error(text: object) -> None:
    with pytest.raises(ValueError, match=r"pattern|network"):
        HostPattern.parse(text)


@pytest.mark.parametrize("dot", ["\u3002", "\uff0e", "\uff61"])
def test_a_unicode_full_stop_at_the_end_of_a_name_does_not_slip_past_deny(dot: str) -> None:
    # IDNA maps these full stops to "." after the ASCII trailing dot was stripped: the host
    # must still be "evil.example.com", the name deny lists.
    rules = policy(deny=["evil.example.com", "*.internal.example"])
    assert parse_url(f"http://evil.example.com{dot}/").host == "evil.example.com"
    with pytest.raises(OutboundError, match=r"http\.deny"):
        check(rules, f"http://evil.example.com{dot}/")
    with pytest.raises(OutboundError, match=r"http\.deny"):
        check(rules, f"http://db.internal.example{dot}/")


def test_a_unicode_full_stop_after_an_ipv4_address_still_reads_as_that_address() -> None:
    target = parse_url("http://127.0.0.1\u3002/")
    assert target.address == ipaddress.IPv4Address("127.0.0.1")


@pytest.mark.parametrize("url", ["http://[::ffff:93.184.216.34]/", "http://[::ffff:5db8:d822]/"])
def test_an_ipv4_mapped_ipv6_spelling_of_a_denied_address_is_denied(url: str) -> None:
    rules = policy(allow=["*"], deny=["93.184.216.34"])
    with pytest.raises(OutboundError, match=r"http\.deny"):
        check(rules, url)


def test_a_name_resolving_to_the_mapped_form_of_a_denied_network_is_denied() -> None:
    rules = policy(deny=["93.184.216.0/24"])
    with pytest.raises(OutboundError, match=r"http\.deny"):
        check(rules, "https://example.com/", "::ffff:93.184.216.34")


@pytest.mark.parametrize("allow", ["169.254.169.254", "169.254.0.0/16", "0.0.0.0/0", "::/0"])
@pytest.mark.parametrize(
    "url", ["http://169.254.169.254/", "http://[fd00:ec2::254]/", "http://[::ffff:a9fe:a9fe]/"]
)
def test_no_allow_entry_opens_a_cloud_metadata_address(allow: str, url: str) -> None:
    """A bot's author writes its allow list: the cloud's metadata service (the server's own
    credentials) stays closed whatever it lists."""
    rules = policy(allow=[allow, "fd00::/8"])
    with pytest.raises(OutboundError, match=r"cloud metadata|not in http\.allow") as caught:
        check(rules, url)
    assert caught.value.reason == "refused"
