"""The review pages in a real headless browser (Debian's chromium through Selenium and
chromium-driver): an operator logs in with the keyboard alone, finds a held notice, reads its
evidence and approves it, and the query socket then answers BLOCKED; a viewer gets no approve
button and a forged post is refused; a cross-site form post is refused; hostile mail runs
nothing and loads nothing; every control has a label; the layout holds at phone width.

Screenshots of the main pages go to $WEB_SCREENSHOTS when set (docs/screenshots is
made so), else to a temporary folder."""

from __future__ import annotations

import os
import re
import random
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.browser import Recorder, chromium, require_browser, screenshot
from tests.support.daemon import DaemonProcess, wait_until
from tests.support.notices import opt_out_notice, order_id
from tests.support.trust import forwarded_inline
from tests.support.web import PASSWORD, WebUser, hostile_mail, reviewing_daemon


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonProcess]:
    require_browser()
    with reviewing_daemon(tmp_path_factory.mktemp("browser"), {
        "smtp": {"recipients": ["optout@sellers.example"]},
        "security": {"require_registered_forwarder": True},
    }) as proc:
        yield proc


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    given = os.environ.get("WEB_SCREENSHOTS")
    return Path(given) if given else tmp_path_factory.mktemp("screenshots")


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    server = Recorder()
    yield server
    server.close()


def base(daemon: DaemonProcess) -> str:
    assert daemon.web is not None
    return "http://%s:%d" % daemon.web


def hold(daemon: DaemonProcess, raw: bytes, order: str) -> int:
    """Mail ``raw`` (held: its forwarder is not registered) and return its id."""
    assert daemon.send(raw)[0] == 250
    def found() -> int | None:
        for line in daemon.cli("quarantine", "list", check=True).stdout.splitlines():
            raw_id = int(line.split("\t")[0])
            if order in daemon.cli("messages", "show", str(raw_id), "--raw").stdout:
                return raw_id
        return None
    return int(wait_until(found, 30))


def keyboard_login(driver: Any, daemon: DaemonProcess, user: str) -> None:
    """Only keys: the user field has focus on load; Tab to the password; Enter submits."""
    from selenium.webdriver.common.keys import Keys

    driver.get(base(daemon) + "/login")
    # HTML's autofocus runs at the next rendering update, which may come after the load
    # event that get() waits for: wait for it rather than read focus once.
    wait_until(lambda: driver.switch_to.active_element.get_attribute("id") == "user", 10)
    driver.switch_to.active_element.send_keys(user, Keys.TAB, PASSWORD, Keys.ENTER)
    wait_until(lambda: driver.current_url.rstrip("/") == base(daemon), 30)


