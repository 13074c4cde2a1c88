"""An httpx transport whose connections go only to addresses the webhook policy checked.

The URL's host is resolved once per connection by `TargetPolicy.addresses`, every answer
is checked, and the socket is opened to one of those IP addresses, so there is no second
lookup a rebinding DNS server could answer differently. The request keeps its URL: the
`Host` header and TLS's SNI and certificate check still use the name. Proxies from the
environment are ignored (a proxy would make the connection on our behalf, unchecked).
"""

from __future__ import annotations

import ipaddress
import typing

import httpcore
import httpx

from app.webhook_targets import RefusedAddress, TargetPolicy


class PinnedBackend(httpcore.NetworkBackend):
    """Connects to the checked addresses of a host, never to the name itself."""

    def __init__(self, policy: TargetPolicy) -> None:
        self.policy = policy
        self._tcp = httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: typing.Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        try:
            addresses = self.policy.addresses(host, port)
        except (OSError, UnicodeError) as e:  # the name does not resolve
            raise httpcore.ConnectError(str(e)) from e
        error: Exception = httpcore.ConnectError(f"{host} has no address")
        for address in addresses:
            try:
                stream = self._tcp.connect_tcp(
                    str(address), port, timeout, local_address, socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as e:
                error = e
                continue
            self._check_peer(host, stream)
            return stream
        raise error

    def _check_peer(self, host: str, stream: httpcore.NetworkStream) -> None:
        """The address the socket is connected to, checked once more (belt and braces)."""
        sock = stream.get_extra_info("socket")
        peer = ipaddress.ip_address(sock.getpeername()[0].split("%", 1)[0])
        try:
            self.policy.check(host, peer)
        except RefusedAddress:
            stream.close()
            raise

    def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: typing.Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        raise RefusedAddress(path, path, "a Unix socket")

    def sleep(self, seconds: float) -> None:
        self._tcp.sleep(seconds)


class PinnedTransport(httpx.HTTPTransport):
    """`httpx.HTTPTransport` over a `PinnedBackend`, HTTP/1.1, no proxy."""

    def __init__(self, policy: TargetPolicy) -> None:
        super().__init__(trust_env=False)
        # httpx builds its pool without a way to pass a network backend: replace it.
        self._pool = httpcore.ConnectionPool(
            ssl_context=httpx.create_ssl_context(trust_env=False),
            max_connections=10,
            network_backend=PinnedBackend(policy),
        )


def pinned_client(policy: TargetPolicy, timeout_s: float) -> httpx.Client:
    """A client for webhook deliveries: pinned addresses, no redirects, no proxies."""
    return httpx.Client(
        transport=PinnedTransport(policy),
        timeout=timeout_s,
        follow_redirects=False,
        trust_env=False,
    )
