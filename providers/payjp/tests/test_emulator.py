"""The emulator through the adapter's own flows (ASGI, no sockets), on a frozen clock.

The first Term is January 2026 in Japan time: the clock starts 2026-01-10 12:00 JST and
the closing run happens at 2026-02-01 00:00 JST.
"""

from __future__ import annotations

import json
from datetime import date
from typing import Any
from urllib.parse import urlsplit

import pytest

from paygate import (
    AuthenticationError,
    Card,
    Charge,
    ChargeStatus,
    IdempotencyConflict,
    InvalidRequest,
    Money,
    NotFound,
    PaymentDeclined,
    ProviderRejected,
    Redirect,
)
from paygate.adapter import (
    CancelRequest,
    CaptureRequest,
    ChargeRef,
    ChargeRequest,
    RefundRequest,
)
from paygate.sandbox import ControlError
from paygate_payjp._api import Api
from paygate_payjp._emulator import SECRET_KEY, WEBHOOK_TOKEN


def pay(
    sb: Any,
    amount: int,
    key: str,
    *,
    token: str = "tok_success",
    capture: bool = True,
    provider: Any = None,
    **card: Any,
) -> Charge:
    req = ChargeRequest(amount=Money.jpy(amount), method=Card(token=token, capture=capture, **card))
    return sb.run((provider or sb.provider).charge(req, sb.ctx(key, charge_id=f"pg_{key}")))  # type: ignore[no-any-return]


def ref(charge: Charge) -> ChargeRef:
    return ChargeRef(
        charge_id=charge.id,
        provider_ref=charge.provider_ref,
        method="card",
        amount=charge.amount,
        amount_refunded=charge.amount_refunded,
        amount_captured=charge.amount_captured,
    )


def get(sb: Any, path: str, **params: Any) -> dict[str, Any]:
    resp = sb.request("GET", f"/payjp{path}", params=params, auth=(SECRET_KEY, ""))
    assert resp.status_code == 200, resp.text
    return resp.json()  # type: ignore[no-any-return]


def balances(sb: Any, **params: Any) -> list[dict[str, Any]]:
    return get(sb, "/v1/balances", limit=100, **params)["data"]  # type: ignore[no-any-return]


def events(sb: Any, kind: str) -> list[dict[str, Any]]:
    found = []
    for delivery in sb.deliveries:
        event = json.loads(delivery.body)
        if event["type"] == kind:
            found.append(event)
    return found


# ---------------------------------------------------------------------------- charges


def test_charge_succeeds_and_is_read_back(emu: Any) -> None:
    charge = pay(emu, 1000, "order-1")
    assert charge.status is ChargeStatus.SUCCEEDED
    assert charge.provider_ref.startswith("ch_")
    assert charge.created_at == emu.clock.now().replace(microsecond=0)
    again = emu.run(emu.provider.status(ref(charge), emu.ctx()))
    assert again.status is ChargeStatus.SUCCEEDED
    assert again.raw["term_id"] == emu.emulator.books.current_term.id
    (event,) = events(emu, "charge.succeeded")
    assert event["data"]["id"] == charge.provider_ref


@pytest.mark.parametrize(
    "code",
    [
        "card_declined",
        "expired_card",
        "invalid_cvc",
        "incorrect_card_data",
        "card_flagged",
        "unacceptable_brand",
        "processing_error",
    ],
)
def test_test_tokens_decline(emu: Any, code: str) -> None:
    with pytest.raises(PaymentDeclined) as info:
        pay(emu, 1000, f"order-{code}", token=f"tok_{code}")
    assert info.value.provider_code == code
    assert info.value.http_status == 402
    (entry,) = emu.emulator.ledger()
    assert entry.status == "failed"
    assert events(emu, "charge.failed")


def test_unknown_token_and_single_use_tokens(emu: Any) -> None:
    with pytest.raises(NotFound) as info:
        pay(emu, 1000, "o1", token="tok_nonexistent")
    assert info.value.provider_code == "invalid_id"
    token = emu.control("token", card="success")["id"]
    assert pay(emu, 1000, "o2", token=token).status is ChargeStatus.SUCCEEDED
    with pytest.raises(ProviderRejected) as again:
        pay(emu, 1000, "o3", token=token)
    assert again.value.provider_code == "token_already_used"
    declining = emu.control("token", card="card_declined")["id"]
    with pytest.raises(PaymentDeclined):
        pay(emu, 1000, "o4", token=declining)
    with pytest.raises(ControlError):
        emu.control("token", card="platinum")


