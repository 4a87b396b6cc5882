"""The official ``payjp`` Python SDK against the emulator over real loopback HTTP.

The SDK's ``api_base`` excludes ``/v1`` (it appends ``/v1/...`` itself), so it points at
the emulator's mount: ``http://127.0.0.1:PORT/payjp``.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import payjp
import pytest
from payjp import error as payjp_error

from paygate_payjp._emulator import SECRET_KEY


@pytest.fixture
def sdk(live_server: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setattr(payjp, "api_base", f"{live_server.url}/payjp")
    monkeypatch.setattr(payjp, "api_key", SECRET_KEY)
    monkeypatch.setattr(payjp, "max_retry", 0)
    return live_server


def test_charge_create_retrieve_refund(sdk: Any) -> None:
    created = payjp.Charge.create(
        amount=3000,
        currency="jpy",
        card="tok_success",
        metadata={"order": "42"},
        headers={"Idempotency-Key": "sdk-order-42"},
    )
    assert created.object == "charge"
    assert created.paid is True
    assert created.metadata["order"] == "42"
    replay = payjp.Charge.create(
        amount=3000,
        currency="jpy",
        card="tok_success",
        metadata={"order": "42"},
        headers={"Idempotency-Key": "sdk-order-42"},
    )
    assert replay.id == created.id
    fetched = payjp.Charge.retrieve(created.id)
    assert fetched.amount == 3000
    fetched.refund(amount=1000, refund_reason="partial")
    assert fetched.amount_refunded == 1000
    assert fetched.refund_reason == "partial"
    fetched.refund()
    assert fetched.refunded is True
    listed = payjp.Charge.all(limit=5)
    assert listed.count == 1
    assert listed.data[0].id == created.id


def test_authorise_and_capture(sdk: Any) -> None:
    auth = payjp.Charge.create(amount=2000, currency="jpy", card="tok_success", capture=False)
    assert auth.captured is False
    auth.capture(amount=1500)
    assert auth.captured is True
    # payjp-go Capture: the released 500 is booked in amount_refunded.
    assert (auth.amount, auth.amount_refunded) == (2000, 500)


def test_card_error(sdk: Any) -> None:
    with pytest.raises(payjp_error.CardError) as info:
        payjp.Charge.create(amount=1000, currency="jpy", card="tok_card_declined")
    assert info.value.code == "card_declined"
    assert info.value.http_status == 402


def test_authentication_error(sdk: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(payjp, "api_key", "sk_test_wrong")
    with pytest.raises(payjp_error.AuthenticationError):
        payjp.Charge.all()


def test_payout_lists(sdk: Any) -> None:
    payjp.Charge.create(amount=15_000, currency="jpy", card="tok_success")
    sdk.clock.advance(timedelta(days=22))  # the January 2026 closing run
    balances = payjp.Balance.all()
    assert balances.object == "list"
    (balance,) = balances.data
    assert balance.object == "balance"
    assert balance.state == "transfer"
    assert [st.type for st in balance.statements] == ["sales", "transfer_fee"]
    assert payjp.Balance.retrieve(balance.id).net == balance.net
    terms = payjp.Term.all(limit=10)
    assert [t.closed for t in terms.data] == [False, True]
    assert payjp.Term.retrieve(terms.data[1].id).charge_count == 1
    statements = payjp.Statement.all(type="sales")
    assert statements.count == 1
    statement = payjp.Statement.retrieve(statements.data[0].id)
    assert statement["items"][0]["subject"] == "gross_sales"
    link = payjp.Balance.statement_urls(balance.id)
    assert link.object == "statement_url"
    assert link.url.startswith(f"{sdk.url}/payjp/files/balances/")
    url = statement.statement_urls()
    assert url.url.startswith(f"{sdk.url}/payjp/files/statements/")


def test_closing_by_control(sdk: Any) -> None:
    payjp.Charge.create(amount=1000, currency="jpy", card="tok_success")
    asyncio.run(sdk.emulator.control("close_term", {}))
    assert payjp.Balance.all(state="collecting").data[0].net == 970
