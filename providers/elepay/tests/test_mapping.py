"""Status mapping and recovery paths, fed with canned elepay replies."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from paygate import ChargeStatus, Money, OutcomeUnknown, QRCode
from paygate.adapter import CacheGet, CachePut, Call, ChargeRequest, Reply, drive
from paygate_elepay._charges import charge_status, code_status, parse_ref
from paygate_elepay._wire import from_millis

CT = {"content-type": "application/json;charset=utf-8"}


def ok(body, status=200):
    return Reply(status, CT, json.dumps(body).encode())


def err(code, status=400):
    return Reply(
        status,
        CT,
        json.dumps({"code": "9_000_000_40000", "errorCode": code, "message": "m"}).encode(),
    )


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ({"status": "pending"}, ChargeStatus.REQUIRES_ACTION),
        (
            {"status": "pending", "expired": False, "expiryPeriod": 5000},
            ChargeStatus.REQUIRES_ACTION,
        ),
        # elepay's own flag, with no time left: expired even before it is closed
        ({"status": "pending", "expired": True, "expiryPeriod": 0}, ChargeStatus.EXPIRED),
        (
            {"status": "pending", "expired": True, "expiryPeriod": 9000},
            ChargeStatus.REQUIRES_ACTION,
        ),
        ({"status": "captured"}, ChargeStatus.SUCCEEDED),
        ({"status": "closed", "expired": True}, ChargeStatus.EXPIRED),
        ({"status": "closed", "expired": False}, ChargeStatus.CANCELED),
        ({"status": "closed", "expiryPeriod": 0}, ChargeStatus.EXPIRED),
        # Nothing says it was deleted and paygate did not close it: it ran out.
        ({"status": "closed"}, ChargeStatus.EXPIRED),
        # elepay's own clock says time was left: someone deleted it.
        ({"status": "closed", "expired": True, "expiryPeriod": 60_000}, ChargeStatus.CANCELED),
        ({"status": "something-new"}, ChargeStatus.REQUIRES_ACTION),
        ({"status": "pending", "charge": {"status": "pending"}}, ChargeStatus.REQUIRES_ACTION),
        (
            {"status": "closed", "expired": True, "charge": {"status": "pending"}},
            ChargeStatus.EXPIRED,
        ),
        ({"status": "captured", "charge": {"status": "captured"}}, ChargeStatus.SUCCEEDED),
        ({"status": "captured", "charge": {"status": "uncaptured"}}, ChargeStatus.AUTHORIZED),
        (
            {"status": "captured", "charge": {"status": "partially_refunded"}},
            ChargeStatus.PARTIALLY_REFUNDED,
        ),
        ({"status": "captured", "charge": {"status": "refunded"}}, ChargeStatus.REFUNDED),
        ({"status": "captured", "charge": {"status": "failed"}}, ChargeStatus.SUCCEEDED),
    ],
)
def test_code_status(code, expected):
    assert code_status(code) is expected


NOW = datetime(2026, 11, 2, 3, 0, tzinfo=UTC)
EXPIRY = int(NOW.timestamp() * 1000) + 10 * 60_000


@pytest.mark.parametrize("flag", [True, False, None], ids=["invalid", "ran_out", "absent"])
def test_a_code_paygate_closed_is_canceled_whatever_the_expired_flag_means(flag):
    # closed = "expired or deleted" (one value); what `expired` says of a deleted code
    # is not documented: paygate's own DELETE decides.
    code = {"status": "closed", "expiryTime": EXPIRY - 20 * 60_000, "expiryPeriod": 0}
    if flag is not None:
        code["expired"] = flag
    assert code_status(code, now=NOW, closed_by_paygate=True) is ChargeStatus.CANCELED


@pytest.mark.parametrize("flag", [True, False], ids=["invalid", "ran_out"])
def test_a_code_closed_long_before_its_expiry_time_was_deleted(flag):
    code = {"status": "closed", "expired": flag, "expiryTime": EXPIRY, "expiryPeriod": 0}
    assert code_status(code, now=NOW) is ChargeStatus.CANCELED


def test_a_code_closed_after_its_expiry_time_ran_out():
    code = {"status": "closed", "expired": True, "expiryTime": EXPIRY, "expiryPeriod": 0}
    assert code_status(code, now=NOW + timedelta(minutes=11)) is ChargeStatus.EXPIRED


@pytest.mark.parametrize(
    ("charge", "expected"),
    [
        ({"status": "pending"}, ChargeStatus.REQUIRES_ACTION),
        ({"status": "uncaptured"}, ChargeStatus.AUTHORIZED),
        ({"status": "captured"}, ChargeStatus.SUCCEEDED),
        ({"status": "partially_refunded"}, ChargeStatus.PARTIALLY_REFUNDED),
        ({"status": "refunded"}, ChargeStatus.REFUNDED),
        ({"status": "revoked"}, ChargeStatus.CANCELED),
        ({"status": "revoked", "paid": True}, ChargeStatus.REFUNDED),
        ({"status": "failed"}, None),
        ({}, None),
    ],
)
def test_charge_status(charge, expected):
    assert charge_status(charge) is expected


def test_refs():
    assert str(parse_ref("code:cd_1")) == "code:cd_1"
    assert str(parse_ref("charge:ch_1")) == "charge:ch_1"
    assert str(parse_ref("cd_bare")) == "code:cd_bare"


def test_timestamps_are_milliseconds_but_seconds_are_read_too():
    when = datetime(2026, 11, 2, 3, 0, tzinfo=UTC)
    assert from_millis(int(when.timestamp()) * 1000) == when
    assert from_millis(int(when.timestamp())) == when
    assert from_millis(None) is None
    assert from_millis(True) is None
    assert from_millis(-1) is None


@pytest.mark.parametrize("code", ["M002007", "M002004"])
def test_a_taken_order_number_that_cannot_be_found_is_outcome_unknown(provider, make_ctx, code):
    # Server FAQ: M002007 = paid, or a code with this orderNo is still valid. paygate
    # had never sent it, and the charge list cannot rule a payment out: unknown, never a
    # final refusal (which a replay of the key would repeat while money may be taken).
    def respond(call: Call) -> Reply:
        if call.method == "POST":
            return err(code)
        return ok({"total": 0, "charges": []})

    req = ChargeRequest(amount=Money.jpy(500), method=QRCode())
    with pytest.raises(OutcomeUnknown, match="paid, or a code still valid"):
        drive(provider.charge(req, make_ctx()), respond, {})


def test_stale_cache_entry_falls_back_to_the_charge_list(provider, make_ctx):
    paid = {
        "id": "ch_9",
        "object": "charge",
        "amount": 500,
        "currency": "JPY",
        "orderNo": "pg-code-order-1042",
        "status": "captured",
        "createTime": 1_793_588_400_000,
    }

    def respond(call: Call) -> Reply:
        if "/codes/" in call.url:
            return err("M002003")
        return ok({"total": 1, "charges": [paid]})

    cache = {"elepay:qr:order:pg-code-order-1042": {"codeId": "cd_gone"}}
    req = ChargeRequest(amount=Money.jpy(500), method=QRCode())
    found = drive(provider.lookup_charge(req, make_ctx()), respond, cache)
    assert found is not None
    # The code id is still the best reference paygate has for it.
    assert found.provider_ref == "code:cd_gone"
    assert found.status is ChargeStatus.SUCCEEDED
    entry = cache["elepay:qr:order:pg-code-order-1042"]
    assert (entry["codeId"], entry["chargeId"]) == ("cd_gone", "ch_9")


def test_charge_flow_effects_in_order(provider, make_ctx):
    flow = provider.charge(ChargeRequest(amount=Money.jpy(500), method=QRCode()), make_ctx())
    state = next(flow)
    assert state == CacheGet("elepay:qr:key:pg-code-order-1042")
    record = flow.send(None)
    # Every orderNo is recorded under the key before it is sent.
    assert isinstance(record, CachePut)
    assert record.value["orders"] == ["pg-code-order-1042"]
    call = flow.send(None)
    assert isinstance(call, Call)
    assert json.loads(call.content or b"")["orderNo"] == "pg-code-order-1042"
    code = {
        "id": "cd_1",
        "object": "code",
        "codeUrl": "https://qr.example/cd_1",
        "amount": 500,
        "currency": "JPY",
        "status": "pending",
        "expiryTime": 1_793_589_000_000,
        "createTime": 1_793_588_400_000,
    }
    put = flow.send(ok(code, 201))
    assert isinstance(put, CachePut)
    assert put.value == {"codeId": "cd_1", "key": "pg-code-order-1042"}
    with pytest.raises(StopIteration) as done:
        flow.send(None)
    charge = done.value.value
    assert charge.next_action.expires_at == from_millis(1_793_589_000_000)
    assert not isinstance(put, CacheGet)
