"""The official elepay-python-sdk works against the emulator over real loopback HTTP."""

from __future__ import annotations

import json

import httpx
import pytest

from paygate.sandbox import EmulatorContext, ServerThread, WebhookDelivery
from paygate.testing import emulator_app
from paygate_elepay._emulator import SECRET_KEY, ElepayEmulator

elepay = pytest.importorskip("elepay")
from elepay.apis.tags import charge_api, code_api, refund_api  # noqa: E402


class Served:
    def __init__(self, url: str, emulator: ElepayEmulator) -> None:
        self.url = url
        self.emulator = emulator

    def control(self, action: str, **params):
        resp = httpx.post(f"{self.url}/_sandbox/elepay/{action}", json=params)
        resp.raise_for_status()
        return resp.json()


@pytest.fixture
def served(clock):
    deliveries: list[WebhookDelivery] = []
    box: dict[str, str] = {}
    emulator = ElepayEmulator(
        EmulatorContext(clock=clock, base_url=lambda: box["url"], deliver=deliveries.append)
    )
    # The emulator is driven from the server's event loop only (it takes no locks).
    server = ServerThread(emulator_app(emulator, control=True))
    box["url"] = f"{server.url}/elepay"
    with server:
        yield Served(server.url, emulator)


@pytest.fixture
def client(served):
    conf = elepay.Configuration(SECRET_KEY)
    conf.host = f"{served.url}/elepay"
    with elepay.ApiClient(conf) as api_client:
        yield api_client


def test_sdk_code_create_get_close(served, client):
    codes = code_api.CodeApi(client)
    created = codes.create_code(
        body={
            "orderNo": "sdk-order-1",
            "amount": 1500,
            "currency": "JPY",
            "description": "SDK wire test",
            "frontUrl": "https://shop.example.com/done",
            "expiryDuration": 10,
            "items": [{"name": "Latte", "price": 750, "count": 2}],
            "metadata": {"shop": "1"},
        }
    )
    assert created.response.status == 201
    code_id = str(created.body["id"])
    assert created.body["status"] == "pending"
    assert int(created.body["amount"]) == 1500

    fetched = codes.retrieve_code(path_params={"codeId": code_id})
    assert fetched.body["orderNo"] == "sdk-order-1"
    assert fetched.body["items"][0]["name"] == "Latte"

    closed = codes.close_code(path_params={"codeId": code_id})
    assert closed.response.status == 204
    assert codes.retrieve_code(path_params={"codeId": code_id}).body["status"] == "closed"


def test_sdk_charge_retrieval_and_refunds(served, client):
    codes = code_api.CodeApi(client)
    code_id = str(codes.create_code(body={"orderNo": "sdk-order-2", "amount": 2000}).body["id"])
    paid = served.control("pay_code", code_id=code_id, payment_method="paypay")
    charge_id = paid["chargeId"]

    code = codes.retrieve_code(path_params={"codeId": code_id})
    assert code.body["status"] == "captured"
    assert code.body["charge"]["id"] == charge_id

    charges = charge_api.ChargeApi(client)
    charge = charges.retrieve_charge(path_params={"id": charge_id})
    assert charge.body["status"] == "captured"
    assert charge.body["paymentMethod"] == "paypay"
    listed = charges.list_charges(query_params={"limit": 10, "order": "desc"})
    assert int(listed.body["total"]) == 1
    status = charges.retrieve_charge_status(path_params={"id": charge_id})
    assert status.body["status"] == "captured"

    refunds = refund_api.RefundApi(client)
    first = refunds.create_refund(
        path_params={"id": charge_id}, body={"amount": 500, "reason": "partial"}
    )
    assert first.response.status == 201
    assert first.body["status"] == "refunded"
    refunds.create_refund(path_params={"id": charge_id}, body={"amount": 1500})
    listing = refunds.list_charges_refunds(path_params={"id": charge_id})
    assert int(listing.body["total"]) == 2
    one = refunds.retrieve_charge_refund(
        path_params={"id": charge_id, "refundId": str(first.body["id"])}
    )
    assert int(one.body["amount"]) == 500
    after = charges.retrieve_charge(path_params={"id": charge_id})
    assert after.body["status"] == "refunded"
    assert int(after.body["refunds"]["amount"]) == 2000


def test_sdk_sees_m_code_errors(served, client):
    codes = code_api.CodeApi(client)
    code_id = str(codes.create_code(body={"orderNo": "sdk-order-3", "amount": 100}).body["id"])
    served.control("pay_code", code_id=code_id)
    with pytest.raises(elepay.ApiException) as info:
        codes.create_code(body={"orderNo": "sdk-order-3", "amount": 100})
    assert info.value.status == 400
    assert json.loads(info.value.body)["errorCode"] == "M002007"

    conf = elepay.Configuration("sk_test_wrong")
    conf.host = f"{served.url}/elepay"
    with elepay.ApiClient(conf) as wrong, pytest.raises(elepay.ApiException) as info:
        code_api.CodeApi(wrong).retrieve_code(path_params={"codeId": code_id})
    assert info.value.status == 400
    assert json.loads(info.value.body)["errorCode"] == "M004001"
