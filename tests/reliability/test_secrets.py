"""Secrets and personal data never leave paygate in text.

A run across every adapter uses canary customer data (a name, a phone number, an
e-mail address, a card token) and canary credentials (the sandbox's own keys, every
Authorization value seen on the wire, and deliberately wrong keys whose refusal is
provoked). Charges, refunds, cancels, declines, validation errors, faults, webhooks and
configuration errors happen along the way. None of the canaries may appear in:

* any log record of any logger at DEBUG (message, arguments, traceback);
* any span (name, attributes, events, status) of the global tracer provider;
* the message, ``str`` or ``repr`` of any exception, its causes and contexts;
* the ``str`` or ``repr`` of any object paygate returns or takes;
* a cassette recorded through paygate's cassette settings.

(The committed cassettes are scanned by tests/test_cassette_hygiene.py.)
"""

from __future__ import annotations

import base64
import logging
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from paygate import (
    Card,
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
from paygate.sandbox import serve_app

PROVIDERS = ["payjp", "univapay", "elepay", "pokepay", "smaregi"]

NAME = "金糸雀 花子"
PHONE = "0355519876"
EMAIL = "canary.hanako.7f3e@example.org"
MEMO = "カナリア様 ご来店メモ"
PERSONAL = [NAME, PHONE, "03-5551-9876", EMAIL, MEMO]

WRONG_KEYS = {
    "payjp": {"secret_key": "sk_test_CanaryPayjpWrongKey00000001"},
    "elepay": {"secret_key": "sk_test_CanaryElepayWrongKey0000002"},
    "univapay": {"secret": "canary_univapay_wrong_secret_0003"},
    "smaregi": {"client_secret": "canary_smaregi_wrong_secret_0004"},
    "pokepay": {
        "client_secret": base64.urlsafe_b64encode(b"CanaryPokepayWrongSecret0005abcd")
        .decode()
        .rstrip("=")
    },
}


# -- collection ----------------------------------------------------------------------------


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    """Spans of the global tracer provider (another test module may have set it)."""
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = TracerProvider()
        trace.set_tracer_provider(provider)
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield exporter
    exporter.shutdown()  # stays attached to the provider, but records nothing more


class Wire(httpx.BaseTransport):
    """Records every credential-bearing header value that went over the wire."""

    def __init__(self) -> None:
        self.inner = httpx.HTTPTransport()
        self.values: set[str] = set()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        for name, value in request.headers.items():
            if name.lower() in ("authorization", "x-payjp-webhook-token"):
                self.values.add(value)
                self.values.update(part for part in value.split() if len(part) >= 8)
        return self.inner.handle_request(request)

    def close(self) -> None:
        self.inner.close()


class Texts:
    """Everything paygate said, gathered for the scan."""

    def __init__(self) -> None:
        self.items: list[tuple[str, str]] = []
        self.errors = 0

    def add(self, where: str, value: Any) -> None:
        self.items.append((where, str(value)))
        self.items.append((where, repr(value)))

    def error(self, where: str, exc: BaseException) -> None:
        self.errors += 1
        seen: set[int] = set()
        current: BaseException | None = exc
        while current is not None and id(current) not in seen:
            seen.add(id(current))
            self.add(f"{where}: {type(current).__name__}", current)
            self.items.append((where, "".join(traceback.format_exception_only(current))))
            for arg in current.args:
                self.items.append((where, str(arg)))
            current = current.__cause__ or current.__context__

    def attempt(self, where: str, call: Callable[[], Any]) -> Any:
        try:
            result = call()
        except PaygateError as exc:
            self.error(where, exc)
            return None
        self.add(where, result)
        return result


def _span_texts(span: ReadableSpan) -> list[str]:
    out = [span.name, str(dict(span.attributes or {}))]
    out += [f"{e.name} {dict(e.attributes or {})}" for e in span.events]
    if span.status.description:
        out.append(span.status.description)
    return out


def _log_texts(records: list[logging.LogRecord]) -> list[tuple[str, str]]:
    formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
    out = []
    for record in records:
        out.append((f"log {record.name}", formatter.format(record)))
        out.append((f"log {record.name} args", repr(record.args)))
        if record.exc_info and record.exc_info[1] is not None:
            out.append(
                (f"log {record.name} exc", "".join(traceback.format_exception(*record.exc_info)))
            )
    return out


# -- the run -------------------------------------------------------------------------------


def _scenario(gw: Gateway, sandbox: Any, texts: Texts) -> None:
    token = sandbox.control("payjp", "token", card="success")["id"]
    card = Card(token=token)
    texts.add("method", card)
    charge = texts.attempt(
        "payjp charge",
        lambda: gw.charge(
            "payjp",
            amount=Money.jpy(2400),
            method=card,
            idempotency_key="secret-1",
            description=f"for {NAME}",
            metadata={"contact": EMAIL, "tel": PHONE},
        ),
    )
    texts.attempt(
        "payjp refund",
        lambda: gw.refund(
            "payjp",
            charge.id,
            amount=Money.jpy(400),
            idempotency_key="secret-1r",
            reason="asked by the customer",
        ),
    )
    texts.attempt(
        "payjp decline",
        lambda: gw.charge(
            "payjp",
            amount=Money.jpy(2400),
            method=Card(token="tok_card_declined"),
            idempotency_key="secret-2",
            metadata={"contact": EMAIL},
        ),
    )
    slip_method = Konbini(store="lawson", customer_name=NAME, phone=PHONE, email=EMAIL)
    texts.add("method", slip_method)
    slip = texts.attempt(
        "univapay konbini",
        lambda: gw.charge(
            "univapay", amount=Money.jpy(3000), method=slip_method, idempotency_key="secret-3"
        ),
    )
    texts.attempt("univapay status", lambda: gw.status("univapay", slip.id))
    for bad in (
        Konbini(store="lawson", customer_name=NAME, phone=PHONE + "99999", email=EMAIL),
        Konbini(store="lawson", customer_name=NAME, phone=PHONE, email=f"{EMAIL}@@"),
        Konbini(store=f"store of {NAME}", customer_name=NAME, phone=PHONE, email=EMAIL),
        Konbini(store="lawson", customer_name=NAME * 60, phone=PHONE, email=EMAIL),
    ):
        texts.attempt(
            "univapay invalid",
            lambda bad=bad: gw.charge(
                "univapay", amount=Money.jpy(3000), method=bad, idempotency_key="secret-4"
            ),
        )
    texts.attempt(
        "univapay refund konbini",
        lambda: gw.refund("univapay", slip.id, idempotency_key="secret-3r"),
    )
    texts.attempt(
        "univapay cancel", lambda: gw.cancel("univapay", slip.id, idempotency_key="secret-3x")
    )
    code = texts.attempt(
        "elepay",
        lambda: gw.charge(
            "elepay",
            amount=Money.jpy(1800),
            method=QRCode(),
            idempotency_key="secret-5",
            description=f"{NAME} {PHONE}",
            metadata={"email": EMAIL},
        ),
    )
    sandbox.control("elepay", "pay_code", code_id=code.provider_ref.split(":", 1)[1])
    texts.attempt(
        "elepay refund",
        lambda: gw.refund(
            "elepay",
            code.id,
            amount=Money.jpy(100),
            idempotency_key="secret-5r",
            reason="duplicate order",
        ),
    )
    customer = sandbox.credentials()["pokepay"]["customers"]["funded"]
    texts.attempt(
        "pokepay",
        lambda: gw.charge(
            "pokepay",
            amount=Money.jpy(700),
            method=Wallet(customer_id=customer),
            idempotency_key="secret-6",
            description=NAME,
            metadata={"email": EMAIL},
        ),
    )
    sale = PosSale(
        store_id="1",
        terminal_id="1",
        lines=(PosLine(name=f"{NAME}様 取置", unit_price=1500),),
        memo=MEMO,
    )
    texts.add("method", sale)
    pos = texts.attempt(
        "smaregi",
        lambda: gw.charge(
            "smaregi", amount=Money.jpy(1500), method=sale, idempotency_key="secret-7"
        ),
    )
    texts.attempt(
        "smaregi refund", lambda: gw.refund("smaregi", pos.id, idempotency_key="secret-7r")
    )
    # Faults while personal data is in flight.
    for provider in ("payjp", "univapay", "smaregi"):
        sandbox.fault(provider, "status", status=500, count=8)
    texts.attempt(
        "payjp fault",
        lambda: gw.charge(
            "payjp",
            amount=Money.jpy(999),
            method=Card(token="tok_success"),
            idempotency_key="secret-8",
            metadata={"contact": EMAIL},
        ),
    )
    texts.attempt(
        "univapay fault",
        lambda: gw.charge(
            "univapay", amount=Money.jpy(999), method=slip_method, idempotency_key="secret-9"
        ),
    )
    texts.attempt(
        "smaregi fault",
        lambda: gw.charge(
            "smaregi", amount=Money.jpy(1500), method=sale, idempotency_key="secret-10"
        ),
    )
    sandbox.clear_faults()
    sandbox.fault("univapay", "drop_after_commit", path="charges$", method="POST", count=8)
    texts.attempt(
        "univapay dropped",
        lambda: gw.charge(
            "univapay", amount=Money.jpy(998), method=slip_method, idempotency_key="secret-11"
        ),
    )
    sandbox.clear_faults()


def _wrong_credentials(accounts: dict[str, Any], texts: Texts, sandbox: Any) -> None:
    tables = {name: {**accounts[name], **WRONG_KEYS[name]} for name in PROVIDERS}
    with Gateway.from_config(
        {"store": "memory://", "accounts": tables}, retry=RetryPolicy.no_wait()
    ) as gw:
        customer = sandbox.credentials()["pokepay"]["customers"]["funded"]
        methods = {
            "payjp": Card(token="tok_success"),
            "univapay": Konbini(store="lawson", customer_name=NAME, phone=PHONE, email=EMAIL),
            "elepay": QRCode(),
            "pokepay": Wallet(customer_id=customer),
            "smaregi": PosSale(
                store_id="1", terminal_id="1", lines=(PosLine(name="x", unit_price=500),)
            ),
        }
        for name, method in methods.items():
            texts.attempt(
                f"{name} wrong key",
                lambda name=name, method=method: gw.charge(
                    name, amount=Money.jpy(500), method=method, idempotency_key=f"wrong-{name}"
                ),
            )
            texts.add("provider", gw.provider(name))
        texts.add("gateway", gw)
    # Configuration errors must not echo the values they refuse.
    bad_tables = [
        {"payjp": {**accounts["payjp"], "secret_key": "pk_test_CanaryPublicNotSecret0006"}},
        {"payjp": {**accounts["payjp"], "timeout": "CanaryTimeoutValue0007"}},
        {"univapay": {**accounts["univapay"], "base_url": "http://canary.example.org/secret_0008"}},
        {"pokepay": {**accounts["pokepay"], "client_secret": "Canary-too-short-0009"}},
    ]
    for table in bad_tables:
        texts.attempt(
            "config",
            lambda table=table: Gateway.from_config({"store": "memory://", "accounts": table}),
        )


def _webhooks(gw: Gateway, sandbox: Any, texts: Texts) -> None:
    events: list[Any] = []
    gw.webhooks.on("*")(events.append)
    with serve_app(gw.webhooks.asgi()) as url:
        for provider in ("payjp", "univapay", "elepay"):
            sandbox.set_webhook_url(f"{url}/{provider}", provider)
        try:
            slip = gw.charge(
                "univapay",
                amount=Money.jpy(1234),
                method=Konbini(store="family_mart", customer_name=NAME, phone=PHONE, email=EMAIL),
                idempotency_key="secret-hook",
            )
            sandbox.control("univapay", "pay_konbini", charge_id=slip.provider_ref)
            sandbox.flush_webhooks()
        finally:
            sandbox.set_webhook_url(None)
    # A forged delivery (the token guessed wrong) is refused without echoing it.
    texts.attempt(
        "forged webhook",
        lambda: gw.webhooks.handle(
            "payjp", {"x-payjp-webhook-token": "CanaryForgedToken0010"}, b"{}"
        ),
    )
    assert events
    for event in events:
        texts.add("event", event)


def test_canaries_never_leave_paygate(
    sandbox: Any,
    paygate_accounts: dict[str, Any],
    spans: InMemorySpanExporter,
    caplog: pytest.LogCaptureFixture,
    tmp_path: Path,
) -> None:
    caplog.set_level(logging.DEBUG)
    texts = Texts()
    wire = Wire()
    accounts = {name: paygate_accounts[name] for name in PROVIDERS}
    gw = Gateway.from_config(
        {"store": "memory://", "accounts": accounts},
        store=f"sqlite:///{tmp_path / 'secrets.db'}",
        retry=RetryPolicy.no_wait(),
        transport=wire,
    )
    try:
        _scenario(gw, sandbox, texts)
        _webhooks(gw, sandbox, texts)
        texts.add("gateway", gw)
    finally:
        gw.close()
    _wrong_credentials(accounts, texts, sandbox)

    credentials: list[str] = []
    for name in PROVIDERS:
        for key, value in sandbox.credentials()[name].items():
            if (
                isinstance(value, str)
                and len(value) >= 12
                and any(w in key for w in ("secret", "jwt", "token", "key"))
            ):
                credentials.append(value)
    wrong = [v for table in WRONG_KEYS.values() for v in table.values()]
    canaries = sorted(
        {
            *PERSONAL,
            *credentials,
            *wrong,
            *wire.values,
            "CanaryPublicNotSecret0006",
            "CanaryTimeoutValue0007",
            "secret_0008",
            "Canary-too-short-0009",
            "CanaryForgedToken0010",
        }
    )
    assert len(credentials) >= 5
    assert texts.errors >= 10  # the run did provoke errors

    haystack = [*texts.items, *_log_texts(caplog.records)]
    haystack += [
        ("span", text) for span in spans.get_finished_spans() for text in _span_texts(span)
    ]
    assert spans.get_finished_spans(), "no spans were recorded"
    assert caplog.records, "no log records were captured"
    # The scan sees what it looks for (a planted record would be found).
    planted = logging.LogRecord("paygate", logging.DEBUG, __file__, 1, "to %s", (EMAIL,), None)
    assert any(EMAIL in text for _, text in _log_texts([planted]))
    leaks = sorted(
        {(canary, where) for canary in canaries for where, text in haystack if canary in text}
    )
    assert not leaks, "\n".join(f"{canary!r} in {where}" for canary, where in leaks[:40])


def test_canaries_never_reach_a_cassette(
    sandbox: Any, paygate_accounts: dict[str, Any], tmp_path: Path
) -> None:
    import vcr

    from paygate.testing._cassettes import vcr_config

    path = tmp_path / "canary.yaml"
    config = vcr_config()
    recorder = vcr.VCR(
        before_record_request=config["before_record_request"],
        before_record_response=config["before_record_response"],
        filter_headers=config["filter_headers"],
        decode_compressed_response=True,
        record_mode="all",
    )
    accounts = {name: paygate_accounts[name] for name in PROVIDERS}
    with (
        recorder.use_cassette(str(path)),
        Gateway.from_config(
            {"store": "memory://", "accounts": accounts}, retry=RetryPolicy.no_wait()
        ) as gw,
    ):
        texts = Texts()
        _scenario(gw, sandbox, texts)
    text = path.read_text(encoding="utf-8")
    assert "interactions" in text
    wrong = [v for table in WRONG_KEYS.values() for v in table.values()]
    credentials = [
        value
        for name in PROVIDERS
        for key, value in sandbox.credentials()[name].items()
        if isinstance(value, str)
        and len(value) >= 12
        and any(w in key for w in ("secret", "jwt", "token"))
    ]
    found = [c for c in (*PERSONAL, *credentials, *wrong) if c in text]
    assert not found, found


def test_b14_refund_reason_not_in_repr(sandbox: Any, paygate_accounts: dict[str, Any]) -> None:
    accounts = {"payjp": paygate_accounts["payjp"]}
    with Gateway.from_config(
        {"store": "memory://", "accounts": accounts}, retry=RetryPolicy.no_wait()
    ) as gw:
        charge = gw.charge(
            "payjp", amount=Money.jpy(1000), method=Card(token="tok_success"), idempotency_key="b14"
        )
        refund = gw.refund("payjp", charge.id, idempotency_key="b14-r", reason=f"{NAME} {EMAIL}")
    assert EMAIL not in repr(refund)
    assert NAME not in repr(refund)
