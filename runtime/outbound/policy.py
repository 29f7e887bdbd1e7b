"""A bot's ``http:`` rules from bot.yaml, and the pure decisions made with them.

Host patterns (:class:`HostPattern`): ``api.example.com`` (that name), ``*.example.com`` (any name
under it, not the name itself), ``*`` (any host, as a name or a public address), an address
(``127.0.0.2``, ``::1``) or a network (``10.0.0.0/8``, ``fd00::/8``). Names match the URL's
host; addresses and networks match the address the host resolved to (or is).

The rules (:class:`HttpPolicy`): a URL's port must be 80, 443 or one of ``ports``; a host or
address matching ``deny`` is refused; when ``allow`` is given, the host or its address must match
an entry; an address that is not public (:func:`runtime.outbound.address.refusal`) is reached
only when an *address or network* entry of ``allow`` covers it: a name pattern never opens a
private address, since whoever runs that name's DNS picks its addresses.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from runtime.errors import OutboundError
from runtime.outbound.address import (
    NAME,
    Address,
    Network,
    Target,
    parse_address,
    refusal,
    refused,
)

DEFAULT_PORTS: Final = frozenset({80, 443})
MAX_PATTERNS: Final = 200


@dataclass(frozen=True, slots=True)
class HostPattern:
    """One entry of ``http.allow`` or ``http.deny``."""

    text: str
    name: str | None = None
    """An exact name, or the suffix (``.example.com``) of a ``*.`` pattern, or ``*``."""
    network: Network | None = None

    @classmethod
    def parse(cls, text: object) -> HostPattern:
        """Read one pattern; raise ValueError with a message for bot.yaml."""
        if type(text) is not str or not text.strip():
            raise ValueError(f"{text!r} is not a host pattern (quote it as text)")
        raw = text.strip().lower()
        if raw == "*":
            return cls(text, name="*")
        if "/" in raw:
            try:
                return cls(text, network=ipaddress.ip_network(raw.strip("[]"), strict=False))
            except ValueError:
                raise ValueError(f"{text!r} is not a network (as in 10.0.0.0/8)") from None
        address = parse_address(raw)
        if address is not None:
            return cls(text, network=ipaddress.ip_network(address))
        wildcard = raw.startswith("*.")
        name = raw[2:] if wildcard else raw
        name = name.rstrip(".")
        if not NAME.fullmatch(name) or len(name) > 253:
            raise ValueError(
                f"{text!r} is not a host pattern: use a name (api.example.com), *.example.com, "
                "*, an address (127.0.0.2) or a network (10.0.0.0/8)"
            )
        return cls(text, name="." + name if wildcard else name)

    def matches_name(self, host: str) -> bool:
        """True if this is a name pattern matching the host name ``host``."""
        if self.name is None:
            return False
        if self.name == "*":
            return True
        if self.name.startswith("."):
            return host.endswith(self.name)
        return host == self.name

    def matches_address(self, address: Address) -> bool:
        """True if this is an address or network pattern covering ``address`` (an IPv4-mapped
        IPv6 address, ``::ffff:a.b.c.d``, is also read as the IPv4 address it reaches)."""
        if self.network is None:
            return False
        mapped = address.ipv4_mapped if isinstance(address, ipaddress.IPv6Address) else None
        return address in self.network or (mapped is not None and mapped in self.network)


@dataclass(frozen=True, slots=True)
class HttpPolicy:
    """A bot's ``http:`` settings: rules and limits (defaults when bot.yaml has none)."""

    allow: tuple[HostPattern, ...] = ()
    deny: tuple[HostPattern, ...] = ()
    ports: frozenset[int] = DEFAULT_PORTS
    timeout: float = 10.0
    """Seconds for one request, redirects and the whole body included."""
    max_bytes: int = 1024 * 1024
    """The most a response body may hold (decoded); a longer one fails the request."""
    per_run: int = 10
    """Requests (each redirect hop counts) one run may make."""
    per_minute: int = 60
    """Requests the bot may make per minute, across runs and server processes."""
    max_redirects: int = 5

    def check_target(self, target: Target) -> None:
        """The checks made before resolving: port, and ``deny`` by name or literal address."""
        if target.port not in self.ports:
            allowed = ", ".join(str(port) for port in sorted(self.ports))
            raise OutboundError(
                f"port {target.port} of {target.host} is not allowed (allowed: {allowed}; "
                "add it to http.ports in bot.yaml)",
                reason="refused",
                host=target.host,
            )
        if target.address is None and any(p.matches_name(target.host) for p in self.deny):
            raise _denied(target.host)

    def check_address(self, target: Target, address: Address) -> None:
        """The checks of an address ``target`` resolved to (or is): deny, allow, public."""
        host = target.host
        if any(p.matches_address(address) for p in self.deny):
            raise _denied(host)
        explicit = any(p.matches_address(address) for p in self.allow)
        if self.allow and not explicit:
            by_name = any(
                p.name == "*" or (target.address is None and p.matches_name(host))
                for p in self.allow
            )
            if not by_name:
                raise OutboundError(
                    f"{host} is not in http.allow of bot.yaml", reason="refused", host=host
                )
        why = refusal(address)
        if why is not None and why.startswith("cloud metadata"):
            # The server's own credentials: no bot's allow list opens it.
            shown = host if target.address is not None else f"{host} ({address})"
            error = refused(
                f"{shown} is a {why} address; only public addresses are reached, and no "
                "http.allow entry opens a cloud metadata address"
            )
            error.host = host
            raise error
        if why is not None and not explicit:
            shown = host if target.address is not None else f"{host} ({address})"
            error = refused(
                f"{shown} is a {why} address; only public addresses are reached unless "
                "http.allow in bot.yaml lists the address"
            )
            error.host = host
            raise error


def _denied(host: str) -> OutboundError:
    return OutboundError(f"{host} is in http.deny of bot.yaml", reason="refused", host=host)


def parse_patterns(values: Sequence[object]) -> tuple[HostPattern, ...]:
    """Read a list of patterns; raise ValueError naming the first bad one."""
    if len(values) > MAX_PATTERNS:
        raise ValueError(f"at most {MAX_PATTERNS} patterns")
    return tuple(HostPattern.parse(value) for value in values)
