"""Flow unit tests: scripted replies through `drive()`, no emulator, no sockets."""

from __future__ import annotations

import base64
import json
import urllib.parse
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from paygate import (
    AuthenticationError,
    ChargeStatus,
    InvalidRequest,
    MalformedResponse,
    Money,
    NotFound,
    NotSupported,
    OutcomeUnknown,
    PermissionDenied,
    PosLine,
    PosSale,
    ProviderRejected,
    ProviderUnavailable,
    RateLimited,
    RefundStatus,
)
from paygate.adapter import (
    CacheGet,
    CachePut,
    Call,
    CancelRequest,
    ChargeRef,
    ChargeRequest,
    OpContext,
    Operation,
    RefundRequest,
    Reply,
    Retry,
    TransportFailure,
    drive,
)
from paygate.testing import ScriptedResponder
from paygate_smaregi import (
    ALREADY_REGISTERED,
    AccessToken,
    SmaregiProvider,
    SmaregiSettings,
    TokenKeeper,
    terminal_tran_id,
    transaction_uuid,
)

NOW = datetime(2025, 3, 1, 1, 0, tzinfo=UTC)
POS = "https://api.smaregi.dev/c1/pos"
PM = {
    "appPaymentMethodId": "1",
    "paymentMethodId": "101",
    "paymentMethodName": "demo app",
}


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now


def j(status: int, body: Any, **headers: str) -> Reply:
    return Reply(
        status,
        {k.lower().replace("_", "-"): v for k, v in headers.items()},
        json.dumps(body, ensure_ascii=False).encode(),
        provider="smaregi",
    )


def problem(status: int, detail: str, title: str = "Bad Request") -> Reply:
    return j(status, {"type": "about:blank", "title": title, "detail": detail, "status": status})


def token_reply(value: str = "tok-1", expires_in: int = 3600) -> Reply:
    return j(
        200,
        {
            "access_token": value,
            "token_type": "Bearer",
            "expires_in": expires_in,
            "scope": "pos.transactions:read pos.transactions:write",
        },
    )


Answer = Reply | Callable[[Call], Reply]


class Script(ScriptedResponder):
    """Answers calls in order, checking each call's step."""

    def __init__(self, *answers: tuple[str, Answer]) -> None:
        super().__init__(*answers, provider="smaregi")

    def next_answer(self, request: Any, where: str) -> Answer:
        if not self.answers:
            raise self.unscripted(f"{where} ({request!r})")
        step, answer = self.answers.pop(0)
        assert request.step == step, (request.step, step)
        return answer

    def done(self) -> None:
        assert not self.answers, f"unused answers: {[s for s, _ in self.answers]}"

    def body(self, index: int) -> Any:
        content = self.calls[index].content
        assert content is not None
        return json.loads(content)


def make_settings(**kw: Any) -> SmaregiSettings:
    data: dict[str, Any] = {
        "client_id": "cid",
        "client_secret": "s3cr3t-value",
        "contract_id": "c1",
        "base_url": "https://api.smaregi.dev",
        "id_base_url": "https://id.smaregi.dev",
    }
    data.update(kw)
    return SmaregiSettings(**data)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def provider() -> SmaregiProvider:
    return SmaregiProvider(make_settings(), account="pos")


@pytest.fixture
def ctx(clock: Clock) -> OpContext:
    return OpContext(
        account="pos", provider="smaregi", idempotency_key="order-1", charge_id="ch_1", now=clock
    )


def sale_request(**kw: Any) -> ChargeRequest:
    method = PosSale(
        store_id="1",
        terminal_id="1",
        lines=(PosLine(product_id="8000001", unit_price=500, quantity=2),),
        **kw,
    )
    return ChargeRequest(amount=Money.jpy(1000), method=method)


def head(**kw: Any) -> dict[str, Any]:
    data = {
        "transactionHeadId": "1001",
        "transactionHeadDivision": "1",
        "cancelDivision": "0",
        "subtotal": "1000",
        "total": "1000",
        "storeId": "1",
        "terminalId": "1",
        "terminalTranId": "1234567890",
        "terminalTranDateTime": "2025-03-01T10:00:00+09:00",
        "transactionDateTime": "2025-03-01T10:00:01+09:00",
    }
    data.update(kw)
    return data


FULL = Money.jpy(1000)


def ref(amount: Money | None = FULL) -> ChargeRef:
    return ChargeRef(charge_id="ch_1", provider_ref="1001", method="pos", amount=amount)


# ---------------------------------------------------------------- app payment method


def test_ensure_creates_when_absent(provider: SmaregiProvider, ctx: OpContext) -> None:
    script = Script(
        ("token", token_reply()),
        ("app_payment_methods.get", j(200, [])),
        ("app_payment_methods.create", j(200, PM)),
    )
    cache: dict[str, Any] = {}
    pm = drive(provider.ensure_payment_method(ctx), script, cache)
    script.done()
    assert pm.payment_method_id == "101"
    assert pm.name == "demo app"
    assert cache[provider.payment_method_cache_key]["paymentMethodId"] == "101"
    get, post = script.calls[1], script.calls[2]
    assert get.method == "GET"
    # The path a developer registered at (forum 539): singular.
    assert get.url == f"{POS}/app_payment_method"
    assert get.headers["Authorization"] == "Bearer tok-1"
    assert post.method == "POST"
    assert post.retry is Retry.KEYED
    # The app names its method (forum 539, staff); no invented fields.
    assert script.body(2) == {"paymentMethodName": "paygate"}


def test_ensure_sends_configured_name_and_path(ctx: OpContext) -> None:
    provider = SmaregiProvider(
        make_settings(
            payment_method_name="デモ決済",
            app_payment_code="demo",
            app_payment_method_path="app_payment_methods",
        ),
        account="pos",
    )
    script = Script(
        ("token", token_reply()),
        ("app_payment_methods.get", j(200, [])),
        ("app_payment_methods.create", j(200, PM)),
    )
    drive(provider.ensure_payment_method(ctx), script)
    assert script.calls[1].url == f"{POS}/app_payment_methods"
    assert script.body(2) == {"paymentMethodName": "デモ決済", "appPaymentCode": "demo"}


def test_ensure_uses_existing_without_post(provider: SmaregiProvider, ctx: OpContext) -> None:
    script = Script(("token", token_reply()), ("app_payment_methods.get", j(200, [PM])))
    pm = drive(provider.ensure_payment_method(ctx), script)
    script.done()
    assert pm.payment_method_id == "101"
    assert all(c.method == "GET" for c in script.calls[1:])


