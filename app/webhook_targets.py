"""Which addresses a webhook may reach: the SSRF policy, shared by registration and delivery.

A webhook URL may name a host in any spelling an attacker likes (`2130706433`, `0x7f.1`,
`[::ffff:127.0.0.1]`, a DNS name that resolves to 169.254.169.254, ...). Every host is
turned into IP addresses the same way (IP literals, including the legacy IPv4 forms that
`inet_aton` accepts, without DNS; names through the policy's resolver), and every address
must be public unless it lies in a network the operator allowed
(`TAG2MASK_WEBHOOK_ALLOW_NETWORKS`). Registration checks once; each delivery resolves again
and connects only to the addresses it checked (see worker/webhook_transport.py), so a DNS
answer that changes after registration (rebinding) gains nothing.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
# host, port -> the addresses a connection may go to (raises OSError when the name does not resolve)
Resolver = Callable[[str, int], Sequence[IPAddress]]

# Networks that are not in Python's non-global tables but must never be reached.
_ALSO_REFUSED: tuple[IPNetwork, ...] = (
    ipaddress.ip_network("100.64.0.0/10"),  # shared address space (carrier-grade NAT)
    ipaddress.ip_network("192.0.0.0/24"),  # IETF protocol assignments (Python: only parts)
    ipaddress.ip_network("64:ff9b:1::/48"),  # local-use NAT64
)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")  # well-known NAT64 prefix: an IPv4 inside
_LEGACY_IPV4 = re.compile(r"^[0-9a-fx.]+$", re.IGNORECASE)  # 2130706433, 0x7f.1, 0177.1
# RFC 6761: these names are loopback whatever a resolver says.
_LOOPBACK_NAMES = ("localhost", "localhost.localdomain")


class RefusedAddress(Exception):
    """A webhook target resolves to an address the policy does not allow."""

    def __init__(self, host: str, address: str, reason: str) -> None:
        super().__init__(f"{host} resolves to {address}, which is not public ({reason})")
        self.host, self.address, self.reason = host, address, reason


def system_resolver(host: str, port: int) -> list[IPAddress]:
    """The operating system's answer (getaddrinfo), in its order, without duplicates."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    seen: dict[IPAddress, None] = {}
    for _family, _type, _proto, _name, sockaddr in infos:
        seen.setdefault(ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0]), None)
    return list(seen)


def ip_literal(host: str) -> IPAddress | None:
    """The address a host written as an IP literal means, in any spelling; None for names.

    IPv6 zone ids (`fe80::1%eth0`) are dropped: the address alone decides. IPv4 accepts
    what C's inet_aton accepts (and so what many HTTP clients connect to): `127.1`,
    `2130706433`, `0x7f.0.0.1`, `017700000001`.
    """
    text = unquote(host).strip("[]").rstrip(".")
    try:
        return ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        pass
    if _LEGACY_IPV4.match(text):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(text))
        except OSError:
            return None
    return None


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address stands for (mapped, NAT64, 6to4, Teredo), if any."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]
    return None


def refusal_reason(ip: IPAddress) -> str | None:
    """Why `ip` is not a public unicast address (None when it is)."""
    checks = (
        ("unspecified", ip.is_unspecified),
        ("loopback", ip.is_loopback),
        ("link-local", ip.is_link_local),
        ("multicast", ip.is_multicast),
        ("reserved", ip.is_reserved),
        ("private", ip.is_private),
        ("shared", any(ip in net for net in _ALSO_REFUSED if net.version == ip.version)),
        ("non-global", not ip.is_global),
    )
    for reason, hit in checks:
        if hit:
            return reason
    if isinstance(ip, ipaddress.IPv6Address):
        inner = _embedded_ipv4(ip)
        if inner is not None:
            reason = refusal_reason(inner)
            return None if reason is None else f"{reason} (IPv4 {inner} inside)"
    return None


@dataclass
class TargetPolicy:
    """Allowed networks plus the resolver; `resolver` is the hook tests replace."""

    allow: tuple[IPNetwork, ...] = ()
    resolver: Resolver = system_resolver
    registration_timeout_s: float = 3.0
    _pool: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(2, thread_name_prefix="webhook-dns"),
        repr=False,
    )

    @classmethod
    def from_networks(
        cls, networks: Iterable[IPNetwork | str], resolver: Resolver = system_resolver
    ) -> TargetPolicy:
        return cls(allow=tuple(ipaddress.ip_network(n) for n in networks), resolver=resolver)

    def allowed(self, ip: IPAddress) -> bool:
        """True for a public address or one inside an allowed network."""
        if refusal_reason(ip) is None:
            return True
        candidates = [ip]
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            candidates.append(ip.ipv4_mapped)
        return any(c in net for c in candidates for net in self.allow if net.version == c.version)

    def check(self, host: str, address: IPAddress) -> None:
        if not self.allowed(address):
            raise RefusedAddress(host, str(address), refusal_reason(address) or "refused")

    def addresses(self, host: str, port: int) -> list[IPAddress]:
        """Every address `host` means, each checked; raises RefusedAddress or OSError.

        One refused address refuses the host: a name that answers both a public and an
        internal address is not trusted with either.
        """
        literal = ip_literal(host)
        if literal is not None:
            found = [literal]
        else:
            name = host.rstrip(".").lower()
            if name in _LOOPBACK_NAMES or name.endswith(".localhost"):
                found = [ipaddress.ip_address("127.0.0.1")]
            else:
                found = list(self.resolver(name, port))
        if not found:
            raise OSError(f"{host} has no address")
        for address in found:
            self.check(host, address)
        return found

    def check_url(self, url: str) -> None:
        """Registration: refuse a URL whose host is, or now resolves to, a refused address.

        A name that does not resolve (yet), or not within `registration_timeout_s`, is
        accepted: every delivery resolves and checks again before it connects.
        """
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port or (443 if parts.scheme.lower() == "https" else 80)
        if ip_literal(host) is not None:
            self.addresses(host, port)
            return
        future = self._pool.submit(self.addresses, host, port)
        try:
            future.result(timeout=self.registration_timeout_s)
        except (OSError, UnicodeError, FutureTimeout):
            return
