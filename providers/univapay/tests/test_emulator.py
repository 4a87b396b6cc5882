"""The UnivaPay emulator on the wire: auth, idempotency, lifecycle, holds, webhooks."""

from __future__ import annotations

import asyncio
import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio.lowlevel
import httpx
import pytest

from paygate.sandbox import ControlError, EmulatorContext, SandboxClock, WebhookDelivery
from paygate.testing import emulator_app
from paygate_univapay import UnivapayProvider
from paygate_univapay._emulator import (
    JWT,
    SECRET,
    STORE_ID,
    WEBHOOK_AUTH_TOKEN,
    UnivapayEmulator,
)

AUTH = {"Authorization": f"Bearer {SECRET}.{JWT}"}
P = "/univapay"


def konbini_token(client: Any, key: str | None = None, **data: Any) -> httpx.Response:
    body = {
        "payment_type": "konbini",
        "type": "one_time",
        "email": "demo@example.com",
        "data": {
            "customer_name": "テスト 太郎",
            "convenience_store": data.pop("store", "family_mart"),
            "phone_number": {"country_code": "81", "local_number": "0364413400"},
            **data,
        },
    }
    headers = dict(AUTH)
    if key:
        headers["Idempotency-Key"] = key
    return client.post(f"{P}/tokens", json=body, headers=headers)


def konbini_charge(
    client: Any, amount: int = 1200, key: str | None = None, **data: Any
) -> dict[str, Any]:
    token = konbini_token(client, **data).json()
    headers = dict(AUTH)
    if key:
        headers["Idempotency-Key"] = key
    response = client.post(
        f"{P}/charges",
        json={"transaction_token_id": token["id"], "amount": amount, "currency": "jpy"},
        headers=headers,
    )
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


def get_charge(client: Any, charge_id: str, **params: str) -> dict[str, Any]:
    response = client.get(f"{P}/stores/{STORE_ID}/charges/{charge_id}", headers=AUTH, params=params)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def control(client: Any, action: str, **params: Any) -> httpx.Response:
    return client.post(f"/_sandbox/univapay/{action}", json=params)


# ---------------------------------------------------------------------------- auth


@pytest.mark.parametrize(
    ("headers", "code"),
    [
        ({}, "AUTH_HEADER_MISSING"),
        ({"Authorization": "Basic abc"}, "INVALID_APP_TOKEN"),
        ({"Authorization": f"Bearer wrong.{JWT}"}, "INVALID_CREDENTIALS"),
        ({"Authorization": f"Bearer {SECRET}.x.y.z"}, "INVALID_APP_TOKEN"),
        ({"Authorization": f"Bearer {JWT}"}, "INVALID_CREDENTIALS"),
    ],
)
def test_auth_errors(client: Any, headers: dict[str, str], code: str) -> None:
    response = client.get(f"{P}/stores/{STORE_ID}/charges", headers=headers)
    assert response.status_code == 401
    assert response.json() == {"status": "error", "code": code, "errors": []}


def test_widget_jwt_may_create_tokens_only(client: Any) -> None:
    body = {
        "payment_type": "konbini",
        "type": "one_time",
        "data": {
            "customer_name": "x",
            "convenience_store": "lawson",
            "phone_number": {"country_code": "81", "local_number": "0364413400"},
        },
    }
    response = client.post(f"{P}/tokens", json=body, headers={"Authorization": f"Bearer {JWT}"})
    assert response.status_code == 201


def test_unknown_store_is_not_found(client: Any) -> None:
    response = client.get(f"{P}/stores/11111111-2222-4333-8444-555555555555/charges", headers=AUTH)
    assert response.status_code == 404
    assert response.json()["code"] == "NOT_FOUND"


def test_heartbeat_needs_no_auth(client: Any) -> None:
    assert client.get(f"{P}/heartbeat").status_code == 200


