"""Debian's chromium, headless, driven by Selenium through Debian's chromium-driver: the path
is given, so Selenium Manager never downloads anything. Plus a loopback HTTP server that
counts every request it gets (a tracking pixel must get none) and can serve one page."""

from __future__ import annotations

import http.server
import os
import shutil
import tempfile
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage")


def require_browser() -> None:
    """Skip where Debian's browser is missing, except under CI (.ci/run installs it)."""
    if not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)):
        if os.environ.get("CI"):
            pytest.fail("chromium and chromium-driver are missing: .ci/install-chromium.sh installs them")
        pytest.skip("Debian's chromium and chromium-driver are not installed")


@contextmanager
def chromium(width: int = 1280, height: int = 900) -> Iterator[object]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    require_browser()
    profile = tempfile.mkdtemp(prefix="chromium-profile-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile}")
    options.add_argument(f"--window-size={width},{height}")
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    try:
        driver.set_page_load_timeout(30)
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


class Recorder:
    """A loopback HTTP server: ``hits`` counts each path+query it is asked for; ``page`` is
    served at /page.html (a cross-site page of the tests' making)."""

    def __init__(self) -> None:
        self.hits: Counter[str] = Counter()
        self.page = b""
        recorder = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path == "/page.html":
                    self._send(recorder.page, "text/html")
                    return
                recorder.hits[self.path] += 1
                self._send(b"GIF89a", "image/gif")

            do_POST = do_GET

            def _send(self, body: bytes, kind: str) -> None:
                self.send_response(200)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return "http://127.0.0.1:%d" % self.server.server_address[1]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def screenshot(driver: object, name: str, folder: Path) -> Path:
    """Save a full-page PNG: the page's whole height at the window's width."""
    folder.mkdir(parents=True, exist_ok=True)
    height = driver.execute_script("return document.documentElement.scrollHeight")  # type: ignore[attr-defined]
    width = driver.execute_script("return window.outerWidth")  # type: ignore[attr-defined]
    driver.set_window_size(width, max(600, min(int(height) + 140, 4000)))  # type: ignore[attr-defined]
    path = folder / f"{name}.png"
    driver.save_screenshot(str(path))  # type: ignore[attr-defined]
    return path
