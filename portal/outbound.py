"""Requests the portal sends to addresses its users chose (webhooks): never to the portal's own network.

A user who may add a webhook must not be able to make the portal reach what only it can reach: the loopback,
private networks, link-local addresses and the cloud metadata service. Every host is resolved, every address it
resolves to is checked, and the connection goes to the address that was checked (so DNS cannot answer one
address for the check and another for the connection). Redirects are followed only within the same host and are
checked again. The site can allow hosts or networks (PORTAL_WEBHOOK_ALLOWED_HOSTS) for receivers inside it.
"""

import http.client
import ipaddress
import socket
import ssl
import time
from dataclasses import dataclass, field
from urllib.parse import urljoin, urlsplit

from django.conf import settings

TIMEOUT_SECONDS = 10
MAX_RESPONSE_BYTES = 64 * 1024
MAX_REDIRECTS = 3
REDIRECTS = (301, 302, 303, 307, 308)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# Cloud metadata services answer on these without any credentials.
METADATA_ADDRESSES = frozenset(
    {
        ipaddress.ip_address("169.254.169.254"),
        ipaddress.ip_address("fd00:ec2::254"),
        ipaddress.ip_address("100.100.100.200"),
    }
)


class OutboundRefused(Exception):
    """The request was not sent (or not followed further); the message says why, for the delivery log."""


class UnresolvedHost(OutboundRefused):
    """The host name did not resolve: maybe for a moment, so a later try may go through."""


@dataclass(frozen=True)
class Allowed:
    """What the site lets requests reach although it is not public: host names and networks."""

    names: frozenset[str] = frozenset()
    networks: tuple[IPNetwork, ...] = ()

    @classmethod
    def parse(cls, value: str) -> "Allowed":
        """`receiver.internal, 10.1.0.0/16, 127.0.0.1`: names, addresses and networks, comma-separated."""
        names, networks = set(), []
        for item in (part.strip() for part in value.split(",")):
            if not item:
                continue
            try:
                networks.append(ipaddress.ip_network(item, strict=False))
            except ValueError:
                names.add(item.lower().rstrip("."))
        return cls(names=frozenset(names), networks=tuple(networks))

    @classmethod
    def from_settings(cls) -> "Allowed":
        return cls.parse(getattr(settings, "PORTAL_WEBHOOK_ALLOWED_HOSTS", ""))

    def admits(self, host: str, address: IPAddress) -> bool:
        return host.lower().rstrip(".") in self.names or any(address in network for network in self.networks)


def address_blocker(address: IPAddress) -> str | None:
    """Why a request may not go to this address, or None for a public one."""
    if isinstance(address, ipaddress.IPv6Address):
        # ::ffff:10.0.0.1 and 64:ff9b::a00:1 reach the IPv4 address inside them.
        embedded = address.ipv4_mapped or (
            ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
            if address in ipaddress.ip_network("64:ff9b::/96")
            else None
        )
        if embedded is not None:
            return address_blocker(embedded)
    if address in METADATA_ADDRESSES:
        return "a cloud metadata address"
    if address.is_loopback:
        return "a loopback address"
    if address.is_unspecified:
        return "an unspecified address"
    if address.is_link_local:
        return "a link-local address"
    if address.is_multicast:
        return "a multicast address"
    if address.is_private or address.is_reserved or not address.is_global:
        return "a private or reserved address"
    return None


def checked_addresses(host: str, port: int, allowed: Allowed) -> list[IPAddress]:
    """Every address host resolves to, all of them allowed, or OutboundRefused naming the first that is not."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise UnresolvedHost(f"could not resolve {host}: {exc}") from exc
    addresses = list(dict.fromkeys(ipaddress.ip_address(info[4][0].split("%")[0]) for info in infos))
    for address in addresses:
        reason = None if allowed.admits(host, address) else address_blocker(address)
        if reason is not None:
            # Refusing the host when any of its addresses is refused: the client may pick any of them.
            raise OutboundRefused(
                f"{host} resolves to {address}, {reason}; the site allows it with PORTAL_WEBHOOK_ALLOWED_HOSTS"
            )
    if not addresses:
        raise OutboundRefused(f"{host} resolves to no address")
    return addresses


class _PinnedHTTPConnection(http.client.HTTPConnection):
    """HTTP to one checked address, whatever the host name resolves to by the time it connects."""

    def __init__(self, host: str, port: int, address: IPAddress, timeout: float):
        super().__init__(host, port, timeout=timeout)
        self.address = address

    def connect(self) -> None:
        self.sock = socket.create_connection((str(self.address), self.port), self.timeout)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    """HTTPS to one checked address; the certificate is still checked against the host name."""

    def __init__(self, host: str, port: int, address: IPAddress, timeout: float):
        super().__init__(host, port, timeout=timeout, context=ssl.create_default_context())
        self.address = address

    def connect(self) -> None:
        sock = socket.create_connection((str(self.address), self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)


@dataclass
class Response:
    """What the receiver answered: status, headers, at most MAX_RESPONSE_BYTES of the body, and how long it took."""

    status: int
    headers: dict[str, str]
    body: bytes
    duration: float
    url: str
    redirects: list[str] = field(default_factory=list)


def post(url: str, body: bytes, headers: dict[str, str], *, timeout: float = TIMEOUT_SECONDS) -> Response:
    """POST body to url under the rules above; OutboundRefused when it may not be sent, OSError when it fails."""
    allowed = Allowed.from_settings()
    started = time.monotonic()
    redirects: list[str] = []
    method = "POST"
    while True:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise OutboundRefused(f"not an http(s) URL: {url[:200]}")
        if parts.username or parts.password:
            raise OutboundRefused("credentials in the URL are not sent; use the secret")
        port = parts.port or (443 if parts.scheme == "https" else 80)
        address = checked_addresses(parts.hostname, port, allowed)[0]
        connection_class = _PinnedHTTPSConnection if parts.scheme == "https" else _PinnedHTTPConnection
        remaining = max(timeout - (time.monotonic() - started), 0.1)
        connection = connection_class(parts.hostname, port, address, remaining)
        try:
            target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
            connection.request(method, target, body=body if method == "POST" else None, headers=headers)
            answer = connection.getresponse()
            content = answer.read(MAX_RESPONSE_BYTES)
            status, answer_headers = answer.status, dict(answer.getheaders())
        finally:
            connection.close()
        location = answer_headers.get("Location") or answer_headers.get("location")
        if status not in REDIRECTS or not location:
            return Response(status, answer_headers, content, time.monotonic() - started, url, redirects)
        target_url = urljoin(url, location)
        moved = urlsplit(target_url)
        if (moved.hostname or "").lower() != parts.hostname.lower():
            raise OutboundRefused(f"the receiver redirected to another host ({moved.hostname}); not followed")
        if len(redirects) >= MAX_REDIRECTS:
            raise OutboundRefused(f"more than {MAX_REDIRECTS} redirects; not followed")
        redirects.append(target_url)
        # As browsers do: 303 (and 301/302 in practice) turn the POST into a GET without a body.
        if status in (301, 302, 303):
            method = "GET"
        url = target_url