def test_ensure_cached_makes_no_call(provider: SmaregiProvider, ctx: OpContext) -> None:
    cache = {provider.payment_method_cache_key: {"paymentMethodId": "101"}}
    script = Script()
    pm = drive(provider.ensure_payment_method(ctx), script, cache)
    assert pm.payment_method_id == "101"
    assert script.calls == []


def test_ensure_403_already_registered_reads_again(
    provider: SmaregiProvider, ctx: OpContext
) -> None:
    script = Script(
        ("token", token_reply()),
        ("app_payment_methods.get", j(200, [])),
        ("app_payment_methods.create", problem(403, ALREADY_REGISTERED, "Forbidden")),
        ("app_payment_methods.get", j(200, [PM])),
    )
    cache: dict[str, Any] = {}
    pm = drive(provider.ensure_payment_method(ctx), script, cache)
    script.done()
    assert pm.payment_method_id == "101"
    assert cache[provider.payment_method_cache_key]["paymentMethodId"] == "101"


def test_ensure_other_403_is_permission_denied(provider: SmaregiProvider, ctx: OpContext) -> None:
    script = Script(
        ("token", token_reply()),
        ("app_payment_methods.get", j(200, [])),
        ("app_payment_methods.create", problem(403, "スコープが不足しています", "Forbidden")),
    )
    with pytest.raises(PermissionDenied) as info:
        drive(provider.ensure_payment_method(ctx), script)
    assert info.value.provider_message == "スコープが不足しています"
    assert info.value.provider_code == "Forbidden"
    assert info.value.http_status == 403


def test_ensure_403_but_nothing_listed(provider: SmaregiProvider, ctx: OpContext) -> None:
    script = Script(
        ("token", token_reply()),
        ("app_payment_methods.get", j(200, [])),
        ("app_payment_methods.create", problem(403, ALREADY_REGISTERED, "Forbidden")),
        ("app_payment_methods.get", j(200, [])),
    )
    with pytest.raises(ProviderRejected) as info:
        drive(provider.ensure_payment_method(ctx), script)
    assert info.value.provider_message == ALREADY_REGISTERED


@pytest.mark.parametrize(
    "body",
    [PM, {"appPaymentMethods": [PM]}, [{"paymentMethodId": 101, "appPaymentCode": "paygate"}]],
)
def test_ensure_reads_tolerant_shapes(provider: SmaregiProvider, ctx: OpContext, body: Any) -> None:
    script = Script(("token", token_reply()), ("app_payment_methods.get", j(200, body)))
    assert drive(provider.ensure_payment_method(ctx), script).payment_method_id == "101"


def test_ensure_prefers_own_code_then_own_name(ctx: OpContext) -> None:
    other = {**PM, "paymentMethodId": "55", "paymentMethodName": "other"}
    ours = {**PM, "appPaymentCode": "demo"}
    by_name = SmaregiProvider(make_settings(payment_method_name="demo app"), account="pos")
    script = Script(("token", token_reply()), ("app_payment_methods.get", j(200, [other, PM])))
    assert drive(by_name.ensure_payment_method(ctx), script).payment_method_id == "101"
    by_code = SmaregiProvider(make_settings(app_payment_code="demo"), account="pos")
    script = Script(("token", token_reply()), ("app_payment_methods.get", j(200, [other, ours])))
    assert drive(by_code.ensure_payment_method(ctx), script).payment_method_id == "101"


def test_ensure_404_is_a_wrong_path_not_absent(provider: SmaregiProvider, ctx: OpContext) -> None:
    """A 404 on the GET names the path; it never leads to a POST (audit finding 1)."""
    script = Script(
        ("token", token_reply()),
        ("app_payment_methods.get", problem(404, "not found", "NotFound")),
    )
    with pytest.raises(NotFound) as info:
        drive(provider.ensure_payment_method(ctx), script)
    script.done()
    assert "/pos/app_payment_method" in str(info.value)
    assert "app_payment_method_path" in str(info.value)


def test_ensure_created_without_body_reads_back(provider: SmaregiProvider, ctx: OpContext) -> None:
    script = Script(
        ("token", token_reply()),
        ("app_payment_methods.get", j(200, [])),
        ("app_payment_methods.create", Reply(201, {}, b"")),
        ("app_payment_methods.get", j(200, [PM])),
    )
    assert drive(provider.ensure_payment_method(ctx), script).payment_method_id == "101"
    script.done()


# ------------------------------------------------------------------------------ tokens


def test_token_request_shape(provider: SmaregiProvider, ctx: OpContext) -> None:
    script = Script(("token", token_reply()), ("app_payment_methods.get", j(200, [PM])))
    drive(provider.ensure_payment_method(ctx), script)
    call = script.calls[0]
    assert call.url == "https://id.smaregi.dev/app/c1/token"
    assert call.method == "POST"
    assert (
        call.headers["Authorization"] == "Basic " + base64.b64encode(b"cid:s3cr3t-value").decode()
    )
    assert call.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert call.content is not None
    form = urllib.parse.parse_qs(call.content.decode())
    assert form == {
        "grant_type": ["client_credentials"],
        "scope": ["pos.transactions:read pos.transactions:write"],
    }
    assert "s3cr3t" not in repr(call)


def test_token_cached_in_store(provider: SmaregiProvider, ctx: OpContext) -> None:
    cache = {
        provider.tokens.cache_key: AccessToken("tok-store", NOW + timedelta(hours=1)).to_cache()
    }
    script = Script(("app_payment_methods.get", j(200, [PM])))
    drive(provider.ensure_payment_method(ctx), script, cache)
    script.done()
    assert script.calls[0].headers["Authorization"] == "Bearer tok-store"


def test_token_written_to_store_and_kept_in_memory(
    provider: SmaregiProvider, ctx: OpContext
) -> None:
    cache: dict[str, Any] = {}
    drive(
        provider.ensure_payment_method(ctx),
        Script(("token", token_reply()), ("app_payment_methods.get", j(200, [PM]))),
        cache,
    )
    stored = cache[provider.tokens.cache_key]
    assert stored["access_token"] == "tok-1"
    assert stored["expires_at"] == (NOW + timedelta(hours=1)).isoformat()
    # Another store (a fresh cache): the in-memory copy still saves the token request.
    script = Script(("app_payment_methods.get", j(200, [PM])))
    drive(provider.ensure_payment_method(ctx), script, {})
    script.done()


