"""The emulator on its own: raw HTTP against the Starlette routes (no adapter)."""

from __future__ import annotations

import asyncio
import base64
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import pytest

from paygate.sandbox import ControlError, SandboxClock
from paygate_smaregi import ALREADY_REGISTERED
from paygate_smaregi._emulator import SmaregiEmulator

if TYPE_CHECKING:
    from .conftest import Client

E = SmaregiEmulator
TOKEN_URL = f"/smaregi/id/app/{E.CONTRACT_ID}/token"
POS = f"/smaregi/api/{E.CONTRACT_ID}/pos"
FORM = {"Content-Type": "application/x-www-form-urlencoded"}
ALL = "pos.transactions:read pos.transactions:write"


def basic(client_id: str = E.CLIENT_ID, secret: str = E.CLIENT_SECRET, braces: bool = False) -> str:
    value = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    return f"Basic {{{value}}}" if braces else f"Basic {value}"


def get_token(client: Client, scope: str = ALL) -> str:
    r = client.post(
        TOKEN_URL,
        headers={"Authorization": basic(), **FORM},
        content=f"grant_type=client_credentials&scope={scope}",
    )
    assert r.status_code == 200, r.text
    return str(r.json()["access_token"])


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def control(emulator: SmaregiEmulator, action: str, **params: Any) -> dict[str, Any]:
    return asyncio.run(emulator.control(action, params))


def sale(**kw: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "transactionHeadDivision": "1",
        "subtotal": "1000",
        "total": "1000",
        "deposit": "1000",
        "depositCash": "0",
        "depositCredit": "0",
        "change": "0",
        "storeId": "1",
        "terminalId": "1",
        "terminalTranId": "1234567890",
        "terminalTranDateTime": "2025-03-01T10:00:00+09:00",
        "details": [
            {
                "transactionDetailId": "1",
                "transactionDetailDivision": "1",
                "productId": "8000001",
                "salesPrice": "500",
                "quantity": "2",
            }
        ],
        "depositOthers": [{"paymentMethodId": "101", "depositOthers": "1000"}],
    }
    body.update(kw)
    return body


@pytest.fixture
def token(client: Client) -> str:
    return get_token(client)


@pytest.fixture
def method(client: Client, token: str) -> dict[str, Any]:
    r = client.post(
        f"{POS}/app_payment_method", headers=bearer(token), json={"paymentMethodName": E.APP_NAME}
    )
    assert r.status_code == 200
    return dict(r.json())


def assert_problem(r: Any, status: int, detail_part: str = "") -> dict[str, Any]:
    assert r.status_code == status, r.text
    body = r.json()
    assert body["type"] == "about:blank"
    assert body["status"] == status
    assert isinstance(body["title"], str)
    assert detail_part in body["detail"]
    return dict(body)


# ------------------------------------------------------------------------------- token


def test_token_issued(client: Client) -> None:
    r = client.post(
        TOKEN_URL,
        headers={"Authorization": basic(), **FORM},
        content="grant_type=client_credentials&scope=pos.transactions:read",
    )
    body = r.json()
    assert r.status_code == 200
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 3600
    assert body["scope"] == "pos.transactions:read"
    assert len(body["access_token"]) > 20


def test_token_accepts_brace_form(client: Client) -> None:
    r = client.post(
        TOKEN_URL,
        headers={"Authorization": basic(braces=True), **FORM},
        content=f"grant_type=client_credentials&scope={ALL}",
    )
    assert r.status_code == 200


@pytest.mark.parametrize(
    "auth", [None, "Bearer x", basic(secret="wrong"), basic(client_id="nobody"), "Basic !!!"]
)
def test_token_refuses_bad_client(client: Client, auth: str | None) -> None:
    headers = dict(FORM)
    if auth:
        headers["Authorization"] = auth
    r = client.post(TOKEN_URL, headers=headers, content="grant_type=client_credentials&scope=x")
    assert r.status_code == 401
    assert r.json()["error"] == "invalid_client"
    assert r.headers["www-authenticate"].startswith("Basic")


@pytest.mark.parametrize(
    ("content", "error"),
    [
        ("grant_type=password&scope=pos.transactions:read", "unsupported_grant_type"),
        ("grant_type=client_credentials", "invalid_scope"),
        ("grant_type=client_credentials&scope=pos.customers:write", "invalid_scope"),
    ],
)
def test_token_refuses_bad_grant(client: Client, content: str, error: str) -> None:
    r = client.post(TOKEN_URL, headers={"Authorization": basic(), **FORM}, content=content)
    assert r.status_code == 400
    assert r.json()["error"] == error


