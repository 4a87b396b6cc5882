"""Documented-response tests: Smaregi's published answers, fed to the adapter.

Each case in ``documented/`` is written from a source paygate did not write (the
developer forum's staff answers, the official reference pages, a production client, an
independent spec; each case names its ``source``), never from the emulator. The case's
exchanges are served by `ScriptedTransport`, which also checks what paygate sends, and
the documented outcome is asserted on what the gateway returns or raises.

The same operations are then run against the emulator, and every emulator answer whose
status matches a documented one must have the documented body's keys and JSON types
(`assert_shape`), so the sandbox cannot drift from the documents unnoticed.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

import paygate
from paygate import Gateway, Money, PosLine, PosSale
from paygate._retry import RetryPolicy
from paygate.testing import DocumentedCase, ScriptedTransport, assert_shape, load_cases
from paygate_smaregi import SmaregiProvider, SmaregiSettings
from paygate_smaregi._emulator import SmaregiEmulator

from .conftest import Client, account

CASES = load_cases(Path(__file__).parent / "documented")
NOW = datetime(2025, 3, 1, 1, 0, tzinfo=UTC)  # 10:00 JST
SETTINGS: dict[str, Any] = {
    "client_id": "cid",
    "client_secret": "documented-secret-value",
    "contract_id": "c1",
    "base_url": "https://api.smaregi.dev",
    "id_base_url": "https://id.smaregi.dev",
}
SALE = PosSale(
    store_id="1",
    terminal_id="901",
    lines=(PosLine(product_id="8000001", unit_price=500, quantity=2),),
    slip_number="S-0001",
    card_company="VISA",
)


def _gateway(settings: SmaregiSettings, transport: httpx.BaseTransport) -> Gateway:
    return Gateway(
        {"pos": SmaregiProvider(settings, account="pos")},
        store="memory://",
        transport=transport,
        retry=RetryPolicy.no_wait(),
        clock=lambda: NOW,
    )


def _run(gw: Gateway, case: DocumentedCase, between: Callable[[str], None] = lambda _: None) -> Any:
    """The case's operation; ``between(head_id)`` runs after the sale, before the rest."""
    charge = gw.charge("pos", amount=Money.jpy(1000), method=SALE, idempotency_key="order-1")
    operation = case.data.get("operation", "charge")
    if operation == "charge":
        return charge
    between(charge.provider_ref)
    if operation == "status":
        return gw.status("pos", charge.id)
    if operation == "refund":
        return gw.refund("pos", charge.id, idempotency_key="order-1-refund")
    if operation == "cancel":
        return gw.cancel("pos", charge.id, idempotency_key="order-1-cancel")
    raise AssertionError(f"{case}: unknown operation {operation!r}")


def _check(case: DocumentedCase, result: Any) -> None:
    expect = case.expect
    for key, value in expect.items():
        if key in ("error", "message_contains", "provider_code") and "error" in expect:
            continue
        if key == "refund_kind":
            assert result.kind == value, key
        elif key in ("amount", "amount_refunded"):
            assert getattr(result, key) == Money.jpy(value), key
        elif key == "status":
            assert str(result.status) == value, key
        else:
            assert getattr(result, key) == value, key


@pytest.mark.parametrize("case", CASES, ids=str)
def test_documented_case(case: DocumentedCase) -> None:
    """The adapter, on the documented answers, sends the documented requests and gives
    the documented outcome."""
    transport = ScriptedTransport(case.exchanges)
    settings = SmaregiSettings(**{**SETTINGS, **case.data.get("settings", {})})
    with _gateway(settings, transport) as gw:
        expect = case.expect
        if "error" in expect:
            error_class = getattr(paygate, expect["error"])
            with pytest.raises(error_class) as info:
                _run(gw, case)
            if "message_contains" in expect:
                assert expect["message_contains"] in str(info.value)
            if "provider_code" in expect:
                assert info.value.provider_code == expect["provider_code"]
        else:
            _check(case, _run(gw, case))
    transport.assert_done()


# ------------------------------------------------------------------ the emulator's shape


class EmulatorTransport(httpx.BaseTransport):
    """Sends the gateway's requests to the emulator app; keeps every answer."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.answers: list[tuple[str, str, int, Any]] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        request.read()
        url = request.url
        target = url.raw_path.decode()
        response = self.client.request(
            request.method, target, headers=dict(request.headers), content=request.content
        )
        try:
            body = response.json()
        except ValueError:
            body = None
        self.answers.append((request.method, url.path, response.status_code, body))
        return httpx.Response(
            response.status_code, headers=response.headers, content=response.content
        )


def _route(path: str) -> str:
    """A path reduced to its route: contract and ids dropped (``/pos/transactions/{id}``)."""
    if path.endswith("/token"):
        return "/token"
    route = path.split("/pos/", 1)[-1]
    return re.sub(r"/[0-9]+(?=/|$)", "/{id}", route)


def _documented_answers(case: DocumentedCase) -> Iterator[tuple[str, str, int, Any]]:
    for ex in case.exchanges:
        if ex.response_body is not None:
            yield ex.method, _route(ex.path), ex.status, ex.response_body


@pytest.fixture
def emulator_gateway(
    client: Client, emulator: SmaregiEmulator
) -> Callable[[Mapping[str, Any]], tuple[Gateway, EmulatorTransport]]:
    made: list[Gateway] = []

    def make(overrides: Mapping[str, Any]) -> tuple[Gateway, EmulatorTransport]:
        transport = EmulatorTransport(client)
        gw = _gateway(account(emulator, **overrides), transport)
        made.append(gw)
        return gw, transport

    yield make  # type: ignore[misc]
    for gw in made:
        gw.close()


@pytest.mark.parametrize("case", CASES, ids=str)
def test_emulator_answers_have_the_documented_shape(
    case: DocumentedCase,
    emulator: SmaregiEmulator,
    emulator_gateway: Callable[[Mapping[str, Any]], tuple[Gateway, EmulatorTransport]],
) -> None:
    play: Mapping[str, Any] = case.data.get("emulator", {})
    gw, transport = emulator_gateway(case.data.get("settings", {}))

    def control(step: Mapping[str, Any], head_id: str | None = None) -> None:
        if "extension" in step:
            gw.extension("pos", step["extension"])
            return
        params = dict(step.get("params", {}))
        if head_id is not None:
            params.setdefault("transaction_head_id", head_id)
        asyncio.run(emulator.control(step["control"], params))

    for step in play.get("before_charge", []):
        control(step)
    if play.get("forget_cache"):
        gw.store.cache_put(gw.provider("pos").payment_method_cache_key, None)  # type: ignore[attr-defined]
    transport.answers.clear()

    def between(head_id: str) -> None:
        for step in play.get("before_operation", []):
            control(step, head_id)

    # The emulator's state may differ from the documented one; the shapes still count.
    with contextlib.suppress(paygate.PaygateError):
        _run(gw, case, between)
    compared = 0
    emulated = [(m, _route(p), s, b) for m, p, s, b in transport.answers]
    for method, route, status, documented in _documented_answers(case):
        same = [b for m, r, s, b in emulated if (m, r, s) == (method, route, status)]
        if not same:
            continue
        compared += 1
        assert_shape(documented, same[0])
    # Every case reaches the emulator's token, method and sale answers at least.
    assert compared >= 2, f"{case}: the emulator gave too few of the documented answers"
