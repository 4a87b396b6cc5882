"""Through `paygate.Gateway` (blocking and asyncio drivers) against the running sandbox."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest

from paygate import (
    AsyncGateway,
    AuthenticationError,
    ChargeStatus,
    DisplayQR,
    IdempotencyConflict,
    InvalidRequest,
    Money,
    NotFound,
    NotSupported,
    PaymentDeclined,
    QRCode,
    RefundStatus,
    Wallet,
)
from paygate._retry import RetryPolicy
from paygate.testing import DRIVERS
from paygate_pokepay import SANDBOX, EnvelopeCipher
from paygate_pokepay._crypto import decode_client_secret

FUNDED = SANDBOX.customers["funded"][0]
LOW = SANDBOX.customers["low_balance"][0]
SUSPENDED = SANDBOX.customers["suspended"][0]


@pytest.fixture(params=DRIVERS)
def gw(request: pytest.FixtureRequest, make_gateway: Callable[..., Any]) -> Any:
    return make_gateway(driver=request.param)


def pay(
    gw: Any, amount: int = 1200, customer: str = FUNDED, key: str | None = None, **kw: Any
) -> Any:
    return gw.charge(
        "pokepay",
        amount=Money.jpy(amount),
        method=Wallet(customer_id=customer),
        idempotency_key=key or f"sb-{uuid.uuid4()}",
        **kw,
    )


def qr(gw: Any, amount: int = 1500, key: str | None = None, **kw: Any) -> Any:
    return gw.charge(
        "pokepay",
        amount=Money.jpy(amount),
        method=QRCode(**kw),
        idempotency_key=key or f"sb-{uuid.uuid4()}",
    )


def ledger(sandbox: Any) -> list[Any]:
    return sandbox.ledger()["pokepay"]


def test_wallet_payment_refund_and_ledger(gw: Any, sandbox: Any) -> None:
    charge = pay(gw, 1200, metadata={"order": "1042"}, description="コーヒー")
    assert charge.status is ChargeStatus.SUCCEEDED
    assert charge.provider == "pokepay"
    assert charge.provider_ref.startswith("transaction:")
    assert gw.charge(
        "wallet", amount=Money.jpy(1), method=Wallet(customer_id=FUNDED), idempotency_key="alias-1"
    ).paid
    refund = gw.refund("pokepay", charge.id, idempotency_key=f"r-{charge.id}", reason="返品")
    assert refund.status is RefundStatus.SUCCEEDED
    assert refund.amount == Money.jpy(1200)
    assert gw.status("pokepay", charge.id).status is ChargeStatus.REFUNDED
    entries = {e.id: e for e in ledger(sandbox)}
    entry = entries[charge.provider_ref.split(":", 1)[1]]
    assert (entry.amount, entry.refunded, entry.status) == (1200, 1200, "refunded")


def test_same_key_replays_without_a_second_payment(gw: Any, sandbox: Any) -> None:
    first = pay(gw, 500, key="same-key")
    again = pay(gw, 500, key="same-key")
    assert again.id == first.id
    assert len(ledger(sandbox)) == 1
    with pytest.raises(IdempotencyConflict):
        pay(gw, 501, key="same-key")


@pytest.mark.parametrize(
    ("customer", "code"),
    [(LOW, "account_balance_not_enough"), (SUSPENDED, "account_suspended")],
)
def test_declines_keep_the_provider_code(gw: Any, customer: str, code: str) -> None:
    with pytest.raises(PaymentDeclined) as info:
        pay(gw, 1200, customer=customer, key=f"decline-{code}")
    assert info.value.provider_code == code
    assert info.value.http_status == 422
    assert info.value.provider_message
    # The decline is the outcome of this key: replayed, not re-sent.
    with pytest.raises(PaymentDeclined):
        pay(gw, 1200, customer=customer, key=f"decline-{code}")


def test_customer_without_wallet(gw: Any) -> None:
    with pytest.raises(NotFound) as info:
        pay(gw, 10, customer=SANDBOX.customers["no_wallet"][0])
    assert info.value.provider_code == "customer_account_not_found"


def test_bad_input_and_unsupported_never_reach_the_provider(gw: Any, sandbox: Any) -> None:
    charge = pay(gw, 800)
    before = sandbox.host.request_count
    with pytest.raises(InvalidRequest):
        pay(gw, 800, customer="not-a-uuid")
    with pytest.raises(InvalidRequest):
        pay(gw, 800, metadata={"nested": {"a": "b"}})
    with pytest.raises(InvalidRequest):
        qr(gw, 800, expires_in=timedelta(0))
    with pytest.raises(NotSupported):
        gw.refund("pokepay", charge.id, amount=Money.jpy(300), idempotency_key="partial")
    with pytest.raises(InvalidRequest):
        gw.refund("pokepay", charge.id, idempotency_key="long-reason", reason="x" * 201)
    with pytest.raises(NotSupported):
        gw.cancel("pokepay", charge.id)
    assert sandbox.host.request_count == before


def test_lost_answer_after_commit_charges_once(gw: Any, sandbox: Any) -> None:
    sandbox.fault("pokepay", "drop_after_commit", path="^/transactions/payment$")
    charge = pay(gw, 700, key="dropped-once")
    assert charge.status is ChargeStatus.SUCCEEDED
    assert len(ledger(sandbox)) == 1
    assert pay(gw, 700, key="dropped-once").id == charge.id


@pytest.mark.parametrize("kind", ["status", "rate_limit", "reset"])
def test_transient_faults_are_retried(gw: Any, sandbox: Any, kind: str) -> None:
    extra = {"status": 503} if kind == "status" else {}
    sandbox.fault("pokepay", kind, path="^/transactions/payment$", **extra)
    assert pay(gw, 300).status is ChargeStatus.SUCCEEDED
    assert len(ledger(sandbox)) == 1


def test_persistent_503_is_unavailable(make_gateway: Callable[..., Any], sandbox: Any) -> None:
    from paygate import OutcomeUnknown, ProviderUnavailable

    gw = make_gateway(retry=RetryPolicy.no_wait(attempts=2))
    sandbox.fault("pokepay", "status", path="^/transactions/payment$", status=503, count=10)
    with pytest.raises((ProviderUnavailable, OutcomeUnknown)):
        pay(gw, 300, key="down")


def test_qr_payment_flow(gw: Any, sandbox: Any) -> None:
    charge = qr(gw, 1500, expires_in=timedelta(minutes=10))
    assert charge.status is ChargeStatus.REQUIRES_ACTION
    assert isinstance(charge.next_action, DisplayQR)
    assert charge.next_action.url.startswith(sandbox.base_url("pokepay"))
    assert charge.next_action.expires_at is not None
    assert gw.status("pokepay", charge.id).status is ChargeStatus.REQUIRES_ACTION
    scanned = sandbox.control("pokepay", "scan_cashtray", token=charge.next_action.url)
    assert scanned["status_code"] == 200
    paid = gw.status("pokepay", charge.id)
    assert paid.status is ChargeStatus.SUCCEEDED
    assert "/transaction:" in paid.provider_ref
    refund = gw.refund("pokepay", charge.id, idempotency_key=f"r-{charge.id}")
    assert refund.amount == Money.jpy(1500)
    assert gw.status("pokepay", charge.id).status is ChargeStatus.REFUNDED


@pytest.mark.parametrize(
    "error", ["account_balance_not_enough", "account_suspended", "account_not_found"]
)
def test_qr_scan_errors_fail_the_charge(gw: Any, sandbox: Any, error: str) -> None:
    charge = qr(gw)
    sandbox.control("pokepay", "scan_cashtray", token=charge.next_action.url, error=error)
    failed = gw.status("pokepay", charge.id)
    assert failed.status is ChargeStatus.FAILED
    assert failed.failure is not None
    assert failed.failure.code == error
    # A second scan does not change the outcome.
    assert sandbox.control("pokepay", "scan_cashtray", token=charge.next_action.url)[
        "error_type"
    ] == ("cashtray_already_proceed")
    assert gw.status("pokepay", charge.id).status is ChargeStatus.FAILED


def test_qr_cancel(gw: Any, sandbox: Any) -> None:
    charge = qr(gw)
    canceled = gw.cancel("pokepay", charge.id)
    assert canceled.status is ChargeStatus.CANCELED
    assert gw.status("pokepay", charge.id).status is ChargeStatus.CANCELED
    refused = sandbox.control("pokepay", "scan_cashtray", token=charge.next_action.url)
    assert refused["error_type"] == "cashtray_already_canceled"
    assert gw.status("pokepay", charge.id).status is ChargeStatus.CANCELED


def test_qr_expiry_on_the_sandbox_clock(gw: Any, sandbox: Any) -> None:
    charge = qr(gw, expires_in=timedelta(minutes=5))
    sandbox.advance(timedelta(minutes=6))
    assert gw.status("pokepay", charge.id).status is ChargeStatus.EXPIRED
    assert sandbox.control("pokepay", "scan_cashtray", token=charge.next_action.url)[
        "error_type"
    ] == ("cashtray_expired")


def test_qr_create_with_lost_answer_makes_a_fresh_cashtray(gw: Any, sandbox: Any) -> None:
    emulator = sandbox.host.emulator("pokepay")
    sandbox.fault("pokepay", "drop_after_commit", path="^/cashtrays$")
    charge = qr(gw, key="qr-dropped")
    assert charge.status is ChargeStatus.REQUIRES_ACTION
    assert len(emulator.cashtrays) == 2
    assert qr(gw, key="qr-dropped").provider_ref == charge.provider_ref
    assert (
        sandbox.control("pokepay", "scan_cashtray", token=charge.next_action.url)["status_code"]
        == 200
    )
    assert gw.status("pokepay", charge.id).paid


def _refund_directly(sandbox: Any, transaction_id: str) -> None:
    """Refund through the Partner API itself, as a shop operator's tool would."""
    cipher = EnvelopeCipher(decode_client_secret(SANDBOX.client_secret))
    inner = {
        "request_data": {},
        "timestamp": datetime.now().astimezone().isoformat(),
        "partner_call_id": str(uuid.uuid4()),
    }
    outer = {
        "partner_client_id": SANDBOX.client_id,
        "data": cipher.encrypt(json.dumps(inner).encode()),
    }
    url = f"{sandbox.base_url('pokepay')}/transactions/{transaction_id}/refund"
    response = httpx.post(url, json=outer, trust_env=False)
    assert response.status_code == 200