def test_token_needs_form_body(client: Client) -> None:
    r = client.post(TOKEN_URL, headers={"Authorization": basic()}, json={"grant_type": "x"})
    assert r.status_code == 400
    assert r.json()["error"] == "invalid_request"


def test_token_unknown_contract(client: Client) -> None:
    r = client.post(
        "/smaregi/id/app/other/token",
        headers={"Authorization": basic(), **FORM},
        content=f"grant_type=client_credentials&scope={ALL}",
    )
    assert r.status_code == 400
    assert r.json()["error"] == "invalid_grant"


# ------------------------------------------------------------------------ bearer/scope


def test_api_needs_bearer(client: Client) -> None:
    r = client.get(f"{POS}/app_payment_method")
    assert_problem(r, 401)
    assert r.headers["www-authenticate"].startswith("Bearer")
    assert_problem(client.get(f"{POS}/app_payment_method", headers=bearer("nope")), 401)


def test_token_expires_on_the_sandbox_clock(
    client: Client, token: str, clock: SandboxClock
) -> None:
    assert client.get(f"{POS}/app_payment_method", headers=bearer(token)).status_code == 200
    clock.advance(timedelta(seconds=3600))
    assert_problem(client.get(f"{POS}/app_payment_method", headers=bearer(token)), 401, "期限")


def test_token_is_bound_to_its_contract(client: Client, token: str) -> None:
    r = client.get("/smaregi/api/other/pos/app_payment_method", headers=bearer(token))
    assert_problem(r, 401)


def test_insufficient_scope_is_403(client: Client) -> None:
    read_only = get_token(client, "pos.transactions:read")
    r = client.post(f"{POS}/app_payment_method", headers=bearer(read_only), json={})
    assert_problem(r, 403, "pos.transactions:write")
    r = client.post(f"{POS}/transactions", headers=bearer(read_only), json=sale())
    assert_problem(r, 403)


def test_expire_tokens_control(client: Client, emulator: SmaregiEmulator, token: str) -> None:
    assert control(emulator, "expire_tokens") == {"expired": 1}
    assert_problem(client.get(f"{POS}/app_payment_method", headers=bearer(token)), 401)


# ----------------------------------------------------------------- app payment method


def test_app_payment_method_lifecycle(
    client: Client, emulator: SmaregiEmulator, token: str
) -> None:
    url = f"{POS}/app_payment_method"
    assert client.get(url, headers=bearer(token)).json() == []
    r = client.post(url, headers=bearer(token), json={"paymentMethodName": "テスト決済"})
    created = r.json()
    assert r.status_code == 200
    assert created["paymentMethodName"] == "テスト決済"  # the app names it (forum 539)
    assert "appPaymentCode" not in created  # sent only by apps that set one
    assert all(isinstance(v, str) for v in created.values())
    assert client.get(url, headers=bearer(token)).json() == [created]
    # One spelling only: the plural path of an unofficial spec is not served.
    assert client.get(f"{url}s", headers=bearer(token)).status_code == 404
    assert (
        client.get(f"{url}/{created['appPaymentMethodId']}", headers=bearer(token)).status_code
        == 404
    )

    again = client.post(url, headers=bearer(token), json={"paymentMethodName": "別名"})
    body = assert_problem(again, 403)
    assert body["detail"] == ALREADY_REGISTERED
    assert client.request("DELETE", url, headers=bearer(token)).status_code == 405

    assert control(emulator, "delete_payment_method") == {
        "deleted": True,
        "paymentMethodId": created["paymentMethodId"],
    }
    assert client.get(url, headers=bearer(token)).json() == []
    renamed = client.post(url, headers=bearer(token), json={"paymentMethodName": "別名"}).json()
    assert renamed["paymentMethodName"] == "別名"
    assert renamed["paymentMethodId"] != created["paymentMethodId"]
    assert control(emulator, "stats")["app_payment_method_posts"] == 3
    assert control(emulator, "stats")["app_payment_methods_created"] == 2