def test_token_refreshed_shortly_before_expiry(
    provider: SmaregiProvider, ctx: OpContext, clock: Clock
) -> None:
    cache: dict[str, Any] = {}
    drive(
        provider.ensure_payment_method(ctx),
        Script(("token", token_reply("tok-1")), ("app_payment_methods.get", j(200, [PM]))),
        cache,
    )
    cache.pop(provider.payment_method_cache_key)
    clock.now = NOW + timedelta(minutes=57)  # 3 minutes left: still fresh
    script = Script(("app_payment_methods.get", j(200, [PM])))
    drive(provider.ensure_payment_method(ctx), script, dict(cache))
    script.done()
    cache.pop(provider.payment_method_cache_key, None)
    clock.now = NOW + timedelta(minutes=59)  # inside the refresh window
    script = Script(("token", token_reply("tok-2")), ("app_payment_methods.get", j(200, [PM])))
    drive(provider.ensure_payment_method(ctx), script, cache)
    script.done()
    assert script.calls[1].headers["Authorization"] == "Bearer tok-2"
    assert cache[provider.tokens.cache_key]["access_token"] == "tok-2"


def test_401_refreshes_once_and_retries(provider: SmaregiProvider, ctx: OpContext) -> None:
    script = Script(
        ("token", token_reply("tok-1")),
        ("app_payment_methods.get", problem(401, "アクセストークンが不正です。", "Unauthorized")),
        ("token", token_reply("tok-2")),
        ("app_payment_methods.get", j(200, [PM])),
    )
    cache: dict[str, Any] = {}
    drive(provider.ensure_payment_method(ctx), script, cache)
    script.done()
    assert script.calls[3].headers["Authorization"] == "Bearer tok-2"
    assert cache[provider.tokens.cache_key]["access_token"] == "tok-2"


def test_second_401_is_authentication_error(provider: SmaregiProvider, ctx: OpContext) -> None:
    refused = problem(401, "アクセストークンが不正です。", "Unauthorized")
    script = Script(
        ("token", token_reply("tok-1")),
        ("app_payment_methods.get", refused),
        ("token", token_reply("tok-2")),
        ("app_payment_methods.get", refused),
    )
    with pytest.raises(AuthenticationError) as info:
        drive(provider.ensure_payment_method(ctx), script)
    assert info.value.provider_message == "アクセストークンが不正です。"
    script.done()


def test_token_refused_keeps_oauth_error(provider: SmaregiProvider, ctx: OpContext) -> None:
    body = {"error": "invalid_client", "error_description": "クライアント認証に失敗しました。"}
    script = Script(("token", j(401, body)))
    with pytest.raises(AuthenticationError) as info:
        drive(provider.ensure_payment_method(ctx), script)
    assert info.value.provider_code == "invalid_client"
    assert info.value.provider_message == "クライアント認証に失敗しました。"


def test_token_without_access_token_is_malformed(provider: SmaregiProvider, ctx: OpContext) -> None:
    with pytest.raises(MalformedResponse):
        drive(provider.ensure_payment_method(ctx), Script(("token", j(200, {"expires_in": 5}))))


def test_401_picks_up_token_another_process_refreshed(ctx: OpContext) -> None:
    keeper = TokenKeeper(make_settings())
    keeper._adopt(AccessToken("tok-old", NOW + timedelta(hours=1)))
    cache = {keeper.cache_key: AccessToken("tok-new", NOW + timedelta(hours=1)).to_cache()}
    script = Script()
    assert drive(keeper.token(ctx, rejected="tok-old"), script, cache) == "tok-new"
    assert script.calls == []


def test_concurrent_401s_refresh_once(ctx: OpContext) -> None:
    """Requests that failed with the same token after a refresh reuse the new one."""
    keeper = TokenKeeper(make_settings())
    keeper._adopt(AccessToken("tok-old", NOW + timedelta(hours=1)))
    first = keeper.token(ctx, rejected="tok-old")
    assert isinstance(next(first), CacheGet)
    effect = first.send(None)
    assert isinstance(effect, Call)
    assert effect.step == "token"
    # Rule 4: while the first is fetching there is no usable token for a request that
    # was refused too, and nothing may block, so it fetches as well.
    overlapping = keeper.token(ctx, rejected="tok-old")
    assert isinstance(next(overlapping), CacheGet)
    assert isinstance(first.send(token_reply("tok-new")), CachePut)
    with pytest.raises(StopIteration) as done:
        first.send(None)
    assert done.value.value == "tok-new"
    # Everything refused with the old token from now on reuses the new one: no fetch.
    for _ in range(3):
        later = keeper.token(ctx, rejected="tok-old")
        with pytest.raises(StopIteration) as reused:
            next(later)
        assert reused.value.value == "tok-new"
    overlapping.close()


def test_proactive_refresh_is_single_flight(ctx: OpContext, clock: Clock) -> None:
    keeper = TokenKeeper(make_settings())
    keeper._adopt(AccessToken("tok-old", NOW + timedelta(minutes=1)))  # usable, not fresh
    refresher = keeper.token(ctx)
    assert isinstance(next(refresher), CacheGet)  # claimed the refresh
    for _ in range(5):
        other = keeper.token(ctx)
        with pytest.raises(StopIteration) as got:
            next(other)
        assert got.value.value == "tok-old"  # no second fetch, no waiting
    refresher.send(None)
    refresher.send(token_reply("tok-new"))
    with pytest.raises(StopIteration):
        refresher.send(None)
    with pytest.raises(StopIteration) as after:
        next(keeper.token(ctx))
    assert after.value.value == "tok-new"


def test_claim_released_when_flow_abandoned(ctx: OpContext) -> None:
    keeper = TokenKeeper(make_settings())
    keeper._adopt(AccessToken("tok-old", NOW + timedelta(minutes=1)))
    refresher = keeper.token(ctx)
    next(refresher)
    refresher.close()
    again = keeper.token(ctx)
    assert isinstance(next(again), CacheGet)  # could claim again


def test_failed_proactive_refresh_falls_back_to_old_token(ctx: OpContext) -> None:
    keeper = TokenKeeper(make_settings())
    keeper._adopt(AccessToken("tok-old", NOW + timedelta(minutes=1)))
    script = Script(("token", problem(503, "maintenance", "Service Unavailable")))
    assert drive(keeper.token(ctx), script) == "tok-old"


