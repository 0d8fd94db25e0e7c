"""Opening the UI in the system browser: never with the launch token on a command line, never without a display.

The real ``python -m desktop`` runs with a fake ``BROWSER`` (a script that records its arguments), so what
the app hands a browser is exactly what ``ps`` would show other users.
"""

from __future__ import annotations

import json
import re
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import unquote, urljoin, urlsplit

import httpx
import pytest

from tests.conftest import PYTHON, ROOT, subprocess_env

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="BROWSER and DISPLAY are Linux's")


def fake_browser(tmp_path: Path) -> tuple[Path, Path]:
    record = tmp_path / "browser-argv.json"
    script = tmp_path / "fake-browser"
    script.write_text(
        f"#!{sys.executable}\nimport json, sys\nopen({str(record)!r}, 'w').write(json.dumps(sys.argv))\n",
        encoding="utf-8",
    )
    script.chmod(0o700)
    return script, record


def start(data_dir: Path, **env: str) -> subprocess.Popen:
    return subprocess.Popen(
        [PYTHON, "-m", "desktop"], cwd=ROOT, env=subprocess_env(data_dir, ATELIER_NO_BROWSER="0", **env),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def wait_for(predicate, proc: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert proc.poll() is None, proc.stderr.read()
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def stop(proc: subprocess.Popen) -> tuple[str, str]:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    assert proc.wait(20) == 0
    out, err = proc.stdout.read(), proc.stderr.read()
    proc.stdout.close()
    proc.stderr.close()
    return out, err


def follow_meta_refresh(client: httpx.Client, html: str, *, sec_fetch_site: str, base: str = "") -> httpx.Response:
    match = re.search(r'http-equiv="refresh" content="0;url=([^"]+)"', html)
    assert match, html
    url = urljoin(base, match.group(1).replace("&amp;", "&"))
    return client.get(url, headers={"Sec-Fetch-Site": sec_fetch_site, "Sec-Fetch-Mode": "navigate"})


def test_the_browser_gets_a_private_file_not_the_token(data_dir: Path, tmp_path: Path, fake_x_server) -> None:
    browser, record = fake_browser(tmp_path)
    proc = start(data_dir, ATELIER_NO_WINDOW="1", BROWSER=str(browser), DISPLAY=fake_x_server.display)
    try:
        wait_for(record.exists, proc)
        info = json.loads((data_dir / "runtime.json").read_text())
        argv = json.loads(record.read_text())
        token = info["token"]
        assert all(token not in arg for arg in argv), argv
        # What ps shows: a file:// address of a page only this user can read.
        target = urlsplit(argv[-1])
        assert target.scheme == "file"
        page = Path(unquote(target.path))
        assert page.parent == data_dir
        assert stat.S_IMODE(page.stat().st_mode) == 0o600

        # Following it the way a browser does logs in: the page sends it to /login (a navigation a local
        # file started, so "cross-site"), which continues to the Studio from a page of its own.
        with httpx.Client(follow_redirects=False) as client:
            login = follow_meta_refresh(client, page.read_text("utf-8"), sec_fetch_site="cross-site")
            assert login.status_code == 200, login.text
            assert "HttpOnly" in login.headers["set-cookie"] and "SameSite=Strict" in login.headers["set-cookie"]
            studio = follow_meta_refresh(client, login.text, sec_fetch_site="same-origin", base=str(login.url))
            assert studio.status_code == 200 and "Studio" in studio.text
    finally:
        out, _ = stop(proc)
    assert "ATELIER_NO_WINDOW is set" in out and "/login?token=" in out  # the console still has the address
    assert not page.exists()  # gone with the app


def test_no_browser_when_display_names_no_x_server(data_dir: Path, tmp_path: Path, fake_x_server) -> None:
    browser, record = fake_browser(tmp_path)
    fake_x_server.close()  # DISPLAY points where nothing listens any more
    proc = start(data_dir, BROWSER=str(browser), DISPLAY=fake_x_server.display)
    try:
        wait_for(lambda: (data_dir / "runtime.json").exists(), proc)
        time.sleep(1.0)  # the browser would have been started by now
    finally:
        out, _ = stop(proc)
    assert not record.exists()
    assert f"no X server answers at DISPLAY={fake_x_server.display}" in out
    assert "/login?token=" in out


def test_no_browser_for_an_unused_local_display(tmp_path: Path) -> None:
    from desktop.toolkit import display_reachable, x_server_answers

    free = next(n for n in range(400, 1000) if not Path(f"/tmp/.X11-unix/X{n}").exists())
    assert not x_server_answers(f":{free}")
    assert not display_reachable({"DISPLAY": f":{free}"})
    assert not display_reachable({})
    assert display_reachable({"DISPLAY": f":{free}", "WAYLAND_DISPLAY": "wayland-0"})
    assert not x_server_answers("garbage")


@pytest.mark.browser
def test_a_real_browser_following_the_file_lands_in_the_studio(data_dir: Path, tmp_path: Path) -> None:
    """Chromium opens the file it was given and ends up logged in (SameSite=Strict survives the hop)."""
    playwright = pytest.importorskip("playwright.sync_api")
    chromium = Path("/usr/bin/chromium")
    if not chromium.exists():
        pytest.skip("Debian's chromium is not installed")
    from desktop.browser import write_login_file

    proc = subprocess.Popen(
        [PYTHON, "-m", "desktop", "--no-window"], cwd=ROOT, env=subprocess_env(data_dir),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        wait_for(lambda: (data_dir / "runtime.json").exists(), proc)
        info = json.loads((data_dir / "runtime.json").read_text())
        page_file = write_login_file(tmp_path / "open-atelier.html", f"{info['ui_url']}/login?token={info['token']}")
        with playwright.sync_playwright() as pw:
            browser = pw.chromium.launch(
                executable_path=str(chromium),
                args=["--no-sandbox", "--headless=new", "--disable-gpu", "--disable-dev-shm-usage"],
            )
            try:
                page = browser.new_page()
                page.goto(page_file.as_uri())
                page.wait_for_url(info["ui_url"] + "/", timeout=20_000)
                page.wait_for_load_state()
                assert "Studio" in page.title()
            finally:
                browser.close()
    finally:
        stop(proc)
