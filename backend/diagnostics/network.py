"""The network checks: certificates, proxy, OpenRouter's reachability and latency, and the key's validity.

The HTTP client is built the way the app builds its OpenRouter client (``backend/composition.py``): the same
:func:`effective_network` settings, :func:`build_ssl_context` for trust and :func:`resolve_proxy` for the
proxy, so the doctor reaches OpenRouter exactly as the app would. The key is sent once, to ``GET /key``,
in the ``Authorization`` header.
"""

from __future__ import annotations

import time
from typing import Any

import httpx

from backend import __version__
from backend.diagnostics.report import FAIL, OK, WARN, Check, Context
from backend.net.netconfig import (
    NetworkConfigError,
    build_ssl_context,
    describe_network,
    redact_url,
    resolve_proxy,
)


def check_trust(ctx: Context) -> Check:
    network = ctx.network_settings()
    info = describe_network(network.base_url, ca_bundle=list(network.ca_bundles), env=ctx.env)
    extra = info["extra_ca"]
    details = {
        "trust_store": info["trust_store"],
        "truststore_version": info["truststore_version"],
        "extra_ca": extra,
        "tls_verification": True,
    }
    for bundle in extra:
        if not bundle["readable"] or bundle["certificates"] == 0:
            return Check(
                "",
                "",
                FAIL,
                f"extra CA bundle {bundle['path']} has no readable certificates",
                "Deploy the PEM file named by 'ca_bundle' (policy) or ATELIER_CA_BUNDLE.",
                details,
            )
    summary = info["trust_store"]
    if extra:
        summary += " + " + ", ".join(f"{b['path']} ({b['certificates']} certificate(s))" for b in extra)
    return Check("", "", OK, summary, details=details)


def check_proxy(ctx: Context) -> Check:
    network = ctx.network_settings()
    try:
        info = describe_network(network.base_url, policy_proxy=network.proxy, env=ctx.env)
    except NetworkConfigError as exc:
        return Check("", "", FAIL, str(exc), "Fix the 'proxy' policy value or ATELIER_PROXY.")
    details = {
        key: info[key] for key in ("proxy", "proxy_source", "no_proxy", "ignored_proxy_settings", "direct_reason")
    }
    if info["proxy"]:
        summary = f"{info['proxy']} (from {info['proxy_source']})"
    else:
        summary = f"direct connection ({info['direct_reason']})"
    if info["ignored_proxy_settings"]:
        return Check(
            "",
            "",
            WARN,
            summary + "; ignored: " + ", ".join(info["ignored_proxy_settings"]),
            "Only http:// and https:// proxies are supported; set HTTPS_PROXY or the policy 'proxy' to an HTTP proxy.",
            details,
        )
    return Check("", "", OK, summary, details=details)


def _client(ctx: Context) -> httpx.Client:
    network = ctx.network_settings()
    # The same trust and proxy decisions as the app's OpenRouter client; httpx must not add its own
    # reading of the proxy variables (trust_env), which knows neither the policy nor CIDR ranges in NO_PROXY.
    return httpx.Client(
        timeout=httpx.Timeout(ctx.timeout),
        follow_redirects=False,
        headers={"User-Agent": f"Atelier-doctor/{__version__}"},
        verify=build_ssl_context(network.ca_bundles),
        proxy=resolve_proxy(network.base_url, policy_proxy=network.proxy, env=ctx.env),
        trust_env=False,
    )


