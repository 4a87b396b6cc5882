"""Flow tests: the sans-I/O flows driven (no sockets) against the in-process emulator."""

from __future__ import annotations

import base64
import json
from datetime import timedelta

import pytest

from paygate import (
    ChargeStatus,
    DisplayQR,
    IdempotencyConflict,
    InvalidRequest,
    Money,
    NotFound,
    OutcomeUnknown,
    ProviderRejected,
    QRCode,
    RateLimited,
    RefundStatus,
)
from paygate.adapter import (
    CancelRequest,
    ChargeRef,
    ChargeRequest,
    RefundRequest,
    Retry,
    drive,
)
from paygate_elepay._emulator import SECRET_KEY
from paygate_elepay._wire import to_millis


def qr_request(amount: int = 1200, **kw):
    method = QRCode(expires_in=kw.pop("expires_in", None), return_url=kw.pop("return_url", None))
    return ChargeRequest(amount=Money.jpy(amount), method=method, **kw)


def ref_of(charge):
    return ChargeRef(
        charge_id=charge.id,
        provider_ref=charge.provider_ref,
        method="qr",
        amount=charge.amount,
        raw=charge.raw,
    )


def create(provider, emu, make_ctx, cache, key="order-1042", **kw):
    return drive(provider.charge(qr_request(**kw), make_ctx(key)), emu.respond, cache)


def test_charge_creates_a_code_with_display_qr(provider, emu, make_ctx, clock):
    cache: dict = {}
    charge = create(
        provider,
        emu,
        make_ctx,
        cache,
        description="Coffee",
        metadata={"shop": "shibuya"},
        expires_in=timedelta(minutes=5),
        return_url="https://shop.example.com/paid",
    )
    assert charge.status is ChargeStatus.REQUIRES_ACTION
    assert charge.id == "pgch_order-1042"
    assert charge.provider == "elepay"
    assert charge.provider_ref.startswith("code:cd_")
    assert charge.amount == Money.jpy(1200)
    assert charge.amount_refunded == Money.jpy(0)
    assert isinstance(charge.next_action, DisplayQR)
    assert charge.next_action.url.startswith("http://127.0.0.1/elepay/easyqr/cd_")
    assert charge.next_action.expires_at == clock.now() + timedelta(minutes=5)
    assert charge.created_at == clock.now()

    (call,) = emu.calls
    assert call.method == "POST"
    assert call.url == "http://127.0.0.1/elepay/codes"
    # No blind re-send under the same orderNo: elepay would refuse it (M002007) while
    # the first code is valid. A lost answer goes out again under the next orderNo.
    assert call.retry is Retry.UNSAFE
    assert call.step == "codes.create"
    assert call.headers["Content-Type"] == "application/json;charset=utf-8"
    token = base64.b64encode(f"{SECRET_KEY}:".encode()).decode()
    assert call.headers["Authorization"] == f"Basic {token}"
    body = json.loads(call.content)
    assert body == {
        "orderNo": "pg-code-order-1042",
        "amount": 1200,
        "currency": "JPY",
        "description": "Coffee",
        "frontUrl": "https://shop.example.com/paid",
        "expiryDuration": 5,
        "metadata": {"shop": "shibuya"},
    }
    code_id = charge.provider_ref.partition(":")[2]
    assert cache == {
        "elepay:qr:key:pg-code-order-1042": {
            "orders": ["pg-code-order-1042"],
            "since": to_millis(clock.now()),
            "last": to_millis(clock.now()),
        },
        "elepay:qr:order:pg-code-order-1042": {"codeId": code_id, "key": "pg-code-order-1042"},
    }


