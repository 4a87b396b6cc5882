"""Flow unit tests: no sockets, canned PAY.JP answers fed through `drive`."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from datetime import date
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from paygate import (
    AuthenticationError,
    Card,
    ChargeStatus,
    IdempotencyConflict,
    InvalidRequest,
    MalformedResponse,
    Money,
    NotFound,
    OutcomeUnknown,
    PaymentDeclined,
    ProviderRejected,
    ProviderUnavailable,
    RateLimited,
    Redirect,
    RefundStatus,
)
from paygate.adapter import (
    Call,
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
    drive,
)
from paygate_payjp import KEY_WINDOW, PayjpProvider
from paygate_payjp._api import Api, idempotency_key
from paygate_payjp._errors import CODE_MAP, error_from_reply, provider_ref_of

# The documented v1 error-code catalogue (every code must map to a typed error).
CATALOGUE = [
    "invalid_number",
    "invalid_cvc",
    "invalid_expiration_date",
    "incorrect_card_data",
    "invalid_expiry_month",
    "invalid_expiry_year",
    "expired_card",
    "card_declined",
    "card_flagged",
    "processing_error",
    "missing_card",
    "unacceptable_brand",
    "invalid_id",
    "no_api_key",
    "invalid_api_key",
    "invalid_plan",
    "invalid_expiry_days",
    "unnecessary_expiry_days",
    "invalid_flexible_id",
    "invalid_timestamp",
    "invalid_trial_end",
    "invalid_string_length",
    "invalid_country",
    "invalid_currency",
    "invalid_address_zip",
    "invalid_amount",
    "invalid_plan_amount",
    "invalid_card",
    "invalid_card_name",
    "invalid_card_country",
    "invalid_card_address_zip",
    "invalid_card_address_state",
    "invalid_card_address_city",
    "invalid_card_address_line",
    "invalid_customer",
    "invalid_boolean",
    "invalid_email",
    "no_allowed_param",
    "no_param",
    "invalid_querystring",
    "missing_param",
    "invalid_param_key",
    "no_payment_method",
    "payment_method_duplicate",
    "payment_method_duplicate_including_customer",
    "failed_payment",
    "invalid_refund_amount",
    "already_refunded",
    "invalid_amount_to_not_captured",
    "refund_amount_gt_net",
    "capture_amount_gt_net",
    "invalid_refund_reason",
    "already_captured",
    "cant_capture_refunded_charge",
    "cant_reauth_refunded_charge",
    "charge_expired",
    "already_exist_id",
    "token_already_used",
    "already_have_card",
    "dont_has_this_card",
    "doesnt_have_card",
    "already_have_the_same_card",
    "invalid_interval",
    "invalid_trial_days",
    "invalid_billing_day",
    "billing_day_for_non_monthly_plan",
    "exist_subscribers",
    "already_subscribed",
    "already_canceled",
    "already_paused",
    "subscription_worked",
    "cannot_change_prorate_status",
    "too_many_metadata_keys",
    "invalid_metadata_key",
    "invalid_metadata_value",
    "apple_pay_disabled_in_livemode",
    "invalid_apple_pay_token",
    "test_card_on_livemode",
    "not_activated_account",
    "payjp_wrong",
    "pg_wrong",
    "not_found",
    "not_allowed_method",
    "over_capacity",
    "refund_limit_exceeded",
    "cannot_prorated_refund_of_subscription",
    "three_d_secure_incompleted",
    "three_d_secure_failed",
    "not_in_three_d_secure_flow",
    # https://pay.jp/info/2024/11/08/110000/: added 2024-11-21.
    "three_d_secure_expired",
    "unverified_token",
    "invalid_owner_type",
]


def charge_obj(**changes: Any) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "object": "charge",
        "id": "ch_1",
        "livemode": False,
        "created": 1768014000,
        "amount": 1000,
        "currency": "jpy",
        "paid": True,
        "captured": True,
        "captured_at": 1768014000,
        "refunded": False,
        "amount_refunded": 0,
        "failure_code": None,
        "failure_message": None,
        "three_d_secure_status": None,
        "metadata": {},
    }
    obj.update(changes)
    return obj


def reply(status: int, body: Any, **headers: str) -> Reply:
    return Reply(status, headers, json.dumps(body).encode(), provider="payjp")


def error(status: int, code: str, kind: str = "client_error", **extra: Any) -> Reply:
    body = {"error": {"status": status, "code": code, "type": kind, "message": "msg", **extra}}
    return reply(status, body)


def form(call: Call) -> dict[str, str]:
    assert call.content is not None
    return {k: v[0] for k, v in parse_qs(call.content.decode(), keep_blank_values=True).items()}


def params(call: Call) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(call.url).query).items()}


class Script:
    """Answers calls in order and records them."""

    def __init__(self, *answers: Reply | Callable[[Call], Reply]) -> None:
        self.answers = list(answers)
        self.calls: list[Call] = []

    def __call__(self, call: Call) -> Reply:
        self.calls.append(call)
        answer = self.answers.pop(0)
        return answer(call) if callable(answer) else answer


def card_request(**changes: Any) -> ChargeRequest:
    method = changes.pop("method", Card(token="tok_success"))
    return ChargeRequest(amount=changes.pop("amount", Money.jpy(1000)), method=method, **changes)


def ref(**changes: Any) -> ChargeRef:
    data: dict[str, Any] = {
        "charge_id": "pg_ch_1",
        "provider_ref": "ch_1",
        "method": "card",
        "amount": Money.jpy(1000),
    }
    data.update(changes)
    return ChargeRef(**data)


# ----------------------------------------------------------------------- charge create


def test_charge_call_shape_and_mapping(provider: PayjpProvider, make_ctx: Any) -> None:
    script = Script(reply(200, charge_obj()))
    req = card_request(description="order 1", metadata={"order": "1"})
    charge = drive(provider.charge(req, make_ctx()), script)
    (call,) = script.calls
    assert call.method == "POST"
    assert call.url == "https://api.pay.jp/v1/charges"
    assert call.retry is Retry.KEYED
    assert call.step == "charges.create"
    assert call.headers["Idempotency-Key"] == "pg-charge-order-1"
    assert call.headers["Content-Type"] == "application/x-www-form-urlencoded"
    user = base64.b64decode(call.headers["Authorization"].split()[1]).decode()
    assert user == f"{provider.config.secret_key.get_secret_value()}:"
    assert form(call) == {
        "amount": "1000",
        "currency": "jpy",
        "card": "tok_success",
        "capture": "true",
        "description": "order 1",
        "metadata[order]": "1",
    }
    assert charge.status is ChargeStatus.SUCCEEDED
    assert charge.id == "pg_ch_1"
    assert charge.provider_ref == "ch_1"
    assert charge.amount == Money.jpy(1000)
    assert charge.amount_captured == Money.jpy(1000)
    assert charge.account == "card"
    assert charge.provider == "payjp"


def test_authorize_only_and_customer(provider: PayjpProvider, make_ctx: Any) -> None:
    script = Script(reply(200, charge_obj(captured=False, captured_at=None, customer="cus_1")))
    req = card_request(method=Card(customer="cus_1", capture=False))
    charge = drive(provider.charge(req, make_ctx()), script)
    body = form(script.calls[0])
    assert body["customer"] == "cus_1"
    assert body["capture"] == "false"
    assert "card" not in body
    assert charge.status is ChargeStatus.AUTHORIZED
    assert charge.amount_captured is None


def test_tenant_is_sent_when_configured(settings_factory: Any, make_ctx: Any) -> None:
    provider = PayjpProvider(settings_factory(tenant="ten_1"), account="card")
    script = Script(reply(200, charge_obj(tenant="ten_1")))
    drive(provider.charge(card_request(), make_ctx()), script)
    assert form(script.calls[0])["tenant"] == "ten_1"


def test_three_d_secure_gives_redirect(provider: PayjpProvider, make_ctx: Any) -> None:
    obj = charge_obj(paid=False, captured=False, three_d_secure_status="unverified")
    script = Script(reply(200, obj))
    req = card_request(method=Card(token="tok_success", three_d_secure=True))
    charge = drive(provider.charge(req, make_ctx()), script)
    assert form(script.calls[0])["three_d_secure"] == "true"
    assert charge.status is ChargeStatus.REQUIRES_ACTION
    assert isinstance(charge.next_action, Redirect)
    assert charge.next_action.url.startswith("https://api.pay.jp/v1/tds/ch_1/start?publickey=pk_")


def test_status_finishes_verified_three_d_secure(provider: PayjpProvider, make_ctx: Any) -> None:
    verified = charge_obj(paid=False, captured=False, three_d_secure_status="verified")
    script = Script(reply(200, verified), reply(200, charge_obj(three_d_secure_status="verified")))
    charge = drive(provider.status(ref(), make_ctx(key=None)), script)
    assert [c.step for c in script.calls] == ["charges.get", "charges.tds_finish"]
    assert script.calls[0].retry is Retry.SAFE
    assert script.calls[1].url.endswith("/v1/charges/ch_1/tds_finish")
    assert script.calls[1].headers["Idempotency-Key"] == "pg-tds-finish-ch_1"
    assert charge.status is ChargeStatus.SUCCEEDED


@pytest.mark.parametrize(
    ("obj", "status"),
    [
        (charge_obj(), ChargeStatus.SUCCEEDED),
        # https://pay.jp/docs/refund: refunded is true after any refund, partial or full.
        (charge_obj(amount_refunded=300, refunded=True), ChargeStatus.PARTIALLY_REFUNDED),
        (charge_obj(amount_refunded=1000, refunded=True), ChargeStatus.REFUNDED),
        (charge_obj(captured=False), ChargeStatus.AUTHORIZED),
        (charge_obj(captured=False, refunded=True, amount_refunded=1000), ChargeStatus.CANCELED),
        # Past expired_at the authorisation is released, marked refunded or not.
        (
            charge_obj(captured=False, refunded=True, amount_refunded=1000, expired_at=1768000000),
            ChargeStatus.EXPIRED,
        ),
        (charge_obj(captured=False, expired_at=1768000000), ChargeStatus.EXPIRED),
        (charge_obj(captured=False, expired_at=1768100000), ChargeStatus.AUTHORIZED),
        (charge_obj(paid=False, captured=False, failure_code="card_declined"), ChargeStatus.FAILED),
        (
            charge_obj(paid=False, captured=False, three_d_secure_status="failed"),
            ChargeStatus.FAILED,
        ),
        (
            charge_obj(paid=False, captured=False, three_d_secure_status="unverified"),
            ChargeStatus.REQUIRES_ACTION,
        ),
        (charge_obj(paid=False, captured=False), ChargeStatus.PENDING),
    ],
)
def test_status_mapping(
    provider: PayjpProvider, make_ctx: Any, obj: dict[str, Any], status: ChargeStatus
) -> None:
    charge = drive(provider.status(ref(), make_ctx(key=None)), Script(reply(200, obj)))
    assert charge.status is status
    if status is ChargeStatus.FAILED:
        assert charge.failure is not None
        assert charge.failure.code


# ---------------------------------------------------------------------------- errors


def test_decline_keeps_code_and_message(provider: PayjpProvider, make_ctx: Any) -> None:
    answer = error(402, "card_declined", "card_error", param="card", charge="ch_9")
    with pytest.raises(PaymentDeclined) as info:
        drive(provider.charge(card_request(), make_ctx()), Script(answer))
    err = info.value
    assert err.provider_code == "card_declined"
    assert err.provider_message == "msg"
    assert err.http_status == 402
    assert err.provider == "payjp"
    assert not err.retryable


def test_over_capacity_is_retryable_rate_limit(provider: PayjpProvider, make_ctx: Any) -> None:
    body = {
        "error": {
            "code": "over_capacity",
            "message": "The service is over capacity. Please try again later.",
            "status": 429,
            "type": "client_error",
        }
    }
    answer = reply(429, body, **{"retry-after": "3"})
    assert provider.classify(answer) is not None
    assert provider.classify(answer).retry  # type: ignore[union-attr]
    assert provider.classify(answer).after == 3.0  # type: ignore[union-attr]
    assert provider.classify(reply(200, {})) is None
    with pytest.raises(RateLimited) as info:
        drive(provider.charge(card_request(), make_ctx()), Script(answer))
    assert info.value.retryable
    assert info.value.retry_after == 3.0
    assert info.value.provider_code == "over_capacity"


@pytest.mark.parametrize(
    ("answer", "cls"),
    [
        (error(401, "invalid_api_key", "auth_error"), AuthenticationError),
        (error(404, "invalid_id"), NotFound),
        (error(400, "already_refunded"), ProviderRejected),
        (error(409, "idempotency_conflict"), IdempotencyConflict),
        (error(500, "pg_wrong", "server_error"), ProviderUnavailable),
        (error(400, "some_new_code"), ProviderRejected),
        (error(402, "some_new_code", "card_error"), PaymentDeclined),
        (Reply(502, {}, b"<html>bad gateway</html>"), ProviderUnavailable),
        (Reply(418, {}, b"teapot"), MalformedResponse),
    ],
)
def test_error_classes(answer: Reply, cls: type[Exception]) -> None:
    assert type(error_from_reply(answer)) is cls


@pytest.mark.parametrize("code", CATALOGUE)
def test_every_catalogue_code_is_mapped(code: str) -> None:
    assert code in CODE_MAP
    err = error_from_reply(error(400, code))
    assert err.provider_code == code
    assert err.provider_message == "msg"


def test_transport_failure_propagates(provider: PayjpProvider, make_ctx: Any) -> None:
    def fail(call: Call) -> Reply:
        raise TransportFailure("reset", sent=True, step=call.step)

    with pytest.raises(TransportFailure):
        drive(provider.charge(card_request(), make_ctx()), fail)


def test_unexpected_object_is_malformed(provider: PayjpProvider, make_ctx: Any) -> None:
    with pytest.raises(MalformedResponse):
        drive(provider.charge(card_request(), make_ctx()), Script(reply(200, {"object": "x"})))


# ------------------------------------------------------------- capture, cancel, refund


@pytest.mark.parametrize("wire_amount", [1000, 600], ids=["amount-kept", "amount-captured"])
def test_partial_capture(provider: PayjpProvider, make_ctx: Any, wire_amount: int) -> None:
    # payjp-go Capture: the released 400 is booked in amount_refunded. Whether ``amount``
    # stays 1000 or becomes 600 is not stated: both read the same.
    answer = charge_obj(amount=wire_amount, amount_refunded=400)
    script = Script(reply(200, answer))
    cache: dict[str, Any] = {}
    req = CaptureRequest(charge=ref(), amount=Money.jpy(600))
    charge = drive(provider.capture(req, make_ctx(key="order-1-cap")), script, cache)
    (call,) = script.calls
    assert call.url.endswith("/v1/charges/ch_1/capture")
    assert call.headers["Idempotency-Key"] == "pg-capture-order-1-cap"
    assert form(call) == {"amount": "600"}
    assert charge.status is ChargeStatus.SUCCEEDED
    assert charge.amount == Money.jpy(1000)
    assert charge.amount_captured == Money.jpy(600)
    assert charge.amount_refunded == Money.jpy(0)
    assert charge.refundable == Money.jpy(600)
    # Every later reading remembers the release: a 100 refund is 100, not 500.
    later = charge_obj(amount=wire_amount, amount_refunded=500, refunded=True)
    read = drive(provider.status(ref(), make_ctx(key=None)), Script(reply(200, later)), cache)
    assert read.status is ChargeStatus.PARTIALLY_REFUNDED
    assert read.amount_refunded == Money.jpy(100)
    assert read.refundable == Money.jpy(500)


def test_partial_capture_read_from_the_record_without_the_memo(
    provider: PayjpProvider, make_ctx: Any
) -> None:
    later = charge_obj(amount_refunded=1000, refunded=True)
    known = ref(amount_captured=Money.jpy(600), amount_refunded=Money.jpy(0))
    read = drive(provider.status(known, make_ctx(key=None)), Script(reply(200, later)))
    assert read.status is ChargeStatus.REFUNDED
    assert read.amount_refunded == Money.jpy(600)


def test_capture_below_the_minimum_is_refused(provider: PayjpProvider, make_ctx: Any) -> None:
    with pytest.raises(InvalidRequest) as info:
        provider.capture(CaptureRequest(charge=ref(), amount=Money.jpy(49)), make_ctx())
    assert info.value.param == "amount"


def test_capture_more_than_authorised_is_refused(provider: PayjpProvider, make_ctx: Any) -> None:
    with pytest.raises(InvalidRequest) as info:
        provider.capture(CaptureRequest(charge=ref(), amount=Money.jpy(1001)), make_ctx())
    assert info.value.param == "amount"


def test_cancel_voids_an_authorisation(provider: PayjpProvider, make_ctx: Any) -> None:
    authorised = charge_obj(captured=False)
    voided = charge_obj(captured=False, refunded=True, amount_refunded=1000)
    script = Script(reply(200, authorised), reply(200, voided))
    charge = drive(provider.cancel(CancelRequest(charge=ref()), make_ctx(key="c1")), script)
    assert [c.step for c in script.calls] == ["charges.get", "charges.void"]
    assert script.calls[1].url.endswith("/v1/charges/ch_1/refund")
    assert form(script.calls[1]) == {}
    assert charge.status is ChargeStatus.CANCELED


def test_cancel_of_cancelled_sends_nothing(provider: PayjpProvider, make_ctx: Any) -> None:
    voided = charge_obj(captured=False, refunded=True, amount_refunded=1000)
    script = Script(reply(200, voided))
    charge = drive(provider.cancel(CancelRequest(charge=ref()), make_ctx()), script)
    assert len(script.calls) == 1
    assert charge.status is ChargeStatus.CANCELED


def test_cancel_of_captured_charge_is_refused(provider: PayjpProvider, make_ctx: Any) -> None:
    script = Script(reply(200, charge_obj()))
    with pytest.raises(InvalidRequest, match="refund it instead"):
        drive(provider.cancel(CancelRequest(charge=ref()), make_ctx()), script)
    assert len(script.calls) == 1


def test_partial_refund(provider: PayjpProvider, make_ctx: Any) -> None:
    script = Script(
        reply(200, charge_obj()), reply(200, charge_obj(amount_refunded=300, refunded=True))
    )
    req = RefundRequest(charge=ref(), amount=Money.jpy(300), reason="damaged")
    refund = drive(provider.refund(req, make_ctx(key="r1")), script)
    assert [c.step for c in script.calls] == ["charges.get", "charges.refund"]
    call = script.calls[1]
    assert call.url.endswith("/v1/charges/ch_1/refund")
    # v1 documents no key semantics for /refund: the driver never re-sends it blind.
    assert call.retry is Retry.UNSAFE
    assert call.headers["Idempotency-Key"] == "pg-refund-r1"
    assert form(call) == {"amount": "300", "refund_reason": "damaged"}
    assert refund.amount == Money.jpy(300)
    assert refund.status is RefundStatus.SUCCEEDED
    assert refund.reason == "damaged"
    assert refund.charge_id == "pg_ch_1"
    assert refund.charge_refunded_total == Money.jpy(300)


def test_refund_more_than_refundable_is_refused_before_sending(
    provider: PayjpProvider, make_ctx: Any
) -> None:
    script = Script(reply(200, charge_obj(amount_refunded=800, refunded=True)))
    req = RefundRequest(charge=ref(), amount=Money.jpy(300))
    with pytest.raises(InvalidRequest, match="refundable"):
        drive(provider.refund(req, make_ctx(key="r9")), script)
    assert [c.step for c in script.calls] == ["charges.get"]


def test_full_refund_reads_the_charge_first(provider: PayjpProvider, make_ctx: Any) -> None:
    script = Script(
        reply(200, charge_obj(amount_refunded=300, refunded=True)),
        reply(200, charge_obj(amount_refunded=1000, refunded=True)),
    )
    refund = drive(provider.refund(RefundRequest(charge=ref()), make_ctx(key="r2")), script)
    assert [c.step for c in script.calls] == ["charges.get", "charges.refund"]
    assert form(script.calls[1]) == {}
    assert refund.amount == Money.jpy(700)
    assert refund.charge_refunded_total == Money.jpy(1000)


def test_refund_error_keeps_code(provider: PayjpProvider, make_ctx: Any) -> None:
    req = RefundRequest(charge=ref(), amount=Money.jpy(300))
    with pytest.raises(ProviderRejected) as info:
        drive(
            provider.refund(req, make_ctx()),
            Script(reply(200, charge_obj()), error(400, "refund_amount_gt_net")),
        )
    assert info.value.provider_code == "refund_amount_gt_net"


# --------------------------------------------------------------- lost answers: lookups


def test_lookup_refund_compares_the_refunded_total(provider: PayjpProvider, make_ctx: Any) -> None:
    req = RefundRequest(charge=ref(amount_refunded=Money.jpy(200)), amount=Money.jpy(300))
    ctx = make_ctx(key="r1")
    # Grown from 200 to 500: the refund happened.
    grown = reply(200, charge_obj(amount_refunded=500, refunded=True))
    found = drive(provider.lookup_refund(req, ctx), Script(grown))
    assert found is not None
    assert found.amount == Money.jpy(300)
    assert found.charge_refunded_total == Money.jpy(500)
    # Unchanged: it did not (paygate then sends it).
    same = reply(200, charge_obj(amount_refunded=200, refunded=True))
    assert drive(provider.lookup_refund(req, ctx), Script(same)) is None
    # Smaller than before: nothing can be concluded.
    smaller = reply(200, charge_obj(amount_refunded=100, refunded=True))
    with pytest.raises(OutcomeUnknown):
        drive(provider.lookup_refund(req, ctx), Script(smaller))


def test_lookup_refund_prefers_the_reading_taken_before_the_attempt(
    provider: PayjpProvider, make_ctx: Any
) -> None:
    # paygate's record says 0, but PAY.JP had 200 before this refund (a dashboard refund):
    # the pre-read, not the record, is what the lookup compares against.
    cache: dict[str, Any] = {}
    req = RefundRequest(charge=ref(amount_refunded=Money.jpy(0)), amount=Money.jpy(300))
    ctx = make_ctx(key="r1")
    before = reply(200, charge_obj(amount_refunded=200, refunded=True))

    def lost(call: Call) -> Reply:
        raise TransportFailure("reset after sending", sent=True)

    with pytest.raises(TransportFailure):
        drive(provider.refund(req, ctx), Script(before, lost), cache)
    unchanged = reply(200, charge_obj(amount_refunded=200, refunded=True))
    assert drive(provider.lookup_refund(req, ctx), Script(unchanged), cache) is None


def test_lookup_capture_and_cancel(provider: PayjpProvider, make_ctx: Any) -> None:
    cache: dict[str, Any] = {}
    req = CaptureRequest(charge=ref(), amount=Money.jpy(600))
    open_auth = reply(200, charge_obj(captured=False, captured_at=None))
    assert drive(provider.lookup_capture(req, make_ctx(key="c1")), Script(open_auth)) is None
    done = reply(200, charge_obj(amount_refunded=400))
    found = drive(provider.lookup_capture(req, make_ctx(key="c1")), Script(done), cache)
    assert found is not None
    assert (found.amount_captured, found.amount_refunded) == (Money.jpy(600), Money.jpy(0))
    memo = {"authorized": 1000, "captured": 600, "released": 400}
    assert cache["payjp:capture:card:ch_1"] == memo
    void = CancelRequest(charge=ref())
    assert drive(provider.lookup_cancel(void, make_ctx(key="v1")), Script(open_auth)) is None
    voided = reply(200, charge_obj(captured=False, refunded=True, amount_refunded=1000))
    canceled = drive(provider.lookup_cancel(void, make_ctx(key="v1")), Script(voided))
    assert canceled is not None
    assert canceled.status is ChargeStatus.CANCELED


def test_refusals_that_may_mean_done_are_declared(provider: PayjpProvider) -> None:
    for code in ("already_refunded", "refund_amount_gt_net", "already_captured"):
        err = ProviderRejected("x", provider="payjp", provider_code=code)
        assert provider.outcome_of(err) is Outcome.MAYBE_DONE
    busy = ProviderRejected("x", provider="payjp", provider_code="three_d_secure_incompleted")
    assert provider.outcome_of(busy) is Outcome.RETRYABLE


# ------------------------------------------------------------------ 3-D Secure ends


def test_a_402_at_tds_finish_is_a_failed_charge(provider: PayjpProvider, make_ctx: Any) -> None:
    cache: dict[str, Any] = {}
    verified = reply(200, charge_obj(paid=False, captured=False, three_d_secure_status="verified"))
    declined = error(402, "card_declined", "card_error", charge="ch_1")
    charge = drive(provider.status(ref(), make_ctx(key=None)), Script(verified, declined), cache)
    assert charge.status is ChargeStatus.FAILED
    assert charge.failure is not None
    assert charge.failure.code == "card_declined"
    script = Script(verified)
    again = drive(provider.status(ref(), make_ctx(key=None)), script, cache)
    assert again.status is ChargeStatus.FAILED
    assert [c.step for c in script.calls] == ["charges.get"]


@pytest.mark.parametrize("code", ["three_d_secure_expired", "not_in_three_d_secure_flow"])
def test_an_expired_flow_is_expired(provider: PayjpProvider, make_ctx: Any, code: str) -> None:
    verified = reply(200, charge_obj(paid=False, captured=False, three_d_secure_status="verified"))
    charge = drive(provider.status(ref(), make_ctx(key=None)), Script(verified, error(400, code)))
    assert charge.status is ChargeStatus.EXPIRED


def test_an_unverified_flow_is_probed_only_past_the_timeout(
    provider: PayjpProvider, make_ctx: Any
) -> None:
    fresh = charge_obj(paid=False, captured=False, three_d_secure_status="unverified")
    script = Script(reply(200, fresh))
    waiting = drive(provider.status(ref(), make_ctx(key=None)), script)
    assert waiting.status is ChargeStatus.REQUIRES_ACTION
    assert [c.step for c in script.calls] == ["charges.get"]
    old = dict(fresh, created=1768014000 - 31 * 60)
    still_open = error(400, "three_d_secure_incompleted")
    script = Script(reply(200, old), still_open)
    probed = drive(provider.status(ref(), make_ctx(key=None)), script)
    assert probed.status is ChargeStatus.REQUIRES_ACTION
    assert script.calls[1].headers["Idempotency-Key"].startswith("pg-tds-probe-ch_1-")
    dead = drive(
        provider.status(ref(), make_ctx(key=None)),
        Script(reply(200, old), error(400, "three_d_secure_expired")),
    )
    assert dead.status is ChargeStatus.EXPIRED


def test_a_decline_keeps_the_failed_charge_id(provider: PayjpProvider, make_ctx: Any) -> None:
    declined = error(402, "card_declined", "card_error", charge="ch_failed")
    with pytest.raises(PaymentDeclined) as info:
        drive(provider.charge(card_request(), make_ctx()), Script(declined))
    assert provider_ref_of(info.value) == "ch_failed"
    assert "ch_failed" in str(info.value)


# ------------------------------------------------------------------------- policies


def test_policies_and_capabilities(provider: PayjpProvider) -> None:
    charge = provider.policy(Operation.CHARGE)
    assert (charge.key, charge.key_window, charge.lookup) == ("header", KEY_WINDOW, False)
    # v1 documents no key semantics for these: a lost answer is looked up first.
    for operation in (Operation.REFUND, Operation.CAPTURE, Operation.CANCEL):
        policy = provider.policy(operation)
        assert policy.key == "header"
        assert policy.key_window is None
        assert policy.lookup
    caps = provider.capabilities()
    card = caps.methods["card"]
    assert (card.refund, card.multiple_refunds, card.capture, card.cancel) == (
        "partial",
        True,
        True,
        True,
    )
    assert caps.payout_balance
    assert caps.webhook_auth == "token"
    assert (caps.min_amount, caps.max_amount) == (50, 9_999_999)


def test_idempotency_keys_never_collide() -> None:
    def key(merchant: str) -> str:
        return idempotency_key(
            OpContext(account="a", provider="payjp", idempotency_key=merchant), "x"
        )

    assert key("order-1") == "pg-x-order-1"
    assert key("order/1") != key("order_1")
    assert key("注文-1") != key("注文-2")
    long = key("k" * 400)
    assert len(long) <= 255
    for value in (key("order/1"), key("注文-1"), long):
        assert all(ch.isascii() and (ch.isalnum() or ch in "-_") for ch in value)


# --------------------------------------------------------------------------- payouts


def balance_obj(bid: str, state: str, net: int, **changes: Any) -> dict[str, Any]:
    statement = {
        "object": "statement",
        "id": f"st_{bid}",
        "type": "sales",
        "net": net,
        "balance_id": bid,
        "items": [{"subject": "gross_sales", "name": "売上", "amount": net, "tax_rate": "0.00"}],
    }
    obj: dict[str, Any] = {
        "object": "balance",
        "id": bid,
        "state": state,
        "net": net,
        "closed": False,
        "due_date": None,
        "statements": [statement],
    }
    obj.update(changes)
    return obj


def listing(data: list[dict[str, Any]], has_more: bool, url: str) -> Reply:
    return reply(
        200, {"object": "list", "data": data, "has_more": has_more, "count": len(data), "url": url}
    )


def test_payout_balance_pages_and_maps(provider: PayjpProvider, make_ctx: Any) -> None:
    due1, due2 = 1772204400, 1774882800  # 2026-02-28 and 2026-03-31 00:00 JST
    page1 = [
        balance_obj("ba_1", "collecting", 4000),
        balance_obj("ba_2", "transfer", 20000, due_date=due2),
    ]
    page2 = [
        # The older shape: ``type`` for the state, statements as a list object.
        {
            **balance_obj("ba_3", "transfer", 9750, due_date=due1),
            "state": None,
            "type": "transfer",
            "statements": {"object": "list", "data": []},
        },
        balance_obj("ba_4", "claim", -500, due_date=due1),
    ]
    term = {
        "object": "term",
        "id": "tm_1",
        "start_at": 1767193200,
        "end_at": 1769871600,
        "closed": False,
        "charge_count": 2,
        "refund_count": 0,
        "dispute_count": 0,
    }
    script = Script(
        listing(page1, True, "/v1/balances"),
        listing(page2, False, "/v1/balances"),
        listing([term], False, "/v1/terms"),
    )
    balance = drive(provider.payout_balance(make_ctx(key=None)), script)
    first, second, terms = script.calls
    assert params(first) == {"closed": "false", "owner": "merchant", "limit": "100", "offset": "0"}
    assert params(second)["offset"] == "2"
    assert urlsplit(terms.url).path == "/v1/terms"
    # From midnight UTC 100 days before the context's time (2026-01-10 03:00 UTC).
    assert params(terms)["since_start_at"] == str(1768014000 - 3 * 3600 - 100 * 86_400)
    assert all(c.retry is Retry.SAFE for c in script.calls)
    assert balance.collecting == Money.jpy(4000)
    assert balance.scheduled == Money.jpy(29750)
    assert balance.owed == Money.jpy(500)
    assert balance.next_payout_date == date(2026, 2, 28)
    assert balance.next_payout_amount == Money.jpy(9750)
    assert {item.reference for item in balance.items} == {"st_ba_1", "st_ba_2", "st_ba_4"}
    assert balance.raw["current_term"]["id"] == "tm_1"


def test_payout_balance_for_a_tenant(settings_factory: Any, make_ctx: Any) -> None:
    provider = PayjpProvider(settings_factory(tenant="ten_1"), account="card")
    script = Script(listing([], False, "/v1/balances"), listing([], False, "/v1/terms"))
    balance = drive(provider.payout_balance(make_ctx(key=None)), script)
    assert params(script.calls[0])["tenant"] == "ten_1"
    assert "owner" not in params(script.calls[0])
    assert balance.collecting == Money.jpy(0)
    assert balance.next_payout_date is None


def test_statements_are_paged_lazily(provider: PayjpProvider, make_ctx: Any) -> None:
    statements = [
        {"object": "statement", "id": f"st_{i}", "type": "sales", "net": i, "items": []}
        for i in range(3)
    ]
    script = Script(listing(statements, True, "/v1/statements"))
    flow = provider.payout_statements(make_ctx(key=None), type="sales", term="tm_1", max_items=2)
    result = drive(flow, script)
    assert [st.id for st in result] == ["st_0", "st_1"]
    assert len(script.calls) == 1  # has_more was true, but enough was read
    assert params(script.calls[0]) == {
        "type": "sales",
        "term": "tm_1",
        "limit": "100",
        "offset": "0",
    }


def test_statement_filters_are_checked(provider: PayjpProvider, make_ctx: Any) -> None:
    with pytest.raises(InvalidRequest):
        provider.payout_statements(make_ctx(), type="bonus")
    with pytest.raises(InvalidRequest):
        provider.payout_statements(make_ctx(), owner="someone")


def test_statement_urls(provider: PayjpProvider, make_ctx: Any) -> None:
    url = {"object": "statement_url", "url": "https://example.invalid/x", "expires": 1768017600}
    script = Script(reply(200, url))
    result = drive(
        provider.statement_urls(make_ctx(key=None), balance_id="ba_1", platformer=True), script
    )
    (call,) = script.calls
    assert call.url == "https://api.pay.jp/v1/balances/ba_1/statement_urls"
    assert call.retry is Retry.KEYED
    assert call.headers["Idempotency-Key"].startswith("pg-statement-url-ba_1-")
    assert form(call) == {"platformer": "true"}
    assert result.url == "https://example.invalid/x"
    with pytest.raises(InvalidRequest):
        provider.statement_urls(make_ctx(), statement_id="st_1", balance_id="ba_1")
    with pytest.raises(InvalidRequest):
        provider.statement_urls(make_ctx())


def test_paging_stops_on_empty_page_and_skips_repeats() -> None:
    api = Api("https://api.pay.jp", "sk_test_x")
    obj = {"object": "statement", "id": "st_1"}
    script = Script(
        listing([obj], True, "/v1/statements"),
        listing([obj], True, "/v1/statements"),
        listing([], True, "/v1/statements"),
    )
    result = drive(api.paged("/v1/statements", {}, step="s", page_size=1), script)
    assert result == [obj]
    assert [params(c)["offset"] for c in script.calls] == ["0", "1", "2"]