def test_cold_start_failure_raises(ctx: OpContext) -> None:
    keeper = TokenKeeper(make_settings())
    script = Script(("token", problem(503, "maintenance", "Service Unavailable")))
    with pytest.raises(ProviderUnavailable):
        drive(keeper.token(ctx), script)


def test_access_token_repr_hides_value() -> None:
    assert "tok-secret" not in repr(AccessToken("tok-secret", NOW))


# ------------------------------------------------------------------------------ charge


def _charge_script(create: Answer) -> Script:
    return Script(
        ("token", token_reply()),
        ("app_payment_methods.get", j(200, [PM])),
        ("transactions.create", create),
    )


def _strings_only(value: Any) -> bool:
    if isinstance(value, dict):
        return all(_strings_only(v) for v in value.values())
    if isinstance(value, list):
        return all(_strings_only(v) for v in value)
    return isinstance(value, str)


def test_charge_wire_body(provider: SmaregiProvider, ctx: OpContext) -> None:
    script = _charge_script(
        lambda call: j(200, {**json.loads(call.content or b""), "transactionHeadId": "1001"})
    )
    req = sale_request(slip_number="S-0001", card_company="VISA")
    charge = drive(provider.charge(req, ctx), script)
    body = script.body(2)
    call = script.calls[2]
    assert call.url == f"{POS}/transactions"
    assert call.retry is Retry.UNSAFE
    assert _strings_only(body)
    tran_id = terminal_tran_id(ctx)
    assert body["terminalTranId"] == tran_id
    assert len(tran_id) == 9
    assert tran_id[0] != "0"
    assert body["terminalTranDateTime"] == "2025-03-01T10:00:00+09:00"
    assert body["transactionHeadDivision"] == "1"
    assert body["subtotal"] == body["total"] == body["deposit"] == "1000"
    # The slip fields on the app payment's item (forum 539, staff), not on the head.
    assert body["depositOthers"] == [
        {
            "paymentMethodId": "101",
            "depositOthers": "1000",
            "slipNumber": "S-0001",
            "cardCompany": "VISA",
        }
    ]
    assert "slipNumber" not in body
    assert "cardCompany" not in body
    # A virtual terminal: closed on the sale's JST date (official sumDivision text).
    assert (body["sumDivision"], body["sumDate"]) == ("2", "2025-03-01")
    assert body["transactionUuid"] == transaction_uuid(ctx)
    assert len(body["transactionUuid"]) == 13
    assert body["details"] == [
        {
            "transactionDetailId": "1",
            "transactionDetailDivision": "1",
            "salesPrice": "500",
            "unitDiscountPrice": "0",
            "quantity": "2",
            "productId": "8000001",
        }
    ]
    assert "memo" not in body
    assert charge.id == "ch_1"
    assert charge.provider_ref == "1001"
    assert charge.status is ChargeStatus.SUCCEEDED
    assert charge.amount == Money.jpy(1000)
    assert charge.amount_refunded == Money.jpy(0)
    assert charge.created_at == NOW


def test_charge_memo_from_description(provider: SmaregiProvider, ctx: OpContext) -> None:
    script = _charge_script(j(200, head()))
    req = ChargeRequest(
        amount=Money.jpy(1000), method=sale_request().method, description="注文 1042"
    )
    drive(provider.charge(req, ctx), script)
    assert script.body(2)["memo"] == "注文 1042"


def test_charge_records_intent_before_sending(provider: SmaregiProvider, ctx: OpContext) -> None:
    cache: dict[str, Any] = {}

    def create(call: Call) -> Reply:
        intents = [v for k, v in cache.items() if k.startswith("smaregi:sale:")]
        assert intents == [
            {
                "terminalTranId": terminal_tran_id(ctx),
                "terminalTranDateTime": "2025-03-01T10:00:00+09:00",
            }
        ]
        return j(200, head())

    drive(provider.charge(sale_request(), ctx), _charge_script(create), cache)


def test_resend_reuses_terminal_time(
    provider: SmaregiProvider, ctx: OpContext, clock: Clock
) -> None:
    cache: dict[str, Any] = {}
    first = _charge_script(j(500, {}))
    with pytest.raises(ProviderUnavailable):
        drive(provider.charge(sale_request(), ctx), first, cache)
    clock.now = NOW + timedelta(minutes=3)
    second = Script(("transactions.create", j(200, head())))
    drive(provider.charge(sale_request(), ctx), second, cache)
    assert second.body(0)["terminalTranDateTime"] == first.body(2)["terminalTranDateTime"]
    assert second.body(0)["terminalTranId"] == first.body(2)["terminalTranId"]


def test_under_the_gateway_the_terminal_time_is_when_the_key_began(
    provider: SmaregiProvider, clock: Clock
) -> None:
    """Every attempt under a key shares ``started_at``: a re-send minutes later sends the
    same terminal time, and nothing is written to the cache for it."""
    began = replace_ctx(started_at=NOW - timedelta(seconds=5), now=clock)
    cache: dict[str, Any] = {}
    first = _charge_script(j(500, {}))
    with pytest.raises(ProviderUnavailable):
        drive(provider.charge(sale_request(), began), first, cache)
    clock.now = NOW + timedelta(minutes=3)
    second = Script(("transactions.create", j(200, head())))
    drive(provider.charge(sale_request(), began), second, cache)
    sent = {first.body(2)["terminalTranDateTime"], second.body(0)["terminalTranDateTime"]}
    assert sent == {"2025-03-01T09:59:55+09:00"}
    assert not [k for k in cache if k.startswith("smaregi:sale:")]


def test_lookup_under_the_gateway_searches_around_the_key_begin(
    provider: SmaregiProvider,
) -> None:
    recovering = replace_ctx(started_at=NOW - timedelta(minutes=2), recovering=True)
    script = Script(("token", token_reply()), ("transactions.list", j(200, [])))
    assert drive(provider.lookup_charge(sale_request(), recovering), script, {}) is None
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(script.calls[1].url).query)
    assert query["terminal_tran_date_time-from"] == ["2025-03-01T09:48:00+09:00"]
    assert query["terminal_tran_date_time-to"] == ["2025-03-01T10:08:00+09:00"]


def replace_ctx(**kw: Any) -> OpContext:
    fields: dict[str, Any] = {
        "account": "pos",
        "provider": "smaregi",
        "idempotency_key": "order-1",
        "charge_id": "ch_1",
        "now": lambda: NOW,
    }
    return OpContext(**{**fields, **kw})