def test_customer_charges(emu: Any) -> None:
    ok = ChargeRequest(amount=Money.jpy(800), method=Card(customer="cus_success"))
    charge = emu.run(emu.provider.charge(ok, emu.ctx("c1")))
    assert charge.status is ChargeStatus.SUCCEEDED
    assert charge.raw["customer"] == "cus_success"
    bad = ChargeRequest(amount=Money.jpy(800), method=Card(customer="cus_card_declined"))
    with pytest.raises(PaymentDeclined):
        emu.run(emu.provider.charge(bad, emu.ctx("c2")))


def test_idempotency_key_replays(emu: Any) -> None:
    first = pay(emu, 1000, "order-7")
    second = pay(emu, 1000, "order-7")
    assert second.provider_ref == first.provider_ref
    assert len(emu.emulator.ledger()) == 1
    assert emu.emulator.ledger()[0].key == "pg-charge-order-7"
    with pytest.raises(IdempotencyConflict) as info:
        pay(emu, 2000, "order-7")
    assert info.value.provider_code == "idempotency_conflict"
    # A declined answer is replayed too, without a second attempt.
    for _ in range(2):
        with pytest.raises(PaymentDeclined):
            pay(emu, 1000, "order-8", token="tok_card_declined")
    assert len(emu.emulator.ledger()) == 2


def test_keys_are_forgotten_after_a_day(emu: Any) -> None:
    first = pay(emu, 1000, "order-9")
    emu.advance(hours=25)
    assert pay(emu, 1000, "order-9").provider_ref != first.provider_ref


def test_wrong_key_is_refused(emu: Any, settings_factory: Any) -> None:
    from paygate_payjp import PayjpProvider

    other = PayjpProvider(settings_factory(secret_key="sk_test_wrong000000"), account="card")
    with pytest.raises(AuthenticationError) as info:
        pay(emu, 1000, "o1", provider=other)
    assert info.value.provider_code == "invalid_api_key"
    resp = emu.request("GET", "/payjp/v1/charges")
    assert resp.status_code == 401
    assert resp.json()["error"]["code"] == "no_api_key"


def test_emulator_refuses_bad_parameters(emu: Any) -> None:
    cases = [
        ({"amount": "49", "currency": "jpy", "card": "tok_success"}, "invalid_amount"),
        ({"amount": "100", "currency": "usd", "card": "tok_success"}, "invalid_currency"),
        ({"amount": "100", "currency": "jpy"}, "missing_param"),
        ({"currency": "jpy", "card": "tok_success"}, "missing_param"),
        (
            {"amount": "100", "currency": "jpy", "card": "tok_success", "capture": "maybe"},
            "invalid_boolean",
        ),
        (
            {"amount": "100", "currency": "jpy", "card": "tok_success", "tenant": "ten_none"},
            "invalid_id",
        ),
        (
            {
                "amount": "100",
                "currency": "jpy",
                "card": "tok_success",
                **{f"metadata[k{i}]": "v" for i in range(21)},
            },
            "too_many_metadata_keys",
        ),
    ]
    for data, code in cases:
        resp = emu.request("POST", "/payjp/v1/charges", data=data, auth=(SECRET_KEY, ""))
        assert resp.status_code == 400, data
        assert resp.json()["error"]["code"] == code


# ------------------------------------------------------------- capture, cancel, refund


