"""A tiny emulator ("toypay") that exercises the sandbox host without any real provider.

It is registered directly with the host (not through an entry point): charges that a
customer pays through a control action, expire on the sandbox clock, and announce
payment with a webhook retried 1 min, 1 min, then 10 min after failures.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from paygate.sandbox import (
    ControlError,
    Emulator,
    EmulatorContext,
    LedgerEntry,
    Sandbox,
    WebhookDelivery,
    running,
)

SECRET = "sk_test_toy_0123456789"
WEBHOOK_SCHEDULE = (timedelta(minutes=1), timedelta(minutes=1), timedelta(minutes=10))
CHARGE_TTL = timedelta(minutes=30)


class ToyEmulator(Emulator):
    """Answers injected 5xx/429 faults with its own error body (the optional hook)."""

    name = "toypay"
    webhook_schedule = WEBHOOK_SCHEDULE

    def __init__(self, ctx: EmulatorContext) -> None:
        super().__init__(ctx)
        self.reset()

    def reset(self) -> None:
        self.charges: dict[str, dict[str, Any]] = {}
        self.keys: dict[str, str] = {}
        self.advanced_to: list[datetime] = []
        self.booms = 0
        self._ids = itertools.count(1)
        self._events = itertools.count(1)

    def routes(self) -> Sequence[BaseRoute]:
        return [
            Route("/v1/charges", self._create, methods=["POST"]),
            Route("/v1/charges/{charge_id}", self._get, methods=["GET"]),
            Route("/v1/boom", self._boom, methods=["POST"]),
        ]

    def credentials(self) -> dict[str, Any]:
        return {"secret_key": SECRET, "base_url": self.base_url}

    def account_settings(self) -> dict[str, Any]:
        return {"provider": self.name, "base_url": self.base_url, "secret_key": SECRET}

    # -- API -------------------------------------------------------------------------------

    def _authorized(self, request: Request) -> bool:
        return request.headers.get("authorization") == f"Bearer {SECRET}"

    async def _create(self, request: Request) -> Response:
        if not self._authorized(request):
            return JSONResponse({"error": {"code": "unauthorized"}}, 401)
        key = request.headers.get("idempotency-key")
        if key is not None and key in self.keys:
            return JSONResponse(self.charges[self.keys[key]], 200)
        body = await request.json()
        amount = body.get("amount")
        if not isinstance(amount, int) or amount <= 0:
            return JSONResponse({"error": {"code": "invalid_amount"}}, 400)
        charge_id = f"ch_{next(self._ids):04d}"
        charge = {
            "id": charge_id,
            "amount": amount,
            "currency": "JPY",
            "status": "pending",
            "key": key,
            "created": self.now.isoformat(),
            "expires_at": (self.now + CHARGE_TTL).isoformat(),
        }
        self.charges[charge_id] = charge
        if key is not None:
            self.keys[key] = charge_id
        return JSONResponse(charge, 201)

    async def _get(self, request: Request) -> Response:
        if not self._authorized(request):
            return JSONResponse({"error": {"code": "unauthorized"}}, 401)
        charge = self.charges.get(request.path_params["charge_id"])
        if charge is None:
            return JSONResponse({"error": {"code": "not_found"}}, 404)
        return JSONResponse(charge)

    async def _boom(self, request: Request) -> Response:
        self.booms += 1
        raise RuntimeError("emulator bug")

    # -- sandbox hooks -----------------------------------------------------------------------

    async def control(self, action: str, params: Mapping[str, Any]) -> dict[str, Any]:
        if action != "pay":
            return await super().control(action, params)
        charge = self.charges.get(str(params.get("charge_id")))
        if charge is None:
            raise ControlError("no such charge", status=404)
        if charge["status"] != "pending":
            raise ControlError(f"charge is {charge['status']}", status=409)
        charge["status"] = "succeeded"
        event_id = f"evt_{next(self._events):04d}"
        body = {"id": event_id, "type": "charge.succeeded", "data": charge}
        self.ctx.deliver(
            WebhookDelivery(
                provider=self.name,
                body=json.dumps(body).encode(),
                headers={"X-Toy-Signature": f"sig-{event_id}", "X-Toy-Event": "charge.succeeded"},
                schedule=self.webhook_schedule,
                event_id=event_id,
            )
        )
        return {"charge": charge, "event_id": event_id}

    def fault_response(self, status: int) -> Response:
        return JSONResponse({"error": {"code": "toy_unavailable", "status": status}}, status)

    def on_clock_advanced(self, now: datetime) -> None:
        self.advanced_to.append(now)
        for charge in self.charges.values():
            if (
                charge["status"] == "pending"
                and datetime.fromisoformat(charge["expires_at"]) <= now
            ):
                charge["status"] = "expired"

    def ledger(self) -> list[LedgerEntry]:
        return [
            LedgerEntry(
                kind="charge", id=c["id"], key=c["key"], amount=c["amount"], status=c["status"]
            )
            for c in self.charges.values()
        ]


class OtherEmulator(ToyEmulator):
    """A second provider (per-provider reset, faults and webhook URLs stay separate).

    It has no ``fault_response`` hook, so injected errors get the generic body.
    """

    name = "otherpay"
    fault_response = None  # type: ignore[assignment]


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    with running(emulators=[ToyEmulator, OtherEmulator]) as sb:
        yield sb


@pytest.fixture(autouse=True)
def _fresh(request: pytest.FixtureRequest) -> None:
    if "sandbox" in request.fixturenames:
        request.getfixturevalue("sandbox").reset()


@pytest.fixture
def auth() -> dict[str, str]:
    return {"Authorization": f"Bearer {SECRET}"}


@pytest.fixture
def toy_classes() -> list[type[Emulator]]:
    return [OtherEmulator, ToyEmulator]


@pytest.fixture(scope="module")
def http() -> Iterator[httpx.Client]:
    """One client for the module: building a client per call is what would be slow."""
    with httpx.Client(trust_env=False) as client:
        yield client