def test_app_payment_method_name_readings(
    client: Client, emulator: SmaregiEmulator, token: str
) -> None:
    """UNCERTAIN whether Smaregi refuses a registration without a name: both readings."""
    url = f"{POS}/app_payment_method"
    assert_problem(client.post(url, headers=bearer(token), json={}), 400, "paymentMethodName")
    control(emulator, "configure", payment_method_name="optional")
    created = client.post(url, headers=bearer(token), json={}).json()
    assert created["paymentMethodName"] == E.APP_NAME
    with pytest.raises(ControlError):
        control(emulator, "configure", payment_method_name="maybe")
    with pytest.raises(ControlError):
        control(emulator, "configure", nonsense=1)


@pytest.mark.parametrize(
    "body",
    [
        {"paymentMethodName": 5},
        {"paymentMethodName": "x" * 86},
        {"paymentMethodName": "x", "appPaymentCode": "y" * 21},
    ],
)
def test_app_payment_method_validation(client: Client, token: str, body: dict[str, Any]) -> None:
    assert_problem(client.post(f"{POS}/app_payment_method", headers=bearer(token), json=body), 400)


def test_app_payment_method_bad_json(client: Client, token: str) -> None:
    r = client.post(
        f"{POS}/app_payment_method",
        headers={**bearer(token), "Content-Type": "application/json"},
        content=b"{nope",
    )
    assert_problem(r, 400)


# ------------------------------------------------------------------------ transactions


def test_create_get_and_cancel(
    client: Client, emulator: SmaregiEmulator, token: str, method: dict[str, Any]
) -> None:
    r = client.post(
        f"{POS}/transactions", headers=bearer(token), json=sale(slipNumber="S-1", memo="m")
    )
    assert r.status_code == 200, r.text
    created = r.json()
    head_id = created["transactionHeadId"]
    assert created["cancelDivision"] == "0"
    assert created["total"] == "1000"
    assert created["transactionDateTime"] == "2025-03-01T10:00:00+09:00"
    assert created["slipNumber"] == "S-1"
    assert created["depositOthers"] == [
        {
            "no": "1",
            "paymentMethodId": method["paymentMethodId"],
            "paymentMethodName": E.APP_NAME,
            "depositOthers": "1000",
            "slipNumber": None,
            "cardCompany": None,
            "denominationCode": None,
            "cancelSlipNumber": None,
            "transactionHeadId": head_id,
        }
    ]
    assert created["disposeDivision"] == "0"
    assert created["sumDivision"] == "0"  # terminal 1 is a register of store 1
    # Smaregi's default receipt number: epoch seconds' last 9 digits + terminal id.
    assert created["transactionUuid"] == "740790800" + "0001"
    fetched = client.get(f"{POS}/transactions/{head_id}", headers=bearer(token)).json()
    assert fetched == created
    detailed = client.get(
        f"{POS}/transactions/{head_id}?with_details=all", headers=bearer(token)
    ).json()
    assert detailed["details"][0]["salesPrice"] == "500"

    r = client.post(f"{POS}/transactions/{head_id}/cancel", headers=bearer(token), json={})
    assert r.status_code == 200
    assert r.json() == {"message": "取消が完了しました"}
    voided = client.get(f"{POS}/transactions/{head_id}", headers=bearer(token)).json()
    assert voided["cancelDivision"] == "1"
    assert voided["cancelDateTime"]
    again = client.post(f"{POS}/transactions/{head_id}/cancel", headers=bearer(token), json={})
    assert_problem(again, 400, "取消済み")
    [entry] = emulator.ledger()
    assert (entry.id, entry.key, entry.amount, entry.refunded, entry.status) == (
        head_id,
        "1234567890",
        1000,
        1000,
        "canceled",
    )


def test_get_and_cancel_unknown(client: Client, token: str) -> None:
    body = assert_problem(client.get(f"{POS}/transactions/999", headers=bearer(token)), 404)
    assert body["title"] == "NotFound"
    assert body["detail"] == "指定されたIDのリソースが見つかりません"
    assert_problem(client.post(f"{POS}/transactions/999/cancel", headers=bearer(token)), 404)


