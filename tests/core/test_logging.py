"""Log records on the ``paygate`` logger: one per operation and per attempt, retries and
unknown outcomes as warnings, the spans' attributes, never a secret or personal data."""

from __future__ import annotations

import logging
import time
from typing import Any

import pytest

from paygate import Card, Money, OutcomeUnknown, PaygateError

NAME = "金糸雀 花子"
PHONE = "0355519876"
EMAIL = "canary.hanako.7f3e@example.org"
TOKEN = "tok_canary_4f1d9e2b7c"
KEY = "order-canary-91c3"
API_KEY = "fk_test_0123456789abcdef"  # fakepay's key in the sandbox


@pytest.fixture
def records(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG, logger="paygate")
    return caplog


def ours(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "paygate"]


def attr(record: logging.LogRecord, name: str) -> Any:
    return record.__dict__.get(name)


def test_records_per_operation_attempt_and_retry(
    gateway_factory: Any, fake_sandbox: Any, records: pytest.LogCaptureFixture
) -> None:
    gw = gateway_factory()
    fake_sandbox.fault("fakepay", "status", path="^/charges$", method="POST", status=503, count=2)
    gw.charge("fake", amount=Money.jpy(1200), method=Card(token="tok"), idempotency_key="log-1")
    mine = ours(records)
    attempts = [r for r in mine if r.levelno == logging.DEBUG]
    assert [attr(r, "paygate.retry.attempt") for r in attempts] == [1, 2, 3]
    assert [attr(r, "http.response.status_code") for r in attempts] == [503, 503, 200]
    assert {attr(r, "paygate.step") for r in attempts} == {"charges.create"}
    assert {attr(r, "http.request.method") for r in attempts} == {"POST"}
    assert {attr(r, "paygate.provider") for r in attempts} == {"fakepay"}
    retries = [r for r in mine if r.levelno == logging.WARNING]
    assert [attr(r, "paygate.retry.attempt") for r in retries] == [2, 3]
    assert [attr(r, "http.response.status_code") for r in retries] == [503, 503]
    assert all("retrying" in r.getMessage() for r in retries)
    operations = [r for r in mine if r.levelno == logging.INFO]
    assert len(operations) == 1
    op = operations[0]
    assert attr(op, "paygate.operation") == "charge"
    assert attr(op, "paygate.account") == "fake"
    assert attr(op, "error.type") is None
    assert op.paygate["paygate.duration_ms"] >= 0  # type: ignore[attr-defined]
    assert op.getMessage() == "paygate.charge on fake (fakepay): ok"


def test_errors_carry_codes_and_unknown_outcomes_warn(
    gateway_factory: Any, fake_sandbox: Any, records: pytest.LogCaptureFixture
) -> None:
    gw = gateway_factory()
    with pytest.raises(PaygateError):
        gw.charge("fake", amount=Money.jpy(666), method=Card(token="tok"), idempotency_key="l-2")
    declined = [r for r in ours(records) if attr(r, "paygate.operation") == "charge"]
    assert len(declined) == 1
    assert declined[0].levelno == logging.INFO
    assert attr(declined[0], "paygate.error.code") == "payment_declined"
    assert attr(declined[0], "paygate.error.provider_code") == "card_declined"
    records.clear()
    served = len(fake_sandbox.host.emulators["fakepay"].requests)
    # Answered well after the 0.3 s timeout; the test waits for it below, so no longer.
    fake_sandbox.fault("fakepay", "latency", path="^/charges$", method="POST", latency_ms=800)
    with pytest.raises(OutcomeUnknown):
        gw.charge(
            "fake",
            amount=Money.jpy(1200),
            method=Card(token="tok"),
            idempotency_key="l-3",
            timeout=0.3,
        )
    unknown = [r for r in ours(records) if attr(r, "paygate.operation") == "charge"]
    assert len(unknown) == 1
    assert unknown[0].levelno == logging.WARNING
    assert attr(unknown[0], "error.type") == "OutcomeUnknown"
    assert "outcome unknown" in unknown[0].getMessage()
    timed_out = [r for r in ours(records) if attr(r, "error.type") == "ReadTimeout"]
    assert [attr(r, "paygate.step") for r in timed_out] == ["charges.create"]
    # The request the client gave up on is served later: wait, or it lands in the next test.
    emulator = fake_sandbox.host.emulators["fakepay"]
    until = time.monotonic() + 10
    while len(emulator.requests) <= served and time.monotonic() < until:
        time.sleep(0.05)


def test_no_secret_or_personal_data_in_any_record(
    gateway_factory: Any, fake_sandbox: Any, records: pytest.LogCaptureFixture
) -> None:
    gw = gateway_factory()
    fake_sandbox.fault("fakepay", "status", path="^/charges", status=503, count=1)
    charge = gw.charge(
        "fake",
        amount=Money.jpy(1200),
        method=Card(token=TOKEN),
        idempotency_key=KEY,
        description=f"{NAME} {PHONE}",
        metadata={"email": EMAIL, "name": NAME, "phone": PHONE},
    )
    gw.status("fake", charge.id)
    gw.refund("fake", charge.id, idempotency_key=f"{KEY}-r", reason=f"{NAME} {EMAIL}")
    with pytest.raises(PaygateError):
        gw.charge(
            "fake",
            amount=Money.jpy(666),
            method=Card(token=TOKEN),
            idempotency_key=f"{KEY}-d",
            metadata={"email": EMAIL},
        )
    with pytest.raises(PaygateError):
        gw.status("fake", "ch_missing_canary_0000")
    mine = ours(records)
    assert len(mine) >= 8
    canaries = [NAME, PHONE, EMAIL, TOKEN, KEY, API_KEY, charge.id, "ch_missing_canary_0000"]
    for record in mine:
        texts = [record.getMessage(), repr(record.args), repr(record.__dict__)]
        if record.exc_info:
            texts.append(logging.Formatter().formatException(record.exc_info))
        for text in texts:
            for canary in canaries:
                assert canary not in text, (canary, record.getMessage())
        assert "http://" not in record.getMessage()
        assert "https://" not in record.getMessage()


def test_silent_by_default(
    gateway_factory: Any, capsys: pytest.CaptureFixture[str], fake_sandbox: Any
) -> None:
    gw = gateway_factory()
    fake_sandbox.fault("fakepay", "status", path="^/charges$", method="POST", status=503, count=1)
    gw.charge("fake", amount=Money.jpy(1200), method=Card(token="tok"), idempotency_key="l-s")
    assert "retrying" not in capsys.readouterr().err
    handlers = logging.getLogger("paygate").handlers
    assert any(isinstance(h, logging.NullHandler) for h in handlers)