def test_authorise_then_partial_capture_then_refunds(emu: Any) -> None:
    auth = pay(emu, 5000, "order-1", capture=False)
    assert auth.status is ChargeStatus.AUTHORIZED
    assert auth.raw["expired_at"] == auth.raw["created"] + 7 * 86_400
    captured = emu.run(
        emu.provider.capture(
            CaptureRequest(charge=ref(auth), amount=Money.jpy(4000)), emu.ctx("order-1-cap")
        )
    )
    assert captured.status is ChargeStatus.SUCCEEDED
    assert captured.amount == Money.jpy(5000)
    assert captured.amount_captured == Money.jpy(4000)
    assert captured.amount_refunded == Money.jpy(0)
    # payjp-go Capture: the released 1,000 is booked in amount_refunded.
    assert (captured.raw["amount"], captured.raw["amount_refunded"]) == (5000, 1000)
    assert events(emu, "charge.captured")

    def refund(amount: int | None, key: str) -> Any:
        money = Money.jpy(amount) if amount is not None else None
        req = RefundRequest(charge=ref(captured), amount=money, reason="returned")
        return emu.run(emu.provider.refund(req, emu.ctx(key)))

    assert refund(1000, "r1").amount == Money.jpy(1000)
    assert refund(500, "r2").amount == Money.jpy(500)
    assert refund(500, "r2").amount == Money.jpy(500)  # replayed, not refunded twice
    status = emu.run(emu.provider.status(ref(captured), emu.ctx()))
    assert status.status is ChargeStatus.PARTIALLY_REFUNDED
    assert status.amount_refunded == Money.jpy(1500)
    # https://pay.jp/docs/refund: refunded is true after any refund.
    assert (status.raw["refunded"], status.raw["amount_refunded"]) == (True, 2500)
    assert status.raw["refund_reason"] == "returned"
    with pytest.raises(InvalidRequest, match="refundable"):
        refund(3000, "r3")  # refused before sending: 2,500 is left
    path = f"/payjp/v1/charges/{captured.provider_ref}/refund"
    over = emu.request("POST", path, data={"amount": "3000"}, auth=(SECRET_KEY, ""))
    assert over.json()["error"]["code"] == "refund_amount_gt_net"
    rest = refund(None, "r4")
    assert rest.amount == Money.jpy(2500)
    assert rest.charge_refunded_total == Money.jpy(4000)
    final = emu.run(emu.provider.status(ref(captured), emu.ctx()))
    assert final.status is ChargeStatus.REFUNDED
    assert final.amount_refunded == Money.jpy(4000)
    with pytest.raises(InvalidRequest, match="nothing is left"):
        refund(100, "r5")
    again = emu.request("POST", path, data={"amount": "100"}, auth=(SECRET_KEY, ""))
    assert again.json()["error"]["code"] == "already_refunded"


@pytest.mark.parametrize("with_amount", [True, False])
def test_the_rest_is_refundable_after_a_partial_refund(emu: Any, with_amount: bool) -> None:
    charge = pay(emu, 12_000, "order-1")
    req = RefundRequest(charge=ref(charge), amount=Money.jpy(1000))
    emu.run(emu.provider.refund(req, emu.ctx("r1")))
    wire = get(emu, f"/v1/charges/{charge.provider_ref}")
    assert (wire["refunded"], wire["amount_refunded"]) == (True, 1000)
    partial = emu.run(emu.provider.status(ref(charge), emu.ctx()))
    assert partial.status is ChargeStatus.PARTIALLY_REFUNDED
    assert partial.amount_refunded == Money.jpy(1000)
    rest = RefundRequest(charge=ref(partial), amount=Money.jpy(11_000) if with_amount else None)
    refund = emu.run(emu.provider.refund(rest, emu.ctx("r2")))
    assert refund.amount == Money.jpy(11_000)
    final = emu.run(emu.provider.status(ref(charge), emu.ctx()))
    assert final.status is ChargeStatus.REFUNDED
    assert final.amount_refunded == Money.jpy(12_000)


@pytest.mark.parametrize("capture_amount", ["authorized", "captured"])
@pytest.mark.parametrize("refunded_after_capture", [False, True])
def test_partial_capture_under_every_reading(
    emu: Any, capture_amount: str, refunded_after_capture: bool
) -> None:
    emu.control(
        "reading", capture_amount=capture_amount, refunded_after_capture=refunded_after_capture
    )
    auth = pay(emu, 500, "order-1", capture=False)
    cap = CaptureRequest(charge=ref(auth), amount=Money.jpy(400))
    captured = emu.run(emu.provider.capture(cap, emu.ctx("cap")))
    wire = captured.raw
    assert wire["amount_refunded"] == 100
    assert wire["amount"] == (500 if capture_amount == "authorized" else 400)
    assert wire["refunded"] is refunded_after_capture
    for charge in (captured, emu.run(emu.provider.status(ref(auth), emu.ctx()))):
        assert charge.status is ChargeStatus.SUCCEEDED
        assert (charge.amount, charge.amount_captured) == (Money.jpy(500), Money.jpy(400))
        assert charge.amount_refunded == Money.jpy(0)
    refund = emu.run(
        emu.provider.refund(RefundRequest(charge=ref(captured), amount=None), emu.ctx("r"))
    )
    assert refund.amount == Money.jpy(400)
    assert refund.charge_refunded_total == Money.jpy(400)
    final = emu.run(emu.provider.status(ref(captured), emu.ctx()))
    assert final.status is ChargeStatus.REFUNDED
    assert final.amount_refunded == Money.jpy(400)
    (entry,) = emu.emulator.ledger()[:1]
    assert (entry.amount, entry.refunded, entry.status) == (400, 400, "refunded")


