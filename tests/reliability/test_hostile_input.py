"""Hostile input from the merchant's side and from the internet.

* Fuzzed public API arguments (wrong types, huge and odd unicode strings, negative and
  huge amounts, nested metadata, malformed payment methods): a typed paygate error
  before anything is sent (the sandbox's request count does not move), or, when the
  input happens to be valid, a normal answer.
* Webhooks with forged tokens, replays, wrongly typed, malformed and oversized bodies,
  through ``gw.webhooks.handle`` and through the ASGI app: a typed error (401/400), the
  handlers never run for a forged delivery and run once for a replayed one.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import tracemalloc
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from paygate import (
    Card,
    ConfigurationError,
    Gateway,
    IdempotencyConflict,
    InvalidRequest,
    Konbini,
    Money,
    NotSupported,
    PaygateError,
    PosLine,
    PosSale,
    Product,
    QRCode,
    RetryPolicy,
    Wallet,
    WebhookVerificationError,
)
from paygate.sandbox import serve_app

PROVIDERS = ["payjp", "univapay", "elepay", "pokepay", "smaregi"]
_KEYS = itertools.count()
# Examples share a store: every example gets its own keys.
PROVIDER_REFUSALS: Counter[str] = Counter()  # what fuzzed methods got from the providers
FUZZ = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    derandomize=True,
)

# -- strategies ---------------------------------------------------------------------------

ODD_TEXT = st.one_of(
    st.text(max_size=40),
    st.text(min_size=300, max_size=2000),
    st.sampled_from(
        [
            "",
            " ",
            "\x00",
            "a\x00b",
            "\u202e\u2066evil",
            "𝔘𝔫𝔦𝔠𝔬𝔡𝔢",
            "😀" * 100,
            "ﾃｽﾄ",
            "a" * 100_000,
            "../../etc/passwd",
            "<script>alert(1)</script>",
            "'; DROP TABLE paygate_idempotency; --",
            "\ud800",  # a lone surrogate: not encodable as UTF-8
        ]
    ),
)
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True),
    ODD_TEXT,
    st.binary(max_size=20),
)
GARBAGE = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True),
    ODD_TEXT,
    st.binary(max_size=20),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=3),
    st.just(object()),
)


def _surrogates(text: str) -> bool:
    return any("\ud800" <= ch <= "\udfff" for ch in text)


def _money(amount: int, currency: str) -> Any:
    try:
        return Money(amount=amount, currency=currency)
    except (ValueError, PaygateError):
        return None


MONEY = st.builds(
    _money,
    st.one_of(
        st.integers(min_value=-(10**15), max_value=10**15),
        st.sampled_from([0, -1, 1, 49, 10**15, 2**31, 2**63]),
    ),
    st.sampled_from(["JPY", "USD", "EUR", "XXX", "jpy"]),
).filter(lambda m: m is not None)


def _build(cls: Any, **kwargs: Any) -> Any:
    try:
        return cls(**kwargs)
    except (ValueError, TypeError, PaygateError):
        return None


METHODS = st.one_of(
    st.builds(
        lambda token, capture: _build(Card, token=token, capture=capture),
        ODD_TEXT,
        st.booleans(),
    ),
    st.builds(
        lambda store, name, phone, email, days: _build(
            Konbini,
            store=store,
            customer_name=name,
            phone=phone,
            email=email,
            expires_in=None if days is None else timedelta(days=days),
        ),
        st.one_of(ODD_TEXT, st.sampled_from(["lawson", "family_mart", "seven_eleven"])),
        ODD_TEXT,
        st.one_of(
            ODD_TEXT, st.sampled_from(["0364413400", "+81-3-6441-3400", "０３６４４１３４００"])
        ),
        st.one_of(st.none(), ODD_TEXT),
        st.one_of(st.none(), st.integers(min_value=-5, max_value=10_000)),
    ),
    st.builds(
        lambda seconds, url: _build(
            QRCode,
            expires_in=None if seconds is None else timedelta(seconds=seconds),
            return_url=url,
        ),
        st.one_of(st.none(), st.integers(min_value=-100, max_value=10**8)),
        st.one_of(st.none(), ODD_TEXT, st.just("https://shop.example.com/done")),
    ),
    st.builds(
        lambda customer, products: _build(Wallet, customer_id=customer, products=products),
        st.one_of(ODD_TEXT, st.uuids().map(str)),
        st.lists(
            st.builds(
                lambda name, price, qty: _build(Product, name=name, unit_price=price, quantity=qty),
                ODD_TEXT,
                st.integers(min_value=-10, max_value=10**9),
                st.integers(min_value=-2, max_value=10**6),
            ).filter(lambda p: p is not None),
            max_size=3,
        ).map(tuple),
    ),
    st.builds(
        lambda store, terminal, lines: _build(
            PosSale, store_id=store, terminal_id=terminal, lines=lines
        ),
        st.one_of(ODD_TEXT, st.just("1")),
        st.one_of(ODD_TEXT, st.just("1")),
        st.lists(
            st.builds(
                lambda name, price, qty: _build(PosLine, name=name, unit_price=price, quantity=qty),
                st.one_of(st.none(), ODD_TEXT),
                st.integers(min_value=-10, max_value=10**10),
                st.integers(min_value=-2, max_value=1000),
            ).filter(lambda p: p is not None),
            min_size=1,
            max_size=3,
        ).map(tuple),
    ),
).filter(lambda m: m is not None)

METADATA = st.one_of(
    st.none(),
    st.dictionaries(ODD_TEXT, ODD_TEXT, max_size=5),
    st.dictionaries(
        st.text(max_size=10), st.dictionaries(st.text(max_size=3), st.text()), max_size=2
    ),
    st.dictionaries(
        st.text(max_size=10), st.one_of(st.integers(), st.none(), st.lists(st.text())), max_size=3
    ),
    st.dictionaries(st.text(min_size=1, max_size=5), st.text(max_size=5), min_size=51, max_size=60),
    GARBAGE,
)


# -- fixtures -----------------------------------------------------------------------------


@pytest.fixture
def gw(sandbox: Any, paygate_accounts: dict[str, Any], tmp_path: Any) -> Iterator[Gateway]:
    # SQLite, so odd strings also reach a real database.
    gateway = Gateway.from_config(
        {"store": "memory://", "accounts": {p: paygate_accounts[p] for p in PROVIDERS}},
        store=f"sqlite:///{tmp_path / 'hostile.db'}",
        retry=RetryPolicy.no_wait(),
    )
    yield gateway
    gateway.close()


def _requests(sandbox: Any) -> int:
    return sum(sandbox.health()["requests"].values())


class Outcomes:
    """Every fuzzed call must end in a result or a typed paygate error; a refusal must
    come before any request."""

    def __init__(self, sandbox: Any, *, strict: bool = True) -> None:
        self.sandbox = sandbox
        self.strict = strict
        self.seen: Counter[str] = Counter()

    def check(self, call: Any) -> None:
        before = _requests(self.sandbox)
        refusal: PaygateError | None = None
        try:
            call()
        except (InvalidRequest, NotSupported, ConfigurationError, IdempotencyConflict) as exc:
            refusal = exc
        except PaygateError as exc:
            # Sent, and the provider refused it.
            if self.strict:
                pytest.fail(f"reached the provider and was refused there: {exc!r}")
            self.seen[f"provider: {exc.provider_code or type(exc).__name__}"] += 1
            return
        else:
            self.seen["accepted"] += 1
            return
        assert refusal is not None
        self.seen[type(refusal).__name__] += 1
        assert _requests(self.sandbox) == before, f"refused after sending: {refusal}"
        if isinstance(refusal, InvalidRequest):
            assert refusal.param, f"InvalidRequest without param: {refusal}"


# -- the public API -----------------------------------------------------------------------


@FUZZ
@given(
    account=st.sampled_from(PROVIDERS),
    amount=st.one_of(MONEY, GARBAGE),
    method=st.one_of(METHODS, GARBAGE),
    key=st.one_of(ODD_TEXT, GARBAGE),
    description=st.one_of(st.none(), ODD_TEXT, GARBAGE),
    metadata=METADATA,
)
@example(
    account="payjp",
    amount=Money.jpy(-1),
    method=Card(token="tok_success"),
    key="k",
    description=None,
    metadata=None,
)
@example(
    account="univapay",
    amount=Money.jpy(10**15),
    method=Konbini(store="lawson", customer_name="x", phone="0364413400"),
    key="k",
    description=None,
    metadata={"a": {"nested": "dict"}},
)
def test_fuzzed_charge_arguments(
    gw: Gateway,
    sandbox: Any,
    account: str,
    amount: Any,
    method: Any,
    key: Any,
    description: Any,
    metadata: Any,
) -> None:
    outcomes = Outcomes(sandbox)
    outcomes.check(
        lambda: gw.charge(
            account,
            amount=amount,
            method=method,
            idempotency_key=key,
            description=description,
            metadata=metadata,
        )
    )


@FUZZ
@given(
    method=METHODS,
    amount=st.integers(min_value=1, max_value=30_000),
    key=st.text(
        alphabet=st.characters(codec="utf-8", exclude_categories=("Cc", "Cs")),
        min_size=1,
        max_size=60,
    ),
    description=st.one_of(st.none(), st.text(max_size=255)),
)
def test_fuzzed_payment_methods_per_provider(
    gw: Gateway, sandbox: Any, method: Any, amount: int, key: str, description: str | None
) -> None:
    """Plausible amounts and keys with fuzzed methods, on the provider of the method.

    Tokens and customer ids are opaque to paygate, so the provider may refuse them; what
    paygate refuses must be refused before the request.
    """
    account = {
        "card": "payjp",
        "konbini": "univapay",
        "qr": "elepay",
        "wallet": "pokepay",
        "pos": "smaregi",
    }[method.type]
    outcomes = Outcomes(sandbox, strict=False)
    outcomes.check(
        lambda: gw.charge(
            account,
            amount=Money.jpy(amount),
            method=method,
            idempotency_key=f"{key}-{next(_KEYS)}",
            description=description,
        )
    )
    PROVIDER_REFUSALS.update(k for k in outcomes.seen if k.startswith("provider:"))


@pytest.fixture
def paid(gw: Gateway) -> Any:
    return gw.charge(
        "payjp", amount=Money.jpy(1000), method=Card(token="tok_success"), idempotency_key="paid"
    )


@FUZZ
@given(
    charge_id=SCALARS.filter(lambda v: not (isinstance(v, str) and _surrogates(v))),
    amount=st.one_of(st.none(), MONEY, GARBAGE),
    key=st.one_of(ODD_TEXT, GARBAGE),
    reason=st.one_of(st.none(), ODD_TEXT, GARBAGE),
)
def test_fuzzed_refund_cancel_capture_status_arguments(
    gw: Gateway, sandbox: Any, charge_id: Any, amount: Any, key: Any, reason: Any
) -> None:
    outcomes = Outcomes(sandbox)
    outcomes.check(
        lambda: gw.refund("payjp", charge_id, amount=amount, idempotency_key=key, reason=reason)
    )
    outcomes.check(lambda: gw.cancel("payjp", charge_id, idempotency_key=key))
    outcomes.check(lambda: gw.capture("payjp", charge_id, amount=amount, idempotency_key=key))
    outcomes.check(lambda: gw.status("payjp", charge_id))
    assert "accepted" not in outcomes.seen


@FUZZ
@given(
    amount=st.one_of(MONEY, GARBAGE).filter(
        lambda a: (
            a is not None
            and not (isinstance(a, Money) and a.currency == "JPY" and 1 <= a.amount <= 1000)
        )
    ),
    reason=st.one_of(st.none(), ODD_TEXT, GARBAGE),
)
def test_fuzzed_refund_of_a_real_charge(
    gw: Gateway, sandbox: Any, paid: Any, amount: Any, reason: Any
) -> None:
    outcomes = Outcomes(sandbox)
    outcomes.check(
        lambda: gw.refund("payjp", paid.id, amount=amount, idempotency_key="r", reason=reason)
    )
    assert "accepted" not in outcomes.seen


@FUZZ
@given(account=SCALARS.filter(lambda a: a not in PROVIDERS))
def test_fuzzed_account_names(gw: Gateway, sandbox: Any, account: Any) -> None:
    before = _requests(sandbox)
    with pytest.raises(ConfigurationError):
        gw.charge(
            account, amount=Money.jpy(100), method=Card(token="tok_success"), idempotency_key="a"
        )
    with pytest.raises(ConfigurationError):
        gw.status(account, "ch_x")
    assert _requests(sandbox) == before


# -- webhooks -----------------------------------------------------------------------------


class Receiver:
    def __init__(self) -> None:
        self.deliveries: list[tuple[str, dict[str, str], bytes]] = []

    async def receive(self, request: Request) -> Response:
        self.deliveries.append(
            (request.path_params["account"], dict(request.headers), await request.body())
        )
        return Response(status_code=200)


@pytest.fixture(scope="module")
def receiving() -> Iterator[tuple[Receiver, str]]:
    """A receiver served for the whole module (starting and stopping a server is slow)."""
    receiver = Receiver()
    app = Starlette(routes=[Route("/{account}", receiver.receive, methods=["POST"])])
    with serve_app(app) as url:
        yield receiver, url


@pytest.fixture
def deliveries(
    sandbox: Any, gw: Gateway, receiving: tuple[Receiver, str]
) -> dict[str, tuple[dict[str, str], bytes]]:
    """One genuine delivery per provider with webhooks, caught before paygate sees it."""
    receiver, url = receiving
    receiver.deliveries.clear()
    for provider in ("payjp", "univapay", "elepay"):
        sandbox.set_webhook_url(f"{url}/{provider}", provider)
    try:
        gw.charge(
            "payjp",
            amount=Money.jpy(1000),
            method=Card(token="tok_success"),
            idempotency_key="w1",
        )
        slip = gw.charge(
            "univapay",
            amount=Money.jpy(1000),
            method=Konbini(store="lawson", customer_name="受信 太郎", phone="0364413400"),
            idempotency_key="w2",
        )
        sandbox.control("univapay", "pay_konbini", charge_id=slip.provider_ref)
        code = gw.charge("elepay", amount=Money.jpy(1000), method=QRCode(), idempotency_key="w3")
        sandbox.control("elepay", "pay_code", code_id=code.provider_ref.split(":", 1)[1])
        sandbox.flush_webhooks()
    finally:
        sandbox.set_webhook_url(None)
    found: dict[str, tuple[dict[str, str], bytes]] = {}
    for account, headers, body in receiver.deliveries:
        found.setdefault(account, (headers, body))
    assert set(found) == {"payjp", "univapay", "elepay"}
    return found


FORGERIES = {
    "payjp": [{}, {"x-payjp-webhook-token": "whook_forged"}, {"x-payjp-webhook-token": ""}],
    "univapay": [{}, {"authorization": "forged"}, {"authorization": "Bearer forged"}],
}


def _handled(gw: Gateway) -> Counter[str]:
    seen: Counter[str] = Counter()
    gw.webhooks.on("*")(lambda event: seen.update([event.provider_event_id or event.id]))
    return seen


def test_forged_webhooks_are_refused_and_nothing_runs(
    gw: Gateway, deliveries: dict[str, tuple[dict[str, str], bytes]]
) -> None:
    handled = _handled(gw)
    for account, forged_headers in FORGERIES.items():
        headers, body = deliveries[account]
        base = {
            k: v for k, v in headers.items() if k not in ("authorization", "x-payjp-webhook-token")
        }
        for forged in forged_headers:
            with pytest.raises(WebhookVerificationError):
                gw.webhooks.handle(account, {**base, **forged}, body)
    assert not handled
    # The genuine ones pass afterwards: nothing was claimed by the forgeries.
    for account in FORGERIES:
        headers, body = deliveries[account]
        assert gw.webhooks.handle(account, headers, body)
    assert handled
    assert all(n == 1 for n in handled.values())


def test_forged_elepay_body_changes_nothing_after_refetch(
    gw: Gateway, deliveries: dict[str, tuple[dict[str, str], bytes]]
) -> None:
    """elepay signs nothing: an event is built only from the charge paygate re-fetched,
    so a forged body costs one extra fetch at most and never runs a handler again."""
    handled = _handled(gw)
    headers, body = deliveries["elepay"]
    (real,) = gw.webhooks.handle("elepay", headers, body)
    event = json.loads(body)
    event["data"]["object"]["amount"] = 1  # the API says 1000
    event["id"] = "evt_forged"
    (forged,) = gw.webhooks.handle("elepay", headers, json.dumps(event).encode())
    assert forged.id == real.id
    assert forged.duplicate
    assert forged.amount == real.amount
    assert sum(handled.values()) == 1
    event["data"]["object"]["id"] = "ch_does_not_exist"
    with pytest.raises(PaygateError):
        gw.webhooks.handle("elepay", headers, json.dumps(event).encode())
    assert sum(handled.values()) == 1


def test_replayed_webhooks_run_handlers_once(
    gw: Gateway, deliveries: dict[str, tuple[dict[str, str], bytes]]
) -> None:
    handled = _handled(gw)
    for account, (headers, body) in deliveries.items():
        first = gw.webhooks.handle(account, headers, body)
        for _ in range(3):
            again = gw.webhooks.handle(account, headers, body)
            assert [e.id for e in again] == [e.id for e in first]
            assert all(e.duplicate for e in again)
    assert handled
    assert all(n == 1 for n in handled.values()), handled


def test_webhooks_for_providers_without_them(gw: Gateway) -> None:
    for account in ("pokepay", "smaregi"):
        with pytest.raises(NotSupported):
            gw.webhooks.handle(account, {}, b"{}")


def _retype(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _retype(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_retype(v) for v in value]
    if isinstance(value, str):
        return 7
    if isinstance(value, bool | int | float):
        return "seven"
    return {}


MALFORMED = [
    b"",
    b"{",
    b"[]",
    b"null",
    b'"text"',
    b"\xff\xfe\x00garbage",
    b'{"type": 5, "data": "x"}',
    b'{"data": {"object": null}}',
    b'{"id": "evnt_1", "type": "charge.succeeded", "data": []}',
    b'{"event": "charge_finished", "data": {"id": 12}}',
    b'{"a": 1' + b"0" * 5000 + b"}",
]


def _malformed_cases(
    deliveries: dict[str, tuple[dict[str, str], bytes]],
) -> Iterator[tuple[str, dict[str, str], bytes]]:
    for account, (headers, body) in deliveries.items():
        for bad in MALFORMED:
            yield account, headers, bad
        data = json.loads(body)
        yield account, headers, json.dumps(_retype(data)).encode()
        yield account, headers, json.dumps({k: None for k in data}).encode()


def test_malformed_webhook_bodies_with_valid_tokens(
    gw: Gateway, deliveries: dict[str, tuple[dict[str, str], bytes]]
) -> None:
    handled = _handled(gw)
    failures = []
    for account, headers, body in _malformed_cases(deliveries):
        try:
            gw.webhooks.handle(account, headers, body)
        except PaygateError:
            continue
        except Exception as exc:
            failures.append(f"{account} {body[:60]!r}: {type(exc).__name__}: {exc}")
    assert not failures, "\n".join(failures)
    del handled


def test_deeply_nested_webhook_body(
    gw: Gateway, deliveries: dict[str, tuple[dict[str, str], bytes]]
) -> None:
    for account, (headers, _) in deliveries.items():
        with pytest.raises(PaygateError):
            gw.webhooks.handle(account, headers, b"[" * 100_000 + b"]" * 100_000)


def test_oversized_webhook_bodies(
    gw: Gateway, deliveries: dict[str, tuple[dict[str, str], bytes]], serve: Any
) -> None:
    headers, _ = deliveries["payjp"]
    big = b'{"padding": "' + b"x" * (gw.webhook_max_body + 10) + b'"}'
    with pytest.raises(InvalidRequest):
        gw.webhooks.handle("payjp", headers, big)
    with serve(gw.webhooks.asgi()) as url, httpx.Client(base_url=url, timeout=30) as client:
        _oversized_over_http(client, headers, big, gw.webhook_max_body)


def _oversized_over_http(
    client: httpx.Client, headers: dict[str, str], big: bytes, limit: int
) -> None:
    sent_headers = {k: v for k, v in headers.items() if k not in ("content-length", "host")}
    answer = client.post("/payjp", content=big, headers=sent_headers)
    assert answer.status_code == 400

    # Streamed without a Content-Length: refused once the limit is passed, and the
    # server keeps at most about the limit in memory while 16 MB stream in.
    def endless() -> Iterator[bytes]:
        chunk = b"x" * 65536
        for _ in range(256):
            yield chunk

    tracemalloc.start()
    try:
        answer = client.post("/payjp", content=endless(), headers=sent_headers)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert answer.status_code == 400
    assert peak < 6 * limit, f"peak {peak} bytes while refusing a streamed body"


def test_webhook_app_answers_hostile_deliveries_without_500(
    gw: Gateway, deliveries: dict[str, tuple[dict[str, str], bytes]], serve: Any
) -> None:
    with serve(gw.webhooks.asgi()) as url, httpx.Client(base_url=url, timeout=30) as client:
        statuses = _post_all(client, deliveries)
    assert statuses[500] == 0, statuses
    assert statuses[401] >= 1
    assert statuses[404] >= 1


def _post_all(
    client: httpx.Client, deliveries: dict[str, tuple[dict[str, str], bytes]]
) -> Counter[int]:
    statuses: Counter[int] = Counter()
    for account, headers, body in _malformed_cases(deliveries):
        sent = {k: v for k, v in headers.items() if k not in ("content-length", "host")}
        statuses[client.post(f"/{account}", content=body, headers=sent).status_code] += 1
    forged = deliveries["payjp"][1]
    statuses[
        client.post("/payjp", content=forged, headers={"x-payjp-webhook-token": "no"}).status_code
    ] += 1
    statuses[client.post("/nobody", content=b"{}").status_code] += 1
    return statuses


@FUZZ
@given(
    account=st.sampled_from(["payjp", "univapay", "elepay"]),
    body=st.one_of(
        st.binary(max_size=300),
        st.recursive(
            st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=20)),
            lambda inner: st.one_of(
                st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)
            ),
            max_leaves=20,
        ).map(lambda v: json.dumps(v).encode()),
    ),
)
def test_fuzzed_webhook_bodies(
    gw: Gateway, deliveries: dict[str, tuple[dict[str, str], bytes]], account: str, body: bytes
) -> None:
    headers, _ = deliveries[account]
    with contextlib.suppress(PaygateError):
        gw.webhooks.handle(account, headers, body)


@pytest.mark.parametrize("bad", [[], {}, ["ch_1"], "\ud800"])
def test_b11_unhashable_account_or_charge_id(gw: Gateway, bad: Any) -> None:
    with pytest.raises(PaygateError):
        gw.status("payjp", bad)
    with pytest.raises(PaygateError):
        gw.refund("payjp", bad, idempotency_key="k")
    if not isinstance(bad, str):
        with pytest.raises(PaygateError):
            gw.charge(bad, amount=Money.jpy(100), method=Card(token="t"), idempotency_key="k")


def test_b12_empty_card_token_refused_before_io(gw: Gateway, sandbox: Any) -> None:
    before = _requests(sandbox)
    with pytest.raises(InvalidRequest):
        gw.charge("payjp", amount=Money.jpy(100), method=Card(token=""), idempotency_key="k")
    assert _requests(sandbox) == before


def test_b13_bad_refund_amount_refused_before_io(gw: Gateway, sandbox: Any) -> None:
    charge = gw.charge(
        "payjp", amount=Money.jpy(1000), method=Card(token="tok_success"), idempotency_key="b13"
    )
    gw.refund("payjp", charge.id, idempotency_key="b13-all")
    before = _requests(sandbox)
    with pytest.raises(InvalidRequest):
        gw.refund("payjp", charge.id, amount=Money.jpy(-5), idempotency_key="b13-neg")
    assert _requests(sandbox) == before
