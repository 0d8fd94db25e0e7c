"""The checks of this machine: version, operating system, data directory, database file, the running
instance when asked from inside the app, machine policy and where the API key is stored.

None of them opens the DuckDB file (a running app holds its lock): the database check reads the header only.
"""

from __future__ import annotations

import os
import platform
import shutil
import sys
from pathlib import Path
from typing import Any

from backend import __version__
from backend.core.policy import (
    POLICY_ENV_VAR,
    Policy,
    PolicyError,
    default_policy_path,
    load_policy,
    read_policy_key,
)
from backend.core.sizes import format_size
from backend.diagnostics.report import FAIL, OK, WARN, Check, Context
from backend.net.netconfig import effective_network

_MIB = 1024 * 1024
_FREE_FAIL_BYTES = 100 * _MIB
_FREE_WARN_BYTES = 1024 * _MIB


def check_version(ctx: Context) -> Check:
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


def check_os(ctx: Context) -> Check:
    details = {"platform": platform.platform(), "machine": platform.machine(), "system": platform.system()}
    return Check("", "", OK, f"{platform.system()} {platform.release()} ({platform.machine()})", details=details)


def check_data_dir(ctx: Context) -> Check:
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


def check_database(ctx: Context) -> Check:
    from backend.db.library_file import library_storage_version, read_header

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


def check_instance(ctx: Context) -> Check:
    """Inside the app this process is the running instance, whatever ``runtime.json`` says.

    Outside it (the CLI) the desktop shell, which owns ``runtime.json``, supplies the check; without one the
    check says it was not made.
    """
    shell_check = ctx.shell_checks.get("instance")
    if shell_check is not None and not ctx.in_process:
        return shell_check()
    if ctx.in_process:
        details = {"running": True, "pid": os.getpid(), "version": __version__, "in_process": True}
        return Check("", "", OK, f"this app (pid {os.getpid()}, version {__version__})", details=details)
    return Check("", "", WARN, "not checked", "Run `atelier doctor` to see whether Atelier is running.")


def check_policy(ctx: Context) -> Check:
    configured = getattr(ctx.settings, "policy_file", None)
    if not ctx.policy_from_file:
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


def _check_policy_in_force(ctx: Context, configured: Path | str | None) -> Check:
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


def _describe_policy(ctx: Context, policy: Policy, configured: Path | str | None) -> Check:
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


def check_key_storage(ctx: Context) -> Check:
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