def test_capture_errors(emu: Any) -> None:
    charge = pay(emu, 1000, "order-1")
    with pytest.raises(ProviderRejected) as info:
        emu.run(emu.provider.capture(CaptureRequest(charge=ref(charge)), emu.ctx("cap")))
    assert info.value.provider_code == "already_captured"


def test_cancel_voids_and_refuses_captured(emu: Any) -> None:
    auth = pay(emu, 3000, "order-1", capture=False)
    voided = emu.run(emu.provider.cancel(CancelRequest(charge=ref(auth)), emu.ctx("c")))
    assert voided.status is ChargeStatus.CANCELED
    again = emu.run(emu.provider.cancel(CancelRequest(charge=ref(auth)), emu.ctx("c")))
    assert again.status is ChargeStatus.CANCELED
    captured = pay(emu, 3000, "order-2")
    with pytest.raises(InvalidRequest):
        emu.run(emu.provider.cancel(CancelRequest(charge=ref(captured)), emu.ctx("d")))


@pytest.mark.parametrize("marks_refunded", [True, False])
def test_authorisation_expires_on_the_clock(emu: Any, marks_refunded: bool) -> None:
    emu.control("reading", expiry_marks_refunded=marks_refunded)
    auth = pay(emu, 3000, "order-1", capture=False)
    emu.advance(days=6)
    assert emu.run(emu.provider.status(ref(auth), emu.ctx())).status is (ChargeStatus.AUTHORIZED)
    emu.advance(days=2)
    expired = emu.run(emu.provider.status(ref(auth), emu.ctx()))
    assert expired.status is ChargeStatus.EXPIRED
    assert expired.raw["refunded"] is marks_refunded
    with pytest.raises(ProviderRejected) as info:
        emu.run(emu.provider.capture(CaptureRequest(charge=ref(auth)), emu.ctx("k")))
    code = "cant_capture_refunded_charge" if marks_refunded else "charge_expired"
    assert info.value.provider_code == code
    # A cancel of an expired authorisation sends nothing and reports it expired.
    before = len(emu.calls)
    again = emu.run(emu.provider.cancel(CancelRequest(charge=ref(auth)), emu.ctx("c")))
    assert again.status is ChargeStatus.EXPIRED
    assert [c.step for c in emu.calls[before:]] == ["charges.get"]


def test_three_d_secure_redirect_flow(emu: Any) -> None:
    charge = pay(emu, 2000, "order-1", three_d_secure=True)
    assert charge.status is ChargeStatus.REQUIRES_ACTION
    assert isinstance(charge.next_action, Redirect)
    url = urlsplit(charge.next_action.url)
    assert url.path == f"/payjp/v1/tds/{charge.provider_ref}/start"
    pending = emu.run(emu.provider.status(ref(charge), emu.ctx()))
    assert pending.status is ChargeStatus.REQUIRES_ACTION
    page = emu.request("GET", f"{url.path}?{url.query}")
    assert page.status_code == 200
    assert "verified" in page.text
    done = emu.run(emu.provider.status(ref(charge), emu.ctx()))
    assert done.status is ChargeStatus.SUCCEEDED
    assert [c.step for c in emu.calls[-2:]] == ["charges.get", "charges.tds_finish"]


def test_three_d_secure_failure(emu: Any) -> None:
    charge = pay(emu, 2000, "order-1", token="tok_3ds_failed", three_d_secure=True)
    url = urlsplit(charge.next_action.url)  # type: ignore[union-attr]
    assert "failed" in emu.request("GET", f"{url.path}?{url.query}").text
    failed = emu.run(emu.provider.status(ref(charge), emu.ctx()))
    assert failed.status is ChargeStatus.FAILED
    assert failed.failure is not None
    assert failed.failure.code == "three_d_secure_failed"


def test_three_d_secure_decline_at_tds_finish_is_a_failed_charge(emu: Any) -> None:
    # The card is charged at tds_finish, where a decline is a 402 (not at creation).
    charge = pay(emu, 2000, "order-1", token="tok_card_declined", three_d_secure=True)
    assert charge.status is ChargeStatus.REQUIRES_ACTION
    emu.control("tds", charge=charge.provider_ref, result="verified")
    failed = emu.run(emu.provider.status(ref(charge), emu.ctx()))
    assert failed.status is ChargeStatus.FAILED
    assert failed.failure is not None
    assert failed.failure.code == "card_declined"
    before = len(emu.calls)
    again = emu.run(emu.provider.status(ref(charge), emu.ctx()))
    assert again.status is ChargeStatus.FAILED
    assert [c.step for c in emu.calls[before:]] == ["charges.get"]  # never finished twice