# --------------------------------------------------------------------------- tokens


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"store": "walmart"}, "convenience_store"),
        ({"store": None}, "convenience_store"),
        ({"customer_name": ""}, "customer_name"),
        ({"phone_number": {"country_code": "81", "local_number": "0" * 16}}, "phone_number"),
        ({"phone_number": "0364413400"}, "phone_number"),
        ({"expiration_period": "seven days"}, "expiration_period"),
        ({"expiration_time_shift": "noon"}, "expiration_time_shift"),
    ],
)
def test_token_validation(client: Any, data: dict[str, Any], field: str) -> None:
    response = konbini_token(client, **data)
    assert response.status_code == 400
    body = response.json()
    assert body["status"] == "error"
    assert body["code"] == "VALIDATION_ERROR"
    assert body["errors"][0]["field"] == field


def test_token_shape(client: Any) -> None:
    response = konbini_token(client, expiration_period="P7D")
    assert response.status_code == 201
    token = response.json()
    assert token["payment_type"] == "konbini"
    assert token["type"] == "one_time"
    assert token["store_id"] == STORE_ID
    assert token["mode"] == "test"
    assert token["data"]["expiration_period"] == "P7D"
    fetched = client.get(f"{P}/stores/{STORE_ID}/tokens/{token['id']}", headers=AUTH)
    assert fetched.json() == token


# -------------------------------------------------------------------------- charges


def test_charge_is_created_pending_then_issued(
    client: Any, emulator: UnivapayEmulator, deliveries: list[WebhookDelivery]
) -> None:
    created = konbini_charge(client, store="lawson")
    assert created["status"] == "pending"
    assert created["charged_amount"] is None
    assert created["requested_currency"] == "JPY"
    # The konbini guide's charge: capture_at null unless the request set it.
    assert created["capture_at"] is None
    # 2026-01-01 10:00 JST + 30 days (default) at 23:59:59 JST.
    deadline = emulator.charges[created["id"]].deadline
    assert deadline == datetime(2026, 1, 31, 14, 59, 59, tzinfo=UTC)
    current = get_charge(client, created["id"])
    assert current["status"] == "awaiting"
    assert current["capture_at"] is None
    number = current["metadata"]["internal_convenience_payment_number"]
    assert re.fullmatch(r"\d{5}-\d{11}", number)
    assert "internal_convenience_payment_url" not in current["metadata"]
    (delivery,) = deliveries
    envelope = json.loads(delivery.body)
    assert envelope["event"] == "charge_updated"
    assert envelope["data"]["status"] == "awaiting"
    assert envelope["id"] == delivery.event_id
    assert delivery.headers["Authorization"] == WEBHOOK_AUTH_TOKEN
    assert delivery.url is None
    assert len(delivery.schedule) == 3


def test_seven_eleven_slip_has_url_and_page(client: Any, emulator: UnivapayEmulator) -> None:
    created = konbini_charge(client, store="seven_eleven", expiration_period="P7D")
    current = get_charge(client, created["id"])
    meta = current["metadata"]
    assert len(meta["internal_convenience_payment_number"]) == 13
    assert set(meta) == {"internal_convenience_payment_number", "internal_convenience_payment_url"}
    url = meta["internal_convenience_payment_url"]
    assert url == f"http://127.0.0.1/univapay/_slips/{created['id']}"
    page = client.get(url.removeprefix("http://127.0.0.1"))
    assert page.status_code == 200
    assert meta["internal_convenience_payment_number"] in page.text
    assert current["capture_at"] is None
    deadline = emulator.charges[created["id"]].deadline
    assert deadline == datetime(2026, 1, 8, 14, 59, 59, tzinfo=UTC)


def test_deadline_options(client: Any, emulator: UnivapayEmulator) -> None:
    shifted = konbini_charge(
        client, expiration_period="P3D", expiration_time_shift="09:00:00+09:00"
    )
    assert emulator.charges[shifted["id"]].deadline == datetime(2026, 1, 4, tzinfo=UTC)
    hours = konbini_charge(client, expiration_period="PT2H")
    assert emulator.charges[hours["id"]].deadline == datetime(2026, 1, 1, 3, tzinfo=UTC)


