"""Screenshots of every page state at 1280 × 800 and 900 × 650, light and dark, into build/screenshots/.

Runs a private Atelier against the fake OpenRouter (nothing leaves this machine, no key of yours is used) and
walks it through the states in tests/ui_states.py: first run, answers, errors, images, video, Library,
Templates, Queue (empty, offline, paused) and Settings. Needs Debian's chromium and Playwright.

    python scripts/screenshots.py [--out build/screenshots] [--full-page] [--only NAME ...]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

VARIANTS = [(1280, 800, "light"), (1280, 800, "dark"), (900, 650, "light"), (900, 650, "dark")]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "screenshots")
    parser.add_argument("--full-page", action="store_true", help="capture the whole page, not only the window")
    parser.add_argument("--only", nargs="*", default=None, help="state names to save (all are still walked)")
    args = parser.parse_args(argv)

    from playwright.sync_api import sync_playwright

    from tests.ui_states import Variant, hermetic_env, launch_browser, ui_stack, walk

    args.out.mkdir(parents=True, exist_ok=True)
    saved: list[Path] = []
    with tempfile.TemporaryDirectory(prefix="atelier-shots-") as tmp:
        data_dir = Path(tmp) / "data"
        data_dir.mkdir()
        hermetic_env(data_dir)
        with ui_stack(data_dir) as ui, sync_playwright() as playwright:
            browser = launch_browser(playwright)

            def visit(page, name: str, variant: Variant) -> None:  # type: ignore[no-untyped-def]
                if args.only and name not in args.only:
                    return
                page.wait_for_timeout(200)  # transitions end
                path = args.out / f"{name}-{variant.label}.png"
                page.screenshot(path=str(path), full_page=args.full_page)
                saved.append(path)

            variants = [Variant(scheme, width, height) for width, height, scheme in VARIANTS]
            walk(ui, browser, variants, visit)
            browser.close()
    for path in saved:
        print(path.relative_to(ROOT) if path.is_relative_to(ROOT) else path)
    print(f"{len(saved)} screenshots in {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
