"""Documented-response tests: PAY.JP's own published answers fed to the adapter.

Each case in ``documented/`` is written from PAY.JP's documents, guides or official
SDKs (its ``source``), never from the emulator. A case holds the exchanges paygate must
send and PAY.JP answers (checked by `ScriptedTransport`), and ``steps``: the gateway
operations to run, each with what it must report. Every step runs at the case's
``now`` (or its own), so statuses that depend on time read as documented.

The same steps then run against the emulator, through the adapter's flows, and each
emulator answer must have every key and JSON type of the documented answer it pairs
with (`assert_shape`): the sandbox cannot drift from the documents unnoticed. Step
hints for the emulator: ``token`` (a test card), ``tds`` (the customer's 3-D Secure
result before the step), ``advance_minutes`` / ``advance_days`` (sandbox time).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from paygate import (
    Card,
    Charge,
    Gateway,
    Money,
    PaygateError,
    Redirect,
    Refund,
    RetryPolicy,
)
from paygate.adapter import (
    CancelRequest,
    CaptureRequest,
    ChargeRef,
    ChargeRequest,
    RefundRequest,
    Reply,
    drive,
)
from paygate.testing import DocumentedCase, ScriptedTransport, assert_shape, load_cases
from paygate_payjp import PayjpProvider, PayjpSettings
from paygate_payjp._errors import provider_ref_of

CASES = load_cases(Path(__file__).parent / "documented")
TOKEN = "whook_documented"


def _gateway(case: DocumentedCase, clock: dict[str, datetime]) -> tuple[Gateway, ScriptedTransport]:
    settings = PayjpSettings(
        secret_key="sk_test_documented",
        public_key="pk_test_documented",
        webhook_token=TOKEN,
    )
    transport = ScriptedTransport(case.exchanges)
    gw = Gateway(
        {"card": PayjpProvider(settings, account="card")},
        transport=transport,
        retry=RetryPolicy.no_wait(),
        clock=lambda: clock["now"],
    )
    return gw, transport


def _at(case: DocumentedCase, step: dict[str, Any]) -> datetime:
    return datetime.fromtimestamp(int(step.get("now", case.data["now"])), UTC)


def _check_charge(charge: Charge, expect: dict[str, Any]) -> None:
    money = ("amount", "amount_captured", "amount_refunded")
    for name in money:
        if name in expect:
            value = getattr(charge, name)
            wanted = expect[name]
            assert (value.amount if value is not None else None) == wanted, name
    if "status" in expect:
        assert charge.status.value == expect["status"]
    if "failure_code" in expect:
        assert charge.failure is not None
        assert charge.failure.code == expect["failure_code"]
    if "redirect" in expect:
        assert isinstance(charge.next_action, Redirect)
        assert charge.next_action.url == expect["redirect"]


def _check_error(error: PaygateError, expect: dict[str, Any]) -> None:
    assert type(error).__name__ == expect["error"]
    for name in ("provider_code", "http_status"):
        if name in expect:
            assert getattr(error, name) == expect[name], name
    if "provider_ref" in expect:
        assert provider_ref_of(error) == expect["provider_ref"]


@pytest.mark.parametrize("case", CASES, ids=str)
def test_the_adapter_reads_the_documented_answers(case: DocumentedCase) -> None:
    clock = {"now": _at(case, {})}
    gw, transport = _gateway(case, clock)
    charge_id: str | None = None
    try:
        for n, step in enumerate(case.data["steps"]):
            clock["now"] = _at(case, step)
            expect = step.get("expect", {})
            op = step["op"]
            try:
                result: Any
                if op == "charge":
                    method = Card(
                        token=step.get("token", "tok_success"),
                        capture=step.get("capture", True),
                        three_d_secure=step.get("three_d_secure", False),
                    )
                    result = gw.charge(
                        "card",
                        amount=Money.jpy(step["amount"]),
                        method=method,
                        idempotency_key=f"{case.name}-charge",
                    )
                    charge_id = result.id
                elif op == "refund":
                    assert charge_id is not None
                    amount = step.get("amount")
                    result = gw.refund(
                        "card",
                        charge_id,
                        amount=Money.jpy(amount) if amount is not None else None,
                        reason=step.get("reason"),
                        idempotency_key=f"{case.name}-refund-{n}",
                    )
                elif op == "capture":
                    assert charge_id is not None
                    amount = step.get("amount")
                    result = gw.capture(
                        "card",
                        charge_id,
                        amount=Money.jpy(amount) if amount is not None else None,
                        idempotency_key=f"{case.name}-capture-{n}",
                    )
                elif op == "cancel":
                    assert charge_id is not None
                    result = gw.cancel("card", charge_id, idempotency_key=f"{case.name}-cancel")
                elif op == "status":
                    assert charge_id is not None
                    result = gw.status("card", charge_id)
                elif op == "webhook":
                    body = json.dumps(step["event"]).encode()
                    headers = {"X-Payjp-Webhook-Token": TOKEN}
                    (event,) = gw.webhooks.handle("card", headers, body)
                    assert event.type == expect["event_type"]
                    assert event.status is not None
                    assert event.status.value == expect["status"]
                    record = gw.store.get_charge(event.charge_id or "")
                    assert record is not None
                    assert record.amount_refunded == expect["amount_refunded"]
                    continue
                else:
                    raise AssertionError(f"unknown step {op!r}")
            except PaygateError as exc:
                raised: PaygateError | None = exc
            else:
                raised = None
            if raised is not None:
                assert "error" in expect, f"step {n} ({op}) raised {raised!r}"
                _check_error(raised, expect)
                continue
            assert "error" not in expect, f"step {n} ({op}) did not raise"
            if isinstance(result, Refund):
                assert result.amount == Money.jpy(expect["refund"])
                if "charge_refunded_total" in expect:
                    assert result.charge_refunded_total == Money.jpy(
                        expect["charge_refunded_total"]
                    )
                assert charge_id is not None
                record = gw.store.get_charge(charge_id)
                assert record is not None
                assert record.status.value == expect["status"]
                assert record.amount_refunded == expect["amount_refunded"]
            else:
                _check_charge(result, expect)
        transport.assert_done()
    finally:
        gw.close()


# --------------------------------------------------------------------- the emulator


def _ref(charge: Charge) -> ChargeRef:
    return ChargeRef(
        charge_id=charge.id,
        provider_ref=charge.provider_ref,
        method="card",
        amount=charge.amount,
        amount_refunded=charge.amount_refunded,
        amount_captured=charge.amount_captured,
    )


def _emulator_answers(emu: Any, case: DocumentedCase) -> list[tuple[str, str, Reply]]:
    """Run the case's steps through the adapter's flows against the emulator; every
    (method, path, answer) in order."""
    answers: list[tuple[str, str, Reply]] = []

    def respond(call: Any) -> Reply:
        reply = emu.respond(call)
        path = call.url.split("/payjp", 1)[1].split("?", 1)[0]
        answers.append((call.method, path, reply))
        return reply

    def run(flow: Any) -> Any:
        return drive(flow, respond, emu.cache)

    provider = emu.provider
    charge: Charge | None = None
    for n, step in enumerate(case.data["steps"]):
        if "advance_minutes" in step:
            emu.advance(minutes=step["advance_minutes"])
        if "advance_days" in step:
            emu.advance(days=step["advance_days"])
        if "tds" in step:
            assert charge is not None
            emu.control("tds", charge=charge.provider_ref, result=step["tds"])
        op = step["op"]
        ctx = emu.ctx(f"{case.name}-{n}", charge_id="pg_doc")
        try:
            if op == "charge":
                method = Card(
                    token=step.get("token", "tok_success"),
                    capture=step.get("capture", True),
                    three_d_secure=step.get("three_d_secure", False),
                )
                req = ChargeRequest(amount=Money.jpy(step["amount"]), method=method)
                charge = run(provider.charge(req, ctx))
            elif op == "refund":
                assert charge is not None
                amount = step.get("amount")
                money = Money.jpy(amount) if amount is not None else None
                run(provider.refund(RefundRequest(_ref(charge), money, step.get("reason")), ctx))
            elif op == "capture":
                assert charge is not None
                amount = step.get("amount")
                money = Money.jpy(amount) if amount is not None else None
                charge = run(provider.capture(CaptureRequest(_ref(charge), money), ctx))
            elif op == "cancel":
                assert charge is not None
                charge = run(provider.cancel(CancelRequest(_ref(charge)), ctx))
            elif op == "status":
                assert charge is not None
                charge = run(provider.status(_ref(charge), ctx))
            elif op == "webhook" and "emulator_refund" in step:
                # The emulator's own event of the same kind: make it happen.
                assert charge is not None
                money = Money.jpy(step["emulator_refund"])
                run(provider.refund(RefundRequest(_ref(charge), money), ctx))
        except PaygateError:
            if "error" not in step.get("expect", {}):
                raise
    return answers


def _template(path: str) -> str:
    return "/".join("{id}" if part.startswith("ch_") else part for part in path.split("/"))


@pytest.mark.parametrize("case", CASES, ids=str)
def test_the_emulator_answers_in_the_documented_shape(emu: Any, case: DocumentedCase) -> None:
    answers = _emulator_answers(emu, case)
    pending = list(answers)
    for exchange in case.exchanges:
        wanted = (exchange.method, _template(exchange.path))
        while pending and (pending[0][0], _template(pending[0][1])) != wanted:
            pending.pop(0)
        assert pending, f"the emulator was never asked {wanted}"
        _, _, reply = pending.pop(0)
        assert reply.status == exchange.status, (wanted, reply.json())
        assert_shape(exchange.response_body, reply.json())
    for step in case.data["steps"]:
        if step["op"] == "webhook":
            documented = step["event"]
            delivered = [json.loads(d.body) for d in emu.deliveries]
            same = [e for e in delivered if e["type"] == documented["type"]]
            if same:
                assert_shape(documented, same[-1])