def test_order_no_is_derived_and_bounded(provider, emu, make_ctx):
    key = "ご注文/" + "x" * 80
    charge = create(provider, emu, make_ctx, {}, key=key)
    body = json.loads(emu.calls[0].content)
    assert len(body["orderNo"]) <= 50
    assert all(ch.isascii() and (ch.isalnum() or ch in "-_") for ch in body["orderNo"])
    # Same merchant key, same orderNo: a store that lost its records sends what the
    # first attempt sent. elepay refuses it while the first code is valid (M002007,
    # server FAQ), and the unpaid code cannot be found: unknown, not refused.
    emu.calls.clear()
    with pytest.raises(OutcomeUnknown):
        create(provider, emu, make_ctx, {}, key=key)
    assert json.loads(emu.calls[0].content)["orderNo"] == body["orderNo"]
    assert charge.status is ChargeStatus.REQUIRES_ACTION


def test_default_front_url_and_expiry_from_settings(emu, make_ctx, settings):
    from paygate_elepay import ElepayProvider

    custom = settings.model_copy(
        update={"front_url": "https://shop.example.com/done", "expiry_minutes": 15}
    )
    provider = ElepayProvider(custom, account="qr")
    drive(provider.charge(qr_request(), make_ctx()), emu.respond, {})
    body = json.loads(emu.calls[0].content)
    assert body["frontUrl"] == "https://shop.example.com/done"
    assert body["expiryDuration"] == 15


def test_status_follows_the_payment(provider, emu, make_ctx):
    charge = create(provider, emu, make_ctx, {})
    ref = ref_of(charge)
    fresh = drive(provider.status(ref, make_ctx()), emu.respond)
    assert fresh.status is ChargeStatus.REQUIRES_ACTION
    assert emu.calls[-1].retry is Retry.SAFE

    emu.pay(charge.provider_ref, "linepay")
    paid = drive(provider.status(ref, make_ctx()), emu.respond)
    assert paid.status is ChargeStatus.SUCCEEDED
    assert paid.next_action is None
    assert paid.amount_captured == Money.jpy(1200)
    assert paid.raw["charge"]["paymentMethod"] == "linepay"
    assert paid.provider_ref == charge.provider_ref


def test_code_expires_on_the_sandbox_clock(provider, emu, make_ctx, clock):
    charge = create(provider, emu, make_ctx, {}, expires_in=timedelta(minutes=3))
    clock.advance(timedelta(minutes=2, seconds=59))
    assert drive(provider.status(ref_of(charge), make_ctx()), emu.respond).status is (
        ChargeStatus.REQUIRES_ACTION
    )
    clock.advance(timedelta(seconds=1))
    expired = drive(provider.status(ref_of(charge), make_ctx()), emu.respond)
    assert expired.status is ChargeStatus.EXPIRED
    assert expired.next_action is None


def test_failed_attempt_keeps_the_code_waiting(provider, emu, make_ctx):
    charge = create(provider, emu, make_ctx, {})
    code_id = charge.provider_ref.partition(":")[2]
    emu.control("fail_payment", code_id=code_id, payment_method="paypay")
    after = drive(provider.status(ref_of(charge), make_ctx()), emu.respond)
    assert after.status is ChargeStatus.REQUIRES_ACTION
    assert emu.deliveries == []  # elepay sends nothing for a failure


def test_cancel_closes_the_code_and_is_repeatable(provider, emu, make_ctx):
    charge = create(provider, emu, make_ctx, {})
    req = CancelRequest(charge=ref_of(charge))
    canceled = drive(provider.cancel(req, make_ctx("order-1042-cancel")), emu.respond)
    assert canceled.status is ChargeStatus.CANCELED
    delete = next(c for c in emu.calls if c.method == "DELETE")
    assert delete.step == "codes.close"
    assert delete.content is None
    again = drive(provider.cancel(req, make_ctx("order-1042-cancel")), emu.respond)
    assert again.status is ChargeStatus.CANCELED


