"""SSRF guard (OWASP API7): which URLs the reader may fetch, and where it may connect.

A client's website comes from user data, so before every request — the first one and every
redirect hop — the reader checks the URL here:

- only `http` and `https`, a host name, no user:password part;
- every address the host resolves to must be public (`ipaddress.is_global`): loopback, private
  (10/8, 172.16/12, 192.168/16, fc00::/7), link-local (169.254.0.0/16, where cloud metadata lives),
  CGNAT, multicast, reserved and unspecified addresses are refused, and so are IPv6 addresses that
  carry a non-public IPv4 address (IPv4-mapped ::ffff:0:0/96, 6to4 2002::/16, NAT64 64:ff9b::/96,
  IPv4-compatible ::/96);
- a host name that does not resolve is not an SSRF refusal: a temporary DNS failure raises
  `ResolutionFailed` (a Transient: retried with backoff like a network error, and then handed to
  the fallback reader), "no such name" a FetchFailed;
- the request then goes to the address that was checked (the connection is pinned to it, with the
  original Host header and TLS server name), so a DNS answer that changes between the check and
  the connection (DNS rebinding) cannot redirect it.

`allow_private=True` (PROPOSALFLOW_ALLOW_PRIVATE_URLS) turns the address check off — for tests
against local servers and intranets. `trusted_hosts` (PROPOSALFLOW_READER_TRUSTED_HOSTS) is the
narrower switch: those host[:port] entries may be private; everything else is still checked.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass, field
from typing import Callable
from urllib.parse import urlsplit, urlunsplit

from ..errors import FetchFailed, UnsafeURL
from .retrying import Transient

Resolver = Callable[[str, int], list[str]]


def system_resolver(host: str, port: int) -> list[str]:
    """The host's addresses. Raises socket.gaierror / UnicodeError when it does not resolve."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(info[4][0] for info in infos))


# getaddrinfo errors that say "try again" (a DNS server down or slow), not "no such name"
TEMPORARY_DNS_ERRORS = {getattr(socket, name) for name in ("EAI_AGAIN", "EAI_SYSTEM", "EAI_MEMORY")
                        if hasattr(socket, name)}
NAT64 = ipaddress.ip_network("64:ff9b::/96")
IPV4_COMPATIBLE = ipaddress.ip_network("::/96")


class ResolutionFailed(Transient):
    """The host name did not resolve just now (DNS trouble): worth another attempt. Not an SSRF refusal."""


def embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries and routes to: IPv4-mapped (::ffff:a.b.c.d),
    6to4 (2002:AABB:CCDD::/48), NAT64 (64:ff9b::a.b.c.d) or the deprecated IPv4-compatible form
    (::a.b.c.d)."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip in NAT64 or (ip in IPV4_COMPATIBLE and int(ip) > 1):  # :: and ::1 are themselves non-public
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def is_public_address(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address):
        inner = embedded_ipv4(ip)
        if inner is not None and not (inner.is_global and not inner.is_multicast):
            return False  # e.g. 2002:7f00:1:: or 64:ff9b::a9fe:a9fe reach 127.0.0.1 / 169.254.169.254
    return ip.is_global and not ip.is_multicast


@dataclass(frozen=True)
class Target:
    """A checked URL: where to send the request (`connect_url`) and with which Host / TLS name."""

    url: str
    host: str
    port: int
    connect_url: str
    host_header: str | None = None  # set when the connection is pinned to an address
    sni_hostname: str | None = None

    @property
    def site(self) -> str:
        """The rate-limit key: host and port."""
        return f"{self.host}:{self.port}"


@dataclass
class UrlGuard:
    allow_private: bool = False
    trusted_hosts: frozenset[str] = field(default_factory=frozenset)
    resolver: Resolver = system_resolver

    @classmethod
    def from_settings(cls, settings) -> "UrlGuard":
        trusted = frozenset(h.strip().lower() for h in settings.reader_trusted_hosts.split(",") if h.strip())
        return cls(allow_private=settings.allow_private_urls, trusted_hosts=trusted)

    def check(self, url: str) -> Target:
        """The Target for `url`, or UnsafeURL naming the URL and the reason."""
        try:
            parts = urlsplit(url.strip())
            port = parts.port
        except ValueError as exc:
            raise UnsafeURL(f"{url}: not a valid URL ({exc})") from exc
        scheme = parts.scheme.lower()
        if scheme not in ("http", "https"):
            raise UnsafeURL(f"{url}: only http and https URLs are read, not {scheme or 'a relative URL'}")
        if parts.username or parts.password:
            raise UnsafeURL(f"{url}: URLs with a user name or password are refused")
        host = (parts.hostname or "").rstrip(".").lower()
        if not host:
            raise UnsafeURL(f"{url}: the URL has no host")
        if not host.isascii():
            try:
                host = host.encode("idna").decode("ascii")
            except UnicodeError as exc:
                raise UnsafeURL(f"{url}: the host name is not a valid international domain name") from exc
        port = port or (443 if scheme == "https" else 80)
        clean = urlunsplit((scheme, parts.netloc.lower(), parts.path or "/", parts.query, ""))
        if self.allow_private or host in self.trusted_hosts or f"{host}:{port}" in self.trusted_hosts:
            return Target(url=clean, host=host, port=port, connect_url=clean)
        addresses = self._addresses(host, port, url)
        refused = [a for a in addresses if not is_public_address(a)]
        if refused or not addresses:
            raise UnsafeURL(
                f"{url}: {host} resolves to a non-public address ({', '.join(refused) or 'none'}); "
                "set PROPOSALFLOW_ALLOW_PRIVATE_URLS=true (or PROPOSALFLOW_READER_TRUSTED_HOSTS) to read it"
            )
        address = addresses[0]
        literal = f"[{address}]" if ":" in address else address
        connect = urlunsplit((scheme, f"{literal}:{port}", parts.path or "/", parts.query, ""))
        default_port = (scheme == "https" and port == 443) or (scheme == "http" and port == 80)
        return Target(url=clean, host=host, port=port, connect_url=connect,
                      host_header=host if default_port else f"{host}:{port}",
                      sni_hostname=host if scheme == "https" else None)

    def _addresses(self, host: str, port: int, url: str) -> list[str]:
        try:
            ipaddress.ip_address(host.strip("[]"))
            return [host.strip("[]")]
        except ValueError:
            pass
        try:
            return self.resolver(host, port)
        except socket.gaierror as exc:
            if exc.errno in TEMPORARY_DNS_ERRORS:
                raise ResolutionFailed(f"{url}: {host} could not be resolved just now ({exc})") from exc
            raise FetchFailed(f"{url}: {host} does not resolve ({exc})", url=url) from exc
        except UnicodeError as exc:
            raise UnsafeURL(f"{url}: {host} is not a valid host name ({exc})") from exc