def test_a_verified_flow_past_its_timeout_expires(emu: Any) -> None:
    charge = pay(emu, 2000, "order-1", three_d_secure=True)
    emu.control("tds", charge=charge.provider_ref, result="verified")
    emu.advance(minutes=31)
    expired = emu.run(emu.provider.status(ref(charge), emu.ctx()))
    assert expired.status is ChargeStatus.EXPIRED
    assert emu.calls[-1].step == "charges.tds_finish"
    before = len(emu.calls)
    again = emu.run(emu.provider.status(ref(charge), emu.ctx()))
    assert again.status is ChargeStatus.EXPIRED
    assert [c.step for c in emu.calls[before:]] == ["charges.get"]


@pytest.mark.parametrize("timeout", [30, 90])
def test_an_abandoned_flow_expires_whatever_the_timeout(emu: Any, timeout: int) -> None:
    # The flow's timeout is "一定時間" in PAY.JP's guide (30 minutes in the reference
    # copy): the adapter probes after its setting and believes only PAY.JP's answer.
    emu.control("reading", tds_timeout_minutes=timeout)
    charge = pay(emu, 2000, "order-1", three_d_secure=True)
    emu.advance(minutes=20)
    waiting = emu.run(emu.provider.status(ref(charge), emu.ctx()))
    assert waiting.status is ChargeStatus.REQUIRES_ACTION
    assert emu.calls[-1].step == "charges.get"
    emu.advance(minutes=15)  # 35 minutes: past the adapter's 30
    probed = emu.run(emu.provider.status(ref(charge), emu.ctx()))
    assert emu.calls[-1].step == "charges.tds_finish"
    if timeout == 30:
        assert probed.status is ChargeStatus.EXPIRED
    else:
        assert probed.status is ChargeStatus.REQUIRES_ACTION  # still open at PAY.JP
        emu.advance(minutes=60)
        later = emu.run(emu.provider.status(ref(charge), emu.ctx()))
        assert later.status is ChargeStatus.EXPIRED


def test_attempted_results_can_be_refused(emu: Any) -> None:
    strict = emu.with_settings(tds_finish_attempted=False)
    charge = pay(emu, 2000, "order-1", three_d_secure=True, provider=strict)
    emu.control("tds", charge=charge.provider_ref, result="attempted")
    refused = emu.run(strict.status(ref(charge), emu.ctx()))
    assert refused.status is ChargeStatus.FAILED
    assert refused.failure is not None
    assert refused.failure.code == "three_d_secure_attempted"
    assert emu.calls[-1].step == "charges.get"  # never finished


def test_three_d_secure_control_action(emu: Any) -> None:
    charge = pay(emu, 2000, "order-1", three_d_secure=True)
    emu.control("tds", charge=charge.provider_ref, result="attempted")
    done = emu.run(emu.provider.status(ref(charge), emu.ctx()))
    assert done.status is ChargeStatus.SUCCEEDED
    with pytest.raises(ControlError):
        emu.control("tds", charge=charge.provider_ref)


# ---------------------------------------------------------------------------- payouts


def test_closing_run_moves_a_large_balance_to_transfer(emu: Any) -> None:
    pay(emu, 12_000, "order-1")
    before = emu.run(emu.provider.payout_balance(emu.ctx()))
    assert before.collecting == Money.jpy(0)  # nothing is fixed before the closing run
    assert before.raw["current_term"]["closed"] is False
    emu.advance(days=22)  # past 2026-02-01 00:00 JST
    terms = get(emu, "/v1/terms")["data"]
    assert [t["closed"] for t in terms] == [False, True]
    assert terms[1]["charge_count"] == 1
    (balance,) = balances(emu)
    assert balance["state"] == "transfer"
    assert [st["type"] for st in balance["statements"]] == ["sales", "transfer_fee"]
    sales = balance["statements"][0]
    assert [(i["subject"], i["amount"]) for i in sales["items"]] == [
        ("gross_sales", 12_000),
        ("fee", -360),
    ]
    assert sales["term"]["id"] == terms[1]["id"]
    assert balance["net"] == 12_000 - 360 - 250
    assert balance["bank_info"]["bank_account_status"] == "pending"
    payout = emu.run(emu.provider.payout_balance(emu.ctx()))
    assert payout.scheduled == Money.jpy(11_390)
    assert payout.next_payout_date == date(2026, 2, 28)
    assert payout.next_payout_amount == Money.jpy(11_390)
    assert {i.kind for i in payout.items} == {"gross_sales", "fee", "transfer_fee"}
    (fixed,) = events(emu, "balance.fixed")
    assert fixed["data"]["id"] == balance["id"]
    delivery = next(d for d in emu.deliveries if d.event_id == fixed["id"])
    assert delivery.headers["X-Payjp-Webhook-Token"] == WEBHOOK_TOKEN
    assert events(emu, "term.closed")
    assert events(emu, "statement.created")
    emu.advance(days=30)  # past the due date: PAY.JP paid it
    (paid,) = balances(emu)
    assert paid["closed"] is True
    assert paid["closed_date"] == paid["due_date"]
    assert paid["bank_info"]["bank_account_status"] == "success"
    after = emu.run(emu.provider.payout_balance(emu.ctx()))
    assert after.scheduled == Money.jpy(0)
    assert events(emu, "balance.closed")