def test_cancel_of_an_expired_code_reports_expired(provider, emu, make_ctx, clock):
    charge = create(provider, emu, make_ctx, {})
    clock.advance(timedelta(minutes=10))
    result = drive(provider.cancel(CancelRequest(charge=ref_of(charge)), make_ctx()), emu.respond)
    assert result.status is ChargeStatus.EXPIRED


def test_cancel_of_a_paid_code_is_refused_with_elepays_code(provider, emu, make_ctx):
    charge = create(provider, emu, make_ctx, {})
    emu.pay(charge.provider_ref)
    with pytest.raises(ProviderRejected) as info:
        drive(provider.cancel(CancelRequest(charge=ref_of(charge)), make_ctx()), emu.respond)
    assert info.value.provider_code == "M006003"
    assert info.value.http_status == 400


def test_partial_and_multiple_refunds(provider, emu, make_ctx):
    charge = create(provider, emu, make_ctx, {})
    emu.pay(charge.provider_ref)
    ref = ref_of(charge)

    first = drive(
        provider.refund(
            RefundRequest(charge=ref, amount=Money.jpy(200), reason="damaged"),
            make_ctx("order-1042-r1"),
        ),
        emu.respond,
    )
    assert first.status is RefundStatus.SUCCEEDED
    assert first.amount == Money.jpy(200)
    assert first.charge_id == "pgch_order-1042-r1"
    assert first.reason == "damaged"
    post = emu.calls[-1]
    assert post.retry is Retry.UNSAFE
    assert post.step == "refunds.create"
    assert json.loads(post.content) == {
        "amount": 200,
        "currency": "JPY",
        "reason": "damaged",
        "metadata": {"paygateRefundKey": "pg-refund-order-1042-r1"},
    }
    partly = drive(provider.status(ref, make_ctx()), emu.respond)
    assert partly.status is ChargeStatus.PARTIALLY_REFUNDED
    assert partly.amount_refunded == Money.jpy(200)

    rest = drive(provider.refund(RefundRequest(charge=ref), make_ctx("order-1042-r2")), emu.respond)
    assert rest.amount == Money.jpy(1000)
    done = drive(provider.status(ref, make_ctx()), emu.respond)
    assert done.status is ChargeStatus.REFUNDED
    assert done.amount_refunded == Money.jpy(1200)
    assert done.refundable == Money.jpy(0)


def test_refund_more_than_refundable_is_refused_before_posting(provider, emu, make_ctx):
    charge = create(provider, emu, make_ctx, {})
    emu.pay(charge.provider_ref)
    with pytest.raises(InvalidRequest) as info:
        drive(
            provider.refund(
                RefundRequest(charge=ref_of(charge), amount=Money.jpy(1201)), make_ctx("r")
            ),
            emu.respond,
        )
    assert info.value.param == "amount"
    assert all(c.method == "GET" for c in emu.calls[1:])


def test_refund_of_an_unpaid_code_is_refused(provider, emu, make_ctx):
    charge = create(provider, emu, make_ctx, {})
    with pytest.raises(InvalidRequest):
        drive(provider.refund(RefundRequest(charge=ref_of(charge)), make_ctx("r")), emu.respond)


def test_pending_refund_then_completion(provider, emu, make_ctx):
    charge = create(provider, emu, make_ctx, {})
    emu.pay(charge.provider_ref)
    emu.control("refund_mode", mode="pending")
    refund = drive(
        provider.refund(RefundRequest(charge=ref_of(charge)), make_ctx("r")), emu.respond
    )
    assert refund.status is RefundStatus.PENDING
    still = drive(provider.status(ref_of(charge), make_ctx()), emu.respond)
    assert still.status is ChargeStatus.SUCCEEDED
    emu.control("complete_refund", refund_id=refund.provider_ref)
    done = drive(provider.status(ref_of(charge), make_ctx()), emu.respond)
    assert done.status is ChargeStatus.REFUNDED