def test_refund_already_done_elsewhere_returns_that_refund(gw: Any, sandbox: Any) -> None:
    charge = pay(gw, 900)
    _refund_directly(sandbox, charge.provider_ref.split(":", 1)[1])
    refund = gw.refund("pokepay", charge.id, idempotency_key=f"r-{charge.id}")
    assert refund.status is RefundStatus.SUCCEEDED
    assert refund.amount == Money.jpy(900)
    assert refund.provider_ref.startswith("transfer:")
    assert gw.status("pokepay", charge.id).status is ChargeStatus.REFUNDED


def test_payout_balance(gw: Any) -> None:
    before = gw.payout_balance("pokepay").collecting
    pay(gw, 1500)
    balance = gw.payout_balance("pokepay")
    assert balance.collecting - before == Money.jpy(1500)
    assert {i.kind for i in balance.items} == {"money", "point"}
    assert balance.account == "pokepay"


def test_unknown_client_is_an_authentication_error(
    make_gateway: Callable[..., Any], paygate_accounts: Any
) -> None:
    table = dict(paygate_accounts["pokepay"], client_id=str(uuid.uuid4()))
    gw = make_gateway(accounts={"pokepay": table})
    with pytest.raises(AuthenticationError) as info:
        pay(gw, 100, key="bad-client")
    assert info.value.provider_code == "partner_client_not_found"


