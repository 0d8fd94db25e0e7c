"""Corporate networks: which certificates to trust and which proxy to use for outbound HTTPS.

- Trust: the operating system's certificate store through ``truststore`` (so a TLS-inspecting proxy whose
  root IT installed in the OS store just works), plus the policy's ``ca_bundle``. There is deliberately no
  way to switch verification off.
- Proxy: the policy ``proxy`` wins over ``HTTPS_PROXY``/``ALL_PROXY``; ``NO_PROXY`` is honoured (host names,
  ``.suffix``, ``host:port``, IP addresses, CIDR ranges, ``*``); loopback targets are always direct, so the
  app's own servers and local test fakes are never sent through a proxy.

httpx reads proxy variables by itself when ``trust_env`` is on, with different rules (no CIDR, no policy);
clients must pass ``trust_env=False`` and the result of :func:`resolve_proxy` instead — :func:`httpx_options`
does exactly that.
"""

from __future__ import annotations

import ipaddress
import os
import re
import ssl
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import truststore

from backend.core.settings import DEFAULT_BASE_URL
from backend.net.hosts import is_loopback_host

__all__ = [
    "CABundles",
    "NetworkSettings",
    "effective_network",
    "NetworkConfigError",
    "build_ssl_context",
    "describe_network",
    "httpx_options",
    "redact_url",
    "resolve_proxy",
]

_PEM_CERT = re.compile(rb"-----BEGIN CERTIFICATE-----")
#: One CA bundle path, several (policy + user), or None.
CABundles = Path | str | Iterable[Path | str | None] | None


class NetworkConfigError(ValueError):
    """A proxy or CA setting cannot be used; the message says which and why (never with credentials)."""




@dataclass(frozen=True)
class NetworkSettings:
    """Where OpenRouter is and how to reach it, after machine policy and user settings are combined."""

    base_url: str
    proxy: str | None  # an explicit proxy (policy or ATELIER_PROXY); env proxies are applied by resolve_proxy
    ca_bundles: tuple[Path, ...]


def effective_network(settings: Any, policy: Any | None) -> NetworkSettings:
    """Combine ``Settings`` (``openrouter_base_url``, ``proxy``, ``ca_bundle``) with the machine policy.

    A locked policy value wins; otherwise a value the user set (``ATELIER_*``) wins over the policy default,
    which wins over the built-in default. Extra CA bundles add up: the policy's and the user's are both
    trusted.
    """

    def pick(name: str, user_value: Any) -> Any:
        entry = policy.get(name) if policy is not None else None
        if entry is not None and entry.locked:
            return entry.value
        if user_value is not None:
            return user_value
        return entry.value if entry is not None else None

    user_base = getattr(settings, "openrouter_base_url", None)
    base_url = pick("openrouter_base_url", user_base if user_base not in (None, DEFAULT_BASE_URL) else None)
    proxy = pick("proxy", getattr(settings, "proxy", None) or None)
    bundles: list[Path] = []
    entry = policy.get("ca_bundle") if policy is not None else None
    if entry is not None:
        bundles.append(Path(entry.value))
    user_bundle = getattr(settings, "ca_bundle", None)
    if user_bundle:
        bundles.append(Path(user_bundle))
    return NetworkSettings(
        base_url=(base_url or DEFAULT_BASE_URL).rstrip("/"),
        proxy=proxy,
        ca_bundles=tuple(dict.fromkeys(bundles)),
    )


def build_ssl_context(ca_bundle: CABundles = None) -> ssl.SSLContext:
    """A client TLS context that verifies against the OS trust store, plus ``ca_bundle`` when given.

    ``ca_bundle`` is one PEM file or several (the policy's and the user's). Hostname checking and
    certificate verification are always on; TLS 1.2 is the floor.
    """
    context = truststore.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    for bundle in _bundles(ca_bundle):
        try:
            context.load_verify_locations(cafile=os.fspath(bundle))
        except (OSError, ssl.SSLError) as exc:
            raise NetworkConfigError(
                f"Extra CA bundle {bundle} cannot be loaded ({type(exc).__name__}); "
                "it must be a PEM file of CA certificates."
            ) from None
    return context


def _bundles(ca_bundle: CABundles) -> list[Path]:
    if ca_bundle is None:
        return []
    if isinstance(ca_bundle, str | os.PathLike):
        return [Path(ca_bundle)]
    return [Path(item) for item in ca_bundle if item is not None]


def resolve_proxy(url: str, *, policy_proxy: str | None, env: Mapping[str, str]) -> str | None:
    """The proxy URL to use for a request to ``url``, or None to connect directly."""
    return _resolve(url, policy_proxy=policy_proxy, env=env)[0]


def httpx_options(
    url: str,
    *,
    policy_proxy: str | None = None,
    ca_bundle: CABundles = None,
    env: Mapping[str, str] = os.environ,
) -> dict[str, Any]:
    """Keyword arguments for ``httpx.Client``/``AsyncClient`` talking to ``url`` under these rules."""
    return {
        "verify": build_ssl_context(ca_bundle),
        "proxy": resolve_proxy(url, policy_proxy=policy_proxy, env=env),
        "trust_env": False,
    }


