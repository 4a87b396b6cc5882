"""Hostile provider answers: every adapter, every step of its charge, status, refund and
cancel flows, answered with malformed JSON, the wrong JSON type, wrongly typed fields,
nulls, an HTML error page, a truncated or empty body, invalid UTF-8, deeply nested or
huge JSON, and (Pokepay) bad base64 and bad ciphertext.

Each answer must end in a paygate error (or, where the damage is harmless, a result),
never a raw KeyError/TypeError/ValueError/RecursionError; and a retry with the same key,
once the provider answers properly again, must complete with exactly one provider
object. The answers are corrupted in flight by an httpx transport in front of the real
sandbox, so the provider did process the request (as when a proxy mangles an answer).
"""

from __future__ import annotations

import base64
import json
import os
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from reliability.chaos import provider_key

from paygate import (
    Card,
    ChargeStatus,
    Gateway,
    Konbini,
    Money,
    PaygateError,
    PosLine,
    PosSale,
    QRCode,
    RetryPolicy,
    Wallet,
)

PROVIDERS = ["payjp", "univapay", "elepay", "pokepay", "smaregi"]
HUGE = 4 * 1024 * 1024


def _retype(value: Any) -> Any:
    """Every scalar replaced by one of another type; containers kept."""
    if isinstance(value, dict):
        return {k: _retype(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_retype(v) for v in value]
    if isinstance(value, bool):
        return "yes"
    if isinstance(value, int | float):
        return "many"
    if isinstance(value, str):
        return 12345
    return [1]


def _nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _nulls(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_nulls(v) for v in value]
    return None


Json = Callable[[Any], Any]
# name -> (status, content type, body from the real body; None = keep the real one)
BODIES: dict[str, Callable[[bytes], tuple[int, str, bytes]]] = {
    "malformed_json": lambda real: (200, "application/json", b'{"id": "ch_1", "amount": '),
    "json_array": lambda real: (200, "application/json", b"[1, 2, 3]"),
    "json_string": lambda real: (200, "application/json", b'"ok"'),
    "json_null": lambda real: (200, "application/json", b"null"),
    "html_200": lambda real: (
        200,
        "text/html",
        b"<html><body><h1>Service Temporarily Unavailable</h1></body></html>",
    ),
    "html_500": lambda real: (500, "text/html", b"<html><body>Internal Server Error</body></html>"),
    "truncated": lambda real: (200, "application/json", real[: len(real) // 2]),
    "empty": lambda real: (200, "application/json", b""),
    "invalid_utf8": lambda real: (200, "application/json", b'{"id": "\xff\xfe\xfa"}'),
    "deeply_nested": lambda real: (200, "application/json", b"[" * 100_000 + b"]" * 100_000),
    "huge": lambda real: (200, "application/json", b'{"padding": "' + b"x" * HUGE + b'"}'),
    "huge_number": lambda real: (200, "application/json", b'{"amount": 1' + b"0" * 5000 + b"}"),
}
# Mutations of the real JSON (applied inside the envelope for Pokepay).
MUTATIONS: dict[str, Json] = {"wrong_types": _retype, "nulls": _nulls}


@dataclass
class Corruptor:
    """Which provider call (by number) gets which hostile answer."""

    provider: str
    target: int | None = None
    body: str | None = None
    mutation: str | None = None
    pokepay: str | None = None
    cipher: Any = None
    seen: int = 0
    hit: bool = False
    log: list[str] = field(default_factory=list)

    def arm(self, target: int, **kind: Any) -> None:
        self.target, self.seen, self.hit = target, 0, False
        self.body = kind.get("body")
        self.mutation = kind.get("mutation")
        self.pokepay = kind.get("pokepay")

    def disarm(self) -> None:
        self.target = None

    def apply(self, request: httpx.Request, response: httpx.Response) -> httpx.Response:
        if self.target is None or f"/{self.provider}/" not in request.url.path:
            return response
        number = self.seen
        self.seen += 1
        if number != self.target:
            return response
        self.hit = True
        real = response.read()
        self.log.append(f"{request.method} {request.url.path}")
        if self.body is not None:
            status, ctype, body = BODIES[self.body](real)
        elif self.mutation is not None:
            status, ctype, body = response.status_code, "application/json", self._mutate(real)
        else:
            status, ctype, body = response.status_code, "application/json", self._envelope(real)
        return httpx.Response(status, headers={"content-type": ctype}, content=body)

    def _mutate(self, real: bytes) -> bytes:
        try:
            data = json.loads(real)
        except ValueError:
            return real
        mutate = MUTATIONS[self.mutation or ""]
        if self.provider == "pokepay" and isinstance(data, dict) and "response_data" in data:
            inner = json.loads(self.cipher.decrypt(data["response_data"]))
            data["response_data"] = self.cipher.encrypt(json.dumps(mutate(inner)).encode())
            return json.dumps(data).encode()
        return json.dumps(mutate(data)).encode()

    def _envelope(self, real: bytes) -> bytes:
        data = json.loads(real)
        if self.pokepay == "bad_base64":
            data["response_data"] = "@@@ not base64 @@@"
        elif self.pokepay == "bad_ciphertext":
            data["response_data"] = base64.urlsafe_b64encode(os.urandom(80)).decode().rstrip("=")
        elif self.pokepay == "short_ciphertext":
            data["response_data"] = base64.urlsafe_b64encode(b"\x00" * 5).decode().rstrip("=")
        elif self.pokepay == "not_json_inside":
            data["response_data"] = self.cipher.encrypt(b"<html>not json</html>")
        elif self.pokepay == "array_inside":
            data["response_data"] = self.cipher.encrypt(b"[]")
        elif self.pokepay == "number_data":
            data["response_data"] = 42
        return json.dumps(data).encode()


class CorruptingTransport(httpx.BaseTransport):
    def __init__(self, corruptor: Corruptor) -> None:
        self.corruptor = corruptor
        self.inner = httpx.HTTPTransport()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        return self.corruptor.apply(request, self.inner.handle_request(request))

    def close(self) -> None:
        self.inner.close()


KINDS = [
    *[pytest.param(name, {"body": name}, id=name) for name in BODIES],
    *[pytest.param(name, {"mutation": name}, id=name) for name in MUTATIONS],
]
POKEPAY_KINDS = [
    "bad_base64",
    "bad_ciphertext",
    "short_ciphertext",
    "not_json_inside",
    "array_inside",
    "number_data",
]


@pytest.fixture
def setup(
    sandbox: Any, paygate_accounts: dict[str, Any], request: pytest.FixtureRequest
) -> Iterator[tuple[Gateway, Corruptor, Any]]:
    provider = request.param if hasattr(request, "param") else "payjp"
    corruptor = Corruptor(provider)
    gw = Gateway.from_config(
        {"store": "memory://", "accounts": {p: paygate_accounts[p] for p in PROVIDERS}},
        retry=RetryPolicy.no_wait(attempts=2),
        transport=CorruptingTransport(corruptor),
    )
    if provider == "pokepay":
        corruptor.cipher = gw.provider("pokepay").wire.cipher  # type: ignore[attr-defined]
    yield gw, corruptor, sandbox
    gw.close()


def _method(sandbox: Any, provider: str, amount: int) -> Any:
    if provider == "payjp":
        return Card(token="tok_success")
    if provider == "univapay":
        return Konbini(store="lawson", customer_name="悪意 応答", phone="0364413400")
    if provider == "pokepay":
        return Wallet(customer_id=sandbox.credentials()["pokepay"]["customers"]["funded"])
    if provider == "smaregi":
        return PosSale(store_id="1", terminal_id="1", lines=(PosLine(name="h", unit_price=amount),))
    return QRCode()


def _objects(sandbox: Any, provider: str, key: str) -> int:
    wanted = provider_key(provider, key)
    if provider == "elepay":
        return sum(
            1 for c in sandbox.host.emulators["elepay"].codes.values() if c.order_no == wanted
        )
    kind = {"pokepay": "payment", "smaregi": "transaction"}.get(provider, "charge")
    return sum(1 for e in sandbox.ledger()[provider] if e.kind == kind and e.key == wanted)


class Run:
    """Runs one operation under a hostile answer at each of its calls in turn."""

    def __init__(self, gw: Gateway, corruptor: Corruptor, sandbox: Any, kind: dict[str, str]):
        self.gw, self.corruptor, self.sandbox, self.kind = gw, corruptor, sandbox, kind
        self.provider = corruptor.provider
        self.cases = 0
        self.errors: list[str] = []
        self.outcomes: list[str] = []
        self.counter = 0

    def _expect_typed(self, what: str, call: Callable[[], Any]) -> Any:
        try:
            result = call()
        except PaygateError as exc:
            if not str(exc):
                self.errors.append(f"{what}: {type(exc).__name__} renders empty")
            self.outcomes.append(f"{what}:{type(exc).__name__}")
            return exc
        except Exception as exc:  # the bug this test is after
            self.errors.append(f"{what} at {self.corruptor.log[-1:]}: {type(exc).__name__}: {exc}")
            return exc
        self.outcomes.append(f"{what}:ok")
        return result

    def each_step(
        self,
        what: str,
        call: Callable[[int], Any],
        check: Callable[[int], Any],
        prepare: Callable[[int], None] | None = None,
    ) -> None:
        for target in range(12):
            self.counter += 1
            if prepare is not None:
                prepare(self.counter)
            self.corruptor.arm(target, **self.kind)
            self._expect_typed(what, lambda: call(self.counter))
            hit = self.corruptor.hit
            self.corruptor.disarm()
            if not hit:
                return
            self.cases += 1
            check(self.counter)

    def _new_charge(self, n: int) -> Any:
        amount = 1500
        return self.gw.charge(
            self.provider,
            amount=Money.jpy(amount),
            method=_method(self.sandbox, self.provider, amount),
            idempotency_key=f"hostile-{n}",
        )

    def charge(self) -> None:
        def check(n: int) -> None:
            # The provider answers properly again: the same key completes, once.
            charge = self._expect_typed("retry", lambda: self._new_charge(n))
            if isinstance(charge, Exception):
                self.errors.append(f"charge retry after the hostile answer: {charge!r}")
                return
            if self.provider != "elepay":  # elepay may re-create an unpaid code
                assert _objects(self.sandbox, self.provider, f"hostile-{n}") == 1

        self.each_step("charge", self._new_charge, check)

    def later(self) -> None:
        """status, then refund or cancel, each step of each on a charge made cleanly."""
        charges: dict[int, Any] = {}

        def prepare(n: int) -> None:
            charges[n] = self._new_charge(n)

        self.each_step(
            "status",
            lambda n: self.gw.status(self.provider, charges[n].id),
            lambda n: self._expect_typed(
                "status again", lambda: self.gw.status(self.provider, charges[n].id)
            ),
            prepare,
        )
        sample = charges[max(charges)]
        caps = self.gw.capabilities(self.provider).method(sample.method)
        assert caps is not None
        if caps.cancel and sample.status is not ChargeStatus.SUCCEEDED:

            def cancel(n: int) -> Any:
                return self.gw.cancel(self.provider, charges[n].id, idempotency_key=f"c-{n}")

            self.each_step(
                "cancel",
                cancel,
                lambda n: self._expect_typed("cancel retry", lambda: cancel(n)),
                prepare,
            )
        elif caps.refund != "none":
            partial = caps.refund == "partial"

            def refund(n: int) -> Any:
                return self.gw.refund(
                    self.provider,
                    charges[n].id,
                    amount=Money.jpy(10) if partial else None,
                    idempotency_key=f"r-{n}",
                )

            self.each_step(
                "refund",
                refund,
                lambda n: self._expect_typed("refund retry", lambda: refund(n)),
                prepare,
            )


@pytest.mark.parametrize("setup", PROVIDERS, indirect=True)
@pytest.mark.parametrize(("name", "kind"), KINDS)
def test_hostile_answers_give_paygate_errors(
    setup: tuple[Gateway, Corruptor, Any], name: str, kind: dict[str, str]
) -> None:
    gw, corruptor, sandbox = setup
    run = Run(gw, corruptor, sandbox, kind)
    run.charge()
    run.later()
    if os.environ.get("PAYGATE_SHOW_OUTCOMES"):
        print(name, corruptor.provider, Counter(run.outcomes))
    assert run.cases > 0
    assert not run.errors, "\n".join(run.errors)


@pytest.mark.parametrize("setup", ["pokepay"], indirect=True)
@pytest.mark.parametrize("name", POKEPAY_KINDS)
def test_pokepay_bad_envelopes_give_paygate_errors(
    setup: tuple[Gateway, Corruptor, Any], name: str
) -> None:
    gw, corruptor, sandbox = setup
    run = Run(gw, corruptor, sandbox, {"pokepay": name})
    run.charge()
    run.later()
    assert run.cases > 0
    assert not run.errors, "\n".join(run.errors)