def test_wrong_secret_is_an_authentication_error(
    make_gateway: Callable[..., Any], paygate_accounts: Any
) -> None:
    table = dict(paygate_accounts["pokepay"], client_secret="A" * 43)
    gw = make_gateway(accounts={"pokepay": table})
    with pytest.raises(AuthenticationError) as info:
        pay(gw, 100, key="bad-secret")
    assert info.value.provider_code == "partner_decryption_failed"
    assert "A" * 43 not in str(info.value)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.mark.anyio
async def test_native_async_gateway(paygate_accounts: Any, sandbox: Any) -> None:
    gw = AsyncGateway.from_config(
        {"store": "memory://", "accounts": {"pokepay": paygate_accounts["pokepay"]}},
        retry=RetryPolicy.no_wait(),
    )
    try:
        charge = await gw.charge(
            "pokepay",
            amount=Money.jpy(250),
            method=Wallet(customer_id=FUNDED),
            idempotency_key="async-1",
        )
        assert charge.status is ChargeStatus.SUCCEEDED
        fresh = await gw.status("pokepay", charge.id)
        assert fresh.provider_ref == charge.provider_ref
        refund = await gw.refund("pokepay", charge.id, idempotency_key="async-1-r")
        assert refund.amount == Money.jpy(250)
        balance = await gw.payout_balance("pokepay")
        assert balance.collecting == Money.jpy(0)
    finally:
        await gw.aclose()


def test_demo_script_passes() -> None:
    import io

    from rich.console import Console

    from paygate.cli._demo import run_demo

    out = io.StringIO()
    assert run_demo(Console(file=out, width=200), providers=["pokepay"]) == 0, out.getvalue()
    assert "Cashtray" in out.getvalue()
