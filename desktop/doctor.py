"""``atelier doctor``: the installation, network, policy and key checks on the command line.

The checks themselves live in ``backend/diagnostics.py`` (the app serves them at ``/api/v1/diagnostics`` too).
Exit status 0 when nothing fails, 1 otherwise, so IT can script it.
"""

from __future__ import annotations

import sys

from backend.diagnostics.checks import diagnose, run_doctor

__all__ = ["diagnose", "main", "run_doctor"]


def main(argv: list[str] | None = None) -> int:
    """``python -m desktop.doctor [--json]`` (the app's CLI offers the same as ``atelier doctor``)."""
    import argparse

    from backend.core.settings import Settings

    parser = argparse.ArgumentParser(prog="atelier doctor", description="Check the installation, network and key.")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    args = parser.parse_args(argv)
    try:
        settings = Settings.load()
    except (ValueError, OSError) as exc:
        print(f"atelier doctor: {exc}", file=sys.stderr)
        return 2
    return run_doctor(settings, json_output=args.json)


if __name__ == "__main__":
    sys.exit(main())