def check_openrouter(ctx: Context) -> Check:
    network = ctx.network_settings()
    url = network.base_url + "/models"
    details: dict[str, Any] = {"url": redact_url(url)}
    try:
        with _client(ctx) as client:
            started = time.perf_counter()
            response = client.get(url)
            latency_ms = round((time.perf_counter() - started) * 1000)
    except NetworkConfigError as exc:
        return Check("", "", FAIL, str(exc), "Fix the proxy or CA settings first.", details)
    except httpx.HTTPError as exc:
        message, hint = _explain_network_error(exc)
        details["error"] = f"{type(exc).__name__}: {exc}"
        return Check("", "", FAIL, f"{network.base_url} unreachable: {message}", hint, details)
    details.update(status=response.status_code, latency_ms=latency_ms)
    if response.is_redirect:
        return Check(
            "",
            "",
            FAIL,
            f"{network.base_url} answered with a redirect ({response.status_code})",
            "A captive portal or proxy is intercepting requests; sign in to the network or check the base URL.",
            details,
        )
    if response.status_code != 200:
        return Check(
            "",
            "",
            FAIL,
            f"{network.base_url} answered HTTP {response.status_code} in {latency_ms} ms",
            "Check 'openrouter_base_url' (policy) or ATELIER_OPENROUTER_BASE_URL.",
            details,
        )
    try:
        models = response.json().get("data")
        details["models"] = len(models) if isinstance(models, list) else None
    except (ValueError, AttributeError):
        return Check(
            "",
            "",
            FAIL,
            f"{network.base_url} did not answer with the OpenRouter API",
            "The base URL points at something else (a web page or a proxy's error page).",
            details,
        )
    ctx.reachable = True
    return Check(
        "",
        "",
        OK,
        f"{network.base_url} reachable, {latency_ms} ms ({details['models']} models)",
        details=details,
    )


def check_key(ctx: Context) -> Check:
    network = ctx.network_settings()
    if not ctx.key:
        return Check("", "", WARN, "not checked: no key configured", "Add a key in Settings.")
    if not ctx.reachable:
        return Check("", "", WARN, "not checked: OpenRouter is unreachable", "Fix the connection above first.")
    try:
        with _client(ctx) as client:
            response = client.get(network.base_url + "/key", headers={"Authorization": f"Bearer {ctx.key}"})
    except httpx.HTTPError as exc:
        message, hint = _explain_network_error(exc)
        return Check("", "", FAIL, f"could not check the key: {message}", hint)
    details: dict[str, Any] = {"status": response.status_code}
    if response.status_code == 200:
        try:
            data = response.json().get("data") or {}
        except (ValueError, AttributeError):
            data = {}
        remaining = data.get("limit_remaining")
        details.update(
            limit=data.get("limit"),
            limit_remaining=remaining,
            usage=data.get("usage"),
            is_free_tier=data.get("is_free_tier"),
        )
        credit = "no spending limit" if remaining is None else f"${remaining:,.2f} left of its limit"
        if isinstance(remaining, int | float) and remaining <= 0:
            return Check(
                "",
                "",
                WARN,
                f"valid, but {credit}",
                "Raise the key's limit or add credits at openrouter.ai/settings/credits.",
                details,
            )
        return Check("", "", OK, f"valid ({credit})", details=details)
    if response.status_code == 401:
        return Check(
            "",
            "",
            FAIL,
            "rejected by OpenRouter (revoked, expired or mistyped)",
            "Create a new key at openrouter.ai/keys and enter it in Settings.",
            details,
        )
    if response.status_code == 402:
        return Check(
            "",
            "",
            WARN,
            "valid, but out of credits",
            "Add credits at openrouter.ai/settings/credits.",
            details,
        )
    return Check(
        "",
        "",
        FAIL,
        f"could not be checked: HTTP {response.status_code}",
        "Try again later; if it persists, check the base URL.",
        details,
    )


def _explain_network_error(exc: httpx.HTTPError) -> tuple[str, str]:
    text = str(exc)
    if "CERTIFICATE_VERIFY_FAILED" in text or "certificate verify failed" in text.lower():
        return (
            "the server's certificate is not trusted",
            "Behind a TLS-inspecting proxy, install its root CA in the OS certificate store or name it "
            "in the policy 'ca_bundle'.",
        )
    if isinstance(exc, httpx.ProxyError):
        return (
            f"the proxy refused or failed ({text or type(exc).__name__})",
            "Check the proxy address and whether it needs authentication.",
        )
    if isinstance(exc, httpx.TimeoutException):
        return ("timed out", "Check the network, firewall and proxy settings (HTTPS_PROXY, policy 'proxy').")
    if isinstance(exc, httpx.ConnectError):
        return (
            f"cannot connect ({text or 'connection failed'})",
            "Check the network connection, DNS, firewall and proxy settings.",
        )
    return (f"{type(exc).__name__}: {text}", "Check the network connection and proxy settings.")
