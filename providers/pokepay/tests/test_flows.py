"""Flow unit tests: the calls each flow makes and how replies are mapped (no sockets)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from paygate import (
    AuthenticationError,
    Card,
    ChargeStatus,
    DisplayQR,
    IdempotencyConflict,
    InvalidRequest,
    MalformedResponse,
    Money,
    NotFound,
    NotSupported,
    PaymentDeclined,
    PermissionDenied,
    Product,
    ProviderRejected,
    ProviderUnavailable,
    QRCode,
    RateLimited,
    RefundStatus,
    Wallet,
)
from paygate.adapter import (
    CancelRequest,
    ChargeRef,
    ChargeRequest,
    OpContext,
    Operation,
    RefundRequest,
    Reply,
    Retry,
    TransportFailure,
    drive,
)
from paygate_pokepay import SANDBOX, PokepayProvider

CUSTOMER = SANDBOX.customers["funded"][0]
TXN = "9b7e3f0a-1c2d-4e5f-8a9b-0c1d2e3f4a5b"
TRAY = "4e5f6a7b-8c9d-4e0f-9a1b-2c3d4e5f6a7b"
TRAY_URL = f"https://www-sandbox.pokepay.jp/cashtrays/{TRAY}"
Ctx = Callable[..., OpContext]


def transaction(amount: int = 1200, *, refunded: bool = False, txn_id: str = TXN) -> dict[str, Any]:
    transfers = [
        {"id": "t1", "type": "payment", "amount": amount, "done_at": "2026-03-01T12:00:00+09:00"}
    ]
    if refunded:
        transfers.append(
            {
                "id": "t2",
                "type": "refund-payment",
                "amount": amount,
                "done_at": "2026-03-01T13:00:00+09:00",
            }
        )
    return {
        "id": txn_id,
        "type": "payment",
        "is_modified": refunded,
        "amount": float(amount),
        "money_amount": amount,
        "point_amount": 0,
        "done_at": "2026-03-01T12:00:00+09:00",
        "description": "",
        "transfers": transfers,
    }


def cashtray(
    *,
    amount: int = -1500,
    expires_at: str = "2026-03-01T12:30:00+09:00",
    canceled_at: str | None = None,
    attempt: dict[str, Any] | None = None,
    txn: dict[str, Any] | None = None,
) -> dict[str, Any]:
    return {
        "id": TRAY,
        "amount": amount,
        "description": "",
        "account": {},
        "expires_at": expires_at,
        "canceled_at": canceled_at,
        "token": TRAY_URL,
        "attempt": attempt,
        "transaction": txn,
    }


def wallet_req(amount: int = 1200, **over: Any) -> ChargeRequest:
    method = over.pop("method", Wallet(customer_id=CUSTOMER))
    return ChargeRequest(Money.jpy(amount), method, **over)


def never(call: Any) -> Reply:
    raise AssertionError(f"no call expected, got {call!r}")


# --------------------------------------------------------------------------- charge


def test_wallet_charge_call_and_mapping(
    provider: PokepayProvider, make_ctx: Ctx, fake: Any
) -> None:
    ctx = make_ctx()
    req = wallet_req(
        description="コーヒー豆",
        metadata={"order": "1042", "channel": "web"},
        method=Wallet(
            customer_id=CUSTOMER,
            products=(Product(name="豆", unit_price=600, quantity=2, code="4901234567894"),),
        ),
    )
    fake.then(lambda call, r: fake.sealed(200, transaction()))
    charge = drive(provider.charge(req, ctx), fake)

    (call,) = fake.calls
    assert call.method == "POST"
    assert call.url == "http://127.0.0.1/pokepay/transactions/payment"
    assert call.retry is Retry.KEYED
    assert call.step == "transactions.payment"
    request = fake.requests[0]
    assert request["outer"]["partner_client_id"] == SANDBOX.client_id
    assert request["outer"]["request_method"] == "POST"
    inner = request["inner"]
    assert inner["timestamp"] == "2026-03-01T12:00:00+09:00"
    assert inner["partner_call_id"] == "00000000-0000-4000-8000-000000000001"
    data = inner["request_data"]
    request_id = uuid.UUID(data["request_id"])
    assert request_id.version == 4  # documented as UUID V4
    assert request_id.variant == uuid.RFC_4122
    assert request_id == uuid.UUID(bytes=ctx.key_uuid("payment").bytes, version=4)
    assert "strategy" not in data  # Pokepay's default, point-preferred
    assert data["amount"] == 1200
    assert data["shop_id"] == SANDBOX.shop_id
    assert data["private_money_id"] == SANDBOX.private_money_id
    assert data["customer_id"] == CUSTOMER
    assert data["description"] == "コーヒー豆"
    assert json.loads(data["metadata"]) == {"order": "1042", "channel": "web"}
    assert data["products"] == [
        {
            "name": "豆",
            "unit_price": 600,
            "price": 1200,
            "quantity": 2,
            "is_discounted": False,
            "jan_code": "4901234567894",
        }
    ]

    assert charge.id == "ch_test"
    assert charge.provider == "pokepay"
    assert charge.account == "wallet"
    assert charge.method == "wallet"
    assert charge.provider_ref == f"transaction:{TXN}"
    assert charge.status is ChargeStatus.SUCCEEDED
    assert charge.amount == Money.jpy(1200)
    assert charge.amount_refunded == Money.jpy(0)
    assert charge.created_at.isoformat() == "2026-03-01T12:00:00+09:00"


def test_wallet_charge_is_deterministic(provider: PokepayProvider, make_ctx: Ctx) -> None:
    first = next(provider.charge(wallet_req(), make_ctx()))
    again = next(provider.charge(wallet_req(), make_ctx()))
    assert first.content == again.content
    other = next(provider.charge(wallet_req(), make_ctx("order-2")))
    assert other.content != first.content


def test_wallet_charge_uses_the_methods_private_money(
    provider: PokepayProvider, make_ctx: Ctx, fake: Any
) -> None:
    money = "11111111-2222-4333-8444-555555555555"
    fake.then(fake.sealed(200, transaction()))
    drive(
        provider.charge(
            wallet_req(method=Wallet(customer_id=CUSTOMER, private_money_id=money)), make_ctx()
        ),
        fake,
    )
    assert fake.requests[0]["inner"]["request_data"]["private_money_id"] == money
    assert "metadata" not in fake.requests[0]["inner"]["request_data"]


def test_wallet_charge_without_key_is_invalid(provider: PokepayProvider, make_ctx: Ctx) -> None:
    with pytest.raises(InvalidRequest) as info:
        drive(provider.charge(wallet_req(), make_ctx(None)), never)
    assert info.value.param == "idempotency_key"


def test_replayed_payment_of_another_amount_is_a_conflict(
    provider: PokepayProvider, make_ctx: Ctx, fake: Any
) -> None:
    fake.then(fake.sealed(200, transaction(999)))
    with pytest.raises(IdempotencyConflict):
        drive(provider.charge(wallet_req(1200), make_ctx()), fake)


def test_already_done_envelope_is_resent_fresh(
    provider: PokepayProvider, make_ctx: Ctx, fake: Any
) -> None:
    fake.then(
        fake.sealed(400, {"type": "partner_request_already_done", "message": "done"}),
        # Asked by request_id first: not created, so the payment is re-sent.
        fake.sealed(422, {"type": "transaction_not_found", "message": "not found"}),
        fake.sealed(200, transaction()),
    )
    charge = drive(provider.charge(wallet_req(), make_ctx()), fake)
    assert charge.status is ChargeStatus.SUCCEEDED
    first, lookup, second = (r["inner"] for r in fake.requests)
    assert first["partner_call_id"] != second["partner_call_id"]
    assert first["request_data"]["request_id"] == second["request_data"]["request_id"]
    assert lookup["partner_call_id"] not in (first["partner_call_id"], second["partner_call_id"])


def test_already_done_envelope_finds_the_payment_by_request_id(
    provider: PokepayProvider, make_ctx: Ctx, fake: Any
) -> None:
    fake.then(
        fake.sealed(400, {"type": "partner_request_already_done", "message": "done"}),
        fake.sealed(200, transaction()),
    )
    charge = drive(provider.charge(wallet_req(), make_ctx()), fake)
    assert charge.status is ChargeStatus.SUCCEEDED
    assert len(fake.requests) == 2  # the payment, then the lookup that found it


def test_transport_failure_propagates(provider: PokepayProvider, make_ctx: Ctx) -> None:
    def fail(call: Any) -> Reply:
        raise TransportFailure("reset", sent=True, step=call.step)

    with pytest.raises(TransportFailure):
        drive(provider.charge(wallet_req(), make_ctx()), fail)


def test_qr_charge_creates_a_cashtray(provider: PokepayProvider, make_ctx: Ctx, fake: Any) -> None:
    req = ChargeRequest(
        Money.jpy(1500), QRCode(expires_in=timedelta(minutes=10, seconds=0.5)), description="ランチ"
    )
    body = cashtray()
    del body["attempt"], body["transaction"]
    fake.then(fake.sealed(200, body))
    charge = drive(provider.charge(req, make_ctx()), fake)

    (call,) = fake.calls
    assert call.url.endswith("/cashtrays")
    assert call.retry is Retry.UNSAFE
    assert call.step == "cashtrays.create"
    data = fake.requests[0]["inner"]["request_data"]
    assert data == {
        "private_money_id": SANDBOX.private_money_id,
        "shop_id": SANDBOX.shop_id,
        "amount": -1500,
        "description": "ランチ",
        "expires_in": 600,
    }
    assert charge.method == "qr"
    assert charge.status is ChargeStatus.REQUIRES_ACTION
    assert charge.provider_ref == f"cashtray:{TRAY}"
    assert charge.amount == Money.jpy(1500)
    assert isinstance(charge.next_action, DisplayQR)
    assert charge.next_action.url == TRAY_URL
    assert charge.next_action.expires_at is not None
    assert charge.next_action.expires_at.isoformat() == "2026-03-01T12:30:00+09:00"


def test_qr_charge_without_token_is_malformed(
    provider: PokepayProvider, make_ctx: Ctx, fake: Any
) -> None:
    body = cashtray()
    body["token"] = None
    fake.then(fake.sealed(200, body))
    with pytest.raises(MalformedResponse):
        drive(provider.charge(ChargeRequest(Money.jpy(100), QRCode()), make_ctx()), fake)


# --------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("req", "param"),
    [
        (ChargeRequest(Money(1200, "USD"), Wallet(customer_id=CUSTOMER)), "amount"),
        (wallet_req(0), "amount"),
        (wallet_req(100_000_000), "amount"),
        (wallet_req(description="x" * 201), "description"),
        (wallet_req(metadata={"a": {"b": "c"}}), "metadata"),  # type: ignore[dict-item]
        (wallet_req(metadata={"a": 1}), "metadata"),  # type: ignore[dict-item]
        (wallet_req(metadata={"": "x"}), "metadata"),
        (wallet_req(metadata=[("a", "b")]), "metadata"),  # type: ignore[arg-type]
        (wallet_req(method=Wallet(customer_id="")), "method.customer_id"),
        (wallet_req(method=Wallet(customer_id="customer-1")), "method.customer_id"),
        (
            wallet_req(method=Wallet(customer_id=CUSTOMER, private_money_id="m")),
            "method.private_money_id",
        ),
        (
            wallet_req(
                method=Wallet(
                    customer_id=CUSTOMER, products=(Product(name="x" * 257, unit_price=1),)
                )
            ),
            "method.products[0].name",
        ),
        (
            wallet_req(
                method=Wallet(
                    customer_id=CUSTOMER, products=(Product(name="x", unit_price=1, code="9" * 65),)
                )
            ),
            "method.products[0].code",
        ),
        (
            wallet_req(
                method=Wallet(customer_id=CUSTOMER, products=(Product(name="x", unit_price=-1),))
            ),
            "method.products[0].unit_price",
        ),
        (
            wallet_req(
                method=Wallet(
                    customer_id=CUSTOMER, products=(Product(name="x", unit_price=1, quantity=0),)
                )
            ),
            "method.products[0].quantity",
        ),
        (ChargeRequest(Money.jpy(100), QRCode(), metadata={"a": "b"}), "metadata"),
        (
            ChargeRequest(Money.jpy(100), QRCode(products=(Product(name="x", unit_price=100),))),
            "method.products",
        ),
        (
            ChargeRequest(Money.jpy(100), QRCode(expires_in=timedelta(milliseconds=500))),
            "method.expires_in",
        ),
    ],
)
def test_invalid_requests_fail_before_any_call(
    provider: PokepayProvider, req: ChargeRequest, param: str
) -> None:
    # The gateway calls the hook before any call; the flows do not check again.
    with pytest.raises(InvalidRequest) as info:
        provider.validate_charge(req)
    assert info.value.param == param
    # The customer's id never appears in the message.
    assert CUSTOMER not in str(info.value)


def test_unsupported_method(provider: PokepayProvider) -> None:
    req = ChargeRequest(Money.jpy(100), Card(token="tok"))
    with pytest.raises(NotSupported) as info:
        provider.validate_charge(req)
    assert "Wallet" in str(info.value)


# --------------------------------------------------------------------------- errors

ERRORS = [
    (422, "account_balance_not_enough", PaymentDeclined),
    (422, "account_transfer_limit_exceeded", PaymentDeclined),
    (422, "account_suspended", PaymentDeclined),
    (422, "account_closed", PaymentDeclined),
    (422, "customer_account_not_found", NotFound),
    (422, "private_money_not_found", NotFound),
    (422, "shop_account_not_found", NotFound),
    (422, "request_id_conflict", IdempotencyConflict),
    (422, "invalid_metadata", ProviderRejected),
    (422, "reserved_word_can_not_specify_to_metadata", ProviderRejected),
    (422, "coupon_unavailable", ProviderRejected),
    (400, "invalid_parameters", ProviderRejected),
    (400, "invalid_parameter_something_new", ProviderRejected),
    (400, "partner_client_not_found", AuthenticationError),
    (400, "partner_decryption_failed", AuthenticationError),
    (403, "unpermitted_admin_user", PermissionDenied),
    (403, "", PermissionDenied),
    (404, "", NotFound),
    (422, "some_future_type", ProviderRejected),
    (429, "", RateLimited),
    (503, "temporarily_unavailable", ProviderUnavailable),
    (500, "", ProviderUnavailable),
]


@pytest.mark.parametrize("encrypted", [True, False], ids=["encrypted", "plain"])
@pytest.mark.parametrize(("status", "kind", "cls"), ERRORS)
def test_errors_are_mapped(
    provider: PokepayProvider,
    make_ctx: Ctx,
    fake: Any,
    encrypted: bool,
    status: int,
    kind: str,
    cls: type,
) -> None:
    body = {"type": kind, "message": "口座残高が不足してます"}
    fake.then(fake.sealed(status, body) if encrypted else fake.plain(status, body))
    with pytest.raises(cls) as info:
        drive(provider.charge(wallet_req(), make_ctx()), fake)
    err = info.value
    assert err.provider == "pokepay"
    assert err.provider_code == (kind or None)
    assert err.provider_message == "口座残高が不足してます"
    assert err.http_status == status


def test_error_without_json_body(provider: PokepayProvider, make_ctx: Ctx) -> None:
    reply = Reply(502, {"retry-after": "7"}, b"<html>bad gateway</html>")
    with pytest.raises(ProviderUnavailable) as info:
        drive(provider.charge(wallet_req(), make_ctx()), lambda call: reply)
    assert info.value.provider_code is None
    assert info.value.http_status == 502


def test_rate_limit_keeps_retry_after(provider: PokepayProvider, make_ctx: Ctx) -> None:
    reply = Reply(429, {"retry-after": "7"}, b"")
    with pytest.raises(RateLimited) as info:
        drive(provider.charge(wallet_req(), make_ctx()), lambda call: reply)
    assert info.value.retry_after == 7.0


@pytest.mark.parametrize(
    "outer",
    [
        {"response_data": "!!!not base64!!!"},
        {"response_data": "QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFB"},
        {"response_data": 12},
    ],
    ids=["bad-base64", "bad-ciphertext", "not-a-string"],
)
@pytest.mark.parametrize("status", [200, 422])
def test_bad_ciphertext_is_malformed(
    provider: PokepayProvider, make_ctx: Ctx, outer: dict[str, Any], status: int
) -> None:
    reply = Reply(status, {}, json.dumps(outer).encode())
    with pytest.raises(MalformedResponse) as info:
        drive(provider.charge(wallet_req(), make_ctx()), lambda call: reply)
    assert info.value.http_status == status


def test_ciphertext_of_non_json_is_malformed(
    provider: PokepayProvider, make_ctx: Ctx, fake: Any
) -> None:
    outer = {"response_data": fake.cipher.encrypt(b"not json")}
    reply = Reply(200, {}, json.dumps(outer).encode())
    with pytest.raises(MalformedResponse):
        drive(provider.charge(wallet_req(), make_ctx()), lambda call: reply)
    outer = {"response_data": fake.cipher.encrypt(b"[1, 2]")}
    with pytest.raises(MalformedResponse):
        drive(
            provider.charge(wallet_req(), make_ctx()),
            lambda call: Reply(200, {}, json.dumps(outer).encode()),
        )


def test_non_json_success_is_malformed(provider: PokepayProvider, make_ctx: Ctx) -> None:
    with pytest.raises(MalformedResponse):
        drive(provider.charge(wallet_req(), make_ctx()), lambda call: Reply(200, {}, b"<html>"))


def test_fractional_amount_is_malformed(
    provider: PokepayProvider, make_ctx: Ctx, fake: Any
) -> None:
    body = transaction()
    body["amount"] = 1200.5
    fake.then(fake.sealed(200, body))
    with pytest.raises(MalformedResponse):
        drive(provider.charge(wallet_req(), make_ctx()), fake)


# --------------------------------------------------------------------------- lookup


def test_lookup_finds_the_payment(provider: PokepayProvider, make_ctx: Ctx, fake: Any) -> None:
    ctx = make_ctx()
    fake.then(fake.sealed(200, transaction()))
    charge = drive(provider.lookup_charge(wallet_req(), ctx), fake)
    assert charge is not None
    assert charge.status is ChargeStatus.SUCCEEDED
    (call,) = fake.calls
    request_id = uuid.UUID(bytes=ctx.key_uuid("payment").bytes, version=4)
    assert call.url.endswith(f"/transactions/requests/{request_id}")
    assert call.retry is Retry.SAFE
    assert fake.requests[0]["outer"]["request_method"] == "GET"


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (422, {"type": "transaction_not_found", "message": "Transaction not found"}),
        (404, {"type": "notfound", "message": "Not found"}),
        (404, {"type": "api_error", "message": "Not Found"}),
    ],
    ids=["422-transaction_not_found", "404-notfound", "404-api_error"],
)
def test_lookup_not_created(
    provider: PokepayProvider, make_ctx: Ctx, fake: Any, status: int, body: Any
) -> None:
    fake.then(fake.sealed(status, body))
    assert drive(provider.lookup_charge(wallet_req(), make_ctx()), fake) is None


def test_lookup_other_errors_propagate(provider: PokepayProvider, make_ctx: Ctx, fake: Any) -> None:
    fake.then(
        fake.sealed(503, {"type": "temporarily_unavailable", "message": "Service Unavailable"})
    )
    with pytest.raises(ProviderUnavailable):
        drive(provider.lookup_charge(wallet_req(), make_ctx()), fake)


def test_lookup_qr_reports_not_created_without_io(provider: PokepayProvider, make_ctx: Ctx) -> None:
    assert (
        drive(provider.lookup_charge(ChargeRequest(Money.jpy(10), QRCode()), make_ctx()), never)
        is None
    )


def test_policies(provider: PokepayProvider) -> None:
    charge = provider.policy(Operation.CHARGE)
    assert charge.key == "body"
    assert charge.lookup
    # Request ids are "deleted after some period" (no duration stated).
    assert charge.key_window == "unknown"
    assert provider.policy(Operation.REFUND).key == "path"
    assert provider.policy(Operation.CANCEL).key == "path"
    assert not provider.policy(Operation.CAPTURE).keyed
    caps = provider.capabilities()
    assert set(caps.methods) == {"wallet", "qr"}
    assert caps.methods["wallet"].refund == "full"
    assert not caps.methods["wallet"].cancel
    assert caps.methods["qr"].cancel
    assert caps.methods["qr"].refund == "full"
    assert caps.payout_balance
    assert caps.currencies == ("JPY",)


# --------------------------------------------------------------------------- status


def wallet_ref(**over: Any) -> ChargeRef:
    data: dict[str, Any] = {
        "charge_id": "ch_1",
        "provider_ref": f"transaction:{TXN}",
        "method": "wallet",
        "amount": Money.jpy(1200),
    }
    data.update(over)
    return ChargeRef(**data)


def qr_ref(**over: Any) -> ChargeRef:
    data: dict[str, Any] = {
        "charge_id": "ch_1",
        "provider_ref": f"cashtray:{TRAY}",
        "method": "qr",
        "amount": Money.jpy(1500),
    }
    data.update(over)
    return ChargeRef(**data)


@pytest.mark.parametrize(
    ("refunded", "status"), [(False, ChargeStatus.SUCCEEDED), (True, ChargeStatus.REFUNDED)]
)
def test_wallet_status(
    provider: PokepayProvider, make_ctx: Ctx, fake: Any, refunded: bool, status: ChargeStatus
) -> None:
    fake.then(fake.sealed(200, transaction(refunded=refunded)))
    charge = drive(provider.status(wallet_ref(), make_ctx()), fake)
    assert charge.status is status
    assert charge.id == "ch_1"
    assert charge.amount_refunded == (Money.jpy(1200) if refunded else Money.jpy(0))
    assert fake.calls[0].url.endswith(f"/transactions/{TXN}")
    assert fake.requests[0]["outer"]["request_method"] == "GET"
    assert fake.requests[0]["inner"]["request_data"] == {}


def test_bare_uuid_ref_is_read_by_method(
    provider: PokepayProvider, make_ctx: Ctx, fake: Any
) -> None:
    fake.then(fake.sealed(200, transaction()), fake.sealed(200, cashtray()))
    drive(provider.status(wallet_ref(provider_ref=TXN), make_ctx()), fake)
    drive(provider.status(qr_ref(provider_ref=TRAY), make_ctx()), fake)
    assert fake.calls[0].url.endswith(f"/transactions/{TXN}")
    assert fake.calls[1].url.endswith(f"/cashtrays/{TRAY}")


@pytest.mark.parametrize("ref", ["transaction:../../users", "x", "cashtray:1234"])
def test_bad_refs_fail_before_io(provider: PokepayProvider, make_ctx: Ctx, ref: str) -> None:
    with pytest.raises(InvalidRequest):
        drive(provider.status(wallet_ref(provider_ref=ref), make_ctx()), never)


def attempt(error_type: str = "", status_code: int = 422) -> dict[str, Any]:
    return {
        "account": None,
        "status_code": status_code,
        "error_type": error_type,
        "error_message": "message" if error_type else "",
        "created_at": "2026-03-01T12:05:00+09:00",
    }


PAID = {
    "id": TXN,
    "type": "payment",
    "is_modified": False,
    "amount": 1500,
    "done_at": "2026-03-01T12:05:00+09:00",
}


@pytest.mark.parametrize(
    ("body", "server_time", "status", "failure"),
    [
        (cashtray(), "2026-03-01T12:10:00+09:00", ChargeStatus.REQUIRES_ACTION, None),
        (cashtray(), "2026-03-01T12:31:00+09:00", ChargeStatus.EXPIRED, None),
        (cashtray(canceled_at="2026-03-01T12:01:00+09:00"), None, ChargeStatus.CANCELED, None),
        (cashtray(attempt=attempt("", 200), txn=PAID), None, ChargeStatus.SUCCEEDED, None),
        (
            cashtray(attempt=attempt("", 200), txn={**PAID, "is_modified": True}),
            None,
            ChargeStatus.REFUNDED,
            None,
        ),
        (
            cashtray(attempt=attempt("account_balance_not_enough")),
            None,
            ChargeStatus.FAILED,
            "account_balance_not_enough",
        ),
        (
            cashtray(attempt=attempt("account_suspended")),
            None,
            ChargeStatus.FAILED,
            "account_suspended",
        ),
        (
            cashtray(attempt=attempt("cashtray_expired")),
            None,
            ChargeStatus.EXPIRED,
            "cashtray_expired",
        ),
        (
            cashtray(
                attempt=attempt("cashtray_already_canceled"),
                canceled_at="2026-03-01T12:01:00+09:00",
            ),
            None,
            ChargeStatus.CANCELED,
            "cashtray_already_canceled",
        ),
        # GetCashtray: an attempt without a transaction is a final failure.
        (cashtray(attempt=attempt("", 200)), None, ChargeStatus.FAILED, None),
    ],
    ids=[
        "pending",
        "expired",
        "canceled",
        "succeeded",
        "refunded",
        "insufficient",
        "suspended",
        "scan-expired",
        "scan-canceled",
        "scan-ok-no-txn",
    ],
)
def test_cashtray_state_machine(
    provider: PokepayProvider,
    make_ctx: Ctx,
    fake: Any,
    body: Any,
    server_time: str | None,
    status: ChargeStatus,
    failure: str | None,
) -> None:
    fake.then(fake.sealed(200, body, timestamp=server_time))
    charge = drive(provider.status(qr_ref(), make_ctx()), fake)
    assert charge.status is status
    assert charge.amount == Money.jpy(1500)
    assert charge.method == "qr"
    if status is ChargeStatus.REQUIRES_ACTION:
        assert isinstance(charge.next_action, DisplayQR)
    else:
        assert charge.next_action is None
    if failure:
        assert charge.failure is not None
        assert charge.failure.code == failure
    if status in (ChargeStatus.SUCCEEDED, ChargeStatus.REFUNDED):
        assert charge.provider_ref == f"cashtray:{TRAY}/transaction:{TXN}"
    else:
        assert charge.provider_ref == f"cashtray:{TRAY}"


def test_paid_cashtray_status_reads_the_transaction(
    provider: PokepayProvider, make_ctx: Ctx, fake: Any
) -> None:
    fake.then(fake.sealed(200, transaction(1500, refunded=True)))
    ref = qr_ref(provider_ref=f"cashtray:{TRAY}/transaction:{TXN}")
    charge = drive(provider.status(ref, make_ctx()), fake)
    assert fake.calls[0].url.endswith(f"/transactions/{TXN}")
    assert charge.method == "qr"
    assert charge.provider_ref == ref.provider_ref
    assert charge.status is ChargeStatus.REFUNDED


def test_status_recovers_from_a_replayed_read(
    provider: PokepayProvider, make_ctx: Ctx, fake: Any
) -> None:
    fake.then(
        fake.sealed(400, {"type": "partner_request_already_done", "message": "done"}),
        fake.sealed(200, transaction()),
    )
    assert drive(provider.status(wallet_ref(), make_ctx()), fake).status is ChargeStatus.SUCCEEDED
    assert len(fake.calls) == 2


# --------------------------------------------------------------------------- refund


def test_refund_whole(provider: PokepayProvider, make_ctx: Ctx, fake: Any) -> None:
    fake.then(fake.sealed(200, transaction(refunded=True)))
    refund = drive(provider.refund(RefundRequest(wallet_ref(), reason="返品"), make_ctx()), fake)
    (call,) = fake.calls
    assert call.url.endswith(f"/transactions/{TXN}/refund")
    assert call.retry is Retry.KEYED
    assert fake.requests[0]["inner"]["request_data"] == {"description": "返品"}
    assert refund.status is RefundStatus.SUCCEEDED
    assert refund.amount == Money.jpy(1200)
    assert refund.charge_id == "ch_1"
    assert refund.provider_ref == "transfer:t2"
    assert refund.reason == "返品"


def test_refund_with_the_whole_amount(provider: PokepayProvider, make_ctx: Ctx, fake: Any) -> None:
    fake.then(fake.sealed(200, transaction(refunded=True)))
    refund = drive(
        provider.refund(RefundRequest(wallet_ref(), amount=Money.jpy(1200)), make_ctx()), fake
    )
    assert refund.amount == Money.jpy(1200)
    assert fake.requests[0]["inner"]["request_data"] == {}


def test_partial_refund_is_not_supported_before_io(provider: PokepayProvider) -> None:
    with pytest.raises(NotSupported) as info:
        provider.validate_refund(RefundRequest(wallet_ref(), amount=Money.jpy(500)))
    assert "whole" in str(info.value)
    assert info.value.alternative


def test_partial_refund_of_unknown_amount_checks_first(
    provider: PokepayProvider, make_ctx: Ctx, fake: Any
) -> None:
    fake.then(fake.sealed(200, transaction()))
    with pytest.raises(NotSupported):
        drive(
            provider.refund(
                RefundRequest(wallet_ref(amount=None), amount=Money.jpy(500)), make_ctx()
            ),
            fake,
        )
    assert [c.step for c in fake.calls] == ["transactions.get"]


def test_refund_reason_too_long(provider: PokepayProvider) -> None:
    with pytest.raises(InvalidRequest) as info:
        provider.validate_refund(RefundRequest(wallet_ref(), reason="x" * 201))
    assert info.value.param == "reason"


def test_refund_already_refunded_returns_the_existing_refund(
    provider: PokepayProvider, make_ctx: Ctx, fake: Any
) -> None:
    fake.then(
        fake.sealed(
            422,
            {"type": "transaction_already_refunded", "message": "Transaction already refunded."},
        ),
        fake.sealed(200, transaction(refunded=True)),
    )
    refund = drive(provider.refund(RefundRequest(wallet_ref()), make_ctx()), fake)
    assert refund.status is RefundStatus.SUCCEEDED
    assert refund.provider_ref == "transfer:t2"
    assert [c.step for c in fake.calls] == ["transactions.refund", "transactions.get"]


def test_refund_errors_propagate(provider: PokepayProvider, make_ctx: Ctx, fake: Any) -> None:
    fake.then(fake.sealed(422, {"type": "not_refundable_transaction_type", "message": "no"}))
    with pytest.raises(ProviderRejected) as info:
        drive(provider.refund(RefundRequest(wallet_ref()), make_ctx()), fake)
    assert info.value.provider_code == "not_refundable_transaction_type"


def test_refund_of_a_cashtray_finds_its_transaction(
    provider: PokepayProvider, make_ctx: Ctx, fake: Any
) -> None:
    fake.then(
        fake.sealed(200, cashtray(attempt=attempt("", 200), txn=PAID)),
        fake.sealed(200, transaction(1500, refunded=True)),
    )
    refund = drive(provider.refund(RefundRequest(qr_ref()), make_ctx()), fake)
    assert refund.amount == Money.jpy(1500)
    assert fake.calls[1].url.endswith(f"/transactions/{TXN}/refund")


def test_refund_of_an_unpaid_cashtray(provider: PokepayProvider, make_ctx: Ctx, fake: Any) -> None:
    fake.then(fake.sealed(200, cashtray()))
    with pytest.raises(ProviderRejected, match="not paid"):
        drive(provider.refund(RefundRequest(qr_ref()), make_ctx()), fake)


def test_refund_replayed_envelope(provider: PokepayProvider, make_ctx: Ctx, fake: Any) -> None:
    fake.then(
        fake.sealed(400, {"type": "partner_request_already_done", "message": "done"}),
        fake.sealed(200, transaction()),
        fake.sealed(200, transaction(refunded=True)),
    )
    refund = drive(provider.refund(RefundRequest(wallet_ref()), make_ctx()), fake)
    assert refund.status is RefundStatus.SUCCEEDED
    assert [c.step for c in fake.calls] == [
        "transactions.refund",
        "transactions.get",
        "transactions.refund",
    ]


# --------------------------------------------------------------------------- cancel


def test_cancel_wallet_is_not_supported(provider: PokepayProvider, make_ctx: Ctx) -> None:
    with pytest.raises(NotSupported) as info:
        drive(provider.cancel(CancelRequest(wallet_ref()), make_ctx()), never)
    assert info.value.alternative == "refund"


def test_cancel_cashtray(provider: PokepayProvider, make_ctx: Ctx, fake: Any) -> None:
    body = cashtray(canceled_at="2026-03-01T12:02:00+09:00")
    del body["attempt"], body["transaction"]
    fake.then(fake.sealed(200, body))
    charge = drive(provider.cancel(CancelRequest(qr_ref()), make_ctx()), fake)
    assert charge.status is ChargeStatus.CANCELED
    (call,) = fake.calls
    assert call.url.endswith(f"/cashtrays/{TRAY}")
    assert call.method == "POST"
    assert fake.requests[0]["outer"]["request_method"] == "DELETE"


@pytest.mark.parametrize(
    ("kind", "current", "status"),
    [
        (
            "cashtray_already_canceled",
            cashtray(canceled_at="2026-03-01T12:02:00+09:00"),
            ChargeStatus.CANCELED,
        ),
        ("cashtray_expired", cashtray(), ChargeStatus.EXPIRED),
        (
            "cashtray_already_proceed",
            cashtray(attempt=attempt("account_balance_not_enough")),
            ChargeStatus.FAILED,
        ),
    ],
)
def test_cancel_answers_from_state(
    provider: PokepayProvider,
    make_ctx: Ctx,
    fake: Any,
    kind: str,
    current: Any,
    status: ChargeStatus,
) -> None:
    fake.then(
        fake.sealed(422, {"type": kind, "message": kind}),
        fake.sealed(200, current, timestamp="2026-03-01T13:00:00+09:00"),
    )
    assert drive(provider.cancel(CancelRequest(qr_ref()), make_ctx()), fake).status is status


def test_cancel_paid_cashtray_is_rejected(
    provider: PokepayProvider, make_ctx: Ctx, fake: Any
) -> None:
    fake.then(
        fake.sealed(
            422, {"type": "cashtray_already_proceed", "message": "Cashtray is already proceed"}
        ),
        fake.sealed(200, cashtray(attempt=attempt("", 200), txn=PAID)),
    )
    with pytest.raises(ProviderRejected) as info:
        drive(provider.cancel(CancelRequest(qr_ref()), make_ctx()), fake)
    assert info.value.provider_code == "cashtray_already_proceed"
    with pytest.raises(ProviderRejected):
        drive(
            provider.cancel(
                CancelRequest(qr_ref(provider_ref=f"cashtray:{TRAY}/transaction:{TXN}")), make_ctx()
            ),
            never,
        )


def test_cancel_not_found(provider: PokepayProvider, make_ctx: Ctx, fake: Any) -> None:
    fake.then(fake.sealed(404, {"type": "notfound", "message": "Not found"}))
    with pytest.raises(NotFound):
        drive(provider.cancel(CancelRequest(qr_ref()), make_ctx()), fake)


# --------------------------------------------------------------------------- payout


def account_row(money_id: str, balance: int = 5300) -> dict[str, Any]:
    return {
        "id": SANDBOX.shop_account_id,
        "balance": balance,
        "money_balance": balance - 300,
        "point_balance": 300,
        "point_debt": 0,
        "private_money": {"id": money_id},
    }


def page(rows: list[Any], has_next: bool) -> dict[str, Any]:
    return {"rows": rows, "count": len(rows), "pagination": {"has_next": has_next}}


def test_payout_balance(provider: PokepayProvider, make_ctx: Ctx, fake: Any) -> None:
    other = "11111111-2222-4333-8444-555555555555"
    fake.then(
        fake.sealed(200, page([account_row(other, 9)], True)),
        fake.sealed(200, page([account_row(SANDBOX.private_money_id)], False)),
    )
    balance = drive(provider.payout_balance(make_ctx(None)), fake)
    assert fake.calls[0].url.endswith(f"/users/{SANDBOX.shop_id}/accounts")
    assert [r["inner"]["request_data"]["page"] for r in fake.requests] == [1, 2]
    assert balance.collecting == Money.jpy(5300)
    assert balance.scheduled == Money.jpy(0)
    assert [(i.kind, i.amount) for i in balance.items] == [
        ("money", Money.jpy(5000)),
        ("point", Money.jpy(300)),
    ]
    assert balance.provider == "pokepay"
    assert balance.account == "wallet"


def test_payout_balance_without_wallet(provider: PokepayProvider, make_ctx: Ctx, fake: Any) -> None:
    fake.then(fake.sealed(200, page([], False)))
    with pytest.raises(NotFound):
        drive(provider.payout_balance(make_ctx(None)), fake)


def test_lookup_qr_on_recovery_creates_a_fresh_cashtray(
    provider: PokepayProvider, make_ctx: Ctx, fake: Any
) -> None:
    # The lost Cashtray was never shown, so nobody can pay it: on recovery (where the
    # gateway would not re-send past the charge's unstated key window) the fresh one is
    # made by the lookup itself.
    fake.then(fake.sealed(200, cashtray()))
    found = drive(
        provider.lookup_charge(ChargeRequest(Money.jpy(1500), QRCode()), make_ctx(recovering=True)),
        fake,
    )
    assert found is not None
    assert found.status is ChargeStatus.REQUIRES_ACTION
    assert fake.calls[0].url.endswith("/cashtrays")