def test_cancel_with_slip_number(client: Client, token: str, method: dict[str, Any]) -> None:
    head_id = client.post(f"{POS}/transactions", headers=bearer(token), json=sale()).json()[
        "transactionHeadId"
    ]
    body = {"depositOthers": [{"no": "1", "cancelSlipNumber": "C-9"}]}
    assert (
        client.post(
            f"{POS}/transactions/{head_id}/cancel", headers=bearer(token), json=body
        ).status_code
        == 200
    )
    got = client.get(f"{POS}/transactions/{head_id}", headers=bearer(token)).json()
    assert got["cancelSlipNumber"] == "C-9"
    bad = {"depositOthers": [{"no": "4"}]}
    head2 = client.post(f"{POS}/transactions", headers=bearer(token), json=sale()).json()
    r = client.post(
        f"{POS}/transactions/{head2['transactionHeadId']}/cancel", headers=bearer(token), json=bad
    )
    assert_problem(r, 400)


@pytest.mark.parametrize(
    ("change", "detail"),
    [
        ({"subtotal": "900", "total": "900", "deposit": "900"}, "小計"),
        ({"total": "900"}, "total"),
        ({"subtotal": 1000}, "文字列"),
        ({"subtotal": None}, "subtotal"),
        ({"transactionHeadDivision": None}, "transactionHeadDivision"),
        ({"transactionHeadDivision": "10"}, "transactionHeadDivision"),
        ({"storeId": "99"}, "storeId"),
        ({"storeId": None}, "storeId"),
        ({"terminalId": "0"}, "terminalId"),
        ({"terminalTranId": "12345678901"}, "terminalTranId"),
        ({"terminalTranDateTime": "yesterday"}, "terminalTranDateTime"),
        ({"details": []}, "details"),
        (
            {"details": [{"transactionDetailId": "1", "transactionDetailDivision": "1"}]},
            "salesPrice",
        ),
        ({"depositOthers": [{"paymentMethodId": "555", "depositOthers": "1000"}]}, "支払方法"),
        ({"deposit": "2000"}, "deposit"),
        ({"subtotal": "1000000000"}, "subtotal"),
        ({"memo": "x" * 1001}, "memo"),
    ],
)
def test_create_validation(
    client: Client, token: str, method: dict[str, Any], change: dict[str, Any], detail: str
) -> None:
    body = sale(**change)
    for key, value in change.items():
        if value is None:
            body.pop(key)
    r = client.post(f"{POS}/transactions", headers=bearer(token), json=body)
    assert_problem(r, 400, detail)


def test_app_payment_slip_fields_live_on_the_item(
    client: Client, token: str, method: dict[str, Any]
) -> None:
    """Forum 539 (staff): slipNumber, cardCompany, denominationCode on depositOthers."""
    item = {
        "paymentMethodId": method["paymentMethodId"],
        "depositOthers": "1000",
        "slipNumber": "S-2",
        "cardCompany": "JCB",
        "denominationCode": "7",
    }
    r = client.post(f"{POS}/transactions", headers=bearer(token), json=sale(depositOthers=[item]))
    assert r.status_code == 200, r.text
    got = r.json()
    assert got["depositOthers"][0]["slipNumber"] == "S-2"
    assert got["depositOthers"][0]["cardCompany"] == "JCB"
    assert got["depositOthers"][0]["denominationCode"] == "7"
    # The head's slip fields are the credit-card ones: not filled from the item.
    assert got["slipNumber"] is None
    assert got["cardCompany"] is None


@pytest.mark.parametrize("key", ["amount", "paymentMethodName"])
def test_deposit_others_item_takes_no_invented_keys(
    client: Client, token: str, method: dict[str, Any], key: str
) -> None:
    item = {"paymentMethodId": method["paymentMethodId"], "depositOthers": "1000", key: "1"}
    if key == "amount":
        item.pop("depositOthers")
    r = client.post(f"{POS}/transactions", headers=bearer(token), json=sale(depositOthers=[item]))
    assert_problem(r, 400, "depositOthers[0]")


def test_unknown_terminal_needs_sum_division(
    client: Client, emulator: SmaregiEmulator, token: str, method: dict[str, Any]
) -> None:
    """Official field text: a terminal that does not exist needs sumDivision 2."""
    url = f"{POS}/transactions"
    r = client.post(url, headers=bearer(token), json=sale(terminalId="901"))
    assert_problem(r, 400, "sumDivision")
    r = client.post(url, headers=bearer(token), json=sale(terminalId="901", sumDivision="2"))
    assert_problem(r, 400, "sumDate")
    closed = sale(terminalId="901", sumDivision="2", sumDate="2025-03-01")
    r = client.post(url, headers=bearer(token), json=closed)
    assert r.status_code == 200, r.text
    assert (r.json()["sumDivision"], r.json()["sumDate"]) == ("2", "2025-03-01")
    r = client.post(url, headers=bearer(token), json=sale(sumDivision="0", sumDate="2025-03-01"))
    assert_problem(r, 400, "sumDate")
    # The other reading: POST /transactions does not enforce the rule.
    control(emulator, "configure", sum_division="lenient")
    r = client.post(url, headers=bearer(token), json=sale(terminalId="901"))
    assert r.status_code == 200, r.text