def test_terminal_tran_id_is_deterministic_and_spread() -> None:
    def make(account: str, key: str) -> str:
        return terminal_tran_id(OpContext(account=account, provider="smaregi", idempotency_key=key))

    assert make("pos", "order-1") == make("pos", "order-1")
    assert make("pos", "order-1") != make("pos", "order-2")
    assert make("pos", "order-1") != make("pos2", "order-1")
    ids = {make("pos", f"order-{i}") for i in range(2000)}
    assert len(ids) == 2000
    assert all(len(i) == 9 and i.isdigit() and i[0] != "0" for i in ids)


def test_charge_response_with_id_only(provider: SmaregiProvider, ctx: OpContext) -> None:
    charge = drive(
        provider.charge(sale_request(), ctx), _charge_script(j(200, {"transactionHeadId": 77}))
    )
    assert charge.provider_ref == "77"
    assert charge.amount == Money.jpy(1000)
    assert charge.raw["terminalTranId"] == terminal_tran_id(ctx)


def test_charge_response_without_id(provider: SmaregiProvider, ctx: OpContext) -> None:
    with pytest.raises(MalformedResponse):
        drive(provider.charge(sale_request(), ctx), _charge_script(j(200, {"ok": True})))


def test_charge_refusal_keeps_problem(provider: SmaregiProvider, ctx: OpContext) -> None:
    script = _charge_script(problem(400, "subtotal: 小計が明細の合計と一致しません。"))
    with pytest.raises(ProviderRejected) as info:
        drive(provider.charge(sale_request(), ctx), script)
    err = info.value
    assert err.provider == "smaregi"
    assert err.http_status == 400
    assert err.provider_code == "Bad Request"
    assert err.provider_message == "subtotal: 小計が明細の合計と一致しません。"


def test_charge_with_stale_cached_method(provider: SmaregiProvider, ctx: OpContext) -> None:
    cache: dict[str, Any] = {provider.payment_method_cache_key: {"paymentMethodId": "99"}}
    script = Script(
        ("token", token_reply()),
        (
            "transactions.create",
            problem(400, "depositOthers[0].paymentMethodId: 支払方法が存在しません。"),
        ),
        ("app_payment_methods.get", j(200, [PM])),
        ("transactions.create", j(200, head())),
    )
    charge = drive(provider.charge(sale_request(), ctx), script, cache)
    script.done()
    assert script.body(1)["depositOthers"][0]["paymentMethodId"] == "99"
    assert script.body(3)["depositOthers"][0]["paymentMethodId"] == "101"
    assert cache[provider.payment_method_cache_key]["paymentMethodId"] == "101"
    assert charge.status is ChargeStatus.SUCCEEDED


def test_charge_transport_failure_propagates(provider: SmaregiProvider, ctx: OpContext) -> None:
    def lost(call: Call) -> Reply:
        raise TransportFailure("read timeout", sent=True, step=call.step)

    with pytest.raises(TransportFailure):
        drive(provider.charge(sale_request(), ctx), _charge_script(lost))


@pytest.mark.parametrize(
    ("reply", "error"),
    [
        (problem(429, "too many", "Too Many Requests"), RateLimited),
        (problem(404, "指定されたIDのリソースが見つかりません", "NotFound"), NotFound),
        (problem(503, "maintenance", "Service Unavailable"), ProviderUnavailable),
        (Reply(502, {}, b"<html>bad gateway</html>"), ProviderUnavailable),
        (problem(409, "conflict", "Conflict"), ProviderRejected),
    ],
)
def test_charge_error_mapping(
    provider: SmaregiProvider, ctx: OpContext, reply: Reply, error: type[Exception]
) -> None:
    with pytest.raises(error):
        drive(provider.charge(sale_request(), ctx), _charge_script(reply))


def test_rate_limited_keeps_retry_after(provider: SmaregiProvider, ctx: OpContext) -> None:
    reply = Reply(
        429,
        {"retry-after": "2"},
        json.dumps(
            {
                "type": "about:blank",
                "title": "Too Many Requests",
                "detail": "slow down",
                "status": 429,
            }
        ).encode(),
    )
    with pytest.raises(RateLimited) as info:
        drive(provider.charge(sale_request(), ctx), _charge_script(reply))
    assert info.value.retry_after == 2.0
    assert info.value.provider_message == "slow down"


def test_charge_needs_idempotency_key(provider: SmaregiProvider, clock: Clock) -> None:
    ctx = OpContext(account="pos", provider="smaregi", now=clock)
    with pytest.raises(InvalidRequest) as info:
        provider.charge(sale_request(), ctx)
    assert info.value.param == "idempotency_key"


# ------------------------------------------------------------------------------ lookup


def _intent(provider: SmaregiProvider, ctx: OpContext, when: str) -> dict[str, Any]:
    return {
        provider._intent_key(ctx): {
            "terminalTranId": terminal_tran_id(ctx),
            "terminalTranDateTime": when,
        }
    }


def test_lookup_finds_the_sale(provider: SmaregiProvider, ctx: OpContext) -> None:
    tran_id = terminal_tran_id(ctx)
    rows = [
        head(transactionHeadId="1000", terminalTranId="1111111111"),
        head(terminalTranId=tran_id),
    ]
    script = Script(("token", token_reply()), ("transactions.list", j(200, rows)))
    cache = _intent(provider, ctx, "2025-03-01T09:58:00+09:00")
    charge = drive(provider.lookup_charge(sale_request(), ctx), script, cache)
    assert charge is not None
    assert charge.provider_ref == "1001"
    assert charge.id == "ch_1"
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(script.calls[1].url).query)
    assert query["terminal_tran_date_time-from"] == ["2025-03-01T09:48:00+09:00"]
    assert query["terminal_tran_date_time-to"] == ["2025-03-01T10:08:00+09:00"]
    assert "%2B09%3A00" in script.calls[1].url  # '+' must be percent-encoded


def test_lookup_not_found(provider: SmaregiProvider, ctx: OpContext) -> None:
    rows = [head(terminalTranId="1111111111")]
    script = Script(("token", token_reply()), ("transactions.list", j(200, rows)))
    assert drive(provider.lookup_charge(sale_request(), ctx), script) is None


