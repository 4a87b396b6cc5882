"""The emulator on the wire: status codes, bodies, headers, rules and control actions."""

from __future__ import annotations

import base64
import json
from datetime import timedelta

import pytest

from paygate.sandbox import ControlError
from paygate_elepay import ElepayProvider
from paygate_elepay._emulator import APP_ID, SECRET_KEY, ElepayEmulator
from paygate_elepay._wire import to_millis

CT = "application/json;charset=utf-8"
AUTH = {"Authorization": "Basic " + base64.b64encode(f"{SECRET_KEY}:".encode()).decode()}


def post(emu, path, body, headers=AUTH):
    return emu.client.post(
        f"/elepay{path}",
        content=json.dumps(body).encode(),
        headers={**headers, "Content-Type": CT},
    )


def get(emu, path, headers=AUTH):
    return emu.client.get(f"/elepay{path}", headers=headers)


def new_code(emu, order_no="order-1", amount=1000, **extra):
    resp = post(emu, "/codes", {"orderNo": order_no, "amount": amount, **extra})
    assert resp.status_code == 201, resp.text
    return resp.json()


def assert_error(resp, code, status=400):
    assert resp.status_code == status
    assert resp.headers["content-type"] == CT
    body = resp.json()
    assert body["errorCode"] == code
    # elepay's internal code is a string (server FAQ: "9_000_000_40022" for M002007).
    assert isinstance(body["code"], str)
    assert body["message"]


def test_provider_names_its_emulator():
    assert ElepayProvider.emulator() is ElepayEmulator
    assert ElepayEmulator.name == "elepay"


def test_create_and_read_a_code(emu, clock):
    resp = post(
        emu,
        "/codes",
        {
            "orderNo": "order-1",
            "amount": 1000,
            "description": "Coffee",
            "frontUrl": "https://shop.example.com/done",
            "expiryDuration": 5,
            "items": [{"name": "Latte", "price": 500, "count": 2}],
            "metadata": {"shop": "1"},
        },
    )
    assert resp.status_code == 201
    assert resp.headers["content-type"] == CT  # exactly, no space
    code = resp.json()
    assert code["object"] == "code"
    assert code["id"].startswith("cd_")
    assert code["status"] == "pending"
    assert code["currency"] == "JPY"
    assert code["expired"] is False
    assert code["createTime"] == to_millis(clock.now())
    assert code["expiryTime"] == to_millis(clock.now() + timedelta(minutes=5))
    assert code["expiryPeriod"] == 5 * 60 * 1000
    assert code["items"] == [{"name": "Latte", "price": 500, "count": 2}]
    assert "charge" not in code
    again = get(emu, f"/codes/{code['id']}").json()
    assert again == code


def test_bearer_auth_is_accepted_too(emu):
    resp = get(emu, "/charges", headers={"Authorization": f"Bearer {SECRET_KEY}"})
    assert resp.status_code == 200
    assert resp.json() == {"total": 0, "charges": []}


@pytest.mark.parametrize(
    ("headers", "code"),
    [
        ({}, "M004002"),
        ({"Authorization": "Basic " + base64.b64encode(b"sk_test_wrong:").decode()}, "M004001"),
        ({"Authorization": "Basic !!!"}, "M004001"),
        ({"Authorization": "Bearer sk_test_wrong"}, "M004001"),
    ],
)
def test_authentication_errors_are_m_codes_with_400(emu, headers, code):
    assert_error(get(emu, "/charges", headers=headers), code)


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"amount": 100}, "M002001"),
        ({"orderNo": "o"}, "M002001"),
        ({"orderNo": "o", "amount": "100"}, "M002002"),
        ({"orderNo": "o", "amount": 0}, "M002002"),
        ({"orderNo": "o" * 51, "amount": 100}, "M002002"),
        ({"orderNo": "o", "amount": 100, "currency": "USD"}, "M002009"),
        ({"orderNo": "o", "amount": 100, "expiryDuration": 2}, "M002002"),
        ({"orderNo": "o", "amount": 100, "expiryDuration": 31}, "M002002"),
        ({"orderNo": "o", "amount": 100, "frontUrl": "shop/done"}, "M002002"),
        ({"orderNo": "o", "amount": 100, "description": "d" * 256}, "M002002"),
        ({"orderNo": "o", "amount": 100, "metadata": {"a": {"b": "c"}}}, "M002002"),
        ({"orderNo": "o", "amount": 100, "items": [{"name": "x"}]}, "M002001"),
        (
            {"orderNo": "o", "amount": 100, "items": [{"name": "x", "price": "1", "count": 1}]},
            "M002002",
        ),
    ],
)
def test_code_validation_errors(emu, body, code):
    assert_error(post(emu, "/codes", body), code)