def test_small_balance_is_deferred(emu: Any) -> None:
    pay(emu, 5_000, "order-1")
    emu.advance(days=22)
    (balance,) = balances(emu)
    assert balance["state"] == "collecting"
    assert balance["net"] == 4_850
    pay(emu, 6_000, "order-2")
    emu.advance(days=28)  # past 2026-03-01: 4,850 + 5,820 >= 10,000
    (balance,) = balances(emu)
    assert balance["state"] == "transfer"
    assert balance["net"] == 4_850 + 5_820 - 250
    assert [st["type"] for st in balance["statements"]] == ["sales", "sales", "transfer_fee"]


def test_deferred_balance_is_reported_as_collecting(emu: Any) -> None:
    pay(emu, 5_000, "order-1")
    emu.advance(days=22)
    payout = emu.run(emu.provider.payout_balance(emu.ctx()))
    assert payout.collecting == Money.jpy(4_850)
    assert payout.scheduled == Money.jpy(0)
    assert payout.next_payout_date is None


def test_tiny_balance_is_forfeited_after_a_year(emu: Any) -> None:
    pay(emu, 500, "order-1")
    emu.advance(days=22)
    assert balances(emu)[0]["state"] == "collecting"
    emu.advance(days=360)  # 2027-01-27: deferral runs until 2027-02-01 JST
    assert balances(emu)[0]["closed"] is False
    emu.advance(days=10)
    (balance,) = balances(emu)
    assert balance["state"] == "transfer"
    assert balance["closed"] is True
    assert balance["net"] == 0
    forfeit = balance["statements"][-1]
    assert forfeit["type"] == "forfeit"
    assert forfeit["items"] == [
        {"subject": "forfeit", "name": "失効", "amount": -485, "tax_rate": "0.00"}
    ]
    assert balance["closed_date"] == 1801407600  # 2027-02-01 00:00 JST
    assert get(emu, "/v1/statements", type="forfeit")["count"] == 1


def test_balance_over_the_floor_is_paid_when_deferral_ends(emu: Any) -> None:
    pay(emu, 3_000, "order-1")
    emu.advance(days=390)
    (balance,) = balances(emu)
    assert balance["state"] == "transfer"
    assert balance["closed"] is False
    assert balance["net"] == 2_910 - 250


def test_negative_net_becomes_a_claim(emu: Any) -> None:
    charge = pay(emu, 20_000, "order-1")
    emu.advance(days=22)
    req = RefundRequest(charge=ref(charge), amount=Money.jpy(20_000))
    emu.run(emu.provider.refund(req, emu.ctx("r1")))
    emu.advance(days=28)  # past 2026-03-01 JST
    claim = balances(emu, state="claim")
    assert len(claim) == 1
    assert claim[0]["net"] == -20_000 + 600
    items = {i["subject"]: i["amount"] for i in claim[0]["statements"][0]["items"]}
    assert items == {"gross_refund": -20_000, "refund_fee_offset": 600}
    payout = emu.run(emu.provider.payout_balance(emu.ctx()))
    assert payout.owed == Money.jpy(19_400)
    settled = emu.control("settle_claim", balance=claim[0]["id"])
    assert settled["closed"] is True
    assert emu.run(emu.provider.payout_balance(emu.ctx())).owed == Money.jpy(0)


