"""Pure SSRF checks: what URL a script may ask for, and which addresses are never reached.

No I/O here: :func:`parse_url` reads a URL into a :class:`Target` (scheme, host, port, the
address when the host is written as one, in any spelling ``inet_aton`` accepts: ``127.1``,
``2130706433``, ``0x7f000001``), and :func:`refusal` says why an address is not a public one
(loopback, private, link-local, carrier-grade NAT, multicast, unspecified, reserved, cloud
metadata), looking through the IPv6 forms that carry an IPv4 address (mapped, compatible, NAT64,
6to4, Teredo).
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Final
from urllib.parse import urlsplit

from runtime.errors import OutboundError

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

SCHEMES: Final = {"http": 80, "https": 443}
MAX_URL: Final = 4096
NAME: Final = re.compile(r"[a-z0-9_]([a-z0-9_-]{0,62})(\.[a-z0-9_]([a-z0-9_-]{0,62}))*\.?")
NUMERIC_LABEL: Final = re.compile(r"(0x[0-9a-f]*|[0-9]+)", re.IGNORECASE)

_V4: Final[tuple[tuple[str, str], ...]] = (
    ("0.0.0.0/8", "unspecified"),
    ("10.0.0.0/8", "private"),
    ("100.64.0.0/10", "carrier-grade NAT"),
    ("127.0.0.0/8", "loopback"),
    ("169.254.169.254/32", "cloud metadata"),
    ("169.254.0.0/16", "link-local"),
    ("172.16.0.0/12", "private"),
    ("192.0.0.0/24", "reserved"),
    ("192.0.2.0/24", "documentation"),
    ("192.88.99.0/24", "reserved"),
    ("192.168.0.0/16", "private"),
    ("198.18.0.0/15", "reserved"),
    ("198.51.100.0/24", "documentation"),
    ("203.0.113.0/24", "documentation"),
    ("224.0.0.0/4", "multicast"),
    ("240.0.0.0/4", "reserved"),
)
_V6: Final[tuple[tuple[str, str], ...]] = (
    ("::/128", "unspecified"),
    ("::1/128", "loopback"),
    ("fd00:ec2::254/128", "cloud metadata"),
    ("fe80::/10", "link-local"),
    ("fec0::/10", "private"),
    ("fc00::/7", "private"),
    ("ff00::/8", "multicast"),
    ("64:ff9b:1::/48", "private"),
    ("100::/64", "reserved"),
    ("2001:db8::/32", "documentation"),
    ("2001::/23", "reserved"),
    ("::/8", "reserved"),
)
V4_NETWORKS: Final = tuple((ipaddress.IPv4Network(net), why) for net, why in _V4)
V6_NETWORKS: Final = tuple((ipaddress.IPv6Network(net), why) for net, why in _V6)
MAPPED: Final = ipaddress.IPv6Network("::ffff:0:0/96")
COMPATIBLE: Final = ipaddress.IPv6Network("::/96")
NAT64: Final = ipaddress.IPv6Network("64:ff9b::/96")
SIX_TO_FOUR: Final = ipaddress.IPv6Network("2002::/16")
TEREDO: Final = ipaddress.IPv6Network("2001::/32")


@dataclass(frozen=True, slots=True)
class Target:
    """Where a URL points: ``host`` is a lower-case name without a trailing dot, or an address
    in its canonical text (then ``address`` is set)."""

    scheme: str
    host: str
    port: int
    target: str
    """The request target: path and query (``/`` at least); never logged."""
    address: Address | None = None

    @property
    def default_port(self) -> bool:
        """True when the port is the scheme's own (80 for http, 443 for https)."""
        return SCHEMES[self.scheme] == self.port

    @property
    def authority(self) -> str:
        """What the ``Host`` header says: the host as written in URLs, and a non-default port."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.default_port else f"{host}:{self.port}"

    def url_to(self, address: Address) -> str:
        """The URL of this target with its host replaced by ``address`` (what is connected)."""
        host = f"[{address}]" if address.version == 6 else str(address)
        return f"{self.scheme}://{host}:{self.port}{self.target}"

    def url(self) -> str:
        """The URL again, canonical (for resolving a relative redirect)."""
        return f"{self.scheme}://{self.authority}{self.target}"


def refused(message: str) -> OutboundError:
    """The error of a URL or address the rules refuse."""
    return OutboundError(message, reason="refused")


def parse_url(url: object) -> Target:
    """Read an absolute http(s) URL; raise :class:`OutboundError` (``refused``) if it is not one.

    User info (``user:pass@``), control characters and spaces are refused; a name is folded to
    lower case (IDNA for non-ASCII); a host written as an IPv4 number in any ``inet_aton`` form
    becomes that address.
    """
    if type(url) is not str:
        raise refused("the URL must be text")
    if len(url) > MAX_URL:
        raise refused(f"the URL is longer than {MAX_URL} characters")
    if any(ord(ch) <= 0x20 or ord(ch) == 0x7F for ch in url) or "\\" in url:
        raise refused("the URL holds spaces, control characters or backslashes")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise refused(f"the URL cannot be read: {exc}") from None
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES:
        raise refused("only http and https URLs may be fetched")
    if "@" in parts.netloc:
        raise refused("URLs with a user name or password are refused; send an Authorization header")
    raw_host = parts.hostname or ""
    if not raw_host:
        raise refused("the URL has no host")
    host, address = _host(raw_host, bracketed=parts.netloc.startswith("["))
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    return Target(scheme, host, SCHEMES[scheme] if port is None else port, target, address)


def _host(raw: str, *, bracketed: bool) -> tuple[str, Address | None]:
    if bracketed:
        if "%" in raw:
            raise refused("IPv6 zone ids are refused")
        try:
            v6 = ipaddress.IPv6Address(raw)
        except ValueError:
            raise refused("the URL's [address] is not an IPv6 address") from None
        return str(v6), v6
    name = raw.rstrip(".").lower() if raw != "." else ""
    if not name:
        raise refused("the URL has no host")
    if not name.isascii():
        try:
            # IDNA maps the full stops of other scripts ("\u3002") to ".": strip again.
            name = name.encode("idna").decode("ascii").rstrip(".")
        except UnicodeError:
            raise refused("the host name is not a valid international name") from None
        if not name:
            raise refused("the URL has no host")
    last = name.rpartition(".")[2]
    if NUMERIC_LABEL.fullmatch(last):
        v4 = loose_ipv4(name)
        if v4 is None:
            raise refused("the host looks like an IPv4 address but is not a valid one")
        return str(v4), v4
    if not NAME.fullmatch(name) or len(name) > 253:
        raise refused("the host is not a valid name")
    return name, None


def loose_ipv4(text: str) -> ipaddress.IPv4Address | None:
    """An IPv4 address in any form ``inet_aton`` takes (1 to 4 parts, decimal, octal with a
    leading 0, hex with 0x; the last part fills the remaining bytes), or ``None``."""
    labels = text.split(".")
    if not 1 <= len(labels) <= 4:
        return None
    numbers: list[int] = []
    for label in labels:
        if not NUMERIC_LABEL.fullmatch(label):
            return None
        lower = label.lower()
        if lower.startswith("0x"):
            numbers.append(int(lower[2:] or "0", 16))
        elif len(label) > 1 and label.startswith("0"):
            if any(ch in "89" for ch in label):
                return None
            numbers.append(int(label, 8))
        else:
            numbers.append(int(label))
    *head, last = numbers
    if any(part > 255 for part in head) or last >= 256 ** (4 - len(head)):
        return None
    value = last
    for index, part in enumerate(head):
        value += part << (8 * (3 - index))
    return ipaddress.IPv4Address(value)


def embedded_ipv4(address: ipaddress.IPv6Address) -> tuple[ipaddress.IPv4Address, ...]:
    """The IPv4 addresses an IPv6 address carries (mapped, compatible, NAT64, 6to4, Teredo)."""
    value = int(address)
    if address in MAPPED or address in COMPATIBLE or address in NAT64:
        return (ipaddress.IPv4Address(value & 0xFFFFFFFF),)
    if address in SIX_TO_FOUR:
        return (ipaddress.IPv4Address((value >> 80) & 0xFFFFFFFF),)
    if address in TEREDO:
        server = ipaddress.IPv4Address((value >> 64) & 0xFFFFFFFF)
        client = ipaddress.IPv4Address(~value & 0xFFFFFFFF)
        return (server, client)
    return ()


def refusal(address: Address) -> str | None:
    """Why ``address`` is never reached without an explicit allow entry, or ``None`` (public)."""
    if address.version == 4:
        for network, why in V4_NETWORKS:
            if address in network:
                return why
        return None if address.is_global else "reserved"
    assert isinstance(address, ipaddress.IPv6Address)
    if address == ipaddress.IPv6Address("::"):
        return "unspecified"
    if address == ipaddress.IPv6Address("::1"):
        return "loopback"
    for inner in embedded_ipv4(address):
        carried = refusal(inner)
        if carried is not None:
            return f"{carried} (inside {address})"
    if address in MAPPED or address in COMPATIBLE:
        return None  # the IPv4 address it carries is public
    for network6, why6 in V6_NETWORKS:
        if address in network6:
            return why6
    return None if address.is_global else "reserved"


def parse_address(text: str) -> Address | None:
    """An address in canonical IPv4 or IPv6 text (brackets allowed), or ``None``."""
    text = text.strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None
