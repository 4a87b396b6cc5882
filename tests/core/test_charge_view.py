"""The record-wins rule exists twice: on `Charge` models (`_operations.view`, what a call
returns) and on their JSON (`charge_view`, what a store keeps for replay). They agree."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from paygate import Charge, ChargeStatus, Money
from paygate._operations import update_of, view
from paygate._stores._common import charge_view, plan_charge

S = ChargeStatus
T = datetime(2030, 1, 1, tzinfo=UTC)


def _charge(status: ChargeStatus, refunded: int = 0) -> Charge:
    return Charge(
        id="ch_1",
        account="a",
        provider="p",
        provider_ref="r",
        method="card",
        status=status,
        amount=Money.jpy(1200),
        amount_refunded=Money.jpy(refunded),
        created_at=T,
        raw={"k": "v"},
    )


@pytest.mark.parametrize(
    ("seen", "answer"),
    [
        (None, _charge(S.SUCCEEDED)),
        (_charge(S.SUCCEEDED), _charge(S.PENDING)),
        (_charge(S.PARTIALLY_REFUNDED, 300), _charge(S.SUCCEEDED)),
        (_charge(S.FAILED), _charge(S.SUCCEEDED)),
        (_charge(S.PENDING), _charge(S.SUCCEEDED)),
    ],
)
def test_model_and_json_forms_agree(seen: Charge | None, answer: Charge) -> None:
    record = None
    if seen is not None:
        record, _ = plan_charge(None, update_of(seen, "webhook", T), T)
    record, _ = plan_charge(record, update_of(answer, "response", T), T)
    assert view(answer, record).model_dump(mode="json") == charge_view(
        answer.model_dump(mode="json"), record
    )