def test_requested_capture_at_is_the_deadline(client: Any, emulator: UnivapayEmulator) -> None:
    token = konbini_token(client).json()
    response = client.post(
        f"{P}/charges",
        json={
            "transaction_token_id": token["id"],
            "amount": 100,
            "currency": "JPY",
            "capture_at": "2026-01-05T14:59:59.000000Z",
        },
        headers=AUTH,
    )
    created = response.json()
    assert created["capture_at"] == "2026-01-05T14:59:59.000000Z"
    assert emulator.charges[created["id"]].deadline == datetime(2026, 1, 5, 14, 59, 59, tzinfo=UTC)


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"transaction_token_id": "", "amount": 100, "currency": "JPY"}, 400, "VALIDATION_ERROR"),
        ({"transaction_token_id": "nope", "amount": 100, "currency": "JPY"}, 404, "NOT_FOUND"),
        ({"amount": "abc", "currency": "JPY"}, 400, "VALIDATION_ERROR"),
        ({"amount": 0, "currency": "JPY"}, 400, "VALIDATION_ERROR"),
        ({"amount": 100, "currency": "USD"}, 400, "VALIDATION_ERROR"),
        ({"amount": 300_000, "currency": "JPY"}, 400, "VALIDATION_ERROR"),
        ({"amount": 100, "currency": "JPY", "metadata": {"a": {"b": 1}}}, 400, "VALIDATION_ERROR"),
    ],
)
def test_charge_validation(client: Any, body: dict[str, Any], status: int, code: str) -> None:
    token = konbini_token(client).json()
    payload = {"transaction_token_id": token["id"], **body}
    response = client.post(f"{P}/charges", json=payload, headers=AUTH)
    assert response.status_code == status
    assert response.json()["code"] == code


def test_one_time_token_cannot_be_charged_twice(client: Any) -> None:
    token = konbini_token(client).json()
    payload = {"transaction_token_id": token["id"], "amount": 100, "currency": "JPY"}
    assert client.post(f"{P}/charges", json=payload, headers=AUTH).status_code == 201
    again = client.post(f"{P}/charges", json=payload, headers=AUTH)
    assert again.status_code == 400
    assert again.json()["code"] == "TRANSACTION_ALREADY_PROCESSED"


def test_charge_list_envelope(client: Any) -> None:
    ids = [konbini_charge(client, amount=100 + i)["id"] for i in range(3)]
    page = client.get(f"{P}/stores/{STORE_ID}/charges", headers=AUTH, params={"limit": "2"}).json()
    assert page["has_more"] is True
    assert page["total_hits"] == 3
    assert len(page["items"]) == 2
    rest = client.get(
        f"{P}/charges", headers=AUTH, params={"limit": "2", "cursor": page["items"][-1]["id"]}
    ).json()
    assert rest["has_more"] is False
    assert "total_hits" not in rest
    assert {i["id"] for i in page["items"] + rest["items"]} == set(ids)


def test_patch_metadata(client: Any) -> None:
    charge = konbini_charge(client)
    response = client.patch(
        f"{P}/stores/{STORE_ID}/charges/{charge['id']}",
        json={"metadata": {"order": "7"}},
        headers=AUTH,
    )
    assert response.status_code == 200
    assert response.json()["metadata"]["order"] == "7"


# ---------------------------------------------------------------------- idempotency


def test_idempotency_store_replay_conflict(client: Any, emulator: UnivapayEmulator) -> None:
    first = konbini_token(client, key="k-1")
    assert first.headers["Idempotency-Status"] == "successfully_stored"
    replay = konbini_token(client, key="k-1")
    assert replay.headers["Idempotency-Status"] == "retrieved_idempotent_response"
    assert replay.status_code == 201
    assert replay.json() == first.json()
    conflict = konbini_token(client, key="k-1", store="lawson")
    assert conflict.status_code == 409
    assert conflict.headers["Idempotency-Status"] == "conflicting_key"
    assert conflict.json()["code"] == "IDEMPOTENCY_KEY_CONFLICT"
    assert len(emulator.tokens) == 3  # two seed card tokens and one konbini token
    keyless = konbini_token(client)
    assert keyless.headers["Idempotency-Status"] == "not_stored"


