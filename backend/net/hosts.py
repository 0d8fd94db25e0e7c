"""Loopback checks, written once: the Host allow-list both local servers use (DNS rebinding), the loopback test
for URLs (proxies, http:// base URLs, OAuth callbacks), and token comparison."""

from __future__ import annotations

import hmac
import ipaddress

_LOOPBACK_NAMES = {"localhost"}


def split_host(host_header: str) -> tuple[str, int | None] | None:
    """Split a Host header into (host, port); IPv6 literals keep no brackets. None when malformed."""
    value = host_header.strip()
    if not value:
        return None
    if value.startswith("["):
        end = value.find("]")
        if end == -1:
            return None
        host, rest = value[1:end], value[end + 1 :]
        if rest and not rest.startswith(":"):
            return None
        port_text = rest[1:] if rest else ""
    else:
        if value.count(":") > 1:  # a bare IPv6 literal is not a valid Host header
            return None
        host, _, port_text = value.partition(":")
    port: int | None = None
    if port_text:
        if not port_text.isdigit():
            return None
        port = int(port_text)
    return host.lower(), port


def is_allowed_host(host_header: str | None, port: int) -> bool:
    """True only for ``127.0.0.1:<port>``, ``localhost:<port>`` or ``[::1]:<port>``.

    The port must match ours exactly: a page served on another local port, or a DNS name rebound to
    127.0.0.1, never gets through.
    """
    if not host_header:
        return False
    parts = split_host(host_header)
    if parts is None:
        return False
    host, host_port = parts
    if host_port != port:
        return False
    if host in _LOOPBACK_NAMES:
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return address in (ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("::1"))


def is_loopback_host(host: str) -> bool:
    """True for ``localhost``, ``*.localhost``, 127.0.0.0/8 and ::1 (also IPv4-mapped)."""
    host = host.strip("[]").rstrip(".").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback


def tokens_equal(supplied: str | None, expected: str) -> bool:
    """Constant-time comparison of a supplied secret with the expected one."""
    if not supplied:
        return False
    return hmac.compare_digest(supplied.encode("utf-8", "surrogatepass"), expected.encode("utf-8"))
