"""Documented-response tests: Pokepay's published answers, fed to the adapter.

Each case in ``documented/`` is written from the Partner API's own documents (the Node
SDK's ``docs/index.md``, the ``partner.yaml`` OpenAPI file and the
``docs/error-response.csv`` error table every official SDK ships; each case names its
``source``), never from the emulator. Pokepay encrypts every request and answer in an
envelope (``{partner_client_id, data, request_method}`` and ``{response_data, timestamp,
partner_call_id}``, documented in the same SDK README), so the cases hold what travels
inside it: the request's ``request_data`` with its logical method, and the decrypted
answer. `SealedTransport` opens paygate's envelopes for `ScriptedTransport` (which
checks them) and seals the documented answers the way Pokepay does.

The same operations then run against the emulator, and every documented answer must be
matched by an emulator answer (same method, route and status) with the documented body's
keys and JSON types (`assert_shape`).
"""

from __future__ import annotations

import asyncio
import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

import paygate
from paygate import Gateway, Money, QRCode, Wallet
from paygate._retry import RetryPolicy
from paygate.testing import DocumentedCase, ScriptedTransport, assert_shape, load_cases
from paygate_pokepay import SANDBOX, EnvelopeCipher, PokepayEmulator, PokepayProvider
from paygate_pokepay._crypto import decode_client_secret

from .conftest import AsgiClient, emulator_app, settings

CASES = load_cases(Path(__file__).parent / "documented")
NOW = datetime(2026, 3, 1, 3, 0, tzinfo=UTC)  # 12:00 JST
FUNDED = SANDBOX.customers["funded"][0]
ACCOUNT = "wallet"


def _cipher() -> EnvelopeCipher:
    return EnvelopeCipher(decode_client_secret(SANDBOX.client_secret), iv_source=lambda: bytes(16))


def _open(request: httpx.Request) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """The logical method, the inner envelope and the outer body of a paygate request."""
    request.read()
    outer = json.loads(request.content)
    inner = json.loads(_cipher().decrypt(outer["data"]))
    return str(outer["request_method"]), inner, outer


class SealedTransport(httpx.BaseTransport):
    """Opens paygate's envelopes for `ScriptedTransport`; seals the documented answers."""

    def __init__(self, script: ScriptedTransport) -> None:
        self.script = script
        self.envelopes: list[dict[str, Any]] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        method, inner, outer = _open(request)
        assert outer["partner_client_id"] == SANDBOX.client_id
        self.envelopes.append(inner)
        logical = httpx.Request(method, request.url, json=inner["request_data"])
        reply = self.script.handle_request(logical)
        reply.read()
        if not reply.content:
            return reply
        sealed = {
            "response_data": _cipher().encrypt(reply.content),
            "timestamp": "2026-03-01T12:00:00.000000+09:00",
            "partner_call_id": inner["partner_call_id"],
        }
        return httpx.Response(
            reply.status_code,
            headers={"content-type": "application/json"},
            content=json.dumps(sealed).encode(),
        )


def _gateway(transport: httpx.BaseTransport) -> Gateway:
    return Gateway(
        {ACCOUNT: PokepayProvider(settings(), account=ACCOUNT)},
        store="memory://",
        transport=transport,
        retry=RetryPolicy.no_wait(),
        clock=lambda: NOW,
    )


def _run(
    gw: Gateway,
    case: DocumentedCase,
    *,
    customer: str = FUNDED,
    amount: int | None = None,
    before_operation: Any = None,
) -> Any:
    operation = case.data.get("operation", "charge")
    if operation == "payout_balance":
        return gw.payout_balance(ACCOUNT)
    qr = case.data.get("method") == "qr"
    charge = gw.charge(
        ACCOUNT,
        amount=Money.jpy(amount or (1500 if qr else 1200)),
        method=QRCode() if qr else Wallet(customer_id=customer),
        idempotency_key="order-1",
    )
    if operation == "charge":
        return charge
    if before_operation is not None:
        before_operation(charge)
    if operation == "status":
        return gw.status(ACCOUNT, charge.id)
    if operation == "refund":
        return gw.refund(ACCOUNT, charge.id, idempotency_key="order-1-refund")
    raise AssertionError(f"{case}: unknown operation {operation!r}")