def test_idempotency_window_is_24_hours_of_sandbox_time(
    client: Any, clock: SandboxClock, emulator: UnivapayEmulator
) -> None:
    first = konbini_token(client, key="k-2").json()
    clock.advance(timedelta(hours=23, minutes=59))
    assert konbini_token(client, key="k-2").json()["id"] == first["id"]
    clock.advance(timedelta(minutes=2))
    after = konbini_token(client, key="k-2")
    assert after.headers["Idempotency-Status"] == "successfully_stored"
    assert after.json()["id"] != first["id"]


def test_errors_are_replayed_too(client: Any) -> None:
    first = konbini_token(client, key="k-3", store="walmart")
    assert first.status_code == 400
    again = konbini_token(client, key="k-3", store="walmart")
    assert again.status_code == 400
    assert again.headers["Idempotency-Status"] == "retrieved_idempotent_response"


def test_charge_key_replays_the_same_charge(client: Any, emulator: UnivapayEmulator) -> None:
    token = konbini_token(client).json()
    payload = {"transaction_token_id": token["id"], "amount": 100, "currency": "JPY"}
    headers = {**AUTH, "Idempotency-Key": "charge-1"}
    a = client.post(f"{P}/charges", json=payload, headers=headers).json()
    b = client.post(f"{P}/charges", json=payload, headers=headers).json()
    assert a == b
    assert len(emulator.charges) == 1
    (entry,) = [e for e in emulator.ledger() if e.kind == "charge"]
    assert entry.key == "charge-1"
    assert entry.amount == 100


# ------------------------------------------------------------------- konbini lifecycle


def test_pay_konbini(
    client: Any, deliveries: list[WebhookDelivery], emulator: UnivapayEmulator
) -> None:
    charge = konbini_charge(client)
    paid = control(client, "pay_konbini", charge_id=charge["id"])
    assert paid.status_code == 200
    assert paid.json()["status"] == "successful"
    current = get_charge(client, charge["id"])
    assert current["charged_amount"] == 1200
    assert [json.loads(d.body)["event"] for d in deliveries] == [
        "charge_updated",
        "charge_finished",
    ]
    again = control(client, "pay_konbini", charge_id=charge["id"])
    assert again.status_code == 409
    assert [e.status for e in emulator.ledger()] == ["successful"]


def test_expiry_on_the_sandbox_clock(
    client: Any, clock: SandboxClock, deliveries: list[WebhookDelivery]
) -> None:
    charge = konbini_charge(client, expiration_period="P1D")
    clock.advance(timedelta(days=1, hours=13))  # 2026-01-02 23:00 JST: still open
    assert get_charge(client, charge["id"])["status"] == "awaiting"
    clock.advance(timedelta(hours=1))  # past 23:59:59 JST
    expired = get_charge(client, charge["id"])
    assert expired["status"] == "failed"
    # UnivaPay documents no error payload for an expired slip: null by default, or
    # what ``configure {expiry_error}`` sets (see test_expiry_error_is_configurable).
    assert expired["error"] is None
    assert json.loads(deliveries[-1].body)["event"] == "charge_finished"
    assert control(client, "pay_konbini", charge_id=charge["id"]).status_code == 409


def test_deferred_issue(client: Any) -> None:
    assert control(client, "configure", auto_issue=False, poll_hold_seconds=0).status_code == 200
    charge = konbini_charge(client)
    held = get_charge(client, charge["id"], polling="true")
    assert held["status"] == "pending"  # the hold is bounded
    assert control(client, "pay_konbini", charge_id=charge["id"]).status_code == 409
    issued = control(client, "issue_konbini", charge_id=charge["id"]).json()
    assert issued["status"] == "awaiting"


