"""Documented-response tests: elepay's published answers fed to the adapter.

Each case in ``documented/`` is written from elepay's own sources (the OpenAPI 1.2.5
file of the official Java SDK, the server FAQ, the error-code and webhook pages; the
``source`` field says which) and runs through a `Gateway` on a `ScriptedTransport`,
which also checks what paygate sends. The same documented bodies are then compared
with what the emulator answers in the same state (`assert_shape`), so the sandbox
cannot drift from the documents unnoticed.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from paygate import Gateway, Money, PaygateError, QRCode
from paygate._retry import RetryPolicy
from paygate.testing import ScriptedTransport, assert_shape, documented_outcome, load_cases
from paygate.testing._documented import DocumentedCase, Exchange

CASES = load_cases(Path(__file__).parent / "documented")
ACCOUNT = "qr"
LOCATION = "loc_shibuya"

# Documented fields the emulator leaves out (named in docs/providers/elepay.md,
# "Assumptions"): they belong to other payment flows (card, customer-presented codes,
# client SDKs) or to elepay's settlement, which an EasyQR sandbox does not model.
EMULATOR_OMITS = [
    "$.charge.codeContent",
    "$.charge.credential",
    "$.charge.voucherNo",
    "$.charge.clientIp",
    "$.charge.settleTime",
    "$.charge.authorizeAmount",
    "$.charge.expiryTime",
    "$.codeContent",
    "$.credential",
    "$.voucherNo",
    "$.clientIp",
    "$.settleTime",
    "$.authorizeAmount",
    "$.charges[0].codeContent",
]


def gateway(transport: ScriptedTransport) -> Gateway:
    config = {
        "store": "memory://",
        "accounts": {
            ACCOUNT: {
                "provider": "elepay",
                "secret_key": "sk_test_documented",
                "location_id": LOCATION,
            }
        },
    }
    return Gateway.from_config(config, transport=transport, retry=RetryPolicy.no_wait(1))


def run(case: DocumentedCase, gw: Gateway) -> Any:
    key = case.data["key"]
    charge = gw.charge(ACCOUNT, amount=Money.jpy(1200), method=QRCode(), idempotency_key=key)
    operation = case.data["operation"]
    if operation == "charge":
        return charge
    if operation == "status":
        return gw.status(ACCOUNT, charge.id)
    if operation == "cancel":
        return gw.cancel(ACCOUNT, charge.id)
    if operation == "refund":
        return gw.refund(
            ACCOUNT,
            charge.id,
            amount=Money.jpy(case.data["refund_amount"]),
            idempotency_key=case.data["refund_key"],
        )
    if operation == "webhook":
        body = json.dumps(case.data["webhook"]).encode()
        (event,) = gw.webhooks.handle(ACCOUNT, {"content-type": "application/json"}, body)
        return event
    raise AssertionError(f"unknown operation {operation!r}")


@pytest.mark.parametrize("case", CASES, ids=str)
def test_documented_case(case: DocumentedCase) -> None:
    transport = ScriptedTransport(case.exchanges)
    expect = case.expect
    with gateway(transport) as gw:
        result = documented_outcome(expect, lambda: run(case, gw))
        if "error" not in expect:
            check(result, expect)
    transport.assert_done()


def check(result: Any, expect: dict[str, Any]) -> None:
    if "status" in expect:
        assert str(result.status) == expect["status"]
    if "amount_refunded" in expect:
        assert result.amount_refunded == Money.jpy(expect["amount_refunded"])
    if "amount_captured" in expect:
        assert result.amount_captured == Money.jpy(expect["amount_captured"])
    if "next_action" in expect:
        assert result.next_action is not None
        assert result.next_action.type == expect["next_action"]
    if "next_action_url" in expect:
        assert result.next_action.url == expect["next_action_url"]
    if "refund_status" in expect:
        assert str(result.status) == expect["refund_status"]
    if "refund_amount" in expect:
        assert result.amount == Money.jpy(expect["refund_amount"])
    if "event_type" in expect:
        assert result.type == expect["event_type"]
    if "amount" in expect:
        assert result.amount == Money.jpy(expect["amount"])
    if "provider_event_id" in expect:
        assert result.provider_event_id == expect["provider_event_id"]


def test_a_refusal_elepay_calls_temporary_reaches_elepay_again() -> None:
    """M006001 left the refund key retryable: the same key is sent to elepay again."""
    busy = next(c for c in CASES if c.name == "07_refund_another_operation_in_progress")
    done = next(c for c in CASES if c.name == "06_refund")
    created, read, _read, refused = busy.exchanges
    accepted = done.exchanges[3]
    transport = ScriptedTransport([created, read, read, refused, read, accepted])
    with gateway(transport) as gw:
        charge = gw.charge(
            ACCOUNT, amount=Money.jpy(1200), method=QRCode(), idempotency_key=busy.data["key"]
        )
        key = busy.data["refund_key"]
        with pytest.raises(PaygateError) as info:
            gw.refund(ACCOUNT, charge.id, amount=Money.jpy(300), idempotency_key=key)
        assert info.value.provider_code == "M006001"
        refund = gw.refund(ACCOUNT, charge.id, amount=Money.jpy(300), idempotency_key=key)
        assert refund.amount == Money.jpy(300)
    transport.assert_done()


# -- the emulator gives the same shapes ---------------------------------------------


@pytest.mark.parametrize("case", CASES, ids=str)
def test_emulator_answers_in_the_documented_shape(case: DocumentedCase, emu: Any) -> None:
    for exchange in case.exchanges:
        if not isinstance(exchange.response_body, dict):
            continue  # 204 and other empty answers have no shape
        actual = emulator_answer(emu, exchange)
        assert_shape(exchange.response_body, actual, ignore=EMULATOR_OMITS)


def _auth() -> dict[str, str]:
    import base64

    from paygate_elepay._emulator import SECRET_KEY

    token = base64.b64encode(f"{SECRET_KEY}:".encode()).decode()
    return {"Authorization": f"Basic {token}", "Content-Type": "application/json;charset=utf-8"}


_SERIAL = iter(range(1_000_000))


def _new_code(emu: Any, order_no: str | None = None) -> dict[str, Any]:
    body = {
        "orderNo": order_no or f"doc-{next(_SERIAL)}",
        "amount": 1200,
        "currency": "JPY",
        "description": "Coffee",
        "frontUrl": "https://shop.example.com/paid",
        "locationId": LOCATION,
        "metadata": {"shop": "1"},
        "items": [
            {
                "name": "Coffee",
                "price": 1200,
                "count": 1,
                "image": "https://shop.example.com/c.png",
            }
        ],
    }
    resp = emu.client.post("/elepay/codes", content=json.dumps(body).encode(), headers=_auth())
    assert resp.status_code in (201, 400), resp.text
    return dict(resp.json())


def _paid(emu: Any, status: str = "captured") -> tuple[dict[str, Any], str]:
    code = _new_code(emu)
    charge_id = emu.control("pay_code", code_id=code["id"])["chargeId"]
    if status in ("partially_refunded", "refunded"):
        amount = 300 if status == "partially_refunded" else 1200
        _post(emu, f"/charges/{charge_id}/refunds", {"amount": amount, "reason": "doc"})
    elif status == "revoked":
        _post(emu, f"/charges/{charge_id}/revoke", {})
    return code, charge_id


def _post(emu: Any, path: str, body: dict[str, Any]) -> Any:
    return emu.client.post(f"/elepay{path}", content=json.dumps(body).encode(), headers=_auth())


def _get(emu: Any, path: str) -> Any:
    return emu.client.get(f"/elepay{path}", headers=_auth()).json()


def emulator_answer(emu: Any, exchange: Exchange) -> dict[str, Any]:
    """The emulator's answer to the documented request, in the documented state."""
    documented = exchange.response_body
    error = documented.get("errorCode")
    if exchange.method == "POST" and exchange.path == "/codes":
        if error == "M002007":
            first = _new_code(emu)
            return _new_code(emu, first["orderNo"])  # still valid: refused
        return _new_code(emu)
    if error == "M006001":
        _code, charge_id = _paid(emu)
        emu.control("busy", count=1)
        return dict(_post(emu, f"/charges/{charge_id}/refunds", {"amount": 300}).json())
    if exchange.method == "GET" and re.fullmatch(r"/codes/[^/]+", exchange.path):
        if documented["status"] == "pending":
            return _get(emu, f"/codes/{_new_code(emu)['id']}")
        if documented["status"] == "closed":
            code = _new_code(emu)
            emu.client.delete(f"/elepay/codes/{code['id']}", headers=_auth())
            return _get(emu, f"/codes/{code['id']}")
        code, _charge_id = _paid(emu, documented["charge"]["status"])
        return _get(emu, f"/codes/{code['id']}")
    if exchange.method == "GET" and exchange.path == "/charges":
        _paid(emu)
        return _get(emu, "/charges?from=0&limit=100")
    if exchange.method == "GET" and re.fullmatch(r"/charges/[^/]+", exchange.path):
        _code, charge_id = _paid(emu, documented["status"])
        return _get(emu, f"/charges/{charge_id}")
    if exchange.method == "POST" and exchange.path.endswith("/refunds"):
        _code, charge_id = _paid(emu)
        body = {
            "amount": documented["amount"],
            "reason": "doc",
            "metadata": {"paygateRefundKey": "pg-refund-doc"},
        }
        return dict(_post(emu, f"/charges/{charge_id}/refunds", body).json())
    raise AssertionError(f"no emulator state for {exchange.method} {exchange.path}")