def test_rerun_refund_finds_the_earlier_one(provider, emu, make_ctx):
    charge = create(provider, emu, make_ctx, {})
    emu.pay(charge.provider_ref)
    req = RefundRequest(charge=ref_of(charge))
    first = drive(provider.refund(req, make_ctx("order-1042-r1")), emu.respond)
    emu.calls.clear()
    # The charge is fully refunded now; a re-run with the same key still answers with the
    # refund it made instead of refusing or refunding again.
    again = drive(provider.refund(req, make_ctx("order-1042-r1", recovering=True)), emu.respond)
    assert again.provider_ref == first.provider_ref
    assert [c.step for c in emu.calls] == ["codes.get"]  # the charge lists its refunds
    assert len(emu.emulator.charges[first.raw["chargeId"]].refunds) == 1


def test_refund_checks_for_its_tag_before_posting(provider, emu, make_ctx):
    charge = create(provider, emu, make_ctx, {})
    emu.pay(charge.provider_ref)
    req = RefundRequest(charge=ref_of(charge), amount=Money.jpy(300))
    refund = drive(provider.refund(req, make_ctx("order-1042-r9")), emu.respond)
    assert [c.step for c in emu.calls[-2:]] == ["codes.get", "refunds.create"]
    assert refund.amount == Money.jpy(300)


def test_refund_lists_refunds_when_the_charge_does_not(provider, make_ctx):
    from paygate.adapter import Reply

    charge = {
        "id": "ch_1",
        "amount": 1000,
        "currency": "JPY",
        "status": "partially_refunded",
        "refunds": {"amount": 300, "totalCount": 1},
    }
    tagged = {
        "id": "re_1",
        "chargeId": "ch_1",
        "amount": 300,
        "currency": "JPY",
        "status": "refunded",
        "metadata": {"paygateRefundKey": "pg-refund-r1"},
    }
    steps = []

    def respond(call):
        steps.append(call.step)
        body = charge if call.step == "charges.get" else {"total": 1, "refunds": [tagged]}
        return Reply(200, {}, json.dumps(body).encode())

    ref = ChargeRef(charge_id="c", provider_ref="charge:ch_1", method="qr")
    refund = drive(provider.refund(RefundRequest(charge=ref), make_ctx("r1")), respond)
    assert refund.provider_ref == "re_1"
    assert steps == ["charges.get", "refunds.list"]


def test_lookup_finds_the_code_through_the_cache(provider, emu, make_ctx):
    cache: dict = {}
    charge = create(provider, emu, make_ctx, cache)
    found = drive(provider.lookup_charge(qr_request(), make_ctx()), emu.respond, cache)
    assert found is not None
    assert found.provider_ref == charge.provider_ref
    assert found.status is ChargeStatus.REQUIRES_ACTION


def test_lookup_without_cache_scans_the_charge_list(provider, emu, make_ctx):
    charge = create(provider, emu, make_ctx, {})
    emu.pay(charge.provider_ref)
    for i in range(3):  # other orders' charges around it
        other = create(provider, emu, make_ctx, {}, key=f"other-{i}")
        emu.pay(other.provider_ref)
    cache: dict = {}
    # Nothing recorded under the key: nothing was sent from this store.
    assert drive(provider.lookup_charge(qr_request(), make_ctx()), emu.respond, cache) is None
    # A store that lost its records sends the orderNo again: M002007, then the list.
    emu.calls.clear()
    found = drive(provider.charge(qr_request(), make_ctx()), emu.respond, cache)
    assert found is not None
    assert found.status is ChargeStatus.SUCCEEDED
    assert found.provider_ref.startswith("charge:ch_")
    assert found.raw["orderNo"] == "pg-code-order-1042"
    listing = next(c for c in emu.calls if c.step == "charges.list")
    assert "dateField=create_time" in listing.url
    assert cache["elepay:qr:order:pg-code-order-1042"]["chargeId"] == found.raw["id"]