# ---------------------------------------------------------------------- polling hold


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.mark.anyio
async def test_polling_hold_waits_for_the_slip(emulator: UnivapayEmulator) -> None:
    from paygate_univapay._emulator import UnivapayEmulator as _E

    assert isinstance(emulator, _E)
    await emulator.control("configure", {"auto_issue": False, "poll_hold_seconds": 30})
    app = emulator_app(emulator)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1"
    ) as c:
        token = (await c.post(f"{P}/tokens", json=_konbini_body(), headers=AUTH)).json()
        charge = (
            await c.post(
                f"{P}/charges",
                json={"transaction_token_id": token["id"], "amount": 500, "currency": "JPY"},
                headers=AUTH,
            )
        ).json()
        url = f"{P}/stores/{STORE_ID}/charges/{charge['id']}?polling=true"
        waiting = asyncio.ensure_future(c.get(url, headers=AUTH))
        for _ in range(50):
            await anyio.lowlevel.checkpoint()  # let the GET reach the hold
            if emulator._waiters:
                break
        assert emulator._waiters, "the GET should be held"
        assert not waiting.done()
        await emulator.control("issue_konbini", {"charge_id": charge["id"]})
        response = await asyncio.wait_for(waiting, timeout=5)
        assert response.json()["status"] == "awaiting"


@pytest.mark.anyio
async def test_polling_returns_at_once_when_not_pending(emulator: UnivapayEmulator) -> None:
    await emulator.control("configure", {"poll_hold_seconds": 30})
    app = emulator_app(emulator)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1"
    ) as c:
        token = (await c.post(f"{P}/tokens", json=_konbini_body(), headers=AUTH)).json()
        charge = (
            await c.post(
                f"{P}/charges",
                json={"transaction_token_id": token["id"], "amount": 500, "currency": "JPY"},
                headers=AUTH,
            )
        ).json()
        url = f"{P}/stores/{STORE_ID}/charges/{charge['id']}?polling=true"
        response = await asyncio.wait_for(c.get(url, headers=AUTH), timeout=5)
        assert response.json()["status"] == "awaiting"
        assert not emulator._waiters


def _konbini_body() -> dict[str, Any]:
    return {
        "payment_type": "konbini",
        "type": "one_time",
        "data": {
            "customer_name": "テスト",
            "convenience_store": "family_mart",
            "phone_number": {"country_code": "81", "local_number": "0364413400"},
        },
    }


# ---------------------------------------------------------------------------- cards


def card_charge(
    client: Any, card: str = "success", *, capture: bool = True, amount: int = 5000
) -> dict[str, Any]:
    token = control(client, "card_token", card=card).json()["id"]
    response = client.post(
        f"{P}/charges",
        json={
            "transaction_token_id": token,
            "amount": amount,
            "currency": "JPY",
            "capture": capture,
        },
        headers=AUTH,
    )
    assert response.status_code == 201, response.text
    return get_charge(client, response.json()["id"])


@pytest.mark.parametrize(
    ("card", "status", "code"),
    [
        ("success", "successful", None),
        ("declined", "failed", 306),
        ("expired", "failed", 304),
        ("error", "error", 309),
    ],
)
def test_card_outcomes(client: Any, card: str, status: str, code: int | None) -> None:
    charge = card_charge(client, card)
    assert charge["status"] == status
    assert (charge["error"] or {}).get("code") == code


def test_card_token_created_over_the_api(client: Any) -> None:
    body = {
        "payment_type": "card",
        "type": "one_time",
        "email": "demo@example.com",
        "data": {
            "cardholder": "TARO",
            "card_number": "4000000000000002",
            "exp_month": 12,
            "exp_year": 2099,
            "cvv": "123",
        },
    }
    token = client.post(f"{P}/tokens", json=body, headers=AUTH).json()
    assert token["data"]["card"]["last_four"] == "0002"
    charge = client.post(
        f"{P}/charges",
        json={"transaction_token_id": token["id"], "amount": 10, "currency": "JPY"},
        headers=AUTH,
    ).json()
    assert get_charge(client, charge["id"])["status"] == "failed"


def test_charge_too_quick_on_recurring_token(
    client: Any, emulator: UnivapayEmulator, clock: SandboxClock
) -> None:
    token = recurring_card_token(client)
    payload = {"transaction_token_id": token, "amount": 777, "currency": "JPY"}
    assert client.post(f"{P}/charges", json=payload, headers=AUTH).status_code == 201
    quick = client.post(f"{P}/charges", json=payload, headers=AUTH)
    assert quick.status_code == 400
    assert quick.json()["code"] == "CHARGE_TOO_QUICK"
    other_amount = {**payload, "amount": 778}
    assert client.post(f"{P}/charges", json=other_amount, headers=AUTH).status_code == 201
    clock.advance(timedelta(seconds=31))
    assert client.post(f"{P}/charges", json=payload, headers=AUTH).status_code == 201