def _check(case: DocumentedCase, result: Any) -> None:
    for key, value in case.expect.items():
        if key in ("amount", "amount_refunded", "charge_refunded_total", "collecting"):
            assert getattr(result, key) == Money.jpy(value), key
        elif key == "status":
            assert str(result.status) == value, key
        elif key == "next_action_url":
            assert result.next_action.url == value, key
        elif key.startswith("raw_"):
            assert result.raw[key.removeprefix("raw_")] == value, key
        else:
            raise AssertionError(f"{case}: unknown expectation {key!r}")


@pytest.mark.parametrize("case", CASES, ids=str)
def test_documented_case(case: DocumentedCase) -> None:
    """The adapter, on the documented answers, sends the documented requests and gives
    the documented outcome."""
    script = ScriptedTransport(case.exchanges)
    transport = SealedTransport(script)
    with _gateway(transport) as gw:
        expect = case.expect
        if "error" in expect:
            with pytest.raises(getattr(paygate, expect["error"])) as info:
                _run(gw, case)
            assert info.value.provider_code == expect["provider_code"]
        else:
            _check(case, _run(gw, case))
    script.assert_done()
    # Every envelope is fresh: a rebuilt one never repeats a partner_call_id.
    call_ids = [e["partner_call_id"] for e in transport.envelopes]
    assert len(set(call_ids)) == len(call_ids)


def test_cases_name_their_sources() -> None:
    for case in CASES:
        assert "pokepay" in case.source, case


# ------------------------------------------------------------------ the emulator's shape

_UUID = re.compile(r"/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def _route(path: str) -> str:
    return _UUID.sub("/{id}", path.split("/pokepay", 1)[-1])


class EmulatorTransport(httpx.BaseTransport):
    """Sends the gateway's requests to the emulator; keeps every decrypted answer."""

    def __init__(self, client: AsgiClient) -> None:
        self.client = client
        self.answers: list[tuple[str, str, int, Any]] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        method, _, _ = _open(request)
        response = self.client.request(
            request.method,
            request.url.raw_path.decode(),
            headers=dict(request.headers),
            content=request.content,
        )
        outer = response.json()
        body = (
            json.loads(_cipher().decrypt(outer["response_data"]))
            if "response_data" in outer
            else outer
        )
        self.answers.append((method, _route(request.url.path), response.status_code, body))
        return httpx.Response(
            response.status_code, headers=response.headers, content=response.content
        )


@pytest.fixture
def emulator_client(emulator: PokepayEmulator) -> AsgiClient:
    return AsgiClient(emulator_app(emulator))


@pytest.mark.parametrize("case", CASES, ids=str)
def test_emulator_answers_have_the_documented_shape(
    case: DocumentedCase, emulator: PokepayEmulator, emulator_client: AsgiClient
) -> None:
    play: dict[str, Any] = case.data.get("emulator", {})
    for step in play.get("controls", []):
        asyncio.run(emulator.control(step["action"], step.get("params", {})))
    customer = SANDBOX.customers[play.get("customer", "funded")][0]
    for step in play.get("before_charge", []):
        # Another customer's payment under the same key (so the same request_id).
        with _gateway(EmulatorTransport(emulator_client)) as other:
            other.charge(
                ACCOUNT,
                amount=Money.jpy(step.get("amount", 100)),
                method=Wallet(customer_id=SANDBOX.customers[step["charge_as"]][0]),
                idempotency_key="order-1",
            )
    transport = EmulatorTransport(emulator_client)

    def before_operation(charge: Any) -> None:
        for step in play.get("before_operation", []):
            if step.get("refund"):
                # Refunded elsewhere (Pokepay's dashboard, another system).
                txn = charge.provider_ref.removeprefix("transaction:")
                emulator._refund({}, {"id": txn})
            if step.get("scan"):
                tray = charge.provider_ref.removeprefix("cashtray:")
                asyncio.run(emulator.control("scan_cashtray", {"cashtray_id": tray}))

    with _gateway(transport) as gw:
        try:
            _run(
                gw,
                case,
                customer=customer,
                amount=play.get("amount"),
                before_operation=before_operation,
            )
        except paygate.PaygateError:
            if "error" not in case.expect:
                raise
    for ex in case.exchanges:
        if ex.response_body is None:
            continue
        key = (ex.method, _route(ex.path), ex.status)
        matching = [body for (*k, body) in transport.answers if tuple(k) == key]
        assert matching, f"{case}: the emulator never answered {key}; got {transport.answers}"
        for body in matching:
            assert_shape(ex.response_body, body)