def test_lookup_pages_through_the_charge_list(provider, emu, make_ctx, settings):
    from paygate_elepay import ElepayProvider

    charge = create(provider, emu, make_ctx, {})
    emu.pay(charge.provider_ref)
    emu.clock.advance(timedelta(seconds=1))
    for i in range(100):
        other = create(provider, emu, make_ctx, {}, key=f"later-{i}")
        emu.pay(other.provider_ref)
    emu.calls.clear()
    found = drive(provider.charge(qr_request(), make_ctx()), emu.respond, {})
    assert found is not None
    assert found.status is ChargeStatus.SUCCEEDED
    pages = [c for c in emu.calls if c.step == "charges.list"]
    assert len(pages) == 2
    assert "offset=100" in pages[1].url

    # A scan that cannot reach the paid charge proves nothing: unknown, never refused.
    narrow = ElepayProvider(settings.model_copy(update={"lookup_max_pages": 1}), account="qr")
    with pytest.raises(OutcomeUnknown):
        drive(narrow.charge(qr_request(), make_ctx()), emu.respond, {})


def test_lookup_of_a_never_sent_charge_is_none(provider, emu, make_ctx):
    assert drive(provider.lookup_charge(qr_request(), make_ctx("never")), emu.respond, {}) is None


def test_already_paid_order_number_recovers_the_charge(provider, emu, make_ctx):
    cache: dict = {}
    charge = create(provider, emu, make_ctx, cache)
    emu.pay(charge.provider_ref)
    # A retry of the same merchant request after the payment: elepay says M002007.
    again = create(provider, emu, make_ctx, cache)
    assert again.status is ChargeStatus.SUCCEEDED
    assert again.provider_ref == charge.provider_ref
    # Even with the cache lost, the charge list finds it.
    lost = create(provider, emu, make_ctx, {})
    assert lost.status is ChargeStatus.SUCCEEDED
    assert lost.raw["orderNo"] == "pg-code-order-1042"


def test_already_paid_order_number_with_another_amount_conflicts(provider, emu, make_ctx):
    charge = create(provider, emu, make_ctx, {})
    emu.pay(charge.provider_ref)
    with pytest.raises(IdempotencyConflict):
        create(provider, emu, make_ctx, {}, amount=999)


def test_recovering_charge_uses_the_cached_code(provider, emu, make_ctx):
    cache: dict = {}
    charge = create(provider, emu, make_ctx, cache)
    emu.calls.clear()
    again = drive(provider.charge(qr_request(), make_ctx(recovering=True)), emu.respond, cache)
    assert again.provider_ref == charge.provider_ref
    assert [c.step for c in emu.calls] == ["codes.get"]
    assert len(emu.emulator.codes) == 1


def test_rate_limit_reply_is_classified_retryable(provider, emu, make_ctx):
    emu.control("rate_limit", count=1)
    with pytest.raises(RateLimited) as info:
        create(provider, emu, make_ctx, {})
    assert info.value.provider_code == "M005000"
    assert info.value.http_status == 400
    assert info.value.retryable


def test_status_of_unknown_code_is_not_found(provider, emu, make_ctx):
    ref = ChargeRef(charge_id="x", provider_ref="code:cd_missing", method="qr")
    with pytest.raises(NotFound) as info:
        drive(provider.status(ref, make_ctx()), emu.respond)
    assert info.value.provider_code == "M002003"


def test_status_of_a_charge_ref(provider, emu, make_ctx):
    charge = create(provider, emu, make_ctx, {})
    result = emu.pay(charge.provider_ref)
    ref = ChargeRef(charge_id="x", provider_ref=f"charge:{result['chargeId']}", method="qr")
    fresh = drive(provider.status(ref, make_ctx()), emu.respond)
    assert fresh.status is ChargeStatus.SUCCEEDED
    refund = drive(provider.refund(RefundRequest(charge=ref), make_ctx("r")), emu.respond)
    assert refund.amount == Money.jpy(1200)