def test_seed_tokens_are_reusable_fixtures(client: Any, emulator: UnivapayEmulator) -> None:
    token = emulator.credentials()["card_tokens"]["success"]
    payload = {"transaction_token_id": token, "amount": 777, "currency": "JPY"}
    for _ in range(3):
        assert client.post(f"{P}/charges", json=payload, headers=AUTH).status_code == 201


def recurring_card_token(client: Any) -> str:
    body = {
        "payment_type": "card",
        "type": "recurring",
        "data": {
            "cardholder": "TARO",
            "card_number": "4000020000000000",
            "exp_month": 12,
            "exp_year": 2099,
            "cvv": "123",
        },
    }
    response = client.post(f"{P}/tokens", json=body, headers=AUTH)
    assert response.status_code == 201
    return str(response.json()["id"])


def test_capture_rules(client: Any) -> None:
    charge = card_charge(client, capture=False)
    assert charge["status"] == "authorized"
    base = f"{P}/stores/{STORE_ID}/charges/{charge['id']}"
    too_much = client.post(
        f"{base}/capture", json={"amount": 6000, "currency": "JPY"}, headers=AUTH
    )
    assert too_much.json()["code"] == "CAPTURE_AMOUNT_TOO_LARGE"
    ok = client.post(f"{base}/capture", json={"amount": 4000, "currency": "JPY"}, headers=AUTH)
    assert ok.status_code == 200
    assert ok.json() == {}
    assert get_charge(client, charge["id"])["charged_amount"] == 4000
    again = client.post(f"{base}/capture", json={"amount": 4000, "currency": "JPY"}, headers=AUTH)
    assert again.json()["code"] == "ALREADY_CAPTURED"


def test_refund_rules(client: Any, deliveries: list[WebhookDelivery]) -> None:
    charge = card_charge(client)
    base = f"{P}/stores/{STORE_ID}/charges/{charge['id']}/refunds"

    def refund(amount: int, currency: str = "JPY", **kw: Any) -> httpx.Response:
        return client.post(base, json={"amount": amount, "currency": currency, **kw}, headers=AUTH)

    assert refund(100, "USD").json()["code"] == "CURRENCY_MUST_MATCH_CHARGE"
    assert refund(0).json()["code"] == "REFUND_NOT_WITHIN_BOUNDS"
    assert refund(5001).json()["code"] == "REFUND_EXCEEDS_CHARGE_AMOUNT"
    assert refund(1, reason="whatever").json()["code"] == "VALIDATION_ERROR"
    first = refund(3000, reason="customer_request")
    assert first.status_code == 201
    assert first.json()["status"] == "pending"
    got = client.get(f"{base}/{first.json()['id']}", headers=AUTH, params={"polling": "true"})
    assert got.json()["status"] == "successful"
    assert refund(2001).json()["code"] == "REFUND_EXCEEDS_CHARGE_AMOUNT"
    assert refund(2000).status_code == 201
    listed = client.get(base, headers=AUTH).json()
    assert sorted(i["amount"] for i in listed["items"]) == [2000, 3000]
    assert json.loads(deliveries[-1].body)["event"] == "refund_finished"


def test_konbini_cannot_be_refunded(client: Any) -> None:
    charge = konbini_charge(client)
    control(client, "pay_konbini", charge_id=charge["id"])
    response = client.post(
        f"{P}/stores/{STORE_ID}/charges/{charge['id']}/refunds",
        json={"amount": 100, "currency": "JPY"},
        headers=AUTH,
    )
    assert response.status_code == 400
    assert response.json()["code"] == "REFUND_NOT_ALLOWED"


# -------------------------------------------------------------------------- cancels


