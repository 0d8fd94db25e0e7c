"""Diagnostics (``atelier doctor`` and ``GET /api/v1/diagnostics``): the installation, storage, network,
policy and key, for users and IT scripts.

Every check prints one ``OK``/``WARN``/``FAIL`` line with a fix hint. The exit status is 1 when any check
fails, 0 otherwise, so deployment tooling can run ``atelier doctor --json`` and act on it.

The checks are data: :func:`diagnose` returns a :class:`Report` that the CLI prints (:func:`run_doctor`) and
the running app serves as ``GET /api/v1/diagnostics`` (``backend/api/diagnostics.py``, with
``in_process=True`` and the policy the app started with).

It runs safely next to (or inside) a running app: it never opens the DuckDB file (the app holds its lock),
it only reads the file header. The API key is used for one ``GET /key`` request and never printed: the
output only ever shows the last four characters, and every string is scrubbed of the key before it leaves.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TextIO

import httpx

from backend import __version__
from backend.core.policy import (
    POLICY_ENV_VAR,
    Policy,
    PolicyError,
    default_policy_path,
    load_policy,
    read_policy_key,
)
from backend.core.redaction import redact
from backend.core.sizes import format_size
from backend.net.netconfig import (
    NetworkConfigError,
    NetworkSettings,
    describe_network,
    effective_network,
    httpx_options,
    redact_url,
)

__all__ = ["FAIL", "OK", "WARN", "Check", "Report", "collect_checks", "diagnose", "run_doctor"]

OK, WARN, FAIL = "OK", "WARN", "FAIL"
_MIB = 1024 * 1024
_FREE_FAIL_BYTES = 100 * _MIB
_FREE_WARN_BYTES = 1024 * _MIB


@dataclass
class Check:
    """One line of the report."""

    id: str
    title: str
    status: str
    message: str
    hint: str | None = None
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class Report:
    """Every check, in order, already scrubbed of secrets."""

    checks: list[Check]

    @property
    def exit_code(self) -> int:
        """1 when any check failed, else 0 (the CLI's exit status)."""
        return 1 if any(check.status == FAIL for check in self.checks) else 0

    @property
    def ok(self) -> bool:
        """True when nothing failed (warnings allowed)."""
        return self.exit_code == 0

    def to_dict(self) -> dict[str, Any]:
        """The ``atelier doctor --json`` document."""
        return {
            "atelier_version": __version__,
            "ok": self.ok,
            "exit_code": self.exit_code,
            "checks": [asdict(check) for check in self.checks],
        }

    def format_text(self) -> str:
        """The human-readable report the CLI prints."""
        return _format_text(self.checks, self.exit_code)


class _FromFile:
    """Marker: read the policy from its file (the CLI), as opposed to a policy already in force."""


FROM_FILE: Any = _FromFile()


@dataclass
class _Context:
    settings: Any
    env: Mapping[str, str]
    timeout: float
    in_force: Any = FROM_FILE
    in_process: bool = False
    policy: Policy | None = None
    policy_error: str | None = None
    network: NetworkSettings | None = None
    key: str | None = None
    reachable: bool = False
    secrets: list[str] = field(default_factory=list)


def diagnose(
    settings: Any,
    *,
    env: Mapping[str, str] | None = None,
    timeout: float = 5.0,
    policy: Any = FROM_FILE,
    in_process: bool = False,
    secrets: Iterable[str] = (),
) -> Report:
    """Run every check and return the report, scrubbed of the key and of any of ``secrets``.

    ``policy`` is the policy in force in a running app (a :class:`Policy` or None); by default the policy
    file is read, as the CLI does. ``in_process`` says the checks run inside the app that serves the
    API, so the running-instance check describes this process. Blocking (network, files): call it from a
    worker thread in async code.
    """
    context = _Context(
        settings=settings,
        env=os.environ if env is None else env,
        timeout=timeout,
        in_force=policy,
        in_process=in_process,
    )
    context.secrets.extend(secret for secret in secrets if secret)
    checks = collect_checks(context)
    return Report([Check(**redact(asdict(check), context.secrets)) for check in checks])


def run_doctor(
    settings: Any,
    *,
    out: TextIO | None = None,
    json_output: bool = False,
    env: Mapping[str, str] | None = None,
    timeout: float = 5.0,
) -> int:
    """Run every check, print the report (text or JSON) to ``out`` and return the exit status (0 or 1)."""
    out = sys.stdout if out is None else out
    report = diagnose(settings, env=env, timeout=timeout)
    text = report.format_text()
    if json_output:
        text = json.dumps(report.to_dict(), indent=2, ensure_ascii=False) + "\n"
    out.write(text)
    out.flush()
    return report.exit_code


def collect_checks(context: _Context) -> list[Check]:
    """Run the checks in order; a check that crashes is reported as a FAIL rather than hiding the others."""
    steps: list[tuple[str, str, Callable[[_Context], Check]]] = [
        ("version", "Version", _check_version),
        ("os", "Operating system", _check_os),
        ("data_dir", "Data directory", _check_data_dir),
        ("database", "Database", _check_database),
        ("instance", "Running instance", _check_instance),
        ("policy", "Machine policy", _check_policy),
        ("key_storage", "API key storage", _check_key_storage),
        ("trust_store", "Certificates", _check_trust),
        ("proxy", "Proxy", _check_proxy),
        ("openrouter", "OpenRouter", _check_openrouter),
        ("api_key", "API key", _check_key),
    ]
    checks = []
    for check_id, title, step in steps:
        try:
            check = step(context)
        except Exception as exc:  # noqa: BLE001 - one broken check must not hide the rest of the report
            check = Check(
                check_id,
                title,
                FAIL,
                f"the check itself failed: {type(exc).__name__}: {exc}",
                "Please report this with the output of `atelier doctor --json`.",
            )
        check.id, check.title = check_id, title
        checks.append(check)
    return checks


# --- checks -----------------------------------------------------------------------------------------------


def _check_version(ctx: _Context) -> Check:
    frozen = bool(getattr(sys, "frozen", False))
    build = "packaged build" if frozen else "source install"
    python = platform.python_version()
    return Check(
        "",
        "",
        OK,
        f"Atelier {__version__} ({build}, Python {python})",
        details={"version": __version__, "frozen": frozen, "python": python, "executable": sys.executable},
    )


def _check_os(ctx: _Context) -> Check:
    details = {"platform": platform.platform(), "machine": platform.machine(), "system": platform.system()}
    return Check("", "", OK, f"{platform.system()} {platform.release()} ({platform.machine()})", details=details)


def _check_data_dir(ctx: _Context) -> Check:
    data_dir = Path(ctx.settings.data_dir)
    details: dict[str, Any] = {"path": str(data_dir), "exists": data_dir.is_dir()}
    probe = data_dir
    while not probe.exists() and probe.parent != probe:
        probe = probe.parent  # free space of the disk it will be created on
    try:
        free = shutil.disk_usage(probe).free
    except OSError as exc:
        return Check(
            "",
            "",
            FAIL,
            f"{data_dir}: cannot read free space ({exc.strerror or exc})",
            "Check that the drive is mounted and accessible.",
            details,
        )
    details["free_bytes"] = free
    if not data_dir.exists():
        if not os.access(probe, os.W_OK):
            return Check(
                "",
                "",
                FAIL,
                f"{data_dir} does not exist and {probe} is not writable",
                "Set ATELIER_DATA_DIR to a folder this user can write to.",
                details,
            )
        return Check(
            "",
            "",
            OK,
            f"{data_dir} (not created yet; the first start creates it), {format_size(free)} free",
            details=details,
        )
    if not data_dir.is_dir():
        return Check(
            "",
            "",
            FAIL,
            f"{data_dir} is not a directory",
            "Move the file away or set ATELIER_DATA_DIR to another folder.",
            details,
        )
    if not os.access(data_dir, os.W_OK | os.X_OK):
        return Check(
            "",
            "",
            FAIL,
            f"{data_dir} is not writable by this user",
            "Fix the folder's permissions or set ATELIER_DATA_DIR to a writable folder.",
            details,
        )
    summary = f"{data_dir}, {format_size(free)} free"
    if free < _FREE_FAIL_BYTES:
        return Check("", "", FAIL, summary, "Free disk space: generations and media cannot be saved.", details)
    if free < _FREE_WARN_BYTES:
        return Check("", "", WARN, summary, "Disk space is low; images and videos need room.", details)
    return Check("", "", OK, summary, details=details)


def _check_database(ctx: _Context) -> Check:
    from backend.db.store import library_storage_version, read_header

    db_path = Path(ctx.settings.db_path)
    details: dict[str, Any] = {"path": str(db_path)}
    if not db_path.exists():
        return Check("", "", OK, f"{db_path} not created yet (the first start creates it)", details=details)
    try:
        size = db_path.stat().st_size
    except OSError as exc:
        return Check("", "", FAIL, f"{db_path}: {exc.strerror or exc}", "Check the file's permissions.", details)
    details["bytes"] = size
    wal = db_path.with_name(db_path.name + ".wal")
    details["wal_bytes"] = wal.stat().st_size if wal.exists() else None
    header = read_header(db_path)
    if header is None:
        return Check(
            "",
            "",
            FAIL,
            f"{db_path} ({format_size(size)}) is not a readable DuckDB database",
            "Atelier moves a damaged file aside at the next start; restore a copy from the "
            f"backups folder ({ctx.settings.backups_dir}) if you have one.",
            details,
        )
    own = library_storage_version()
    details.update(
        storage_version=header.storage_version, written_by=header.library_version, library_storage_version=own
    )
    summary = (
        f"{db_path.name}, {format_size(size)}, storage version {header.storage_version}"
        f" (written by DuckDB {header.library_version or 'unknown'})"
    )
    if header.storage_version > own:
        return Check(
            "",
            "",
            FAIL,
            summary + f"; this Atelier only reads storage version {own} and older",
            "The library was written by a newer Atelier: install that version again. The file is left untouched.",
            details,
        )
    if header.storage_version < own:
        return Check(
            "",
            "",
            WARN,
            summary + f"; it will be upgraded to storage version {own}",
            f"A backup copy is made in {ctx.settings.backups_dir} before the upgrade.",
            details,
        )
    return Check("", "", OK, summary, details=details)


def _check_instance(ctx: _Context) -> Check:
    from desktop.runtime_file import pid_alive, read_runtime

    runtime_path = Path(ctx.settings.runtime_path)
    if ctx.in_process:
        # Asked through the API: this process is the running app, whatever runtime.json says.
        details = {"running": True, "pid": os.getpid(), "version": __version__, "in_process": True}
        return Check("", "", OK, f"this app (pid {os.getpid()}, version {__version__})", details=details)
    info = read_runtime(runtime_path)
    if info is None:
        wal = Path(ctx.settings.db_path).with_name(Path(ctx.settings.db_path).name + ".wal")
        if wal.exists():
            return Check(
                "",
                "",
                WARN,
                "not running, but the last session did not close cleanly",
                "Nothing is lost: the next start replays the database journal.",
                {"running": False, "wal": str(wal)},
            )
        return Check("", "", OK, "not running", details={"running": False})
    pid = info.get("pid")
    # Only non-secret fields: runtime.json also holds the launch token.
    details = {
        "running": False,
        "pid": pid,
        "version": info.get("version"),
        "started_at": info.get("started_at"),
    }
    if isinstance(pid, int) and pid_alive(pid):
        details["running"] = True
        details["ui_url"] = info.get("ui_url")
        return Check(
            "",
            "",
            OK,
            f"running (pid {pid}, version {info.get('version')}, since {info.get('started_at')})",
            details=details,
        )
    return Check(
        "",
        "",
        WARN,
        f"stale {runtime_path.name} from pid {pid} (the app did not exit cleanly)",
        "Nothing to do: the next start replaces it.",
        details,
    )


def _check_policy(ctx: _Context) -> Check:
    configured = getattr(ctx.settings, "policy_file", None)
    if not isinstance(ctx.in_force, _FromFile):
        return _check_policy_in_force(ctx, configured)
    try:
        policy = load_policy(Path(configured) if configured else None, env=ctx.env)
    except PolicyError as exc:
        ctx.policy_error = str(exc)
        ctx.network = effective_network(ctx.settings, None)
        return Check(
            "",
            "",
            FAIL,
            str(exc),
            "Fix the file (see docs/it-deployment.md, policy reference); Atelier does not start "
            "while the policy is invalid.",
            {"error": str(exc)},
        )
    ctx.policy = policy
    ctx.network = effective_network(ctx.settings, policy)
    return _describe_policy(ctx, policy, configured)


def _check_policy_in_force(ctx: _Context, configured: Path | str | None) -> Check:
    """Inside the app: report the policy it started with, and whether the file has changed since."""
    policy = ctx.in_force if ctx.in_force is not None else Policy(path=None)
    ctx.policy = policy
    ctx.network = effective_network(ctx.settings, policy)
    check = _describe_policy(ctx, policy, configured)
    try:
        on_disk = load_policy(Path(configured) if configured else None, env=ctx.env)
    except PolicyError as exc:
        check.details["file_error"] = str(exc)
        return Check(
            "",
            "",
            WARN,
            f"{check.message}; the file has changed since start and is now invalid: {exc}",
            "Fix the file before the next start: Atelier refuses to start with an invalid policy.",
            check.details,
        )
    if on_disk.path != policy.path or dict(on_disk.values) != dict(policy.values):
        check.details["changed_on_disk"] = True
        return Check(
            "",
            "",
            WARN,
            f"{check.message}; the policy file has changed since Atelier started",
            "Restart Atelier to apply the new policy.",
            check.details,
        )
    return check


def _describe_policy(ctx: _Context, policy: Policy, configured: Path | str | None) -> Check:
    if policy.path is None:
        looked_at = (
            Path(configured)
            if configured
            else (Path(ctx.env[POLICY_ENV_VAR]) if ctx.env.get(POLICY_ENV_VAR) else default_policy_path())
        )
        details = {"path": None, "looked_at": str(looked_at), "locked": []}
        if configured or ctx.env.get(POLICY_ENV_VAR):
            return Check(
                "",
                "",
                WARN,
                f"{POLICY_ENV_VAR} names {looked_at}, which does not exist",
                "Deploy the policy file there, or unset the variable.",
                details,
            )
        return Check("", "", OK, f"none (no file at {looked_at})", details=details)
    locked = list(policy.locked_names)
    details = {"path": str(policy.path), "keys": sorted(policy.values), "locked": locked}
    summary = f"{policy.path}: {len(policy.values)} setting(s)"
    summary += f", locked: {', '.join(locked)}" if locked else ", none locked"
    return Check("", "", OK, summary, details=details)


def _check_key_storage(ctx: _Context) -> Check:
    from backend.keys.keystore import KeyStore

    policy = ctx.policy
    policy_key = None
    if policy is not None:
        try:
            policy_key = read_policy_key(policy)
        except PolicyError as exc:
            return Check("", "", FAIL, str(exc), "Provision the key file named by the policy, readable by the user.")
    if policy_key:
        ctx.secrets.append(policy_key)
    store = KeyStore(
        Path(ctx.settings.data_dir),
        backend=getattr(ctx.settings, "keyring_backend", "auto"),
        env=ctx.env,
        policy_key=policy_key,
    )
    backend_name = store.backend_name
    status = store.status()
    details = {
        "backend": backend_name,
        "configured": status.configured,
        "source": status.source,
        "hint": status.hint,
        "note": status.storage_note,
    }
    user_key_allowed = policy.user_key_allowed if policy is not None else True
    if status.configured:
        try:
            ctx.key = store.get()
        except Exception:  # noqa: BLE001 - status() just read it; a keychain locked since then is reported below
            ctx.key = None
        if ctx.key:
            ctx.secrets.append(ctx.key)
        summary = f"key from {status.source} ({status.hint}); storage: {backend_name}"
        if status.source in ("keyring", "file") and not user_key_allowed:
            return Check(
                "",
                "",
                FAIL,
                summary + ", but the policy forbids user-entered keys",
                "Remove the saved key in Settings; the key must come from the policy "
                "'api_key_file' or OPENROUTER_API_KEY.",
                details,
            )
        return Check("", "", OK, summary, details=details)
    if status.storage_note and backend_name != "file":
        return Check(
            "",
            "",
            FAIL,
            f"storage: {backend_name}; {status.storage_note}",
            "Unlock the OS keychain, or set ATELIER_KEYRING_BACKEND=file.",
            details,
        )
    if not user_key_allowed:
        return Check(
            "",
            "",
            FAIL,
            f"no key, and the policy does not let users enter one (storage: {backend_name})",
            "IT: provision the file named by 'api_key_file' or set OPENROUTER_API_KEY.",
            details,
        )
    return Check(
        "",
        "",
        WARN,
        f"no key yet (storage: {backend_name})",
        "Add your OpenRouter key in Settings, or set OPENROUTER_API_KEY.",
        details,
    )


def _check_trust(ctx: _Context) -> Check:
    network = ctx.network or effective_network(ctx.settings, None)
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


def _check_proxy(ctx: _Context) -> Check:
    network = ctx.network or effective_network(ctx.settings, None)
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


def _client(ctx: _Context) -> httpx.Client:
    network = ctx.network or effective_network(ctx.settings, None)
    options = httpx_options(
        network.base_url, policy_proxy=network.proxy, ca_bundle=list(network.ca_bundles), env=ctx.env
    )
    return httpx.Client(
        timeout=httpx.Timeout(ctx.timeout),
        follow_redirects=False,
        headers={"User-Agent": f"Atelier-doctor/{__version__}"},
        **options,
    )


def _check_openrouter(ctx: _Context) -> Check:
    network = ctx.network or effective_network(ctx.settings, None)
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


def _check_key(ctx: _Context) -> Check:
    network = ctx.network or effective_network(ctx.settings, None)
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


# --- helpers ---------------------------------------------------------------------------------------


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


def _format_text(checks: list[Check], exit_code: int) -> str:
    width = max(len(check.title) for check in checks)
    lines = [f"Atelier doctor ({__version__})", ""]
    for check in checks:
        lines.append(f"{check.status:<4}  {check.title:<{width}}  {check.message}")
        if check.hint and check.status != OK:
            lines.append(f"{'':<4}  {'':<{width}}  fix: {check.hint}")
    failures = sum(check.status == FAIL for check in checks)
    warnings = sum(check.status == WARN for check in checks)
    lines += ["", f"{failures} failure(s), {warnings} warning(s); exit status {exit_code}.", ""]
    return "\n".join(lines)