def test_body_that_is_not_json(emu):
    resp = emu.client.post("/elepay/codes", content=b"{nope", headers={**AUTH, "Content-Type": CT})
    assert_error(resp, "M002002")


def test_unknown_objects_are_m002003(emu):
    assert_error(get(emu, "/codes/cd_nope"), "M002003")
    assert_error(get(emu, "/charges/ch_nope"), "M002003")
    assert_error(post(emu, "/charges/ch_nope/refunds", {"amount": 1}), "M002003")


def test_order_number_rules(emu, clock):
    # Server FAQ: an orderNo whose code is still valid is refused like a paid one, with
    # the documented body; a closed or expired code's orderNo may be used again.
    first = new_code(emu)
    resp = post(emu, "/codes", {"orderNo": "order-1", "amount": 1000})
    assert_error(resp, "M002007")
    assert resp.json()["code"] == "9_000_000_40022"
    emu.client.delete(f"/elepay/codes/{first['id']}", headers=AUTH)
    second = new_code(emu)
    assert second["id"] != first["id"]
    clock.advance(timedelta(minutes=11))
    emu.emulator.on_clock_advanced(clock.now())
    third = new_code(emu)
    emu.control("pay_code", code_id=third["id"])
    assert_error(post(emu, "/codes", {"orderNo": "order-1", "amount": 1000}), "M002007")
    # A code of an order paid meanwhile can no longer be paid.
    with pytest.raises(ControlError) as info:
        emu.control("pay_code", code_id=second["id"])
    assert info.value.status == 409


def test_busy_control_answers_m006001_on_state_changes(emu):
    code = new_code(emu)
    emu.control("busy", count=1)
    assert get(emu, f"/codes/{code['id']}").status_code == 200  # reads are not busy
    assert_error(emu.client.delete(f"/elepay/codes/{code['id']}", headers=AUTH), "M006001")
    assert emu.client.delete(f"/elepay/codes/{code['id']}", headers=AUTH).status_code == 204


@pytest.mark.parametrize(("meaning", "flag"), [("ran_out", False), ("invalid", True)])
def test_expired_flag_of_a_deleted_code_plays_each_reading(emu, meaning, flag):
    emu.control("expired_flag", meaning=meaning)
    code = new_code(emu)
    emu.client.delete(f"/elepay/codes/{code['id']}", headers=AUTH)
    closed = get(emu, f"/codes/{code['id']}").json()
    assert (closed["status"], closed["expired"]) == ("closed", flag)


@pytest.mark.parametrize(("mode", "listed"), [("empty", 0), ("listed", 1000)])
def test_revoke_of_a_paid_charge_plays_each_reading(emu, mode, listed):
    emu.control("revoke_refunds", mode=mode)
    code = new_code(emu)
    paid = emu.control("pay_code", code_id=code["id"])
    resp = post(emu, f"/charges/{paid['chargeId']}/revoke", {})
    assert resp.status_code == 200
    charge = resp.json()
    assert charge["status"] == "revoked"
    assert charge["paid"] is True
    assert charge["refunds"]["amount"] == listed
    assert json.loads(emu.deliveries[-1].body)["type"] == "charge.revoked"


def test_pay_code_creates_a_captured_charge_and_a_webhook(emu, clock):
    code = new_code(emu, metadata={"shop": "1"})
    result = emu.control("pay_code", code_id=code["id"], payment_method="merpay")
    assert result["status"] == "captured"
    paid = get(emu, f"/codes/{code['id']}").json()
    assert paid["status"] == "captured"
    charge = paid["charge"]
    assert charge["id"] == result["chargeId"]
    assert charge["status"] == "captured"
    assert charge["paymentMethod"] == "merpay"
    assert charge["orderNo"] == "order-1"
    assert charge["paid"] is True
    assert charge["appId"] == APP_ID
    assert charge["paidTime"] == to_millis(clock.now())
    assert charge["refunds"] == {"amount": 0, "totalCount": 0, "data": []}
    assert get(emu, f"/charges/{charge['id']}").json() == charge
    assert get(emu, f"/charges/{charge['id']}/status").json() == {
        "id": charge["id"],
        "appId": APP_ID,
        "liveMode": False,
        "status": "captured",
    }

    (delivery,) = emu.deliveries
    assert delivery.provider == "elepay"
    assert delivery.schedule == (timedelta(minutes=1),) * 3 + (timedelta(minutes=10),) * 3
    event = json.loads(delivery.body)
    assert event["id"] == delivery.event_id
    assert event["id"].startswith("evt_")
    assert event["object"] == "event"
    assert event["type"] == "charge.succeeded"
    assert event["data"]["object"] == charge
    assert delivery.headers["Content-Type"] == CT