def test_cancel_unpaid_konbini(client: Any, deliveries: list[WebhookDelivery]) -> None:
    charge = konbini_charge(client)
    base = f"{P}/stores/{STORE_ID}/charges/{charge['id']}/cancels"
    created = client.post(base, json={}, headers=AUTH)
    assert created.status_code == 201
    assert created.json()["status"] == "pending"
    cancel = client.get(
        f"{base}/{created.json()['id']}", headers=AUTH, params={"polling": "true"}
    ).json()
    assert cancel["status"] == "successful"
    assert get_charge(client, charge["id"])["status"] == "canceled"
    events = [json.loads(d.body)["event"] for d in deliveries]
    assert events[-2:] == ["charge_finished", "cancel_finished"]
    again = client.post(base, json={}, headers=AUTH)
    assert again.json()["code"] == "CANCEL_NOT_ALLOWED"
    assert len(client.get(base, headers=AUTH).json()["items"]) == 1


def test_paid_konbini_cannot_be_cancelled(client: Any) -> None:
    charge = konbini_charge(client)
    control(client, "pay_konbini", charge_id=charge["id"])
    response = client.post(
        f"{P}/stores/{STORE_ID}/charges/{charge['id']}/cancels", json={}, headers=AUTH
    )
    assert response.status_code == 400
    assert response.json()["code"] == "CANCEL_NOT_ALLOWED"


def test_deferred_completion(client: Any) -> None:
    control(client, "configure", auto_complete=False, poll_hold_seconds=0)
    charge = card_charge(client)
    assert charge["status"] == "pending"
    control(client, "complete_pending")
    assert get_charge(client, charge["id"])["status"] == "successful"


# ------------------------------------------------------------------ transfers, ledgers


def test_transfers_and_ledgers(client: Any) -> None:
    charge = konbini_charge(client, amount=1500)
    control(client, "pay_konbini", charge_id=charge["id"])
    card = card_charge(client, amount=800)
    client.post(
        f"{P}/stores/{STORE_ID}/charges/{card['id']}/refunds",
        json={"amount": 300, "currency": "JPY"},
        headers=AUTH,
    )
    transfer = control(client, "run_transfer").json()
    assert transfer["amount"] == 2000
    assert transfer["status"] == "created"
    listed = client.get(f"{P}/transfers", headers=AUTH).json()
    assert [t["id"] for t in listed["items"]] == [transfer["id"]]
    ledgers = client.get(f"{P}/transfers/{transfer['id']}/ledgers", headers=AUTH).json()
    assert sorted((i["origin"], i["amount"]) for i in ledgers["items"]) == [
        ("charge", 800),
        ("charge", 1500),
        ("refund", -300),
    ]
    assert control(client, "run_transfer").status_code == 409
    paid = control(client, "set_transfer_status", transfer_id=transfer["id"], status="paid").json()
    assert paid["status"] == "paid"
    assert (
        control(client, "set_transfer_status", transfer_id=transfer["id"], status="x").status_code
        == 400
    )
    assert client.get(f"{P}/transfers/nope", headers=AUTH).status_code == 404


# ------------------------------------------------------------------------- webhooks


def test_registered_webhook_gets_its_auth_token(
    client: Any, deliveries: list[WebhookDelivery]
) -> None:
    hook = client.post(
        f"{P}/stores/{STORE_ID}/webhooks",
        json={
            "url": "https://merchant.example/hook",
            "triggers": ["charge_finished"],
            "auth_token": "mine",
        },
        headers=AUTH,
    )
    assert hook.status_code == 201
    duplicate = client.post(
        f"{P}/stores/{STORE_ID}/webhooks",
        json={"url": "https://merchant.example/hook", "triggers": ["charge_finished"]},
        headers=AUTH,
    )
    assert duplicate.status_code == 409
    assert duplicate.json()["code"] == "WEBHOOK_URL_EXISTS"
    charge = konbini_charge(client)
    control(client, "pay_konbini", charge_id=charge["id"])
    # charge_updated matches no registered trigger: it goes to the sandbox URL.
    first, second = deliveries
    assert first.url is None
    assert json.loads(first.body)["event"] == "charge_updated"
    assert second.url == "https://merchant.example/hook"
    assert second.headers["Authorization"] == "mine"