def test_detail_ids_are_1_to_999(client: Client, token: str, method: dict[str, Any]) -> None:
    body = sale()
    body["details"][0]["transactionDetailId"] = "1000"
    r = client.post(f"{POS}/transactions", headers=bearer(token), json=body)
    assert_problem(r, 400, "transactionDetailId")


def test_create_without_method_is_refused(client: Client, token: str) -> None:
    assert_problem(client.post(f"{POS}/transactions", headers=bearer(token), json=sale()), 400)


def _register(client: Client, token: str, n: int, **kw: Any) -> list[str]:
    ids = []
    for i in range(n):
        body = sale(terminalTranId=str(1000000000 + i), **kw)
        ids.append(
            client.post(f"{POS}/transactions", headers=bearer(token), json=body).json()[
                "transactionHeadId"
            ]
        )
    return ids


def test_list_requires_a_range(client: Client, token: str) -> None:
    assert_problem(client.get(f"{POS}/transactions", headers=bearer(token)), 400, "検索範囲")


def test_list_filters_pages_and_sorts(client: Client, token: str, method: dict[str, Any]) -> None:
    ids = _register(client, token, 5)
    _register(client, token, 1, terminalTranDateTime="2025-03-03T10:00:00+09:00")
    q = (
        "terminal_tran_date_time-from=2025-03-01T09%3A00%3A00%2B09%3A00"
        "&terminal_tran_date_time-to=2025-03-01T11%3A00%3A00%2B09%3A00"
    )
    rows = client.get(f"{POS}/transactions?{q}", headers=bearer(token)).json()
    assert [r["transactionHeadId"] for r in rows] == ids
    assert "depositOthers" not in rows[0]
    assert "details" not in rows[0]
    page2 = client.get(f"{POS}/transactions?{q}&limit=2&page=2", headers=bearer(token)).json()
    assert [r["transactionHeadId"] for r in page2] == ids[2:4]
    desc = client.get(
        f"{POS}/transactions?{q}&sort=transactionHeadId:desc&with_deposit_others=all",
        headers=bearer(token),
    ).json()
    assert [r["transactionHeadId"] for r in desc] == ids[::-1]
    assert desc[0]["depositOthers"][0]["paymentMethodId"] == method["paymentMethodId"]
    by_id = client.get(
        f"{POS}/transactions?transaction_head_id-from={ids[1]}&transaction_head_id-to={ids[2]}",
        headers=bearer(token),
    ).json()
    assert [r["transactionHeadId"] for r in by_id] == ids[1:3]


def test_list_refuses_unencoded_plus_and_long_ranges(client: Client, token: str) -> None:
    plus = "terminal_tran_date_time-from=2025-03-01T09:00:00+09:00"
    assert_problem(client.get(f"{POS}/transactions?{plus}", headers=bearer(token)), 400, "%2B")
    long = (
        "terminal_tran_date_time-from=2025-01-01T00%3A00%3A00%2B09%3A00"
        "&terminal_tran_date_time-to=2025-03-01T00%3A00%3A00%2B09%3A00"
    )
    assert_problem(client.get(f"{POS}/transactions?{long}", headers=bearer(token)), 400, "31")
    bad_limit = "transaction_head_id-from=1&limit=1001"
    assert_problem(client.get(f"{POS}/transactions?{bad_limit}", headers=bearer(token)), 400)


def test_no_duplicate_protection(client: Client, token: str, method: dict[str, Any]) -> None:
    """O-S7: Smaregi documents none, so a re-sent sale is a second sale."""
    first = client.post(f"{POS}/transactions", headers=bearer(token), json=sale()).json()
    second = client.post(f"{POS}/transactions", headers=bearer(token), json=sale()).json()
    assert first["transactionHeadId"] != second["transactionHeadId"]


# -------------------------------------------------------------------------- rate limit