def test_close_term_control_and_configure(emu: Any) -> None:
    pay(emu, 15_000, "order-1")
    result = emu.control("close_term")
    assert result["term"]["closed"] is True
    assert result["term"]["end_at"] == int(emu.clock.now().timestamp())
    assert [st["type"] for st in result["statements"]] == ["sales"]
    (balance,) = result["balances"]
    assert balance["state"] == "transfer"
    assert balance["due_date"] == 1772204400  # 2026-02-28 00:00 JST
    emu.control("configure", cycle_days=7, payout_days=3)
    current = emu.emulator.books.current_term
    assert current.end_at == 1769871600  # the running Term keeps its end
    emu.advance(days=22)
    latest = get(emu, "/v1/terms", limit=1)["data"][0]
    assert latest["end_at"] - latest["start_at"] == 7 * 86_400
    with pytest.raises(ControlError):
        emu.control("configure", cycle_days="weekly")
    with pytest.raises(ControlError):
        emu.control("no_such_action")


def test_payout_control(emu: Any) -> None:
    pay(emu, 15_000, "order-1")
    (balance,) = emu.control("close_term")["balances"]
    paid = emu.control("payout", balance=balance["id"])
    assert paid["closed"] is True
    with pytest.raises(ControlError):
        emu.control("payout", balance=balance["id"])


def test_lists_page_and_filter(emu: Any) -> None:
    for i in range(5):
        pay(emu, 1_000, f"order-{i}")
        emu.control("close_term")
    page = get(emu, "/v1/statements", limit=2, offset=0)
    assert (page["count"], page["has_more"], page["url"]) == (2, True, "/v1/statements")
    last = get(emu, "/v1/statements", limit=2, offset=4)
    assert (last["count"], last["has_more"]) == (1, False)
    api = Api(emu.provider.api.base_url, SECRET_KEY)
    everything = emu.run(api.paged("/v1/statements", {}, step="s", page_size=2))
    assert len(everything) == 5
    assert len({st["id"] for st in everything}) == 5
    assert len([c for c in emu.calls if c.step == "s"]) == 3
    first_term = get(emu, "/v1/terms", limit=100)["data"][-1]["id"]
    assert get(emu, "/v1/statements", term=first_term)["count"] == 1
    assert get(emu, "/v1/statements", owner="tenant")["count"] == 0
    assert get(emu, "/v1/balances", state="collecting", closed="false")["count"] == 1
    assert get(emu, "/v1/balances", state="transfer")["count"] == 0
    charges = get(emu, "/v1/charges", limit=3)
    assert charges["count"] == 3
    assert charges["has_more"] is True
    created = [c["created"] for c in get(emu, "/v1/charges", limit=100)["data"]]
    assert created == sorted(created, reverse=True)
    resp = emu.request("GET", "/payjp/v1/balances", params={"limit": 101}, auth=(SECRET_KEY, ""))
    assert resp.status_code == 400
    resp = emu.request("GET", "/payjp/v1/balances", params={"owner": "x"}, auth=(SECRET_KEY, ""))
    assert resp.json()["error"]["code"] == "invalid_owner_type"


def test_provider_statement_listing(emu: Any) -> None:
    pay(emu, 12_000, "order-1")
    emu.control("close_term")
    statements = emu.run(emu.provider.payout_statements(emu.ctx(), type="sales"))
    assert [st.type for st in statements] == ["sales"]
    assert statements[0].net == Money.jpy(11_640)
    assert statements[0].term is not None
    assert statements[0].term.closed
    fees = emu.run(emu.provider.payout_statements(emu.ctx(), type="transfer_fee"))
    assert [st.net for st in fees] == [Money.jpy(-250)]
    all_balances = emu.run(emu.provider.payout_balances(emu.ctx(), state="transfer"))
    assert [b.state for b in all_balances] == ["transfer"]
    terms = emu.run(emu.provider.payout_terms(emu.ctx()))
    assert [t.closed for t in terms] == [False, True]


def test_tenants(emu: Any) -> None:
    tenant_provider = emu.with_settings(tenant="ten_test")
    charge = pay(emu, 20_000, "order-1", provider=tenant_provider)
    assert charge.raw["tenant"] == "ten_test"
    assert charge.raw["platform_fee"] == 2_000
    emu.advance(days=22)
    tenant = emu.run(tenant_provider.payout_balance(emu.ctx()))
    assert tenant.scheduled == Money.jpy(20_000 - 600 - 2_000 - 250)
    merchant = emu.run(emu.provider.payout_balance(emu.ctx()))
    assert merchant.collecting == Money.jpy(2_000)
    assert get(emu, "/v1/balances", owner="tenant")["count"] == 1
    assert get(emu, "/v1/balances", tenant="ten_test")["data"][0]["tenant_id"] == "ten_test"
    new = emu.request(
        "POST",
        "/payjp/v1/tenants",
        data={"name": "Shop", "platform_fee_rate": "5.00", "id": "ten_shop"},
        auth=(SECRET_KEY, ""),
    )
    assert new.status_code == 200
    assert get(emu, "/v1/tenants/ten_shop")["platform_fee_rate"] == "5.00"
    assert emu.control("tenant", id="ten_other")["id"] == "ten_other"


