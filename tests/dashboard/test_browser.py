"""The sandbox dashboard in a real browser: headless Chromium (Debian's ``chromium`` and
``chromium-driver``) driven by Selenium with the system driver, nothing downloaded.

A customer pays a konbini slip, an elepay EasyQR code and passes 3-D Secure by clicking
on the customer pages the dashboard links to; the charges are then checked through
`Gateway.status`. Each page is saved as a screenshot in ``$PAYGATE_SCREENSHOTS`` (CI keeps
them), else in pytest's temporary directory.

Without a browser the test skips locally; in CI (``CI`` or ``PAYGATE_REQUIRE_BROWSER``
set) it fails instead, so a broken install cannot pass unnoticed.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from paygate import Card, ChargeStatus, Gateway, Konbini, Money, QRCode, RetryPolicy
from paygate.sandbox import Sandbox, running

PROVIDERS = ["elepay", "univapay", "pokepay"]


def _browser() -> tuple[str, str] | None:
    chromium = os.environ.get("PAYGATE_CHROMIUM") or shutil.which("chromium")
    driver = os.environ.get("PAYGATE_CHROMEDRIVER") or shutil.which("chromedriver")
    if chromium and driver:
        return chromium, driver
    return None


@pytest.fixture
def browser() -> Iterator[Any]:
    found = _browser()
    if found is None:
        reason = (
            "no chromium + chromedriver on PATH (apt-get install chromium chromium-driver, "
            "or set PAYGATE_CHROMIUM / PAYGATE_CHROMEDRIVER)"
        )
        if os.environ.get("CI") or os.environ.get("PAYGATE_REQUIRE_BROWSER"):
            pytest.fail(reason)
        pytest.skip(reason)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    chromium, driver_path = found
    profile = tempfile.mkdtemp(prefix="paygate-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--window-size=1280,1100",
        f"--user-data-dir={profile}",
    ):
        options.add_argument(arg)
    # The driver's path is given, so Selenium Manager has nothing to look up or fetch.
    driver = webdriver.Chrome(options=options, service=Service(executable_path=driver_path))
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    where = os.environ.get("PAYGATE_SCREENSHOTS")
    directory = Path(where) if where else tmp_path / "screenshots"
    directory.mkdir(parents=True, exist_ok=True)
    return directory


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    with running(providers=PROVIDERS) as sb:
        yield sb


def _open(driver: Any, url: str, object_id: str) -> None:
    """Load the dashboard and follow the customer page link of ``object_id`` (waiting
    for an object that is still moving on inside the emulator)."""
    from selenium.webdriver.common.by import By

    for _ in range(50):
        driver.get(url)
        links = driver.find_elements(By.CSS_SELECTOR, f'a[data-page="{object_id}"]')
        if links:
            links[0].click()
            return
        time.sleep(0.1)
    raise AssertionError(f"no customer page link for {object_id}")


def _submit(driver: Any, css: str) -> None:
    """Click a form's button and wait for the answer page (the redirect back carries the
    outcome in ``msg``); fail if the sandbox refused the action."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    assert "msg=" not in driver.current_url
    driver.find_element(By.CSS_SELECTOR, css).click()
    WebDriverWait(driver, 15).until(
        lambda d: "msg=" in d.current_url and d.find_elements(By.ID, "flash")
    )
    flash = driver.find_element(By.ID, "flash")
    assert "failed" not in (flash.get_attribute("class") or ""), flash.text


def _text(driver: Any, css: str) -> str:
    from selenium.webdriver.common.by import By

    return str(driver.find_element(By.CSS_SELECTOR, css).text)


def test_pay_by_clicking_in_the_dashboard(browser: Any, shots: Path, sandbox: Sandbox) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    accounts = {p: sandbox.account_settings(p) for p in PROVIDERS}
    gw = Gateway.from_config(
        {"store": "memory://", "accounts": accounts}, retry=RetryPolicy.no_wait()
    )
    try:
        slip = gw.charge(
            "univapay",
            amount=Money.jpy(1980),
            method=Konbini(store="seven_eleven", customer_name="テスト 太郎", phone="0364413400"),
            idempotency_key="dash-konbini",
        )
        qr = gw.charge(
            "elepay", amount=Money.jpy(880), method=QRCode(), idempotency_key="dash-easyqr"
        )
        token = sandbox.control("univapay", "card_token", card="three_ds")["id"]
        card = gw.charge(
            "univapay",
            amount=Money.jpy(5000),
            method=Card(token=token),
            idempotency_key="dash-3ds",
        )
        tray = gw.charge(
            "pokepay", amount=Money.jpy(450), method=QRCode(), idempotency_key="dash-cashtray"
        )
        for charge in (slip, qr, card, tray):
            assert charge.status is ChargeStatus.REQUIRES_ACTION

        # The dashboard lists every object, with its customer actions.
        browser.get(sandbox.url + "/?lang=en")
        assert "paygate sandbox" in browser.title
        browser.save_screenshot(str(shots / "dashboard.png"))
        assert _text(browser, f"#obj-{slip.provider_ref} td:nth-child(5)") == "awaiting"

        # Konbini: the slip page shows the payment number; the customer pays it.
        _open(browser, sandbox.url + "/?lang=en", slip.provider_ref)
        assert _text(browser, "#payment-number") == slip.next_action.payment_number
        browser.save_screenshot(str(shots / "konbini-slip.png"))
        _submit(browser, 'button[data-act="pay_konbini"]')
        assert "successful" in _text(browser, "#status")
        assert gw.status("univapay", slip.id).status is ChargeStatus.SUCCEEDED

        # EasyQR: the page draws the QR code; the customer scans it with LINE Pay.
        code_id = qr.next_action.url.rstrip("/").rsplit("/", 1)[-1]
        _open(browser, sandbox.url + "/?lang=ja", code_id)
        assert browser.find_elements(By.CSS_SELECTOR, "#qr svg")
        browser.save_screenshot(str(shots / "easyqr.png"))
        Select(browser.find_element(By.NAME, "p.payment_method")).select_by_value("linepay")
        _submit(browser, 'button[data-act="pay_code"]')
        assert _text(browser, "#status") == "captured"  # the code, once paid
        paid = gw.status("elepay", qr.id)
        assert paid.status is ChargeStatus.SUCCEEDED

        # 3-D Secure: the challenge page; the customer authenticates.
        _open(browser, sandbox.url + "/", card.provider_ref)
        browser.save_screenshot(str(shots / "three-d-secure.png"))
        for _ in range(50):  # the charge may still be moving from pending to awaiting
            if browser.find_elements(By.CSS_SELECTOR, 'button[data-act="finish_three_ds"]'):
                break
            time.sleep(0.1)
            browser.refresh()
        _submit(browser, 'button[data-act="finish_three_ds"]')  # 認証する / Authenticate
        assert gw.status("univapay", card.id).status is ChargeStatus.SUCCEEDED

        # Pokepay Cashtray: scanned from its page.
        tray_id = tray.next_action.url.rstrip("/").rsplit("/", 1)[-1]
        _open(browser, sandbox.url + "/", tray_id)
        browser.save_screenshot(str(shots / "cashtray.png"))
        _submit(browser, 'button[data-act="scan_cashtray"]')
        assert gw.status("pokepay", tray.id).status is ChargeStatus.SUCCEEDED

        # Back on the dashboard, in Japanese, everything shows as paid.
        browser.get(sandbox.url + "/?lang=ja")
        assert "オブジェクト" in browser.page_source
        browser.save_screenshot(str(shots / "dashboard-after.png"))
    finally:
        gw.close()