def test_lookup_ignores_other_terminal_or_total(provider: SmaregiProvider, ctx: OpContext) -> None:
    tran_id = terminal_tran_id(ctx)
    rows = [
        head(terminalTranId=tran_id, terminalId="2"),
        head(terminalTranId=tran_id, total="999"),
        head(terminalTranId=tran_id, storeId="2"),
    ]
    script = Script(("token", token_reply()), ("transactions.list", j(200, rows)))
    assert drive(provider.lookup_charge(sale_request(), ctx), script) is None


def test_lookup_duplicate_is_outcome_unknown(provider: SmaregiProvider, ctx: OpContext) -> None:
    tran_id = terminal_tran_id(ctx)
    rows = [head(terminalTranId=tran_id), head(transactionHeadId="1002", terminalTranId=tran_id)]
    script = Script(("token", token_reply()), ("transactions.list", j(200, rows)))
    with pytest.raises(OutcomeUnknown):
        drive(provider.lookup_charge(sale_request(), ctx), script)


def test_lookup_without_record_searches_the_last_day(
    provider: SmaregiProvider, ctx: OpContext
) -> None:
    script = Script(("token", token_reply()), ("transactions.list", j(200, [])))
    drive(provider.lookup_charge(sale_request(), ctx), script)
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(script.calls[1].url).query)
    assert query["terminal_tran_date_time-from"] == ["2025-01-30T10:00:00+09:00"]
    assert query["terminal_tran_date_time-to"] == ["2025-03-01T10:10:00+09:00"]


def test_lookup_pages(provider: SmaregiProvider, ctx: OpContext) -> None:
    full = [head(transactionHeadId=str(i), terminalTranId="1111111111") for i in range(1000)]
    match = [head(transactionHeadId="5000", terminalTranId=terminal_tran_id(ctx))]
    script = Script(
        ("token", token_reply()),
        ("transactions.list", j(200, full)),
        ("transactions.list", j(200, match)),
    )
    charge = drive(provider.lookup_charge(sale_request(), ctx), script)
    assert charge is not None
    assert charge.provider_ref == "5000"
    assert "page=2" in script.calls[2].url


def test_lookup_accepts_numeric_json(provider: SmaregiProvider, ctx: OpContext) -> None:
    row = head(terminalTranId=int(terminal_tran_id(ctx)), terminalId=1, storeId=1, total=1000)
    script = Script(
        ("token", token_reply()), ("transactions.list", j(200, {"transactions": [row]}))
    )
    assert drive(provider.lookup_charge(sale_request(), ctx), script) is not None


# ----------------------------------------------------------------- status/cancel/refund


def test_status_maps_cancel_division(provider: SmaregiProvider, ctx: OpContext) -> None:
    script = Script(("token", token_reply()), ("transactions.get", j(200, head())))
    charge = drive(provider.status(ref(), ctx), script)
    assert charge.status is ChargeStatus.SUCCEEDED
    assert script.calls[1].url == f"{POS}/transactions/1001"
    voided = head(cancelDivision="1", cancelDateTime="2025-03-01T11:00:00+09:00")
    script = Script(("transactions.get", j(200, voided)))
    charge = drive(provider.status(ref(), ctx), script)
    assert charge.status is ChargeStatus.REFUNDED
    assert charge.amount_refunded == Money.jpy(1000)
    assert charge.updated_at == datetime(2025, 3, 1, 2, 0, tzinfo=UTC)


def test_status_unknown_transaction(provider: SmaregiProvider, ctx: OpContext) -> None:
    script = Script(
        ("token", token_reply()),
        ("transactions.get", problem(404, "指定されたIDのリソースが見つかりません", "NotFound")),
    )
    with pytest.raises(NotFound) as info:
        drive(provider.status(ref(), ctx), script)
    assert info.value.provider_message == "指定されたIDのリソースが見つかりません"


def test_status_refuses_foreign_ref(provider: SmaregiProvider, ctx: OpContext) -> None:
    with pytest.raises(InvalidRequest):
        provider.status(ChargeRef(charge_id="c", provider_ref="../x", method="pos"), ctx)


def test_cancel_voids_and_reads_back(provider: SmaregiProvider, ctx: OpContext) -> None:
    script = Script(
        ("token", token_reply()),
        ("transactions.cancel", j(200, {"message": "取消が完了しました"})),
        ("transactions.get", j(200, head(cancelDivision="1"))),
    )
    charge = drive(provider.cancel(CancelRequest(ref()), ctx), script)
    assert charge.status is ChargeStatus.REFUNDED
    assert script.calls[1].url == f"{POS}/transactions/1001/cancel"
    assert script.calls[1].retry is Retry.SAFE


def test_cancel_repeat_is_resolved_by_reading(provider: SmaregiProvider, ctx: OpContext) -> None:
    script = Script(
        ("token", token_reply()),
        ("transactions.cancel", problem(400, "既に取消済みの取引です。")),
        ("transactions.get", j(200, head(cancelDivision="1"))),
    )
    assert drive(provider.cancel(CancelRequest(ref()), ctx), script).status is ChargeStatus.REFUNDED


def test_cancel_refused(provider: SmaregiProvider, ctx: OpContext) -> None:
    script = Script(
        ("token", token_reply()),
        ("transactions.cancel", problem(400, "締め済みの取引は取り消せません。")),
        ("transactions.get", j(200, head())),
    )
    with pytest.raises(ProviderRejected) as info:
        drive(provider.cancel(CancelRequest(ref()), ctx), script)
    assert info.value.provider_message == "締め済みの取引は取り消せません。"


def test_cancel_forbidden(provider: SmaregiProvider, ctx: OpContext) -> None:
    script = Script(
        ("token", token_reply()),
        ("transactions.cancel", problem(403, "スコープが不足しています", "Forbidden")),
    )
    with pytest.raises(PermissionDenied):
        drive(provider.cancel(CancelRequest(ref()), ctx), script)


def test_refund_whole_sale(provider: SmaregiProvider, ctx: OpContext) -> None:
    script = Script(
        ("token", token_reply()),
        ("transactions.cancel", j(200, {"message": "取消が完了しました"})),
        (
            "transactions.get",
            j(200, head(cancelDivision="1", cancelDateTime="2025-03-01T11:00:00+09:00")),
        ),
    )
    refund = drive(provider.refund(RefundRequest(ref(), reason="returned"), ctx), script)
    assert refund.status is RefundStatus.SUCCEEDED
    assert refund.amount == Money.jpy(1000)
    assert refund.charge_id == "ch_1"
    assert refund.provider_ref == "1001"
    assert refund.reason == "returned"