def test_pay_code_refusals(emu, clock):
    with pytest.raises(ControlError) as info:
        emu.control("pay_code", code_id="cd_nope")
    assert info.value.status == 404
    code = new_code(emu)
    with pytest.raises(ControlError):
        emu.control("pay_code", code_id=code["id"], payment_method="bitcoin")
    with pytest.raises(ControlError):
        emu.control("pay_code")
    clock.advance(timedelta(minutes=10))
    with pytest.raises(ControlError) as info:
        emu.control("pay_code", code_id=code["id"])
    assert "expired" in str(info.value)
    with pytest.raises(ControlError) as info:
        emu.control("teleport")
    assert info.value.status == 404


def test_expiry_on_the_sandbox_clock(emu, clock):
    code = new_code(emu, expiryDuration=3)
    clock.advance(timedelta(minutes=2))
    assert get(emu, f"/codes/{code['id']}").json()["expiryPeriod"] == 60_000
    clock.advance(timedelta(minutes=1))
    emu.emulator.on_clock_advanced(clock.now())
    assert emu.emulator.codes[code["id"]].status == "closed"
    closed = get(emu, f"/codes/{code['id']}").json()
    assert closed["status"] == "closed"
    assert closed["expired"] is True
    assert closed["expiryPeriod"] == 0
    assert emu.deliveries == []  # elepay has no expiry webhook


def test_close_code(emu, clock):
    code = new_code(emu)
    resp = emu.client.delete(f"/elepay/codes/{code['id']}", headers=AUTH)
    assert resp.status_code == 204
    assert resp.content == b""
    closed = get(emu, f"/codes/{code['id']}").json()
    assert (closed["status"], closed["expired"]) == ("closed", False)
    assert_error(emu.client.delete(f"/elepay/codes/{code['id']}", headers=AUTH), "M006003")

    paid = new_code(emu, order_no="order-2")
    emu.control("pay_code", code_id=paid["id"])
    assert_error(emu.client.delete(f"/elepay/codes/{paid['id']}", headers=AUTH), "M006003")

    late = new_code(emu, order_no="order-3")
    clock.advance(timedelta(minutes=11))
    assert_error(emu.client.delete(f"/elepay/codes/{late['id']}", headers=AUTH), "M006004")


def paid_charge(emu, order_no="order-1", amount=1000):
    code = new_code(emu, order_no=order_no, amount=amount)
    return emu.control("pay_code", code_id=code["id"])["chargeId"]


def test_refunds(emu):
    charge_id = paid_charge(emu)
    emu.deliveries.clear()
    resp = post(
        emu,
        f"/charges/{charge_id}/refunds",
        {"amount": 300, "reason": "broken", "metadata": {"k": "v"}},
    )
    assert resp.status_code == 201
    refund = resp.json()
    assert refund["object"] == "refund"
    assert refund["chargeId"] == charge_id
    assert (refund["amount"], refund["status"], refund["reason"]) == (300, "refunded", "broken")
    charge = get(emu, f"/charges/{charge_id}").json()
    assert charge["status"] == "partially_refunded"
    assert charge["refunds"]["amount"] == 300
    assert charge["refunds"]["totalCount"] == 1
    assert_error(post(emu, f"/charges/{charge_id}/refunds", {"amount": 701}), "M002002")
    post(emu, f"/charges/{charge_id}/refunds", {"amount": 700})
    charge = get(emu, f"/charges/{charge_id}").json()
    assert (charge["status"], charge["refunded"]) == ("refunded", True)
    assert_error(post(emu, f"/charges/{charge_id}/refunds", {"amount": 1}), "M006002")

    listing = get(emu, f"/charges/{charge_id}/refunds").json()
    assert listing["total"] == 2
    one = get(emu, f"/charges/{charge_id}/refunds/{refund['id']}").json()
    assert one == listing["refunds"][0]
    assert_error(get(emu, f"/charges/{charge_id}/refunds/re_nope"), "M002003")
    types = [json.loads(d.body)["type"] for d in emu.deliveries]
    assert types == ["refund.succeeded", "refund.succeeded"]


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({}, "M002001"),
        ({"amount": 0}, "M002002"),
        ({"amount": 100, "currency": "USD"}, "M002009"),
        ({"amount": 100, "reason": "r" * 256}, "M002002"),
    ],
)
def test_refund_validation(emu, body, code):
    charge_id = paid_charge(emu)
    assert_error(post(emu, f"/charges/{charge_id}/refunds", body), code)


