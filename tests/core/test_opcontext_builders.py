"""OpContext.charge and OpContext.refund: a flow's result with the operation's own fields."""

from __future__ import annotations

import doctest
from datetime import UTC, datetime
from types import MappingProxyType

import pytest

import paygate._adapter as adapter_module
from paygate import (
    Charge,
    ChargeStatus,
    DisplayQR,
    Failure,
    Money,
    Refund,
    RefundStatus,
)
from paygate.adapter import OpContext

T0 = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)
T1 = datetime(2025, 3, 1, 9, 5, tzinfo=UTC)


def ctx(charge_id: str | None = "ch_1") -> OpContext:
    return OpContext(account="card", provider="acmepay", charge_id=charge_id, now=lambda: T0)


def test_charge_is_the_hand_built_charge() -> None:
    made = ctx().charge(
        "ac_9",
        method="qr",
        status=ChargeStatus.REQUIRES_ACTION,
        amount=Money.jpy(1200),
        amount_refunded=Money.jpy(0),
        amount_captured=Money.jpy(1200),
        next_action=DisplayQR(url="https://pay.example/c/1"),
        failure=Failure(code="x"),
        created_at=T0,
        updated_at=T1,
        raw=MappingProxyType({"id": "ac_9"}),
        metadata={"order": "7"},
    )
    assert made == Charge(
        id="ch_1",
        account="card",
        provider="acmepay",
        provider_ref="ac_9",
        method="qr",
        status=ChargeStatus.REQUIRES_ACTION,
        amount=Money.jpy(1200),
        amount_refunded=Money.jpy(0),
        amount_captured=Money.jpy(1200),
        next_action=DisplayQR(url="https://pay.example/c/1"),
        failure=Failure(code="x"),
        created_at=T0,
        updated_at=T1,
        raw={"id": "ac_9"},
        metadata={"order": "7"},
    )
    assert type(made.raw) is dict


def test_charge_leaves_the_optional_fields_at_the_models_defaults() -> None:
    made = ctx().charge(
        "ac_9",
        method="card",
        status=ChargeStatus.SUCCEEDED,
        amount=Money.jpy(1200),
        amount_refunded=Money.jpy(0),
        created_at=T0,
    )
    assert made.amount_captured is None
    assert made.next_action is None
    assert made.failure is None
    assert made.updated_at is None
    assert made.raw == {}
    assert made.metadata == {}


@pytest.mark.parametrize(
    ("charge_id", "given", "expected"),
    [
        ("ch_1", None, "ch_1"),  # the operation's paygate id
        (None, None, "ac_9"),  # no paygate id yet (a webhook): the provider's reference
        ("ch_1", "ch_ref", "ch_ref"),  # the flow's own (its ChargeRef's) wins
        (None, "smaregi_9", "smaregi_9"),
        ("ch_1", "", "ch_1"),  # an empty id is no id
        (None, "", "ac_9"),
    ],
)
def test_charge_id(charge_id: str | None, given: str | None, expected: str) -> None:
    made = ctx(charge_id).charge(
        "ac_9",
        id=given,
        method="card",
        status=ChargeStatus.SUCCEEDED,
        amount=Money.jpy(1),
        amount_refunded=Money.jpy(0),
        created_at=T0,
    )
    assert made.id == expected
    assert made.provider_ref == "ac_9"


def test_refund_is_the_hand_built_refund() -> None:
    made = ctx().refund(
        "ch_1",
        "head_9",
        id="ch_1-refund",
        amount=Money.jpy(500),
        status=RefundStatus.SUCCEEDED,
        reason="customer asked",
        created_at=T0,
        raw=MappingProxyType({"id": "head_9"}),
        kind="void",
        charge_refunded_total=Money.jpy(1200),
    )
    assert made == Refund(
        id="ch_1-refund",
        charge_id="ch_1",
        account="card",
        provider="acmepay",
        provider_ref="head_9",
        amount=Money.jpy(500),
        status=RefundStatus.SUCCEEDED,
        reason="customer asked",
        created_at=T0,
        raw={"id": "head_9"},
        kind="void",
        charge_refunded_total=Money.jpy(1200),
    )


def test_refund_defaults() -> None:
    made = ctx().refund(
        "ch_1", "re_9", amount=Money.jpy(500), status=RefundStatus.PENDING, created_at=T0
    )
    assert made.id == "re_9"  # the provider's reference when the flow gives no id
    assert made.reason is None
    assert made.raw == {}
    assert made.kind == "refund"
    assert made.charge_refunded_total is None


def test_refund_keeps_the_given_id_even_empty() -> None:
    # A refund id is the adapter's own scheme (the core records it): kept as given.
    made = ctx().refund(
        "ch_1", "re_9", id="", amount=Money.jpy(1), status=RefundStatus.SUCCEEDED, created_at=T0
    )
    assert made.id == ""


def test_refund_charge_id_is_the_given_one_not_the_contexts() -> None:
    made = ctx("ch_ctx").refund(
        "ch_req", "re_9", amount=Money.jpy(1), status=RefundStatus.SUCCEEDED, created_at=T0
    )
    assert made.charge_id == "ch_req"


@pytest.mark.parametrize("name", ["charge", "refund"])
def test_the_docstring_examples_run(name: str) -> None:
    finder = doctest.DocTestFinder(recurse=False)
    (test,) = finder.find(getattr(OpContext, name), name, globs=vars(adapter_module))
    assert test.examples
    result = doctest.DocTestRunner().run(test)
    assert result.failed == 0