def test_refund_with_full_amount(provider: SmaregiProvider, ctx: OpContext) -> None:
    script = Script(
        ("token", token_reply()),
        ("transactions.cancel", j(200, {})),
        ("transactions.get", j(200, head(cancelDivision="1"))),
    )
    refund = drive(provider.refund(RefundRequest(ref(), amount=Money.jpy(1000)), ctx), script)
    assert refund.amount == Money.jpy(1000)


def test_partial_refund_not_supported_before_io(provider: SmaregiProvider) -> None:
    with pytest.raises(NotSupported) as info:
        provider.validate_refund(RefundRequest(ref(), amount=Money.jpy(400)))
    assert info.value.capability == "partial refund"
    assert info.value.alternative


def test_partial_refund_of_unknown_amount_checks_first(
    provider: SmaregiProvider, ctx: OpContext
) -> None:
    script = Script(("token", token_reply()), ("transactions.get", j(200, head())))
    with pytest.raises(NotSupported):
        drive(provider.refund(RefundRequest(ref(amount=None), amount=Money.jpy(400)), ctx), script)
    assert [c.method for c in script.calls] == ["POST", "GET"]  # token, read; no cancel


def test_refund_in_other_currency(provider: SmaregiProvider) -> None:
    with pytest.raises(InvalidRequest):
        provider.validate_refund(RefundRequest(ref(), amount=Money(1000, "USD")))


# ----------------------------------------------------------------------- declarations


def test_capabilities_and_policies(provider: SmaregiProvider) -> None:
    caps = provider.capabilities()
    pos = caps.method("pos")
    assert pos is not None
    assert pos.refund == "full"
    assert pos.cancel
    assert not pos.capture
    assert not pos.multiple_refunds
    assert caps.payout_balance is False
    assert caps.currencies == ("JPY",)
    assert provider.policy(Operation.REFUND).key == "path"
    assert provider.policy(Operation.CANCEL).key == "path"
    charge = provider.policy(Operation.CHARGE)
    assert charge.key == "none"
    assert charge.lookup is True


def test_payout_balance_and_capture_not_supported(
    provider: SmaregiProvider, ctx: OpContext
) -> None:
    with pytest.raises(NotSupported):
        provider.payout_balance(ctx)
    with pytest.raises(NotSupported):
        provider.capture(None, ctx)  # type: ignore[arg-type]


def test_emulator_is_declared() -> None:
    emulator = SmaregiProvider.emulator()
    assert emulator is not None
    assert emulator.name == "smaregi"


def test_secrets_registered(provider: SmaregiProvider) -> None:
    from paygate._redact import redact

    assert "s3cr3t-value" not in redact("secret is s3cr3t-value")
    assert "s3cr3t-value" not in repr(provider)
    assert "s3cr3t-value" not in repr(provider.settings)


# ------------------------------------------------- fidelity (audit of the Smaregi adapter)


def test_register_terminal_sends_no_sum_division(ctx: OpContext) -> None:
    provider = SmaregiProvider(
        make_settings(virtual_terminal=False, denomination_code="12"), account="pos"
    )
    script = _charge_script(j(200, head()))
    drive(provider.charge(sale_request(), ctx), script)
    body = script.body(2)
    assert "sumDivision" not in body
    assert "sumDate" not in body
    assert body["depositOthers"][0]["denominationCode"] == "12"


def test_sum_date_is_the_jst_date(provider: SmaregiProvider, clock: Clock) -> None:
    clock.now = datetime(2025, 3, 1, 16, 30, tzinfo=UTC)  # 01:30 JST on 2 March
    ctx = OpContext(
        account="pos", provider="smaregi", idempotency_key="k-late", charge_id="ch_2", now=clock
    )
    script = _charge_script(j(200, head()))
    drive(provider.charge(sale_request(), ctx), script)
    assert script.body(2)["sumDate"] == "2025-03-02"


def test_transaction_uuid_is_deterministic_and_spread() -> None:
    def make(account: str, key: str) -> str:
        return transaction_uuid(OpContext(account=account, provider="smaregi", idempotency_key=key))

    assert make("pos", "order-1") == make("pos", "order-1")
    assert make("pos", "order-1") != make("pos2", "order-1")
    ids = {make("pos", f"order-{i}") for i in range(2000)}
    assert len(ids) == 2000
    assert all(len(i) == 13 and i.isdigit() and i[0] != "0" for i in ids)


def test_refused_sale_with_cached_method_still_listed_is_final(
    provider: SmaregiProvider, ctx: OpContext
) -> None:
    """The method is re-checked; the same id listed means the refusal is about the sale."""
    cache: dict[str, Any] = {provider.payment_method_cache_key: {"paymentMethodId": "101"}}
    script = Script(
        ("token", token_reply()),
        ("transactions.create", problem(400, "storeId: 指定された店舗が存在しません。")),
        ("app_payment_methods.get", j(200, [PM])),
    )
    with pytest.raises(ProviderRejected):
        drive(provider.charge(sale_request(), ctx), script, cache)
    script.done()
    assert cache[provider.payment_method_cache_key]["paymentMethodId"] == "101"


def test_refused_sale_with_vanished_method_recreates_and_resends(
    provider: SmaregiProvider, ctx: OpContext
) -> None:
    """Issue 26.4: the cached method is gone at the POS: create it, re-send once."""
    cache: dict[str, Any] = {provider.payment_method_cache_key: {"paymentMethodId": "99"}}
    script = Script(
        ("token", token_reply()),
        ("transactions.create", problem(400, "エラーが発生しました。")),
        ("app_payment_methods.get", j(200, [])),
        ("app_payment_methods.create", j(200, PM)),
        ("transactions.create", j(200, head())),
    )
    charge = drive(provider.charge(sale_request(), ctx), script, cache)
    script.done()
    assert charge.status is ChargeStatus.SUCCEEDED
    first, second = script.body(1), script.body(4)
    assert first["depositOthers"][0]["paymentMethodId"] == "99"
    assert second["depositOthers"][0]["paymentMethodId"] == "101"
    # The same sale under the same key: same terminalTranId and receipt number.
    assert first["terminalTranId"] == second["terminalTranId"]
    assert first["transactionUuid"] == second["transactionUuid"]
    assert cache[provider.payment_method_cache_key]["paymentMethodId"] == "101"