def test_statement_urls_download_for_an_hour(emu: Any) -> None:
    pay(emu, 12_000, "order-1")
    emu.control("close_term")
    (statement,) = emu.run(emu.provider.payout_statements(emu.ctx(), type="sales"))
    link = emu.run(emu.provider.statement_urls(emu.ctx(), statement_id=statement.id))
    assert link.expires_at is not None
    assert (link.expires_at - emu.clock.now()).total_seconds() <= 3600
    url = urlsplit(link.url)
    csv = emu.request("GET", f"{url.path}?{url.query}")
    assert csv.status_code == 200
    assert "gross_sales" in csv.text
    whole = emu.run(emu.provider.statement_urls(emu.ctx(), balance_id=statement.balance_id))
    whole_url = urlsplit(whole.url)
    assert "transfer_fee" in emu.request("GET", f"{whole_url.path}?{whole_url.query}").text
    tampered = emu.request("GET", f"{url.path}?{url.query}".replace("signature=", "signature=0"))
    assert tampered.status_code == 403
    emu.advance(hours=1)
    assert emu.request("GET", f"{url.path}?{url.query}").status_code == 410
    with pytest.raises(NotFound):
        emu.run(emu.provider.statement_urls(emu.ctx(), statement_id="st_missing"))


def test_events_endpoint_and_webhook_control(emu: Any) -> None:
    charge = pay(emu, 1_000, "order-1")
    listed = get(emu, "/v1/events", resource_id=charge.provider_ref)
    assert [e["type"] for e in listed["data"]] == ["charge.succeeded"]
    event = emu.control("webhook", type="charge.updated", id=charge.provider_ref)
    assert get(emu, f"/v1/events/{event['id']}")["type"] == "charge.updated"
    delivery = emu.deliveries[-1]
    assert delivery.provider == "payjp"
    assert delivery.event_id == event["id"]
    assert len(delivery.schedule) == 3
    emu.provider.verify_webhook(delivery.headers, delivery.body)
    with pytest.raises(ControlError):
        emu.control("webhook", type="charge.updated", id="ch_missing")


def test_sandbox_interface(emu: Any) -> None:
    creds = emu.emulator.credentials()
    assert creds["secret_key"] == SECRET_KEY
    assert "tok_card_declined" in creds["tokens"]
    settings = emu.emulator.account_settings()
    assert settings["provider"] == "payjp"
    assert settings["base_url"].endswith("/payjp")
    pay(emu, 12_000, "order-1")
    emu.control("close_term")
    kinds = sorted(entry.kind for entry in emu.emulator.ledger())
    assert kinds == ["balance", "charge"]
    emu.emulator.reset()
    assert emu.emulator.ledger() == []
    assert len(emu.emulator.books.terms) == 1


@pytest.mark.parametrize("order", ["newest", "oldest"])
def test_the_current_term_is_found_whatever_the_list_order(emu: Any, order: str) -> None:
    # The order of GET /v1/terms is not documented.
    emu.control("reading", terms_order=order)
    for _ in range(4):
        emu.advance(days=1)
        emu.control("close_term")
    listed = get(emu, "/v1/terms", limit=100)["data"]
    assert len(listed) == 5
    (open_term,) = [t for t in listed if not t["closed"]]
    balance = emu.run(emu.provider.payout_balance(emu.ctx()))
    current = balance.raw["current_term"]
    assert current is not None
    assert current["id"] == open_term["id"]


def test_control_actions_are_listed_and_an_unknown_one_names_them(emu: Any) -> None:
    from paygate_payjp import PayjpProvider
    from paygate_payjp._demo import demo
    from paygate_payjp._emulator import PayjpEmulator

    actions = PayjpEmulator.actions()
    assert sorted(actions) == [
        "close_term",
        "configure",
        "payout",
        "reading",
        "settle_claim",
        "tds",
        "tenant",
        "token",
        "webhook",
    ]
    assert all(actions.values())
    with pytest.raises(ControlError) as unknown:
        emu.control("refund_everything")
    assert unknown.value.status == 404
    assert "close_term" in str(unknown.value)
    assert PayjpProvider.demo_script() is demo