def test_burst_limit_on_the_sandbox_clock(
    client: Client, emulator: SmaregiEmulator, token: str, clock: SandboxClock
) -> None:
    assert control(emulator, "rate_limit", reads=2, writes=None) == {"reads": 2, "writes": None}
    url = f"{POS}/app_payment_method"
    assert [client.get(url, headers=bearer(token)).status_code for _ in range(2)] == [200, 200]
    limited = client.get(url, headers=bearer(token))
    assert_problem(limited, 429)
    assert limited.headers["retry-after"] == "1"
    # Writes have their own (unlimited) quota; token calls do not count.
    assert (
        client.post(url, headers=bearer(token), json={"paymentMethodName": "x"}).status_code == 200
    )
    get_token(client)
    clock.advance(timedelta(seconds=1))
    assert client.get(url, headers=bearer(token)).status_code == 200
    control(emulator, "rate_limit", reads=None)
    assert all(client.get(url, headers=bearer(token)).status_code == 200 for _ in range(5))
    with pytest.raises(ControlError):
        control(emulator, "rate_limit", reads=0)


# ----------------------------------------------------------------------------- control


def test_void_transaction_control(
    client: Client, emulator: SmaregiEmulator, token: str, method: dict[str, Any]
) -> None:
    [head_id] = _register(client, token, 1)
    assert (
        control(emulator, "void_transaction", transaction_head_id=head_id)["cancelDivision"] == "1"
    )
    with pytest.raises(ControlError) as twice:
        control(emulator, "void_transaction", transaction_head_id=head_id)
    assert twice.value.status == 409
    with pytest.raises(ControlError) as unknown:
        control(emulator, "void_transaction", transaction_head_id="1")
    assert unknown.value.status == 404


def test_dispose_transaction_control(
    client: Client, emulator: SmaregiEmulator, token: str, method: dict[str, Any]
) -> None:
    """返品取消 at the register (forum 79, 455, 469): original disposeDivision 1, an
    offsetting record disposeDivision 2 pointing back; cancelDivision stays 0."""
    [head_id] = _register(client, token, 1)
    done = control(emulator, "dispose_transaction", transaction_head_id=head_id)
    offset_id = done["disposeServerTransactionHeadId"]
    original = client.get(f"{POS}/transactions/{head_id}", headers=bearer(token)).json()
    assert (original["cancelDivision"], original["disposeDivision"]) == ("0", "1")
    offset = client.get(f"{POS}/transactions/{offset_id}", headers=bearer(token)).json()
    assert offset["disposeDivision"] == "2"
    assert offset["disposeServerTransactionHeadId"] == head_id
    assert offset["total"] == "-1000"
    assert offset["depositOthers"][0]["depositOthers"] == "-1000"
    # The reversed sale cannot be cancelled again; the ledger counts it reversed once.
    r = client.post(f"{POS}/transactions/{head_id}/cancel", headers=bearer(token), json={})
    assert_problem(r, 400)
    [entry] = emulator.ledger()
    assert (entry.id, entry.refunded, entry.status) == (head_id, 1000, "canceled")
    with pytest.raises(ControlError) as twice:
        control(emulator, "dispose_transaction", transaction_head_id=head_id)
    assert twice.value.status == 409


def test_cancel_time_readings(
    client: Client, emulator: SmaregiEmulator, token: str, method: dict[str, Any]
) -> None:
    """UNCERTAIN whether cancelDateTime is required: both readings."""
    a, b = _register(client, token, 2)
    when = {"cancelDateTime": "2025-03-01T10:05:00+09:00"}
    r = client.post(f"{POS}/transactions/{a}/cancel", headers=bearer(token), json=when)
    assert r.status_code == 200
    got = client.get(f"{POS}/transactions/{a}", headers=bearer(token)).json()
    assert got["cancelDateTime"] == "2025-03-01T10:05:00+09:00"
    control(emulator, "configure", cancel_time="required")
    r = client.post(f"{POS}/transactions/{b}/cancel", headers=bearer(token), json={})
    assert_problem(r, 400, "cancelDateTime")
    r = client.post(
        f"{POS}/transactions/{b}/cancel", headers=bearer(token), json={"cancelDateTime": "x"}
    )
    assert_problem(r, 400, "cancelDateTime")