def redact_url(url: str) -> str:
    """``url`` with any ``user:password@`` replaced by ``***@`` (for logs and diagnostics)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable URL>"
    if "@" not in parts.netloc:
        return url
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit((parts.scheme, f"***@{host}", parts.path, parts.query, parts.fragment))


def describe_network(
    base_url: str,
    *,
    policy_proxy: str | None = None,
    ca_bundle: CABundles = None,
    env: Mapping[str, str] = os.environ,
) -> dict[str, Any]:
    """What the app will do to reach ``base_url``: trust store, extra CA, proxy (credentials redacted)."""
    proxy, source = _resolve(base_url, policy_proxy=policy_proxy, env=env)
    extra = []
    for path in _bundles(ca_bundle):
        try:
            count = len(_PEM_CERT.findall(path.read_bytes()))
            extra.append({"path": str(path), "certificates": count, "readable": True})
        except OSError as exc:
            reason = exc.strerror or str(exc)
            extra.append({"path": str(path), "certificates": 0, "readable": False, "error": reason})
    ignored = [
        f"{name}={redact_url(value)}"
        for name, value in _env_proxy_candidates(env, urlsplit(base_url).scheme)
        if value and _normalise_proxy(value) is None
    ]
    no_proxy = _env_first(env, "no_proxy", "NO_PROXY")
    return {
        "target": base_url,
        "trust_store": _trust_store_name(),
        "truststore_version": truststore.__version__,
        "tls_verification": True,
        "extra_ca": extra,
        "proxy": redact_url(proxy) if proxy else None,
        "proxy_source": source,
        "no_proxy": no_proxy or None,
        "ignored_proxy_settings": ignored,
        "direct_reason": _direct_reason(base_url, proxy, env),
    }


# --- internals ---------------------------------------------------------------------------------------


def _trust_store_name() -> str:
    if sys.platform == "win32":
        return "Windows certificate store (truststore)"
    if sys.platform == "darwin":
        return "macOS Keychain (truststore)"
    paths = ssl.get_default_verify_paths()
    location = paths.cafile or paths.capath or "OpenSSL default paths"
    return f"system CA certificates at {location} (truststore)"


def _env_first(env: Mapping[str, str], *names: str) -> str:
    for name in names:
        value = env.get(name, "").strip()
        if value:
            return value
    return ""


def _env_proxy_candidates(env: Mapping[str, str], scheme: str) -> list[tuple[str, str]]:
    names = ["https_proxy", "HTTPS_PROXY"] if scheme == "https" else ["http_proxy", "HTTP_PROXY"]
    names += ["all_proxy", "ALL_PROXY"]
    return [(name, env.get(name, "").strip()) for name in names]


def _normalise_proxy(value: str) -> str | None:
    """A usable http(s) proxy URL, or None for schemes httpx cannot use without extras (socks)."""
    if "://" not in value:
        value = "http://" + value  # "proxy.corp:3128" is common in the wild; curl assumes http.
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return None
    return value.rstrip("/")


def _resolve(url: str, *, policy_proxy: str | None, env: Mapping[str, str]) -> tuple[str | None, str | None]:
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise NetworkConfigError("Cannot decide on a proxy for an invalid URL.") from None
    if not host or is_loopback_host(host):
        return None, None
    if _bypassed(host, port, _env_first(env, "no_proxy", "NO_PROXY")):
        return None, None
    if policy_proxy:
        proxy = _normalise_proxy(policy_proxy)
        if proxy is None:
            raise NetworkConfigError(f"Policy proxy {redact_url(policy_proxy)} is not an http(s) URL.")
        return proxy, "policy"
    for name, value in _env_proxy_candidates(env, parts.scheme):
        proxy = _normalise_proxy(value) if value else None
        if proxy:
            return proxy, name
    return None, None


def _bypassed(host: str, port: int, no_proxy: str) -> bool:
    """curl-style NO_PROXY matching, plus CIDR ranges (as Python's urllib and Go do)."""
    if not no_proxy:
        return False
    host = host.strip("[]").rstrip(".").lower()
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        address = None
    for raw in re.split(r"[,\s]+", no_proxy.lower()):
        entry = raw.strip()
        if not entry:
            continue
        if entry == "*":
            return True
        entry_port: int | None = None
        # "host:port" and "[v6]:port" restrict the bypass to one port; a bare IPv6 address has colons too.
        match = re.fullmatch(r"\[([^\]]+)\](?::(\d+))?|([^:]+):(\d+)", entry)
        if match:
            entry = match.group(1) or match.group(3)
            digits = match.group(2) or match.group(4)
            entry_port = int(digits) if digits else None
        if entry_port is not None and entry_port != port:
            continue
        if "/" in entry:
            try:
                network = ipaddress.ip_network(entry, strict=False)
            except ValueError:
                continue
            if address is not None and address.version == network.version and address in network:
                return True
            continue
        try:
            entry_address = ipaddress.ip_address(entry)
        except ValueError:
            entry_address = None
        if entry_address is not None:
            if address == entry_address:
                return True
            continue
        suffix = entry.removeprefix("*").lstrip(".").rstrip(".")
        if suffix and (host == suffix or host.endswith("." + suffix)):
            return True
    return False


def _direct_reason(url: str, proxy: str | None, env: Mapping[str, str]) -> str | None:
    if proxy:
        return None
    parts = urlsplit(url)
    host = parts.hostname or ""
    if is_loopback_host(host):
        return "loopback target"
    default_port = 443 if parts.scheme == "https" else 80
    if _bypassed(host, parts.port or default_port, _env_first(env, "no_proxy", "NO_PROXY")):
        return "matched NO_PROXY"
    return "no proxy configured"
