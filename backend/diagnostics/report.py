"""The report's data: one :class:`Check` per line, the :class:`Report` and its text form, and the context the
checks share while they run (the policy read, the key found, whether OpenRouter answered)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from backend import __version__
from backend.core.policy import Policy
from backend.net.netconfig import NetworkSettings, effective_network

__all__ = ["FAIL", "FROM_FILE", "OK", "WARN", "Check", "Context", "Report", "ShellCheck"]

OK, WARN, FAIL = "OK", "WARN", "FAIL"


@dataclass
class Check:
    """One line of the report."""

    id: str
    title: str
    status: str
    message: str
    hint: str | None = None
    details: dict[str, Any] = field(default_factory=dict)


#: A check the caller supplies (the desktop shell: the running instance, the window toolkit).
ShellCheck = Callable[[], Check]


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
        checks = self.checks
        width = max(len(check.title) for check in checks)
        lines = [f"Atelier doctor ({__version__})", ""]
        for check in checks:
            lines.append(f"{check.status:<4}  {check.title:<{width}}  {check.message}")
            if check.hint and check.status != OK:
                lines.append(f"{'':<4}  {'':<{width}}  fix: {check.hint}")
        failures = sum(check.status == FAIL for check in checks)
        warnings = sum(check.status == WARN for check in checks)
        lines += ["", f"{failures} failure(s), {warnings} warning(s); exit status {self.exit_code}.", ""]
        return "\n".join(lines)


class _FromFile:
    """Marker: read the policy from its file (the CLI), as opposed to a policy already in force."""


FROM_FILE: Any = _FromFile()


@dataclass
class Context:
    """What the checks share while one report runs; later checks read what earlier ones found."""

    settings: Any
    env: Mapping[str, str]
    timeout: float
    in_force: Any = FROM_FILE
    in_process: bool = False
    shell_checks: Mapping[str, ShellCheck] = field(default_factory=dict)
    policy: Policy | None = None
    policy_error: str | None = None
    network: NetworkSettings | None = None
    key: str | None = None
    reachable: bool = False
    secrets: list[str] = field(default_factory=list)

    @property
    def policy_from_file(self) -> bool:
        return isinstance(self.in_force, _FromFile)

    def network_settings(self) -> NetworkSettings:
        """Where OpenRouter is and how to reach it (the policy check fills this in; without it, no policy)."""
        if self.network is None:
            self.network = effective_network(self.settings, None)
        return self.network