def tab_to(driver: Any, element_id: str, limit: int = 60) -> Any:
    """Press Tab until ``element_id`` has focus (keyboard-only use: it must be reachable)."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys

    for _ in range(limit):
        if driver.switch_to.active_element.get_attribute("id") == element_id:
            return driver.switch_to.active_element
        ActionChains(driver).send_keys(Keys.TAB).perform()
    raise AssertionError(f"#{element_id} is not reachable with Tab")


def unlabelled(driver: Any) -> list[str]:
    """Controls without a label: inputs and selects need <label for> or aria-label; buttons and links text."""
    return driver.execute_script("""
        const bad = [];
        for (const el of document.querySelectorAll('input:not([type=hidden]), select, textarea')) {
            const label = el.id && document.querySelector('label[for="' + el.id + '"]');
            if (!(label && label.textContent.trim()) && !el.getAttribute('aria-label')) bad.push(el.outerHTML);
        }
        for (const el of document.querySelectorAll('button, a[href]')) {
            if (!el.textContent.trim() && !el.getAttribute('aria-label')) bad.push(el.outerHTML);
        }
        return bad;""")


def test_an_operator_approves_a_held_notice_with_the_keyboard_and_the_socket_blocks(
    daemon: DaemonProcess, shots: Path
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    order = order_id(random.Random(11))
    raw_id = hold(daemon, forwarded_inline(opt_out_notice(order, None), "ops@stranger.example"), order)
    assert daemon.query(f"ORDER {order}") == ["OK"]
    with chromium() as driver:
        driver.get(base(daemon) + "/login")
        assert unlabelled(driver) == []
        screenshot(driver, "login", shots)
        keyboard_login(driver, daemon, "alice")
        assert unlabelled(driver) == []
        screenshot(driver, "overview", shots)
        driver.get(base(daemon) + "/queue?outcome=quarantined")
        assert unlabelled(driver) == []
        screenshot(driver, "queue", shots)
        driver.find_element(By.CSS_SELECTOR, f'a[href="/messages/{raw_id}"]').send_keys(Keys.ENTER)
        wait_until(lambda: driver.current_url.endswith(f"/messages/{raw_id}"), 30)
        evidence = driver.find_element(By.ID, "evidence").find_element(By.XPATH, "..").text
        assert "unregistered forwarder ops@stranger.example" in evidence
        assert unlabelled(driver) == []
        screenshot(driver, "message", shots)
        tab_to(driver, "approve-note").send_keys("known seller, checked by phone")
        tab_to(driver, "approve").send_keys(Keys.ENTER)
        wait_until(lambda: "Approved: 1 new" in driver.page_source, 30)
        assert driver.find_element(By.ID, "outcome-value").text == "opt_out"
        assert daemon.query(f"ORDER {order}")[0].startswith("BLOCKED ")
        driver.get(base(daemon) + f"/blocklist?key={order}")
        assert "Opt-out" in driver.page_source and unlabelled(driver) == []
        screenshot(driver, "blocklist", shots)
        daemon.cli("sellers", "add", "acme", "--forwarder", "ops@acme.example", check=True)
        driver.get(base(daemon) + "/sellers")
        assert "ops@acme.example" in driver.page_source and unlabelled(driver) == []
        screenshot(driver, "sellers", shots)
        driver.get(base(daemon) + "/audit")
        assert "known seller, checked by phone" in driver.page_source and unlabelled(driver) == []
        screenshot(driver, "audit", shots)
        tab_to(driver, "logout").send_keys(Keys.ENTER)
        wait_until(lambda: driver.current_url.endswith("/login"), 30)
        driver.get(base(daemon) + f"/messages/{raw_id}")
        assert driver.current_url.endswith("/login")  # the session is gone


def test_a_viewer_gets_no_approve_button_and_a_forged_post_is_refused(daemon: DaemonProcess) -> None:
    from selenium.webdriver.common.by import By

    order = order_id(random.Random(12))
    raw_id = hold(daemon, forwarded_inline(opt_out_notice(order, None), "ops@stranger.example"), order)
    with chromium() as driver:
        keyboard_login(driver, daemon, "victor")
        driver.get(base(daemon) + f"/messages/{raw_id}")
        assert "unregistered forwarder" in driver.page_source
        assert driver.find_elements(By.ID, "approve") == [] and driver.find_elements(By.ID, "discard") == []
        # A form the viewer builds by hand, with the session's own CSRF token: the server says no.
        driver.execute_script("""
            const f = document.createElement('form'); f.method = 'post'; f.action = arguments[0];
            const t = document.createElement('input'); t.name = 'csrf';
            t.value = document.querySelector('input[name=csrf]').value; f.appendChild(t);
            document.body.appendChild(f); f.submit();""", f"/messages/{raw_id}/approve")
        wait_until(lambda: "needs the operator role" in driver.page_source, 30)
    assert daemon.query(f"ORDER {order}") == ["OK"]
    assert "outcome: quarantined" in daemon.cli("quarantine", "show", str(raw_id), check=True).stdout


def test_a_cross_site_form_post_is_refused(daemon: DaemonProcess, recorder: Recorder) -> None:
    order = order_id(random.Random(13))
    raw_id = hold(daemon, forwarded_inline(opt_out_notice(order, None), "ops@stranger.example"), order)
    recorder.page = (f'<form id=f method=post action="{base(daemon)}/messages/{raw_id}/approve">'
                     '<input name=csrf value=guess></form><script>document.getElementById("f").submit()</script>').encode()
    with chromium() as driver:
        keyboard_login(driver, daemon, "alice")  # a logged-in operator visits another site
        driver.get(recorder.url + "/page.html")
        wait_until(lambda: driver.current_url.startswith(base(daemon)), 30)
        assert "cross-site request refused" in driver.page_source
    assert daemon.query(f"ORDER {order}") == ["OK"]
    assert "outcome: quarantined" in daemon.cli("quarantine", "show", str(raw_id), check=True).stdout


def test_hostile_mail_runs_nothing_and_loads_nothing(daemon: DaemonProcess, recorder: Recorder, shots: Path) -> None:
    from selenium.webdriver.common.by import By

    order = order_id(random.Random(14))
    raw_id = hold(daemon, hostile_mail(recorder.url, order), order)
    with chromium() as driver:
        keyboard_login(driver, daemon, "alice")
        driver.get(base(daemon) + f"/messages/{raw_id}")
        frame = driver.find_element(By.CSS_SELECTOR, "iframe.mail")
        assert frame.get_attribute("sandbox") == ""  # sandboxed, nothing allowed
        driver.switch_to.frame(frame)
        wait_until(lambda: "click me" in driver.page_source, 30)
        for link in driver.find_elements(By.TAG_NAME, "a"):  # a javascript: link, clicked
            link.click()
        for div in driver.find_elements(By.TAG_NAME, "div"):
            div.click()
        driver.switch_to.default_content()
        link = driver.find_element(By.PARTIAL_LINK_TEXT, "<img src=x onerror=alert(1)><script>")  # shown as text
        href = link.get_attribute("href")
        screenshot(driver, "hostile-message", shots)
        driver.get(base(daemon) + "/")  # leave the page: anything pending has had its chance
        assert driver.execute_script("return window.__pwned === undefined")
        cookies = {c["name"]: c for c in driver.get_cookies()}
    assert cookies["inbox_session"]["httpOnly"] and cookies["inbox_session"]["sameSite"] == "Strict"
    assert sum(recorder.hits.values()) == 0, recorder.hits  # no script ran (?js-*), nothing loaded
    request = urllib.request.Request(href, headers={"Cookie": f"inbox_session={cookies['inbox_session']['value']}"})
    with urllib.request.urlopen(request, timeout=30) as download:
        assert download.headers["Content-Type"] == "application/octet-stream"
        disposition = download.headers["Content-Disposition"]
    filename = disposition.removeprefix('attachment; filename="').removesuffix('"')
    assert disposition.startswith("attachment; ") and re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", filename)


def test_the_layout_holds_at_phone_width(daemon: DaemonProcess, shots: Path) -> None:
    with chromium(390, 844) as driver:
        keyboard_login(driver, daemon, "alice")
        for path, name in (("/", "overview-phone"), ("/queue", "queue-phone")):
            driver.get(base(daemon) + path)
            assert driver.execute_script("return document.documentElement.scrollWidth <= window.innerWidth + 1")
            screenshot(driver, name, shots)
        for path in ("/blocklist?key=" + order_id(random.Random(11)), "/sellers", "/audit"):
            driver.get(base(daemon) + path)
            assert driver.execute_script("return document.documentElement.scrollWidth <= window.innerWidth + 1"), path
        held = [line.split("\t")[0] for line in daemon.cli("quarantine", "list", check=True).stdout.splitlines()]
        if held:
            driver.get(base(daemon) + f"/messages/{held[0]}")
            assert driver.execute_script("return document.documentElement.scrollWidth <= window.innerWidth + 1")
            screenshot(driver, "message-phone", shots)


def test_the_http_client_agrees_the_cookie_is_not_secure_over_plain_http(daemon: DaemonProcess) -> None:
    """Over TLS or with web.secure_cookies the flag is on; plain loopback HTTP must not claim it."""
    user = WebUser(daemon.web)  # type: ignore[arg-type]
    user.login("alice", PASSWORD)
    assert any(h.startswith("inbox_session=") and "Secure" not in h for h in user.set_cookie_headers)
