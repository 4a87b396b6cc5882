"""Flow unit tests: pure generators fed scripted UnivaPay replies (no sockets)."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from paygate import (
    AuthenticationError,
    ChargeStatus,
    ConfigurationError,
    IdempotencyConflict,
    Konbini,
    KonbiniSlip,
    Money,
    NotFound,
    NotSupported,
    OutcomeUnknown,
    PaymentDeclined,
    ProviderRejected,
    ProviderUnavailable,
    RateLimited,
    RefundStatus,
)
from paygate._models import Card
from paygate.adapter import (
    CancelRequest,
    CaptureRequest,
    ChargeRef,
    ChargeRequest,
    OpContext,
    Operation,
    Outcome,
    RefundRequest,
    Reply,
    Retry,
    TransportFailure,
    default_outcome,
    drive,
)
from paygate.testing import ScriptedResponder
from paygate_univapay import UnivapayProvider, UnivapaySettings

STORE = "11f0c0de-5702-4000-8000-70617967a7e0"
NOW = datetime(2026, 1, 1, 1, 0, tzinfo=UTC)
BASE = "https://api.univapay.com"


@pytest.fixture
def prov() -> UnivapayProvider:
    settings = UnivapaySettings(
        store_id=STORE, secret="flow_secret_value", jwt="h.p.s", webhook_auth_token="whtok123"
    )
    return UnivapayProvider(settings, account="konbini")


def ctx(key: str | None = "order-1042", **kw: Any) -> OpContext:
    return OpContext(
        account="konbini",
        provider="univapay",
        idempotency_key=key,
        charge_id=kw.pop("charge_id", "pgch_1"),
        now=lambda: NOW,
        **kw,
    )


def reply(status: int, body: Any = None, **headers: str) -> Reply:
    content = b"" if body is None else json.dumps(body).encode()
    return Reply(status, {k.replace("_", "-").lower(): v for k, v in headers.items()}, content)


def charge_obj(**kw: Any) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "id": "ch-1",
        "store_id": STORE,
        "transaction_token_id": "tok-1",
        "transaction_token_type": "one_time",
        "requested_amount": 1200,
        "requested_currency": "JPY",
        "charged_amount": None,
        "charged_currency": None,
        "status": "pending",
        "error": None,
        "metadata": {
            "paygate_konbini_store": "family_mart",
            "paygate_konbini_deadline": "2026-01-08T14:59:59.000000Z",
        },
        "mode": "test",
        # The konbini guide's awaiting charge: capture_at null, the slip in metadata.
        "capture_at": None,
        "created_on": "2026-01-01T01:00:00.000000Z",
    }
    obj.update(kw)
    return obj


def issued(**kw: Any) -> dict[str, Any]:
    meta = {
        "paygate_konbini_store": "family_mart",
        "paygate_konbini_deadline": "2026-01-08T14:59:59.000000Z",
        "internal_convenience_payment_number": "20020-123456789012",
    }
    kw.setdefault("status", "awaiting")
    return charge_obj(metadata=meta, **kw)


Script = dict[tuple[str, str], list[Reply]]


class Routed(ScriptedResponder):
    """Answers each call with the next reply scripted for its method and path."""

    def __init__(self, script: Script) -> None:
        super().__init__()
        self.script = script

    def next_answer(self, request: Any, where: str) -> Reply:
        method, path = where.split(" ", 1)
        queue = self.script.get((method, path))
        assert queue, f"unexpected call {where}"
        return queue.pop(0)


def scripted(script: Script, seen: list[Any]) -> Routed:
    responder = Routed(script)
    responder.calls = seen
    return responder


def konbini_request(**kw: Any) -> ChargeRequest:
    method = Konbini(
        store=kw.pop("store", "family_mart"),
        customer_name="テスト 太郎",
        phone=kw.pop("phone", "03-6441-3400"),
        email="demo@example.com",
        expires_in=kw.pop("expires_in", timedelta(days=7)),
    )
    return ChargeRequest(amount=kw.pop("amount", Money.jpy(1200)), method=method, **kw)


CHARGE_PATH = f"/stores/{STORE}/charges/ch-1"


# ----------------------------------------------------------------------------- charge


def test_konbini_charge_creates_token_then_charge_then_polls(prov: UnivapayProvider) -> None:
    seen: list[Any] = []
    script: Script = {
        ("POST", "/tokens"): [reply(201, {"id": "tok-1", "payment_type": "konbini"})],
        ("POST", "/charges"): [reply(201, charge_obj())],
        ("GET", CHARGE_PATH): [reply(200, issued())],
    }
    charge = drive(prov.charge(konbini_request(), ctx()), scripted(script, seen))

    assert [c.step for c in seen] == ["tokens.create", "charges.create", "charges.poll"]
    token_call, charge_call, poll = seen
    assert token_call.retry is Retry.KEYED
    assert charge_call.retry is Retry.KEYED
    assert poll.retry is Retry.SAFE
    assert token_call.headers["Idempotency-Key"] == "pg-token-order-1042"
    assert charge_call.headers["Idempotency-Key"] == "pg-charge-order-1042"
    assert token_call.headers["Authorization"] == "Bearer flow_secret_value.h.p.s"
    assert "Idempotency-Key" not in poll.headers
    assert parse_qs(urlsplit(poll.url).query) == {"polling": ["true"]}
    assert poll.timeout is not None
    assert poll.timeout >= 60

    token_body = json.loads(token_call.content)
    assert token_body == {
        "payment_type": "konbini",
        "type": "one_time",
        "email": "demo@example.com",
        "data": {
            "customer_name": "テスト 太郎",
            "convenience_store": "family_mart",
            "phone_number": {"country_code": "81", "local_number": "0364413400"},
            "expiration_period": "P7D",
        },
    }
    charge_body = json.loads(charge_call.content)
    assert charge_body["transaction_token_id"] == "tok-1"
    assert charge_body["amount"] == 1200
    assert charge_body["currency"] == "JPY"
    # The deadline paygate owns: application day (1/1 JST) + 7 days, 23:59:59 JST.
    assert charge_body["capture_at"] == "2026-01-08T14:59:59.000000Z"
    assert charge_body["metadata"] == {
        "paygate_charge_id": "pgch_1",
        "paygate_konbini_store": "family_mart",
        "paygate_konbini_deadline": "2026-01-08T14:59:59.000000Z",
    }

    assert charge.id == "pgch_1"
    assert charge.provider_ref == "ch-1"
    assert charge.provider == "univapay"
    assert charge.account == "konbini"
    assert charge.method == "konbini"
    assert charge.status is ChargeStatus.REQUIRES_ACTION
    assert charge.amount == Money.jpy(1200)
    assert charge.next_action == KonbiniSlip(
        store="family_mart",
        payment_number="20020-123456789012",
        expires_at=datetime(2026, 1, 8, 14, 59, 59, tzinfo=UTC),
    )


def test_request_bodies_are_deterministic(prov: UnivapayProvider) -> None:
    bodies: list[bytes | None] = []
    for _ in range(2):
        seen: list[Any] = []
        script: Script = {
            ("POST", "/tokens"): [reply(201, {"id": "tok-1"})],
            ("POST", "/charges"): [reply(201, issued())],
        }
        drive(prov.charge(konbini_request(), ctx()), scripted(script, seen))
        bodies.extend(c.content for c in seen)
    assert bodies[:2] == bodies[2:]


def test_charge_returns_unissued_slip_when_poll_fails(prov: UnivapayProvider) -> None:
    calls: list[str] = []

    def respond(call: Any) -> Reply:
        calls.append(call.step)
        if call.step == "tokens.create":
            return reply(201, {"id": "tok-1"})
        if call.step == "charges.create":
            return reply(201, charge_obj(metadata={"paygate_konbini_store": "lawson"}))
        raise TransportFailure("read timeout", sent=True, step=call.step)

    charge = drive(prov.charge(konbini_request(store="Lawson"), ctx()), respond)
    assert calls == ["tokens.create", "charges.create", "charges.poll"]
    assert charge.status is ChargeStatus.PENDING
    assert charge.next_action == KonbiniSlip(store="lawson", issued=False)


def test_charge_skips_poll_when_already_issued(prov: UnivapayProvider) -> None:
    seen: list[Any] = []
    script: Script = {
        ("POST", "/tokens"): [reply(201, {"id": "tok-1"})],
        ("POST", "/charges"): [reply(201, issued())],
    }
    charge = drive(prov.charge(konbini_request(), ctx()), scripted(script, seen))
    assert len(seen) == 2
    assert charge.status is ChargeStatus.REQUIRES_ACTION


def test_card_charge_uses_token_and_capture_flag(prov: UnivapayProvider) -> None:
    seen: list[Any] = []
    success = charge_obj(
        status="authorized", metadata={}, charged_amount=None, transaction_token_type="one_time"
    )
    script: Script = {
        ("POST", "/charges"): [reply(201, charge_obj(metadata={}))],
        ("GET", CHARGE_PATH): [reply(200, success)],
    }
    req = ChargeRequest(amount=Money.jpy(5000), method=Card(token="tok-card", capture=False))
    charge = drive(prov.charge(req, ctx()), scripted(script, seen))
    body = json.loads(seen[0].content)
    assert body["transaction_token_id"] == "tok-card"
    assert body["capture"] is False
    assert "paygate_konbini_store" not in body["metadata"]
    assert charge.method == "card"
    assert charge.status is ChargeStatus.AUTHORIZED
    assert charge.next_action is None


def test_card_decline_raises_with_provider_code(prov: UnivapayProvider) -> None:
    failed = charge_obj(
        status="failed",
        metadata={},
        error={"code": 306, "message": "CARD_REJECTED", "details": "declined"},
    )
    script: Script = {
        ("POST", "/charges"): [reply(201, charge_obj(metadata={}))],
        ("GET", CHARGE_PATH): [reply(200, failed)],
    }
    req = ChargeRequest(amount=Money.jpy(5000), method=Card(token="tok-card"))
    with pytest.raises(PaymentDeclined) as info:
        drive(prov.charge(req, ctx()), scripted(script, []))
    assert info.value.provider_code == "CARD_REJECTED"
    assert info.value.provider_message == "CARD_REJECTED - declined"
    assert info.value.provider == "univapay"


def test_failed_card_charge_read_later_is_a_failed_charge(prov: UnivapayProvider) -> None:
    failed = charge_obj(
        status="failed",
        metadata={},
        error={"code": 306, "message": "CARD_REJECTED", "details": "declined"},
    )
    ref = ChargeRef(charge_id="pgch_1", provider_ref="ch-1", method="card")
    charge = drive(prov.status(ref, ctx(None)), lambda call: reply(200, failed))
    assert charge.status is ChargeStatus.FAILED
    assert charge.failure is not None
    assert charge.failure.code == "CARD_REJECTED"
    assert charge.failure.message == "CARD_REJECTED - declined"


def test_description_and_metadata_are_sent(prov: UnivapayProvider) -> None:
    seen: list[Any] = []
    script: Script = {
        ("POST", "/tokens"): [reply(201, {"id": "tok-1"})],
        ("POST", "/charges"): [reply(201, issued())],
    }
    req = konbini_request(description="order 1042", metadata={"order": "1042"})
    drive(prov.charge(req, ctx()), scripted(script, seen))
    meta = json.loads(seen[1].content)["metadata"]
    assert meta["order"] == "1042"
    assert meta["paygate_description"] == "order 1042"


# ----------------------------------------------------------------------------- status


@pytest.mark.parametrize(
    ("obj", "expected"),
    [
        (charge_obj(metadata={"paygate_konbini_store": "lawson"}), ChargeStatus.PENDING),
        (issued(), ChargeStatus.REQUIRES_ACTION),
        (charge_obj(status="awaiting"), ChargeStatus.REQUIRES_ACTION),
        (issued(status="pending"), ChargeStatus.REQUIRES_ACTION),
        (
            charge_obj(status="successful", charged_amount=1200, charged_currency="JPY"),
            ChargeStatus.SUCCEEDED,
        ),
        (charge_obj(status="failed"), ChargeStatus.FAILED),
        (charge_obj(status="error"), ChargeStatus.FAILED),
        (charge_obj(status="canceled"), ChargeStatus.CANCELED),
        # 313 is a card authorisation that expired before capture, not a slip deadline.
        (
            charge_obj(status="failed", error={"code": 313, "message": "CHARGE_EXPIRED"}),
            ChargeStatus.FAILED,
        ),
        (charge_obj(status="failed", error={"code": 323}), ChargeStatus.EXPIRED),
        (
            charge_obj(status="failed", error={"message": "payment period expired"}),
            ChargeStatus.FAILED,
        ),
        (charge_obj(status="failed", capture_at="2025-12-31T00:00:00Z"), ChargeStatus.EXPIRED),
        # An issued slip fails only by running out; its error is undocumented (null or
        # an object): expired under both readings.
        (issued(status="failed"), ChargeStatus.EXPIRED),
        (issued(status="failed", error={"code": 309, "message": "X"}), ChargeStatus.EXPIRED),
        (charge_obj(status="something_new"), ChargeStatus.PENDING),
    ],
)
def test_status_mapping(
    prov: UnivapayProvider, obj: dict[str, Any], expected: ChargeStatus
) -> None:
    ref = ChargeRef(charge_id="pgch_1", provider_ref="ch-1", method="konbini")
    charge = drive(prov.status(ref, ctx(None)), lambda call: reply(200, obj))
    assert charge.status is expected


def test_card_failure_named_expired_card_is_not_an_expiry(prov: UnivapayProvider) -> None:
    obj = charge_obj(status="failed", metadata={}, error={"code": 304, "message": "CARD_EXPIRED"})
    ref = ChargeRef(charge_id="pgch_1", provider_ref="ch-1", method="card")
    charge = drive(prov.status(ref, ctx(None)), lambda call: reply(200, obj))
    assert charge.status is ChargeStatus.FAILED


def test_status_of_paid_card_charge_reads_refunds(prov: UnivapayProvider) -> None:
    seen: list[Any] = []
    paid = charge_obj(status="successful", metadata={}, charged_amount=5000, charged_currency="JPY")
    refunds = {
        "items": [
            {"id": "rf-2", "amount": 500, "currency": "JPY", "status": "successful"},
            {"id": "rf-1", "amount": 700, "currency": "JPY", "status": "failed"},
        ],
        "has_more": False,
    }
    script: Script = {
        ("GET", CHARGE_PATH): [reply(200, paid)],
        ("GET", f"{CHARGE_PATH}/refunds"): [reply(200, refunds)],
    }
    ref = ChargeRef(charge_id="pgch_1", provider_ref="ch-1", method="card")
    charge = drive(prov.status(ref, ctx(None)), scripted(script, seen))
    assert [c.step for c in seen] == ["charges.get", "refunds.list"]
    assert charge.status is ChargeStatus.PARTIALLY_REFUNDED
    assert charge.amount_refunded == Money.jpy(500)
    assert charge.refundable == Money.jpy(4500)


def test_slip_for_seven_eleven_carries_url(prov: UnivapayProvider) -> None:
    meta = {
        "paygate_konbini_store": "seven_eleven",
        "internal_convenience_payment_number": "1234567890123",
        "internal_convenience_payment_url": "https://example.invalid/slip/1",
    }
    obj = charge_obj(status="awaiting", metadata=meta)
    ref = ChargeRef(charge_id="pgch_1", provider_ref="ch-1", method="konbini")
    charge = drive(prov.status(ref, ctx(None)), lambda call: reply(200, obj))
    slip = charge.next_action
    assert isinstance(slip, KonbiniSlip)
    assert slip.store == "seven_eleven"
    assert slip.url == "https://example.invalid/slip/1"
    assert slip.confirmation_number is None


def test_awaiting_without_details_is_issued_without_number(prov: UnivapayProvider) -> None:
    ref = ChargeRef(charge_id="pgch_1", provider_ref="ch-1", method="konbini")
    charge = drive(
        prov.status(ref, ctx(None)), lambda call: reply(200, charge_obj(status="awaiting"))
    )
    assert charge.next_action == KonbiniSlip(
        store="family_mart", issued=True, expires_at=datetime(2026, 1, 8, 14, 59, 59, tzinfo=UTC)
    )


def test_wait_status_long_polls_pending_and_declines_awaiting(prov: UnivapayProvider) -> None:
    pending_ref = ChargeRef(
        charge_id="pgch_1", provider_ref="ch-1", method="konbini", raw={"status": "pending"}
    )
    flow = prov.wait_status(pending_ref, ctx(None), timeout=600)
    assert flow is not None
    seen: list[Any] = []
    charge = drive(flow, scripted({("GET", CHARGE_PATH): [reply(200, issued())]}, seen))
    assert seen[0].step == "charges.poll"
    assert "polling=true" in seen[0].url
    assert seen[0].timeout >= 60
    assert charge.status is ChargeStatus.REQUIRES_ACTION

    awaiting_ref = ChargeRef(
        charge_id="pgch_1", provider_ref="ch-1", method="konbini", raw={"status": "awaiting"}
    )
    assert prov.wait_status(awaiting_ref, ctx(None), timeout=600) is None
    unknown_ref = ChargeRef(charge_id="pgch_1", provider_ref="ch-1", method="konbini")
    assert prov.wait_status(unknown_ref, ctx(None), timeout=600) is not None


# ----------------------------------------------------------------------------- cancel


def test_cancel_posts_cancel_waits_and_reads_charge(prov: UnivapayProvider) -> None:
    seen: list[Any] = []
    script: Script = {
        ("POST", f"{CHARGE_PATH}/cancels"): [
            reply(201, {"id": "cn-1", "charge_id": "ch-1", "status": "pending"})
        ],
        ("GET", f"{CHARGE_PATH}/cancels/cn-1"): [
            reply(200, {"id": "cn-1", "charge_id": "ch-1", "status": "successful"})
        ],
        ("GET", CHARGE_PATH): [reply(200, charge_obj(status="canceled"))],
    }
    ref = ChargeRef(charge_id="pgch_1", provider_ref="ch-1", method="konbini")
    charge = drive(
        prov.cancel(CancelRequest(charge=ref), ctx("order-1042-cancel")), scripted(script, seen)
    )
    assert [c.step for c in seen] == ["cancels.create", "cancels.poll", "charges.get"]
    assert seen[0].headers["Idempotency-Key"] == "pg-cancel-order-1042-cancel"
    assert seen[0].retry is Retry.KEYED
    assert charge.status is ChargeStatus.CANCELED


def test_cancel_of_paid_konbini_keeps_provider_code(prov: UnivapayProvider) -> None:
    error = {"status": "error", "code": "CANCEL_NOT_ALLOWED", "errors": []}
    ref = ChargeRef(charge_id="pgch_1", provider_ref="ch-1", method="konbini")
    with pytest.raises(ProviderRejected) as info:
        drive(prov.cancel(CancelRequest(charge=ref), ctx()), lambda call: reply(400, error))
    assert info.value.provider_code == "CANCEL_NOT_ALLOWED"
    assert info.value.http_status == 400


def test_failed_cancel_raises(prov: UnivapayProvider) -> None:
    script: Script = {
        ("POST", f"{CHARGE_PATH}/cancels"): [
            reply(
                201,
                {
                    "id": "cn-1",
                    "status": "failed",
                    "error": {"code": 312, "message": "CANCEL_UNAVAILABLE"},
                },
            )
        ],
    }
    ref = ChargeRef(charge_id="pgch_1", provider_ref="ch-1", method="card")
    with pytest.raises(ProviderRejected) as info:
        drive(prov.cancel(CancelRequest(charge=ref), ctx()), scripted(script, []))
    assert info.value.provider_code == "CANCEL_UNAVAILABLE"


# ----------------------------------------------------------------------------- refund


def test_konbini_refund_is_not_supported_before_any_call(prov: UnivapayProvider) -> None:
    ref = ChargeRef(
        charge_id="pgch_1", provider_ref="ch-1", method="konbini", amount=Money.jpy(1200)
    )
    with pytest.raises(NotSupported) as info:
        prov.validate_refund(RefundRequest(charge=ref, amount=Money.jpy(100)))
    assert info.value.capability == "refund"
    assert info.value.alternative is not None
    assert "cancel" in info.value.alternative


def test_konbini_refund_detected_from_raw_metadata(prov: UnivapayProvider) -> None:
    ref = ChargeRef(
        charge_id="pgch_1",
        provider_ref="ch-1",
        method="",
        raw={"metadata": {"paygate_konbini_store": "lawson"}},
    )
    with pytest.raises(NotSupported):
        prov.validate_refund(RefundRequest(charge=ref))


def test_card_partial_refund(prov: UnivapayProvider) -> None:
    seen: list[Any] = []
    path = f"{CHARGE_PATH}/refunds"
    script: Script = {
        ("POST", path): [
            reply(
                201,
                {
                    "id": "rf-1",
                    "charge_id": "ch-1",
                    "amount": 500,
                    "currency": "JPY",
                    "status": "pending",
                },
            )
        ],
        ("GET", f"{path}/rf-1"): [
            reply(
                200,
                {
                    "id": "rf-1",
                    "charge_id": "ch-1",
                    "amount": 500,
                    "currency": "JPY",
                    "status": "successful",
                    "created_on": "2026-01-01T01:00:00Z",
                },
            )
        ],
    }
    ref = ChargeRef(charge_id="pgch_1", provider_ref="ch-1", method="card", amount=Money.jpy(5000))
    refund = drive(
        prov.refund(
            RefundRequest(charge=ref, amount=Money.jpy(500), reason="requested_by_customer"),
            ctx("order-7-r1"),
        ),
        scripted(script, seen),
    )
    assert [c.step for c in seen] == ["refunds.create", "refunds.poll"]
    assert seen[0].headers["Idempotency-Key"] == "pg-refund-order-7-r1"
    assert json.loads(seen[0].content) == {
        "amount": 500,
        "currency": "JPY",
        "reason": "customer_request",
    }
    assert refund.status is RefundStatus.SUCCEEDED
    assert refund.amount == Money.jpy(500)
    assert refund.charge_id == "pgch_1"
    assert refund.provider_ref == "rf-1"


def test_full_refund_reads_charge_first(prov: UnivapayProvider) -> None:
    seen: list[Any] = []
    paid = charge_obj(status="successful", metadata={}, charged_amount=5000, charged_currency="JPY")
    path = f"{CHARGE_PATH}/refunds"
    script: Script = {
        ("GET", CHARGE_PATH): [reply(200, paid)],
        ("GET", path): [reply(200, {"items": [], "has_more": False})],
        ("POST", path): [
            reply(201, {"id": "rf-1", "amount": 5000, "currency": "JPY", "status": "successful"})
        ],
    }
    ref = ChargeRef(charge_id="pgch_1", provider_ref="ch-1", method="card")
    refund = drive(prov.refund(RefundRequest(charge=ref), ctx("r")), scripted(script, seen))
    assert json.loads(seen[-1].content)["amount"] == 5000
    assert refund.amount == Money.jpy(5000)


def test_refund_reason_outside_enum_goes_to_message(prov: UnivapayProvider) -> None:
    seen: list[Any] = []
    path = f"{CHARGE_PATH}/refunds"
    script: Script = {
        ("POST", path): [
            reply(201, {"id": "rf-1", "amount": 1, "currency": "JPY", "status": "successful"})
        ]
    }
    ref = ChargeRef(charge_id="pgch_1", provider_ref="ch-1", method="card", amount=Money.jpy(5000))
    drive(
        prov.refund(
            RefundRequest(charge=ref, amount=Money.jpy(1), reason="damaged item"), ctx("r")
        ),
        scripted(script, seen),
    )
    assert json.loads(seen[0].content) == {
        "amount": 1,
        "currency": "JPY",
        "reason": "customer_request",
        "message": "damaged item",
    }


@pytest.mark.parametrize(
    ("amount", "param"),
    [(Money.jpy(0), "amount"), (Money.jpy(6000), "amount"), (Money(100, "USD"), "currency")],
)
def test_refund_amount_checked_before_sending(
    prov: UnivapayProvider, amount: Money, param: str
) -> None:
    from paygate import InvalidRequest

    ref = ChargeRef(charge_id="pgch_1", provider_ref="ch-1", method="card", amount=Money.jpy(5000))
    with pytest.raises(InvalidRequest) as info:
        prov.validate_refund(RefundRequest(charge=ref, amount=amount))
    assert info.value.param == param


# ----------------------------------------------------------------------------- capture


def test_capture_posts_amount_then_reads(prov: UnivapayProvider) -> None:
    seen: list[Any] = []
    paid = charge_obj(status="successful", metadata={}, charged_amount=3000, charged_currency="JPY")
    script: Script = {
        ("POST", f"{CHARGE_PATH}/capture"): [reply(200, {})],
        ("GET", CHARGE_PATH): [reply(200, paid)],
        ("GET", f"{CHARGE_PATH}/refunds"): [reply(200, {"items": [], "has_more": False})],
    }
    ref = ChargeRef(charge_id="pgch_1", provider_ref="ch-1", method="card", amount=Money.jpy(5000))
    charge = drive(
        prov.capture(CaptureRequest(charge=ref, amount=Money.jpy(3000)), ctx("c")),
        scripted(script, seen),
    )
    assert seen[0].headers["Idempotency-Key"] == "pg-capture-c"
    assert json.loads(seen[0].content) == {"amount": 3000, "currency": "JPY"}
    assert charge.amount_captured == Money.jpy(3000)


def test_capture_of_konbini_not_supported(prov: UnivapayProvider) -> None:
    ref = ChargeRef(charge_id="pgch_1", provider_ref="ch-1", method="konbini")
    with pytest.raises(NotSupported):
        next(prov.capture(CaptureRequest(charge=ref), ctx("c")))


# ----------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("status", "body", "cls", "code"),
    [
        (
            409,
            {"status": "error", "code": "IDEMPOTENCY_KEY_CONFLICT", "errors": []},
            IdempotencyConflict,
            "IDEMPOTENCY_KEY_CONFLICT",
        ),
        (
            400,
            {"status": "error", "code": "CHARGE_TOO_QUICK", "errors": []},
            RateLimited,
            "CHARGE_TOO_QUICK",
        ),
        (429, {}, RateLimited, "TOO_MANY_REQUESTS"),
        (
            401,
            {"status": "error", "code": "INVALID_APP_TOKEN", "errors": []},
            AuthenticationError,
            "INVALID_APP_TOKEN",
        ),
        (
            403,
            {"status": "error", "code": "CARD_LOCKED", "errors": []},
            PaymentDeclined,
            "CARD_LOCKED",
        ),
        (404, {"status": "error", "code": "NOT_FOUND", "errors": []}, NotFound, "NOT_FOUND"),
        (
            400,
            {"status": "error", "code": "TRANSACTION_TOKEN_EXPIRED", "errors": []},
            ProviderRejected,
            "TRANSACTION_TOKEN_EXPIRED",
        ),
        (
            500,
            {"status": "error", "code": "UNABLE_TO_GET_IDEMPOTENT_RESULT", "errors": []},
            OutcomeUnknown,
            "UNABLE_TO_GET_IDEMPOTENT_RESULT",
        ),
        (
            503,
            {"status": "error", "code": "SERVICE_UNAVAILABLE_TRY_AGAIN", "errors": []},
            ProviderUnavailable,
            "SERVICE_UNAVAILABLE_TRY_AGAIN",
        ),
        (502, None, ProviderUnavailable, "TIMEOUT"),
        # Over-limit as a 400 (older api-limits page; Node SDK code name): a throttle.
        (
            400,
            {"status": "error", "code": "RATE_LIMIT_EXCEEDED", "errors": []},
            RateLimited,
            "RATE_LIMIT_EXCEEDED",
        ),
        # "Not supported by the connected gateway system": a definitive refusal ...
        (
            504,
            {"status": "error", "code": "NO_GATEWAY_AVAILABLE_TO_PROCESS_THE_REQUEST"},
            ProviderRejected,
            "NO_GATEWAY_AVAILABLE_TO_PROCESS_THE_REQUEST",
        ),
        # ... but a bare 504 from a proxy is an outage.
        (504, None, ProviderUnavailable, "NO_GATEWAY_AVAILABLE_TO_PROCESS_THE_REQUEST"),
    ],
)
def test_error_mapping(
    prov: UnivapayProvider, status: int, body: Any, cls: type, code: str
) -> None:
    with pytest.raises(cls) as info:
        drive(
            prov.charge(konbini_request(), ctx()), lambda call: reply(status, body, retry_after="3")
        )
    err = info.value
    assert err.provider_code == code
    assert err.provider == "univapay"
    assert err.http_status == status
    if isinstance(err, RateLimited):
        assert err.retry_after == 3.0
        assert err.retryable


def test_validation_error_keeps_fields_and_reasons(prov: UnivapayProvider) -> None:
    body = {
        "status": "error",
        "code": "VALIDATION_ERROR",
        "errors": [{"field": "amount", "reason": "INVALID_FORMAT"}],
    }
    with pytest.raises(ProviderRejected) as info:
        drive(prov.charge(konbini_request(), ctx()), lambda call: reply(400, body))
    assert info.value.provider_code == "VALIDATION_ERROR"
    assert info.value.provider_message == "amount: INVALID_FORMAT"
    assert "tokens.create" in str(info.value)


def test_conflicting_key_status_header_is_a_conflict(prov: UnivapayProvider) -> None:
    with pytest.raises(IdempotencyConflict):
        drive(
            prov.charge(konbini_request(), ctx()),
            lambda call: reply(201, {"id": "tok"}, idempotency_status="conflicting_key"),
        )


def test_errors_hide_credentials(prov: UnivapayProvider) -> None:
    body = {
        "status": "error",
        "code": "INVALID_APP_TOKEN",
        "errors": [{"field": "authorization", "reason": "Bearer flow_secret_value.h.p.s"}],
    }
    with pytest.raises(AuthenticationError) as info:
        drive(prov.charge(konbini_request(), ctx()), lambda call: reply(401, body))
    assert "flow_secret_value" not in str(info.value)
    assert "flow_secret_value" not in repr(info.value)


def test_classify(prov: UnivapayProvider) -> None:
    too_quick = reply(400, {"status": "error", "code": "CHARGE_TOO_QUICK"})
    decision = prov.classify(too_quick)
    assert decision is not None
    assert decision.retry
    limited = prov.classify(reply(429, {}, retry_after="2"))
    assert limited is not None
    assert limited.retry
    assert limited.after == 2.0
    over = prov.classify(reply(400, {"status": "error", "code": "RATE_LIMIT_EXCEEDED"}))
    assert over is not None
    assert over.retry
    assert prov.classify(reply(400, {"status": "error", "code": "VALIDATION_ERROR"})) is None
    assert prov.classify(reply(500, {})) is None


# ----------------------------------------------------------------------------- payouts


def test_payout_balance_from_open_transfers_and_ledgers(prov: UnivapayProvider) -> None:
    transfers = {
        "items": [
            {
                "id": "tr-3",
                "amount": 9000,
                "currency": "JPY",
                "status": "paid",
                "created_on": "2025-12-01T00:00:00Z",
            },
            {
                "id": "tr-2",
                "amount": 700,
                "currency": "JPY",
                "status": "approved",
                "created_on": "2026-01-05T00:00:00Z",
            },
            {
                "id": "tr-1",
                "amount": 1500,
                "currency": "JPY",
                "status": "created",
                "created_on": "2026-01-03T00:00:00Z",
            },
        ],
        "has_more": False,
    }
    ledgers_1 = {
        "items": [
            {"id": "lg-1", "amount": 2000, "currency": "JPY", "origin": "charge"},
            {"id": "lg-2", "amount": -500, "currency": "JPY", "origin": "refund", "note": "refund"},
        ],
        "has_more": False,
    }
    ledgers_2 = {
        "items": [{"id": "lg-3", "amount": 700, "currency": "JPY", "origin": "charge"}],
        "has_more": False,
    }
    seen: list[Any] = []
    script: Script = {
        ("GET", "/transfers"): [reply(200, transfers)],
        ("GET", "/transfers/tr-1/ledgers"): [reply(200, ledgers_1)],
        ("GET", "/transfers/tr-2/ledgers"): [reply(200, ledgers_2)],
    }
    balance = drive(prov.payout_balance(ctx(None)), scripted(script, seen))
    assert all(c.retry is Retry.SAFE for c in seen)
    assert balance.scheduled == Money.jpy(2200)
    assert balance.collecting == Money.jpy(0)
    assert balance.owed == Money.jpy(0)
    assert balance.next_payout_date == date(2026, 1, 3)
    assert balance.next_payout_amount == Money.jpy(1500)
    assert [(i.kind, i.amount.amount, i.state) for i in balance.items] == [
        ("charge", 2000, "created"),
        ("refund", -500, "created"),
        ("charge", 700, "approved"),
    ]
    assert balance.as_of == NOW


def test_payout_balance_follows_cursor(prov: UnivapayProvider) -> None:
    seen: list[Any] = []
    page1 = {
        "items": [{"id": "tr-1", "amount": 1, "currency": "JPY", "status": "paid"}],
        "has_more": True,
    }
    page2 = {
        "items": [{"id": "tr-0", "amount": 1, "currency": "JPY", "status": "paid"}],
        "has_more": False,
    }
    script: Script = {("GET", "/transfers"): [reply(200, page1), reply(200, page2)]}
    balance = drive(prov.payout_balance(ctx(None)), scripted(script, seen))
    assert "cursor=tr-1" in seen[1].url
    assert balance.scheduled == Money.jpy(0)


# ----------------------------------------------------------------------------- description


def test_capabilities_and_policies(prov: UnivapayProvider) -> None:
    caps = prov.capabilities()
    konbini = caps.method("konbini")
    assert konbini is not None
    assert konbini.refund == "none"
    assert konbini.cancel
    assert konbini.refund_alternative == "cancel an unpaid slip"
    card = caps.method("card")
    assert card is not None
    assert card.refund == "partial"
    assert card.capture
    assert caps.long_poll
    assert caps.payout_balance
    assert caps.webhooks
    assert caps.webhook_auth == "token"
    for op in (Operation.CHARGE, Operation.CANCEL, Operation.REFUND):
        policy = prov.policy(op)
        assert policy.key == "header"
        assert policy.key_window == timedelta(hours=24)
    assert prov.policy(Operation.CHARGE).lookup


def test_outcome_classes(prov: UnivapayProvider) -> None:
    used = ProviderRejected("x", provider="univapay", provider_code="TRANSACTION_ALREADY_PROCESSED")
    assert prov.outcome_of(used) is Outcome.MAYBE_DONE
    gateway = ProviderRejected(
        "x", provider="univapay", provider_code="NO_GATEWAY_AVAILABLE_TO_PROCESS_THE_REQUEST"
    )
    assert prov.outcome_of(gateway) is None
    assert default_outcome(gateway) is Outcome.REFUSED
    assert default_outcome(RateLimited("x", provider_code="RATE_LIMIT_EXCEEDED")) is (
        Outcome.RETRYABLE
    )


# ----------------------------------------------------------------------------- lookup


def test_lookup_konbini_charge_by_metadata(prov: UnivapayProvider) -> None:
    seen: list[Any] = []
    other = issued(id="ch-0")
    ours = issued()
    ours["metadata"] = {**ours["metadata"], "paygate_charge_id": "pgch_1"}
    listing = {"items": [other, ours], "has_more": False}
    script: Script = {("GET", f"/stores/{STORE}/charges"): [reply(200, listing)]}
    found = drive(prov.lookup_charge(konbini_request(), ctx()), scripted(script, seen))
    assert found is not None
    assert found.provider_ref == "ch-1"
    assert found.status is ChargeStatus.REQUIRES_ACTION
    (call,) = seen
    assert parse_qs(urlsplit(call.url).query)["metadata"] == ["paygate_charge_id: pgch_1"]


def test_lookup_card_charge_by_token_and_not_found(prov: UnivapayProvider) -> None:
    seen: list[Any] = []
    someone_else = charge_obj(metadata={"paygate_charge_id": "pgch_9"}, transaction_token_id="t")
    script: Script = {
        ("GET", f"/stores/{STORE}/charges"): [reply(200, {"items": [someone_else]})],
    }
    req = ChargeRequest(amount=Money.jpy(500), method=Card(token="tok-card"))
    assert drive(prov.lookup_charge(req, ctx()), scripted(script, seen)) is None
    query = parse_qs(urlsplit(seen[0].url).query)
    assert query["transaction_token_id"] == ["tok-card"]
    assert "metadata" not in query


def test_used_token_after_a_lost_answer_finds_the_first_charge(prov: UnivapayProvider) -> None:
    """The token POST replays (same key) and the charge POST says the token is used: the
    charge carrying paygate's id is the first attempt's, not a refusal."""
    seen: list[Any] = []
    used = {"status": "error", "code": "TRANSACTION_ALREADY_PROCESSED", "errors": []}
    ours = issued()
    ours["metadata"] = {**ours["metadata"], "paygate_charge_id": "pgch_1"}
    script: Script = {
        ("POST", "/tokens"): [
            reply(201, {"id": "tok-1"}, idempotency_status="retrieved_idempotent_response")
        ],
        ("POST", "/charges"): [reply(400, used)],
        ("GET", f"/stores/{STORE}/charges"): [reply(200, {"items": [ours], "has_more": False})],
    }
    charge = drive(prov.charge(konbini_request(), ctx()), scripted(script, seen))
    assert charge.provider_ref == "ch-1"
    assert charge.status is ChargeStatus.REQUIRES_ACTION
    assert parse_qs(urlsplit(seen[-1].url).query)["transaction_token_id"] == ["tok-1"]


def test_used_token_of_someone_else_stays_a_refusal(prov: UnivapayProvider) -> None:
    used = {"status": "error", "code": "TRANSACTION_ALREADY_PROCESSED", "errors": []}
    script: Script = {
        ("POST", "/charges"): [reply(400, used)],
        ("GET", f"/stores/{STORE}/charges"): [reply(200, {"items": [], "has_more": False})],
    }
    req = ChargeRequest(amount=Money.jpy(500), method=Card(token="tok-card"))
    with pytest.raises(ProviderRejected) as info:
        drive(prov.charge(req, ctx()), scripted(script, []))
    assert info.value.provider_code == "TRANSACTION_ALREADY_PROCESSED"


def test_payment_error_311_is_a_throttle_not_a_decline(prov: UnivapayProvider) -> None:
    failed = charge_obj(
        status="failed",
        metadata={},
        error={"code": 311, "message": "TOO_MANY_CHARGE_REQUESTS", "detail": None},
    )
    script: Script = {("POST", "/charges"): [reply(201, failed)]}
    req = ChargeRequest(amount=Money.jpy(500), method=Card(token="tok-card"))
    with pytest.raises(RateLimited) as info:
        drive(prov.charge(req, ctx()), scripted(script, []))
    assert info.value.provider_code == "TOO_MANY_CHARGE_REQUESTS"


def recording(bodies: list[dict[str, Any]]) -> Any:
    """A responder issuing a token and a konbini charge, keeping every charge body sent."""

    def respond(call: Any) -> Reply:
        if urlsplit(call.url).path == "/charges":
            bodies.append(json.loads(call.content))
            return reply(201, issued())
        return reply(201, {"id": "tok-1"})

    return respond


def test_konbini_deadline_is_remembered_under_the_key(prov: UnivapayProvider) -> None:
    """A re-send a day later sends the same capture_at (UnivaPay compares the request)."""
    cache: dict[str, Any] = {}
    bodies: list[dict[str, Any]] = []

    drive(prov.charge(konbini_request(), ctx()), recording(bodies), cache)
    later = OpContext(
        account="konbini",
        provider="univapay",
        idempotency_key="order-1042",
        charge_id="pgch_1",
        now=lambda: NOW + timedelta(days=1),
    )
    drive(prov.charge(konbini_request(), later), recording(bodies), cache)
    assert bodies[0]["capture_at"] == bodies[1]["capture_at"] == "2026-01-08T14:59:59.000000Z"


def test_konbini_deadline_comes_from_when_the_key_was_begun(prov: UnivapayProvider) -> None:
    """Under the gateway every attempt shares ``started_at``: the same capture_at on a
    re-send a day later, and nothing written to or read from the store for it."""
    cache: dict[str, Any] = {}
    bodies: list[dict[str, Any]] = []

    first = ctx(started_at=NOW)
    drive(prov.charge(konbini_request(), first), recording(bodies), cache)
    later = OpContext(
        account="konbini",
        provider="univapay",
        idempotency_key="order-1042",
        charge_id="pgch_1",
        started_at=NOW,
        now=lambda: NOW + timedelta(days=1),
    )
    drive(prov.charge(konbini_request(), later), recording(bodies), cache)
    assert bodies[0]["capture_at"] == bodies[1]["capture_at"] == "2026-01-08T14:59:59.000000Z"
    assert not [key for key in cache if "konbini-deadline" in key]


def test_a_recovering_attempt_keeps_a_deadline_an_older_paygate_remembered(
    prov: UnivapayProvider,
) -> None:
    """A key begun by a paygate that stored the deadline is re-sent with that deadline."""
    memo = f"univapay:konbini-deadline:konbini:{ctx().provider_key('charge')}"
    cache: dict[str, Any] = {memo: "2026-01-09T14:59:59.000000Z"}
    bodies: list[dict[str, Any]] = []

    drive(
        prov.charge(konbini_request(), ctx(started_at=NOW, recovering=True)),
        recording(bodies),
        cache,
    )
    assert bodies[0]["capture_at"] == "2026-01-09T14:59:59.000000Z"


def test_sub_day_expiry_becomes_whole_days(prov: UnivapayProvider) -> None:
    seen: list[Any] = []
    script: Script = {
        ("POST", "/tokens"): [reply(201, {"id": "tok-1"})],
        ("POST", "/charges"): [reply(201, issued())],
    }
    drive(
        prov.charge(konbini_request(expires_in=timedelta(minutes=30)), ctx()),
        scripted(script, seen),
    )
    token_body = json.loads(seen[0].content)
    assert token_body["data"]["expiration_period"] == "P1D"
    assert json.loads(seen[1].content)["capture_at"] == "2026-01-02T14:59:59.000000Z"


def test_no_expiry_sends_no_deadline_but_keeps_the_default(prov: UnivapayProvider) -> None:
    seen: list[Any] = []
    script: Script = {
        ("POST", "/tokens"): [reply(201, {"id": "tok-1"})],
        ("POST", "/charges"): [reply(201, issued())],
    }
    drive(prov.charge(konbini_request(expires_in=None), ctx()), scripted(script, seen))
    assert "expiration_period" not in json.loads(seen[0].content)["data"]
    body = json.loads(seen[1].content)
    assert "capture_at" not in body
    # UnivaPay's default period (30 days) from the 1/1 application.
    assert body["metadata"]["paygate_konbini_deadline"] == "2026-01-31T14:59:59.000000Z"


def test_pay_easy_slip(prov: UnivapayProvider) -> None:
    obj = issued()
    obj["metadata"] = {**obj["metadata"], "paygate_konbini_store": "pay_easy"}
    ref = ChargeRef(charge_id="pgch_1", provider_ref="ch-1", method="konbini")
    charge = drive(prov.status(ref, ctx(None)), lambda call: reply(200, obj))
    slip = charge.next_action
    assert isinstance(slip, KonbiniSlip)
    assert slip.payment_number == "20020-123456789012"
    assert slip.institution_number == "58091"
    # Never passed off as the confirmation number.
    assert slip.confirmation_number is None


def test_settings_read_store_from_jwt_and_hide_secrets() -> None:
    import base64

    claims = base64.urlsafe_b64encode(json.dumps({"store_id": STORE}).encode()).decode().rstrip("=")
    settings = UnivapaySettings(secret="abcd1234", jwt=f"x.{claims}.y")
    assert settings.store_id == STORE
    assert "abcd1234" not in repr(settings)
    with pytest.raises(ValueError, match="store_id"):
        UnivapaySettings(secret="abcd1234", jwt="x.y.z")
    with pytest.raises(ConfigurationError, match="https"):
        UnivapaySettings(
            store_id=STORE, secret="abcd1234", jwt="a.b.c", base_url="http://api.univapay.com"
        )


def test_call_repr_hides_headers(prov: UnivapayProvider) -> None:
    flow = prov.charge(konbini_request(), ctx())
    call = next(flow)
    assert "flow_secret_value" not in repr(call)
    assert "0364413400" not in repr(call)