def test_pending_refunds(emu):
    charge_id = paid_charge(emu)
    emu.control("refund_mode", mode="pending")
    refund = post(emu, f"/charges/{charge_id}/refunds", {"amount": 1000}).json()
    assert refund["status"] == "pending"
    assert get(emu, f"/charges/{charge_id}").json()["status"] == "captured"
    # Pending refunds already count against what may be refunded.
    assert_error(post(emu, f"/charges/{charge_id}/refunds", {"amount": 1}), "M002002")
    emu.control("complete_refund", refund_id=refund["id"])
    assert get(emu, f"/charges/{charge_id}").json()["status"] == "refunded"
    with pytest.raises(ControlError):
        emu.control("complete_refund", refund_id=refund["id"])
    with pytest.raises(ControlError):
        emu.control("refund_mode", mode="sometimes")


def test_charge_list_filters_and_pages(emu, clock):
    first = paid_charge(emu, "a")
    clock.advance(timedelta(minutes=1))
    second = paid_charge(emu, "b")
    clock.advance(timedelta(minutes=1))
    third = paid_charge(emu, "c")
    listing = get(emu, "/charges").json()
    assert listing["total"] == 3
    assert [c["id"] for c in listing["charges"]] == [third, second, first]
    asc = get(emu, "/charges?order=asc&limit=2&offset=1").json()
    assert [c["id"] for c in asc["charges"]] == [second, third]
    since = to_millis(clock.now() - timedelta(minutes=1))
    recent = get(emu, f"/charges?from={since}&dateField=create_time").json()
    assert {c["id"] for c in recent["charges"]} == {second, third}
    assert get(emu, "/charges?status=refunded").json()["total"] == 0
    assert get(emu, "/charges?paymentMethod=linepay").json()["total"] == 0
    assert_error(get(emu, "/charges?limit=101"), "M002002")
    assert_error(get(emu, "/charges?from=yesterday"), "M002002")
    assert_error(get(emu, "/charges?order=up"), "M002002")


def test_rate_limit_control(emu):
    emu.control("rate_limit", count=2)
    assert_error(get(emu, "/charges"), "M005000")
    assert_error(get(emu, "/charges"), "M005000")
    assert get(emu, "/charges").status_code == 200
    with pytest.raises(ControlError):
        emu.control("rate_limit", count=-1)


def test_code_payment_methods(emu):
    body = get(emu, "/code-setting/payment-methods").json()
    methods = {m["paymentMethod"] for m in body["paymentMethods"]}
    assert {"paypay", "linepay", "merpay", "rakutenpay"} <= methods
    assert body["total"] == len(methods)


def test_payer_page_and_form(emu):
    code = new_code(emu, frontUrl="https://shop.example.com/done")
    page = emu.client.get(f"/elepay/easyqr/{code['id']}")
    assert page.status_code == 200
    assert "1,000 JPY" in page.text
    assert 'value="paypay"' in page.text
    paid = emu.client.post(f"/elepay/easyqr/{code['id']}", data={"paymentMethod": "linepay"})
    assert paid.status_code == 303
    assert paid.headers["location"].startswith("https://shop.example.com/done?status=captured")
    assert (
        emu.client.post(
            f"/elepay/easyqr/{code['id']}", data={"paymentMethod": "linepay"}
        ).status_code
        == 409
    )
    assert emu.client.get("/elepay/easyqr/cd_nope").status_code == 404


def test_ledger_credentials_and_settings(emu):
    charge_id = paid_charge(emu)
    post(
        emu,
        f"/charges/{charge_id}/refunds",
        {"amount": 100, "metadata": {"paygateRefundKey": "pg-refund-r1"}},
    )
    entries = {(e.kind, e.id): e for e in emu.emulator.ledger()}
    charge = entries[("charge", charge_id)]
    assert (charge.key, charge.amount, charge.refunded, charge.status) == (
        "order-1",
        1000,
        100,
        "partially_refunded",
    )
    (refund,) = [e for e in entries.values() if e.kind == "refund"]
    assert refund.key == "pg-refund-r1"

    creds = emu.emulator.credentials()
    assert creds["secret_key"] == SECRET_KEY
    assert creds["base_url"] == "http://127.0.0.1/elepay"
    account = emu.emulator.account_settings()
    assert account == {
        "provider": "elepay",
        "base_url": "http://127.0.0.1/elepay",
        "secret_key": SECRET_KEY,
    }
    from paygate_elepay import ElepaySettings

    ElepaySettings(**{k: v for k, v in account.items() if k != "provider"})

    emu.emulator.reset()
    assert emu.emulator.ledger() == []
    assert get(emu, "/charges").json()["total"] == 0