# ----------------------------------------------------------- several orderNos per key


def test_a_lost_answer_is_followed_by_a_fresh_order_number(provider, emu, make_ctx):
    from paygate.adapter import TransportFailure

    cache: dict = {}
    dropped: list[str] = []

    def respond(call):
        reply = emu.respond(call)
        if call.step == "codes.create" and not dropped:
            dropped.append(json.loads(call.content)["orderNo"])
            raise TransportFailure("reset", sent=True)
        return reply

    charge = drive(provider.charge(qr_request(), make_ctx()), respond, cache)
    assert dropped == ["pg-code-order-1042"]
    orders = {c.order_no for c in emu.emulator.codes.values()}
    assert orders == {"pg-code-order-1042", "pg-code2-order-1042"}
    assert cache["elepay:qr:key:pg-code-order-1042"]["orders"] == sorted(orders)
    assert charge.status is ChargeStatus.REQUIRES_ACTION
    # The lookup knows both orderNos: the code it received, whichever is paid.
    emu.pay(charge.provider_ref)
    found = drive(provider.lookup_charge(qr_request(), make_ctx()), emu.respond, cache)
    assert found.status is ChargeStatus.SUCCEEDED


def test_lookup_after_only_lost_answers_is_none(provider, emu, make_ctx, clock):
    # Nothing paid under any orderNo of the key, and the charge list was read back to
    # the first send: the gateway may send again (under the next orderNo).
    cache = {
        "elepay:qr:key:pg-code-order-1042": {
            "orders": ["pg-code-order-1042"],
            "since": to_millis(clock.now()),
        }
    }
    assert drive(provider.lookup_charge(qr_request(), make_ctx()), emu.respond, cache) is None
    charge = drive(provider.charge(qr_request(), make_ctx()), emu.respond, cache)
    assert emu.emulator.codes[charge.provider_ref.partition(":")[2]].order_no == (
        "pg-code2-order-1042"
    )


def test_two_paid_codes_of_one_key_are_reported(provider, emu, make_ctx, clock):
    first = create(provider, emu, make_ctx, {}, key="k1")
    second = create(provider, emu, make_ctx, {}, key="k2")
    emu.pay(first.provider_ref)
    emu.pay(second.provider_ref)
    cache = {
        "elepay:qr:key:pg-code-k1": {
            "orders": ["pg-code-k1", "pg-code-k2"],
            "since": to_millis(clock.now()),
        }
    }
    with pytest.raises(OutcomeUnknown, match="refund the extra payment"):
        drive(provider.lookup_charge(qr_request(), make_ctx("k1")), emu.respond, cache)


def test_the_extra_open_code_of_a_key_is_closed(provider, emu, make_ctx, clock):
    first = create(provider, emu, make_ctx, {}, key="k1")
    second = create(provider, emu, make_ctx, {}, key="k2")
    emu.pay(second.provider_ref)
    cache = {
        "elepay:qr:key:pg-code-k1": {
            "orders": ["pg-code-k1", "pg-code-k2"],
            "since": to_millis(clock.now()),
        },
        "elepay:qr:order:pg-code-k1": {"codeId": first.provider_ref.partition(":")[2]},
        "elepay:qr:order:pg-code-k2": {"codeId": second.provider_ref.partition(":")[2]},
    }
    found = drive(provider.lookup_charge(qr_request(), make_ctx("k1")), emu.respond, cache)
    assert found.provider_ref == second.provider_ref
    closed = emu.emulator.codes[first.provider_ref.partition(":")[2]]
    assert closed.status == "closed"


def test_location_id_is_sent_with_every_code(emu, make_ctx, settings):
    from paygate_elepay import ElepayProvider

    provider = ElepayProvider(settings.model_copy(update={"location_id": "loc_1"}), account="qr")
    charge = drive(provider.charge(qr_request(), make_ctx()), emu.respond, {})
    assert json.loads(emu.calls[0].content)["locationId"] == "loc_1"
    assert charge.raw["locationId"] == "loc_1"