@pytest.mark.parametrize("reading", ["exact", "ignored", "refused"])
def test_transaction_uuid_filter_readings(
    client: Client, emulator: SmaregiEmulator, token: str, method: dict[str, Any], reading: str
) -> None:
    """The exact-match filter is known only from unofficial copies: three readings."""
    ids = [
        client.post(
            f"{POS}/transactions",
            headers=bearer(token),
            json=sale(terminalTranId=str(100 + i), transactionUuid=f"900000000000{i}"),
        ).json()["transactionHeadId"]
        for i in range(3)
    ]
    control(emulator, "configure", transaction_uuid_filter=reading)
    q = (
        "terminal_tran_date_time-from=2025-03-01T09%3A00%3A00%2B09%3A00"
        "&terminal_tran_date_time-to=2025-03-01T11%3A00%3A00%2B09%3A00"
        "&transaction_uuid=9000000000001"
    )
    r = client.get(f"{POS}/transactions?{q}", headers=bearer(token))
    if reading == "refused":
        assert_problem(r, 400, "transaction_uuid")
        return
    rows = [row["transactionHeadId"] for row in r.json()]
    assert rows == ([ids[1]] if reading == "exact" else ids)


def test_token_lifetime_and_token_calls_readings(
    client: Client, emulator: SmaregiEmulator, clock: SandboxClock
) -> None:
    control(emulator, "configure", token_lifetime=600, token_calls_count=True)
    control(emulator, "rate_limit", reads=3)
    token = get_token(client)
    r = client.post(
        TOKEN_URL,
        headers={"Authorization": basic(), **FORM},
        content=f"grant_type=client_credentials&scope={ALL}",
    )
    assert r.json()["expires_in"] == 600
    assert client.get(f"{POS}/app_payment_method", headers=bearer(token)).status_code == 200
    # Two token calls and one read fill this second's quota of three.
    assert_problem(client.get(f"{POS}/app_payment_method", headers=bearer(token)), 429)
    clock.advance(timedelta(seconds=600))
    control(emulator, "rate_limit", reads=None)
    assert_problem(client.get(f"{POS}/app_payment_method", headers=bearer(token)), 401, "期限")
    with pytest.raises(ControlError):
        control(emulator, "configure", token_lifetime=0)
    with pytest.raises(ControlError):
        control(emulator, "configure", token_calls_count="yes")


def test_reset_and_unknown_action(
    client: Client, emulator: SmaregiEmulator, token: str, method: dict[str, Any]
) -> None:
    _register(client, token, 1)
    assert control(emulator, "reset") == {}
    assert emulator.ledger() == []
    assert_problem(client.get(f"{POS}/app_payment_method", headers=bearer(token)), 401)
    fresh = get_token(client)
    assert client.get(f"{POS}/app_payment_method", headers=bearer(fresh)).json() == []
    assert control(emulator, "delete_payment_method") == {"deleted": False, "paymentMethodId": None}
    with pytest.raises(ControlError) as info:
        control(emulator, "fly")
    assert info.value.status == 404
    with pytest.raises(ControlError):
        control(emulator, "delete_payment_method", contract_id="nope")


def test_credentials_and_account_settings(emulator: SmaregiEmulator) -> None:
    creds = emulator.credentials()
    assert creds["client_id"] == E.CLIENT_ID
    assert creds["contract_id"] == E.CONTRACT_ID
    assert creds["base_url"].endswith("/smaregi/api")
    assert creds["id_base_url"].endswith("/smaregi/id")
    settings = emulator.account_settings()
    assert settings["provider"] == "smaregi"
    from paygate_smaregi import SmaregiSettings

    parsed = SmaregiSettings(**{k: v for k, v in settings.items() if k != "provider"})
    assert parsed.store_id == "1"
    assert parsed.terminal_id == "1"


def test_stale_and_slow_reads(client: Client, emulator: SmaregiEmulator, token: str) -> None:
    url = f"{POS}/app_payment_method"
    created = client.post(url, headers=bearer(token), json={"paymentMethodName": "x"}).json()
    assert control(emulator, "stale_reads", count=1) == {"count": 1}
    assert client.get(url, headers=bearer(token)).json() == []
    assert client.get(url, headers=bearer(token)).json() == [created]
    assert control(emulator, "slow_reads", seconds=0, count=1) == {"seconds": 0.0, "count": 1}
    assert client.get(url, headers=bearer(token)).json() == [created]
    for bad in ({"seconds": -1}, {"seconds": 31}, {"count": -1}, {"count": True}):
        with pytest.raises(ControlError):
            control(emulator, "slow_reads", **bad)
    with pytest.raises(ControlError):
        control(emulator, "stale_reads", count="x")