def test_refused_twice_is_not_retried_again(provider: SmaregiProvider, ctx: OpContext) -> None:
    cache: dict[str, Any] = {provider.payment_method_cache_key: {"paymentMethodId": "99"}}
    script = Script(
        ("token", token_reply()),
        ("transactions.create", problem(400, "x")),
        ("app_payment_methods.get", j(200, [PM])),
        ("transactions.create", problem(400, "y")),
    )
    with pytest.raises(ProviderRejected) as info:
        drive(provider.charge(sale_request(), ctx), script, cache)
    script.done()
    assert info.value.provider_message == "y"


def test_status_maps_dispose_division(provider: SmaregiProvider, ctx: OpContext) -> None:
    """返品取消 (forum 79/455/469): cancelDivision stays 0, disposeDivision 1."""
    disposed = head(disposeDivision="1", disposeServerTransactionHeadId="1002")
    script = Script(("token", token_reply()), ("transactions.get", j(200, disposed)))
    charge = drive(provider.status(ref(), ctx), script)
    assert charge.status is ChargeStatus.REFUNDED
    assert charge.amount_refunded == Money.jpy(1000)
    offsetting = head(disposeDivision="2", total="-1000", subtotal="-1000")
    script = Script(("transactions.get", j(200, offsetting)))
    assert drive(provider.status(ref(), ctx), script).status is ChargeStatus.SUCCEEDED


def test_refund_is_a_void(provider: SmaregiProvider, ctx: OpContext) -> None:
    script = Script(
        ("token", token_reply()),
        ("transactions.cancel", j(200, {"message": "取消が完了しました"})),
        ("transactions.get", j(200, head(cancelDivision="1"))),
    )
    refund = drive(provider.refund(RefundRequest(ref()), ctx), script)
    assert refund.kind == "void"
    assert refund.money_returned is False
    assert refund.charge_refunded_total == Money.jpy(1000)
    assert script.body(1) == {"cancelDateTime": "2025-03-01T10:00:00+09:00"}
    caps = provider.capabilities().method("pos")
    assert caps is not None
    assert caps.refund_moves_money is False


def test_refund_of_a_sale_reversed_at_the_register(
    provider: SmaregiProvider, ctx: OpContext
) -> None:
    script = Script(
        ("token", token_reply()),
        ("transactions.cancel", problem(400, "打消済みの取引は取消できません。")),
        ("transactions.get", j(200, head(disposeDivision="1"))),
    )
    refund = drive(provider.refund(RefundRequest(ref()), ctx), script)
    assert refund.kind == "void"
    assert refund.raw["disposeDivision"] == "1"


def test_prepare_void_sends_cancel_slip_number(provider: SmaregiProvider, ctx: OpContext) -> None:
    cache: dict[str, Any] = {}
    drive(
        provider.prepare_void(ctx, transaction_head_id="1001", cancel_slip_number="C-1"),
        Script(),
        cache,
    )
    script = Script(
        ("token", token_reply()),
        ("transactions.cancel", j(200, {"message": "取消が完了しました"})),
        ("transactions.get", j(200, head(cancelDivision="1"))),
    )
    drive(provider.cancel(CancelRequest(ref()), ctx), script, cache)
    assert script.body(1) == {
        "cancelDateTime": "2025-03-01T10:00:00+09:00",
        "depositOthers": [{"no": "1", "cancelSlipNumber": "C-1"}],
    }
    with pytest.raises(InvalidRequest):
        drive(
            provider.prepare_void(ctx, transaction_head_id="1001", cancel_slip_number="取消"),
            Script(),
        )
    with pytest.raises(InvalidRequest):
        drive(provider.prepare_void(ctx, transaction_head_id="x", cancel_slip_number="C"), Script())


def test_lookup_refund_and_cancel(provider: SmaregiProvider, ctx: OpContext) -> None:
    script = Script(("token", token_reply()), ("transactions.get", j(200, head())))
    assert drive(provider.lookup_refund(RefundRequest(ref()), ctx), script) is None
    script = Script(("transactions.get", j(200, head(cancelDivision="1"))))
    found = drive(provider.lookup_refund(RefundRequest(ref()), ctx), script)
    assert found is not None
    assert found.kind == "void"
    script = Script(("transactions.get", j(200, head(disposeDivision="1"))))
    charge = drive(provider.lookup_cancel(CancelRequest(ref()), ctx), script)
    assert charge is not None
    assert charge.status is ChargeStatus.REFUNDED
    script = Script(("transactions.get", j(200, head())))
    assert drive(provider.lookup_cancel(CancelRequest(ref()), ctx), script) is None
    assert provider.policy(Operation.REFUND).lookup
    assert provider.policy(Operation.CANCEL).lookup


def test_lookup_sends_the_receipt_number_filter(provider: SmaregiProvider, ctx: OpContext) -> None:
    ours = head(terminalTranId=terminal_tran_id(ctx), transactionUuid=transaction_uuid(ctx))
    script = Script(("token", token_reply()), ("transactions.list", j(200, [ours])))
    charge = drive(provider.lookup_charge(sale_request(), ctx), script)
    assert charge is not None
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(script.calls[1].url).query)
    assert query["transaction_uuid"] == [transaction_uuid(ctx)]
    assert query["sort"] == ["terminalTranDateTime,transactionHeadId"]


def test_lookup_where_the_filter_is_ignored(provider: SmaregiProvider, ctx: OpContext) -> None:
    """Reading 2: Smaregi ignores transaction_uuid; rows are told apart by it."""
    tran_id = terminal_tran_id(ctx)
    other = head(transactionHeadId="7", terminalTranId=tran_id, transactionUuid="1000000000000")
    ours = head(
        transactionHeadId="8", terminalTranId=tran_id, transactionUuid=transaction_uuid(ctx)
    )
    script = Script(("token", token_reply()), ("transactions.list", j(200, [other, ours])))
    charge = drive(provider.lookup_charge(sale_request(), ctx), script)
    assert charge is not None
    assert charge.provider_ref == "8"


def test_lookup_where_the_filter_is_refused(provider: SmaregiProvider, ctx: OpContext) -> None:
    """Reading 3: a 400 for the filter; the documented range search is used alone."""
    ours = head(terminalTranId=terminal_tran_id(ctx))
    script = Script(
        ("token", token_reply()),
        ("transactions.list", problem(400, "transaction_uuid: 指定できない検索パラメータです。")),
        ("transactions.list", j(200, [ours])),
    )
    charge = drive(provider.lookup_charge(sale_request(), ctx), script)
    script.done()
    assert charge is not None
    assert "transaction_uuid" not in script.calls[2].url
