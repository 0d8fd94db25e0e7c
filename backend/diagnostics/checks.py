"""Diagnostics (``atelier doctor`` and ``GET /api/v1/diagnostics``): the installation, storage, network,
policy and key, for users and IT scripts.

Every check prints one ``OK``/``WARN``/``FAIL`` line with a fix hint. The exit status is 1 when any check
fails, 0 otherwise, so deployment tooling can run ``atelier doctor --json`` and act on it.

The checks are data: :func:`diagnose` returns a :class:`Report` that the CLI prints (:func:`run_doctor`) and
the running app serves as ``GET /api/v1/diagnostics`` (``backend/api/diagnostics.py``, with
``in_process=True`` and the policy the app started with). They live in ``local.py`` (this machine) and
``network.py`` (certificates, proxy, OpenRouter, the key); ``report.py`` holds the report itself. What only
the desktop shell knows (``runtime.json``, the window toolkit) comes in as ``shell_checks``.

It runs safely next to (or inside) a running app: it never opens the DuckDB file (the app holds its lock),
it only reads the file header. The API key is used for one ``GET /key`` request and never printed: the
output only ever shows the last four characters, and every string is scrubbed of the key before it leaves.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict
from typing import Any, TextIO

from backend.core.redaction import redact
from backend.diagnostics import local, network
from backend.diagnostics.report import (
    FAIL,
    FROM_FILE,
    OK,
    WARN,
    Check,
    Context,
    Report,
    ShellCheck,
)

__all__ = ["FAIL", "OK", "WARN", "Check", "Report", "ShellCheck", "collect_checks", "diagnose", "run_doctor"]

#: The checks in report order. Shell checks other than ``instance`` are reported right after ``os``.
_STEPS: list[tuple[str, str, Callable[[Context], Check]]] = [
    ("version", "Version", local.check_version),
    ("os", "Operating system", local.check_os),
    ("data_dir", "Data directory", local.check_data_dir),
    ("database", "Database", local.check_database),
    ("instance", "Running instance", local.check_instance),
    ("policy", "Machine policy", local.check_policy),
    ("key_storage", "API key storage", local.check_key_storage),
    ("trust_store", "Certificates", network.check_trust),
    ("proxy", "Proxy", network.check_proxy),
    ("openrouter", "OpenRouter", network.check_openrouter),
    ("api_key", "API key", network.check_key),
]


def diagnose(
    settings: Any,
    *,
    env: Mapping[str, str] | None = None,
    timeout: float = 5.0,
    policy: Any = FROM_FILE,
    in_process: bool = False,
    secrets: Iterable[str] = (),
    shell_checks: Mapping[str, tuple[str, ShellCheck]] | None = None,
) -> Report:
    """Run every check and return the report, scrubbed of the key and of any of ``secrets``.

    ``policy`` is the policy in force in a running app (a :class:`Policy` or None); by default the policy
    file is read, as the CLI does. ``in_process`` says the checks run inside the app that serves the
    API, so the running-instance check describes this process. ``shell_checks`` maps a check id to its
    title and function: ``instance`` replaces the running-instance check outside the app, any other id is
    an extra check about the desktop shell. Blocking (network, files): call it from a worker thread in
    async code.
    """
    shell_checks = dict(shell_checks or {})
    context = Context(
        settings=settings,
        env=os.environ if env is None else env,
        timeout=timeout,
        in_force=policy,
        in_process=in_process,
        shell_checks={check_id: function for check_id, (_, function) in shell_checks.items()},
    )
    context.secrets.extend(secret for secret in secrets if secret)
    steps = list(_STEPS)
    extra = [
        (check_id, title, _shell_step(function))
        for check_id, (title, function) in shell_checks.items()
        if check_id not in {step[0] for step in _STEPS}
    ]
    after_os = [step[0] for step in steps].index("os") + 1
    steps[after_os:after_os] = extra
    checks = collect_checks(context, steps)
    return Report([Check(**redact(asdict(check), context.secrets)) for check in checks])


def run_doctor(
    settings: Any,
    *,
    out: TextIO | None = None,
    json_output: bool = False,
    env: Mapping[str, str] | None = None,
    timeout: float = 5.0,
    shell_checks: Mapping[str, tuple[str, ShellCheck]] | None = None,
) -> int:
    """Run every check, print the report (text or JSON) to ``out`` and return the exit status (0 or 1)."""
    out = sys.stdout if out is None else out
    report = diagnose(settings, env=env, timeout=timeout, shell_checks=shell_checks)
    text = report.format_text()
    if json_output:
        text = json.dumps(report.to_dict(), indent=2, ensure_ascii=False) + "\n"
    out.write(text)
    out.flush()
    return report.exit_code


def collect_checks(
    context: Context, steps: list[tuple[str, str, Callable[[Context], Check]]] | None = None
) -> list[Check]:
    """Run the checks in order; a check that crashes is reported as a FAIL rather than hiding the others."""
    checks = []
    for check_id, title, step in _STEPS if steps is None else steps:
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


def _shell_step(function: ShellCheck) -> Callable[[Context], Check]:
    return lambda _context: function()