@pytest.mark.parametrize("mode", ["empty", "listed"])
def test_cancel_of_a_paid_code_revokes_when_enabled(emu, make_ctx, settings, mode):
    # Whether elepay lists a revoke under `refunds` is not documented: either way the
    # paid charge returned its whole amount.
    from paygate_elepay import ElepayProvider

    emu.control("revoke_refunds", mode=mode)
    provider = ElepayProvider(settings.model_copy(update={"revoke_paid": True}), account="qr")
    charge = create(provider, emu, make_ctx, {})
    emu.pay(charge.provider_ref)
    req = CancelRequest(charge=ref_of(charge))
    revoked = drive(provider.cancel(req, make_ctx()), emu.respond)
    assert revoked.status is ChargeStatus.REFUNDED
    assert revoked.amount_refunded == Money.jpy(1200)
    assert "charges.revoke" in [c.step for c in emu.calls]
    # A second cancel (a re-run after a lost answer) ends where the first did.
    emu.calls.clear()
    again = drive(provider.cancel(req, make_ctx()), emu.respond)
    assert again.status is ChargeStatus.REFUNDED
    assert "charges.revoke" not in [c.step for c in emu.calls]
    status = drive(provider.status(ref_of(charge), make_ctx()), emu.respond)
    assert status.amount_refunded == Money.jpy(1200)


def test_a_key_whose_order_numbers_are_all_used_starts_over_once_they_expired(
    provider, emu, make_ctx, clock
):
    from paygate_elepay._orders import ORDER_ATTEMPTS

    orders = ["pg-code-order-1042"] + [
        f"pg-code{n}-order-1042" for n in range(2, ORDER_ATTEMPTS + 1)
    ]
    sent = to_millis(clock.now())
    cache = {"elepay:qr:key:pg-code-order-1042": {"orders": orders, "since": sent, "last": sent}}
    with pytest.raises(OutcomeUnknown, match="none could be confirmed"):
        drive(provider.charge(qr_request(), make_ctx()), emu.respond, cache)
    clock.advance(timedelta(minutes=36))
    charge = drive(provider.charge(qr_request(), make_ctx()), emu.respond, cache)
    code = emu.emulator.codes[charge.provider_ref.partition(":")[2]]
    assert code.order_no == "pg-code-order-1042"
    assert cache["elepay:qr:key:pg-code-order-1042"]["orders"] == ["pg-code-order-1042"]


def test_a_close_whose_answer_was_lost_still_reads_as_canceled(provider, emu, make_ctx):
    from paygate.adapter import TransportFailure

    charge = create(provider, emu, make_ctx, {})
    cache: dict = {}
    lost: list[str] = []

    def respond(call):
        reply = emu.respond(call)
        if call.step == "codes.close" and not lost:
            lost.append(call.url)
            raise TransportFailure("reset", sent=True)
        return reply

    req = CancelRequest(charge=ref_of(charge))
    with pytest.raises(TransportFailure):
        drive(provider.cancel(req, make_ctx()), respond, cache)
    # The re-run's DELETE answers M006003 (already closed): still paygate's close.
    again = drive(provider.cancel(req, make_ctx()), emu.respond, cache)
    assert again.status is ChargeStatus.CANCELED


def test_closing_an_expired_code_reads_as_expired(provider, emu, make_ctx, clock):
    charge = create(provider, emu, make_ctx, {}, expires_in=timedelta(minutes=3))
    clock.advance(timedelta(minutes=10))
    cache: dict = {}
    closed = drive(
        provider.cancel(CancelRequest(charge=ref_of(charge)), make_ctx()), emu.respond, cache
    )
    assert closed.status is ChargeStatus.EXPIRED
    assert not any(v for k, v in cache.items() if ":closed:" in k)