def test_deliveries_verify_and_parse_with_the_adapter(
    client: Any, deliveries: list[WebhookDelivery], provider: UnivapayProvider
) -> None:
    from paygate.adapter import OpContext, drive

    charge = konbini_charge(client)
    control(client, "pay_konbini", charge_id=charge["id"])
    kinds = []
    for delivery in deliveries:
        provider.verify_webhook(delivery.headers, delivery.body)
        (event,) = drive(
            provider.parse_webhook(
                delivery.headers, delivery.body, OpContext(account="k", provider="univapay")
            ),
            lambda call: pytest.fail("no I/O"),
        )
        assert event.provider_event_id == delivery.event_id
        kinds.append(event.type)
    assert kinds == ["charge.updated", "charge.succeeded"]


# ---------------------------------------------------------------------- bookkeeping


def test_credentials_and_settings(emulator: UnivapayEmulator) -> None:
    creds = emulator.credentials()
    assert creds["store_id"] == STORE_ID
    assert creds["base_url"] == "http://127.0.0.1/univapay"
    settings = emulator.account_settings()
    assert settings["provider"] == "univapay"
    assert settings["secret"] == SECRET
    assert settings["jwt"] == JWT
    UnivapayProvider(
        UnivapayProvider.settings_model(**{k: v for k, v in settings.items() if k != "provider"}),
        account="x",
    )


def test_jwt_carries_store_claim() -> None:
    from paygate_univapay._settings import jwt_claim

    assert jwt_claim(JWT, "store_id") == STORE_ID


def test_reset_forgets_state(client: Any, emulator: UnivapayEmulator) -> None:
    konbini_charge(client)
    emulator.reset()
    assert emulator.charges == {}
    assert emulator.ledger() == []
    assert set(emulator.credentials()["card_tokens"].values()) <= set(emulator.tokens)


def test_control_errors(client: Any) -> None:
    assert control(client, "pay_konbini", charge_id="nope").status_code == 404
    assert control(client, "fly").status_code == 404
    assert control(client, "configure", poll_hold_seconds=600).status_code == 400
    assert control(client, "card_token", card="12").status_code == 400
    card = card_charge(client)
    assert control(client, "pay_konbini", charge_id=card["id"]).status_code == 409


def test_ids_are_deterministic(clock: SandboxClock) -> None:
    def ids() -> list[str]:
        import random

        emu = UnivapayEmulator(
            EmulatorContext(
                clock=SandboxClock(start=datetime(2026, 1, 1, tzinfo=UTC)),
                base_url=lambda: "http://127.0.0.1/univapay",
                deliver=lambda d: None,
                rng=random.Random(7),
            )
        )
        return [emu._new_id() for _ in range(3)]

    assert ids() == ids()


def test_control_error_type(emulator: UnivapayEmulator) -> None:
    with pytest.raises(ControlError):
        asyncio.run(emulator.control("issue_konbini", {"charge_id": "x"}))


def test_expiry_error_is_configurable(client: Any, clock: SandboxClock) -> None:
    error = {"code": 309, "message": "PROCESSING_ERROR", "detail": None}
    assert control(client, "configure", expiry_error=error).status_code == 200
    charge = konbini_charge(client, expiration_period="P1D")
    clock.advance(timedelta(days=3))
    assert get_charge(client, charge["id"])["error"] == error


def test_reference_webhook_envelope(client: Any, deliveries: list[WebhookDelivery]) -> None:
    assert control(client, "configure", webhook_envelope="reference").status_code == 200
    konbini_charge(client)
    envelope = json.loads(deliveries[-1].body)
    assert set(envelope) == {"event", "data"}
    assert control(client, "configure", webhook_envelope="other").status_code == 400


def test_list_charges_by_metadata(client: Any) -> None:
    token = konbini_token(client).json()
    client.post(
        f"{P}/charges",
        json={
            "transaction_token_id": token["id"],
            "amount": 100,
            "currency": "JPY",
            "metadata": {"order_id": "12345"},
        },
        headers=AUTH,
    )
    konbini_charge(client)
    listed = client.get(
        f"{P}/stores/{STORE_ID}/charges", params={"metadata": "order_id: 12345"}, headers=AUTH
    ).json()
    assert [i["metadata"]["order_id"] for i in listed["items"]] == ["12345"]
