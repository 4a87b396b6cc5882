"""The emulator on the wire: every SDK request style, envelope checks, state and controls."""

from __future__ import annotations

import asyncio
import base64
import json
import uuid
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from paygate.sandbox import ControlError, SandboxClock
from paygate_pokepay import SANDBOX, PokepayEmulator, PokepayProvider
from paygate_pokepay._emulator import SCAN_ERRORS

KEY = base64.urlsafe_b64decode(SANDBOX.client_secret + "=")
FUNDED = SANDBOX.customers["funded"][0]
LOW = SANDBOX.customers["low_balance"][0]
SUSPENDED = SANDBOX.customers["suspended"][0]
CLOSED = SANDBOX.customers["closed"][0]
NO_WALLET = SANDBOX.customers["no_wallet"][0]
SHOP = SANDBOX.shop_id
MONEY = SANDBOX.private_money_id


def _encrypt(plain: bytes, prefix: bytes, *, keep_padding: bool) -> str:
    padder = padding.PKCS7(128).padder()
    enc = Cipher(algorithms.AES(KEY), modes.CBC(b"\x07" * 16)).encryptor()
    ct = enc.update(padder.update(prefix + plain) + padder.finalize()) + enc.finalize()
    text = base64.urlsafe_b64encode(ct).decode()
    return text if keep_padding else text.rstrip("=")


def _decrypt_like_python_sdk(text: str) -> Any:
    ct = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    dec = Cipher(algorithms.AES(KEY), modes.CBC(ct[:16])).decryptor()
    raw = dec.update(ct[16:]) + dec.finalize()
    return json.loads(raw[: -raw[-1]])


class Sdk:
    """Sends requests the way one official SDK does (see the facts' transport table)."""

    def __init__(self, client: Any, clock: SandboxClock, style: str) -> None:
        self.client = client
        self.clock = clock
        self.style = style
        self.client_id = SANDBOX.client_id

    def stamp(self) -> str:
        now = self.clock.now()
        if self.style == "node":
            return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"
        if self.style == "java":
            return now.astimezone().strftime("%Y-%m-%dT%H:%M:%S%z")[:-2] + ":00"
        return now.isoformat()

    def send(
        self,
        method: str,
        path: str,
        params: dict[str, Any] | None = None,
        *,
        call_id: str | None = None,
        timestamp: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        data: Any = params or {}
        if self.style == "java" and not data:
            data = []
        inner = {
            "request_data": data,
            "timestamp": self.stamp() if timestamp is None else timestamp,
            "partner_call_id": call_id or str(uuid.uuid4()),
        }
        plain = json.dumps(inner).encode()
        prefix = {
            "node": b"0" * 16,
            "python": b"0" * 16,
            "ruby": b"0" * 16,
            "java": b"\x00" * 16,
            "php": bytes([16 - len(plain) % 16]) * 16,
        }[self.style]
        outer: dict[str, Any] = {
            "partner_client_id": self.client_id,
            "data": _encrypt(plain, prefix, keep_padding=self.style == "java"),
        }
        url = "/pokepay" + path
        hdrs = dict(headers or {})
        if self.style in ("python", "java"):
            outer["request_method"] = method
            method = "POST"
        if self.style in ("python", "ruby"):
            hdrs["content-type"] = "application/x-www-form-urlencoded"
            body = urlencode(outer).encode()
        else:
            hdrs["content-type"] = "application/json; charset=utf-8"
            body = json.dumps(outer).encode()
        return self.client.request(method, url, content=body, headers=hdrs)

    def ok(self, method: str, path: str, params: dict[str, Any] | None = None) -> Any:
        response = self.send(method, path, params)
        assert response.status_code == 200, self.error(response)
        return _decrypt_like_python_sdk(response.json()["response_data"])

    def error(self, response: httpx.Response) -> dict[str, Any]:
        body = response.json()
        if "response_data" in body:
            return _decrypt_like_python_sdk(body["response_data"])  # type: ignore[no-any-return]
        return body  # type: ignore[no-any-return]

    def fails(
        self, method: str, path: str, params: dict[str, Any] | None = None
    ) -> tuple[int, dict[str, Any]]:
        response = self.send(method, path, params)
        assert response.status_code != 200
        return response.status_code, self.error(response)


STYLES = ["node", "python", "ruby", "java", "php"]


@pytest.fixture(params=STYLES)
def sdk(request: pytest.FixtureRequest, client: Any, sandbox_clock: SandboxClock) -> Sdk:
    return Sdk(client, sandbox_clock, request.param)


@pytest.fixture
def node(client: Any, sandbox_clock: SandboxClock) -> Sdk:
    return Sdk(client, sandbox_clock, "node")


def pay(sdk: Sdk, amount: int = 1000, customer: str = FUNDED, **extra: Any) -> Any:
    return sdk.ok(
        "POST",
        "/transactions/payment",
        {
            "shop_id": SHOP,
            "customer_id": customer,
            "private_money_id": MONEY,
            "amount": amount,
            **extra,
        },
    )


# --------------------------------------------------------------------------- wire


def test_ping_is_plain(client: Any) -> None:
    assert client.get("/pokepay/ping").json() == {"pong": "ok"}


def test_every_sdk_style_round_trips(sdk: Sdk) -> None:
    assert sdk.ok("POST", "/echo", {"message": "こんにちは"}) == {
        "status": "ok",
        "message": "こんにちは",
    }
    txn = pay(sdk, 1000, strategy="money-only")
    assert txn["type"] == "payment"
    assert txn["amount"] == 1000
    assert txn["money_amount"] == 1000
    again = sdk.ok("GET", f"/transactions/{txn['id']}")
    assert again["id"] == txn["id"]
    money = sdk.ok("GET", "/private-moneys")
    assert money["rows"][0]["id"] == MONEY


def test_response_envelope_shape(node: Sdk, emulator: PokepayEmulator) -> None:
    response = node.send(
        "POST", "/echo", {"message": "hi"}, call_id="5a0c1b2d-3e4f-4a5b-8c6d-7e8f9a0b1c2d"
    )
    body = response.json()
    assert set(body) == {"response_data", "timestamp", "partner_call_id"}
    assert body["partner_call_id"] == "5a0c1b2d-3e4f-4a5b-8c6d-7e8f9a0b1c2d"
    assert datetime.fromisoformat(body["timestamp"]) == emulator.now
    assert "=" not in body["response_data"]
    # The throw-away block is there: dropping 16 bytes leaves exactly the JSON.
    assert (
        emulator.cipher.decrypt(body["response_data"])
        == json.dumps({"status": "ok", "message": "hi"}).encode()
    )


def test_request_method_wins_over_the_verb(node: Sdk) -> None:
    txn = pay(node)
    inner = {"request_data": {}, "timestamp": node.stamp(), "partner_call_id": str(uuid.uuid4())}
    outer = {
        "partner_client_id": SANDBOX.client_id,
        "data": _encrypt(json.dumps(inner).encode(), b"0" * 16, keep_padding=False),
        "request_method": "get",
    }
    response = node.client.request("POST", f"/pokepay/transactions/{txn['id']}", json=outer)
    assert response.status_code == 200


def test_unknown_client_is_a_plain_error(node: Sdk) -> None:
    node.client_id = str(uuid.uuid4())
    response = node.send("POST", "/echo", {"message": "x"})
    assert response.status_code == 400
    assert response.json() == {
        "type": "partner_client_not_found",
        "message": "Partner client not found",
    }


@pytest.mark.parametrize("data", ["", "!!", "AAAA", base64.urlsafe_b64encode(b"x" * 48).decode()])
def test_undecryptable_data_is_a_plain_error(client: Any, data: str) -> None:
    response = client.post(
        "/pokepay/echo", json={"partner_client_id": SANDBOX.client_id, "data": data}
    )
    assert response.status_code == 400
    assert response.json()["type"] == "partner_decryption_failed"


def test_missing_body(client: Any) -> None:
    response = client.request("GET", "/pokepay/transactions/x")
    assert response.json()["type"] == "partner_client_not_found"


@pytest.mark.parametrize(
    "delta", [timedelta(seconds=-301), timedelta(seconds=301), timedelta(days=-1)]
)
def test_stale_timestamps_are_refused(
    node: Sdk, sandbox_clock: SandboxClock, delta: timedelta
) -> None:
    stamp = (sandbox_clock.now() + delta).isoformat()
    response = node.send("POST", "/echo", {"message": "x"}, timestamp=stamp)
    assert response.status_code == 400
    assert "response_data" in response.json()
    assert node.error(response) == {
        "type": "partner_request_expired",
        "message": "This request is expired.",
    }


def test_timestamps_within_the_window_pass(node: Sdk, sandbox_clock: SandboxClock) -> None:
    for delta in (timedelta(seconds=-299), timedelta(seconds=299)):
        stamp = (sandbox_clock.now() + delta).isoformat()
        assert node.send("POST", "/echo", {"message": "x"}, timestamp=stamp).status_code == 200


def test_real_time_stamps_pass_after_the_sandbox_clock_moved(
    node: Sdk, emulator: PokepayEmulator, sandbox_clock: SandboxClock
) -> None:
    real = sandbox_clock.now()
    emulator.wall_clock = lambda: real
    sandbox_clock.advance(timedelta(hours=2))
    assert (
        node.send("POST", "/echo", {"message": "x"}, timestamp=real.isoformat()).status_code == 200
    )


@pytest.mark.parametrize("stamp", ["yesterday", "2026-03-01T12:00:00", ""])
def test_bad_timestamps(node: Sdk, stamp: str) -> None:
    response = node.send("POST", "/echo", {"message": "x"}, timestamp=stamp)
    assert node.error(response)["type"] == "invalid_parameters"


def test_replayed_call_id_is_already_done(node: Sdk) -> None:
    call_id = str(uuid.uuid4())
    assert node.send("POST", "/echo", {"message": "x"}, call_id=call_id).status_code == 200
    response = node.send("POST", "/echo", {"message": "x"}, call_id=call_id)
    assert response.status_code == 400
    assert node.error(response)["type"] == "partner_request_already_done"


def test_accept_language_picks_japanese(node: Sdk) -> None:
    response = node.send(
        "GET", "/transactions/requests/" + str(uuid.uuid4()), headers={"accept-language": "ja-JP"}
    )
    assert node.error(response) == {
        "type": "transaction_not_found",
        "message": "取引が見つかりません",
    }


def test_unknown_route(node: Sdk) -> None:
    status, body = node.fails("GET", "/nothing/here")
    assert (status, body["type"]) == (404, "notfound")


# --------------------------------------------------------------------------- payments


def test_payment_moves_points_first_then_money(node: Sdk, emulator: PokepayEmulator) -> None:
    txn = pay(node, 1500)
    assert (txn["money_amount"], txn["point_amount"]) == (500, 1000)
    assert [t["type"] for t in txn["transfers"]] == ["payment"]
    customer = node.ok("GET", f"/accounts/{SANDBOX.customers['funded'][1]}")
    assert (customer["money_balance"], customer["point_balance"]) == (99_500, 0)
    shop = node.ok("GET", f"/users/{SHOP}/accounts")["rows"][0]
    assert shop["balance"] == 1500


def test_payment_keeps_metadata_and_products(node: Sdk, emulator: PokepayEmulator) -> None:
    txn = pay(
        node,
        100,
        metadata=json.dumps({"order": "1"}),
        products=[{"name": "x", "unit_price": 100, "price": 100, "quantity": 1}],
    )
    stored = emulator.transactions[txn["id"]]
    assert stored.metadata == {"order": "1"}
    assert stored.products[0]["name"] == "x"


@pytest.mark.parametrize(
    ("customer", "amount", "kind"),
    [
        (LOW, 301, "account_balance_not_enough"),
        (SUSPENDED, 1, "account_suspended"),
        (CLOSED, 1, "account_closed"),
        (NO_WALLET, 1, "customer_account_not_found"),
        ("9873a981-2e10-46ad-b4d7-4b94affd52a5", 1, "customer_account_not_found"),
        (FUNDED, 500_001, "account_transfer_limit_exceeded"),
    ],
)
def test_payment_refusals(node: Sdk, customer: str, amount: int, kind: str) -> None:
    status, body = node.fails(
        "POST",
        "/transactions/payment",
        {"shop_id": SHOP, "customer_id": customer, "private_money_id": MONEY, "amount": amount},
    )
    assert (status, body["type"]) == (422, kind)
    assert body["message"]


def test_payment_parameter_errors(node: Sdk) -> None:
    status, body = node.fails(
        "POST", "/transactions/payment", {"shop_id": SHOP, "customer_id": FUNDED, "colour": "red"}
    )
    assert status == 400
    assert body["type"] == "invalid_parameters"
    assert body["errors"] == {
        "missing": ["private_money_id", "amount"],
        "invalid": None,
        "unpermitted": ["colour"],
    }
    base = {"shop_id": SHOP, "customer_id": FUNDED, "private_money_id": MONEY}
    assert node.fails("POST", "/transactions/payment", {**base, "amount": -1})[1]["errors"][
        "invalid"
    ] == ["amount"]
    assert (
        node.fails("POST", "/transactions/payment", {**base, "amount": 1.5})[1]["type"]
        == "transaction_invalid_amount"
    )
    assert node.fails(
        "POST", "/transactions/payment", {**base, "amount": 1, "description": "x" * 201}
    )[1]["errors"]["invalid"] == ["description"]
    assert (
        node.fails(
            "POST", "/transactions/payment", {**base, "amount": 1, "metadata": '{"a": {"b": 1}}'}
        )[1]["type"]
        == "invalid_metadata"
    )
    assert (
        node.fails("POST", "/transactions/payment", {**base, "amount": 1, "metadata": "nope"})[1][
            "type"
        ]
        == "invalid_metadata"
    )
    assert (
        node.fails(
            "POST",
            "/transactions/payment",
            {**base, "amount": 1, "products": [{"name": "x", "colour": 1}]},
        )[1]["type"]
        == "invalid_parameters"
    )
    assert (
        node.fails("POST", "/transactions/payment", {**base, "amount": 1, "strategy": "cheapest"})[
            1
        ]["type"]
        == "invalid_parameters"
    )
    assert node.fails("POST", "/transactions/payment", {**base, "customer_id": "c1", "amount": 1})[
        1
    ]["errors"]["invalid"] == ["customer_id"]
    other = str(uuid.uuid4())
    assert (
        node.fails(
            "POST", "/transactions/payment", {**base, "private_money_id": other, "amount": 1}
        )[1]["type"]
        == "private_money_not_found"
    )
    assert (
        node.fails("POST", "/transactions/payment", {**base, "shop_id": FUNDED, "amount": 1})[1][
            "type"
        ]
        == "shop_account_not_found"
    )


def test_request_id_replay_and_conflict(node: Sdk, emulator: PokepayEmulator) -> None:
    request_id = str(uuid.uuid4())
    first = pay(node, 700, request_id=request_id)
    again = pay(node, 700, request_id=request_id)
    assert again["id"] == first["id"]
    assert len(emulator.transactions) == 1
    found = node.ok("GET", f"/transactions/requests/{request_id}")
    assert found["id"] == first["id"]
    # Documented: the existing transaction comes back whatever the new request says...
    assert pay(node, 701, request_id=request_id)["id"] == first["id"]
    assert len(emulator.transactions) == 1
    # ...and only another user's transaction is a conflict.
    params = {
        "shop_id": SHOP,
        "customer_id": LOW,
        "private_money_id": MONEY,
        "amount": 700,
        "request_id": request_id,
    }
    status, body = node.fails("POST", "/transactions/payment", params)
    assert (status, body["type"]) == (422, "request_id_conflict")


def test_unknown_request_id_is_422(node: Sdk) -> None:
    status, body = node.fails("GET", f"/transactions/requests/{uuid.uuid4()}")
    assert (status, body["type"]) == (422, "transaction_not_found")


def test_unknown_transaction_is_404(node: Sdk) -> None:
    status, body = node.fails("GET", f"/transactions/{uuid.uuid4()}")
    assert (status, body["type"]) == (404, "notfound")


def test_refund_once(node: Sdk) -> None:
    txn = pay(node, 1500)
    refunded = node.ok("POST", f"/transactions/{txn['id']}/refund", {"description": "返品"})
    assert refunded["is_modified"] is True
    assert [t["type"] for t in refunded["transfers"]] == ["payment", "refund-payment"]
    customer = node.ok("GET", f"/accounts/{SANDBOX.customers['funded'][1]}")
    assert (customer["money_balance"], customer["point_balance"]) == (100_000, 1_000)
    status, body = node.fails("POST", f"/transactions/{txn['id']}/refund")
    assert (status, body) == (
        422,
        {"type": "transaction_already_refunded", "message": "Transaction already refunded."},
    )
    assert (
        node.fails("POST", f"/transactions/{uuid.uuid4()}/refund")[1]["type"]
        == "transaction_not_found"
    )


def test_topup_and_its_refund(node: Sdk) -> None:
    params = {"shop_id": SHOP, "customer_id": LOW, "private_money_id": MONEY}
    assert (
        node.fails("POST", "/transactions/topup", params)[1]["type"]
        == "invalid_parameter_both_point_and_money_are_zero"
    )
    txn = node.ok(
        "POST", "/transactions/topup", {**params, "money_amount": 1000, "point_amount": 50}
    )
    assert (txn["type"], txn["amount"]) == ("topup", 1050)
    assert node.fails("POST", "/transactions/topup", {**params, "money_amount": 999_999})[1][
        "type"
    ] == ("account_money_topup_transfer_limit_exceeded")
    assert node.fails(
        "POST", "/transactions/topup", {**params, "money_amount": 500_000, "point_amount": 500_000}
    )[1]["type"] == ("account_balance_exceeded")
    pay(node, 1300, customer=LOW)
    status, body = node.fails("POST", f"/transactions/{txn['id']}/refund")
    assert (status, body["type"]) == (422, "account_balance_not_enough")


# --------------------------------------------------------------------------- cashtrays


def create_tray(sdk: Sdk, amount: int = -1500, **extra: Any) -> Any:
    return sdk.ok(
        "POST",
        "/cashtrays",
        {"private_money_id": MONEY, "shop_id": SHOP, "amount": amount, **extra},
    )


def control(emulator: PokepayEmulator, action: str, **params: Any) -> dict[str, Any]:
    return asyncio.run(emulator.control(action, params))


def scan(emulator: PokepayEmulator, tray_id: str, **params: Any) -> dict[str, Any]:
    return control(emulator, "scan_cashtray", cashtray_id=tray_id, **params)


def test_cashtray_defaults(node: Sdk, emulator: PokepayEmulator) -> None:
    tray = create_tray(node, description="ランチ")
    assert tray["amount"] == -1500
    assert tray["canceled_at"] is None
    assert datetime.fromisoformat(tray["expires_at"]) == emulator.now + timedelta(seconds=1800)
    assert tray["token"] == f"http://127.0.0.1/pokepay/web/cashtrays/{tray['id']}"
    got = node.ok("GET", f"/cashtrays/{tray['id']}")
    assert got["attempt"] is None
    assert got["transaction"] is None
    assert (
        node.fails("POST", "/cashtrays", {"private_money_id": MONEY, "shop_id": SHOP, "amount": 0})[
            1
        ]["type"]
        == "invalid_parameters"
    )
    assert (
        node.fails(
            "POST", "/cashtrays", {"private_money_id": MONEY, "shop_id": FUNDED, "amount": -1}
        )[1]["type"]
        == "shop_user_not_found"
    )
    other = str(uuid.uuid4())
    assert (
        node.fails(
            "POST", "/cashtrays", {"private_money_id": other, "shop_id": SHOP, "amount": -1}
        )[1]["type"]
        == "account_not_found"
    )
    assert node.fails("GET", f"/cashtrays/{uuid.uuid4()}")[0] == 404


def test_cashtray_scan_is_one_shot(node: Sdk, emulator: PokepayEmulator) -> None:
    tray = create_tray(node, expires_in=60)
    result = scan(emulator, tray["id"])
    assert result["status_code"] == 200
    assert result["transaction_id"]
    got = node.ok("GET", f"/cashtrays/{tray['id']}")
    assert got["attempt"]["status_code"] == 200
    assert got["attempt"]["error_type"] == ""
    assert got["transaction"]["id"] == result["transaction_id"]
    assert got["transaction"]["amount"] == 1500
    second = scan(emulator, tray["id"], customer_id=LOW)
    assert second["error_type"] == "cashtray_already_proceed"
    assert node.ok("GET", f"/cashtrays/{tray['id']}")["attempt"] == got["attempt"]
    status, body = node.fails("DELETE", f"/cashtrays/{tray['id']}")
    assert (status, body["type"]) == (422, "cashtray_already_proceed")


def test_cashtray_scan_by_token(node: Sdk, emulator: PokepayEmulator) -> None:
    tray = create_tray(node)
    assert control(emulator, "scan_cashtray", token=tray["token"])["status_code"] == 200


@pytest.mark.parametrize("kind", SCAN_ERRORS)
def test_forced_scan_errors_are_recorded(node: Sdk, emulator: PokepayEmulator, kind: str) -> None:
    tray = create_tray(node)
    result = scan(emulator, tray["id"], error=kind)
    assert (result["status_code"], result["error_type"]) == (422, kind)
    got = node.ok("GET", f"/cashtrays/{tray['id']}")
    assert got["attempt"]["error_type"] == kind
    assert got["attempt"]["error_message"]
    assert got["transaction"] is None


@pytest.mark.parametrize(
    ("customer", "kind"),
    [
        (LOW, "account_balance_not_enough"),
        (SUSPENDED, "account_suspended"),
        (NO_WALLET, "account_not_found"),
    ],
)
def test_natural_scan_errors(
    node: Sdk, emulator: PokepayEmulator, customer: str, kind: str
) -> None:
    tray = create_tray(node)
    assert (scan(emulator, tray["id"], customer_id=customer))["error_type"] == kind


def test_cancel_then_scan(node: Sdk, emulator: PokepayEmulator) -> None:
    tray = create_tray(node)
    canceled = node.ok("DELETE", f"/cashtrays/{tray['id']}")
    assert canceled["canceled_at"] is not None
    assert (
        node.fails("DELETE", f"/cashtrays/{tray['id']}")[1]["type"] == "cashtray_already_canceled"
    )
    assert (scan(emulator, tray["id"]))["error_type"] == "cashtray_already_canceled"
    assert (
        node.ok("GET", f"/cashtrays/{tray['id']}")["attempt"]["error_type"]
        == "cashtray_already_canceled"
    )


def test_expiry_follows_the_sandbox_clock(
    node: Sdk, emulator: PokepayEmulator, sandbox_clock: SandboxClock
) -> None:
    tray = create_tray(node, expires_in=60)
    emulator.wall_clock = sandbox_clock.now
    sandbox_clock.advance(timedelta(seconds=61))
    assert node.fails("DELETE", f"/cashtrays/{tray['id']}")[1]["type"] == "cashtray_expired"
    assert (
        node.fails("PATCH", f"/cashtrays/{tray['id']}", {"amount": -1})[1]["type"]
        == "cashtray_expired"
    )
    assert (scan(emulator, tray["id"]))["error_type"] == "cashtray_expired"


def test_update_cashtray(node: Sdk) -> None:
    tray = create_tray(node)
    updated = node.ok(
        "PATCH",
        f"/cashtrays/{tray['id']}",
        {"amount": -2000, "description": "new", "expires_in": 10},
    )
    assert (updated["amount"], updated["description"]) == (-2000, "new")


def test_transaction_with_cashtray_api(node: Sdk) -> None:
    tray = create_tray(node, amount=-100)
    request_id = str(uuid.uuid4())
    params = {"cashtray_id": tray["id"], "customer_id": FUNDED, "request_id": request_id}
    txn = node.ok("POST", "/transactions/cashtray", params)
    assert txn["amount"] == 100
    assert node.ok("POST", "/transactions/cashtray", params)["id"] == txn["id"]
    assert node.fails(
        "POST", "/transactions/cashtray", {**params, "request_id": str(uuid.uuid4())}
    )[1]["type"] == ("cashtray_already_proceed")
    assert node.fails(
        "POST",
        "/transactions/cashtray",
        {**params, "cashtray_id": str(uuid.uuid4()), "request_id": None},
    )[1]["type"] == ("cashtray_not_found")
    topup_tray = create_tray(node, amount=500)
    assert (
        node.ok(
            "POST", "/transactions/cashtray", {"cashtray_id": topup_tray["id"], "customer_id": LOW}
        )["type"]
        == "topup"
    )


def test_web_page(node: Sdk, client: Any) -> None:
    tray = create_tray(node)
    path = tray["token"].removeprefix("http://127.0.0.1")
    page = client.get(path)
    assert "pending" in page.text
    assert "¥1,500" in page.text
    paid = client.post(path + "/scan")
    assert "succeeded" in paid.text
    assert client.get("/pokepay/web/cashtrays/nope").status_code == 404
    assert client.post("/pokepay/web/cashtrays/nope/scan").status_code == 404


# --------------------------------------------------------------------------- controls and host


def test_controls(emulator: PokepayEmulator) -> None:
    shop = control(emulator, "account")
    assert shop["id"] == SANDBOX.shop_account_id
    topped = control(emulator, "topup", customer_id=LOW, money_amount=700, point_amount=5)
    assert (topped["money_balance"], topped["point_balance"]) == (1000, 5)
    suspended = control(emulator, "set_account_status", customer_id=FUNDED, status="suspended")
    assert suspended["status"] == "suspended"
    assert suspended["is_suspended"] is True
    with pytest.raises(ControlError):
        control(emulator, "set_account_status", customer_id=FUNDED, status="gone")
    with pytest.raises(ControlError):
        control(emulator, "topup", customer_id=NO_WALLET, money_amount=1)
    with pytest.raises(ControlError):
        control(emulator, "topup", money_amount=-1)
    with pytest.raises(ControlError):
        control(emulator, "scan_cashtray", cashtray_id="nope")
    with pytest.raises(ControlError) as info:
        control(emulator, "dance")
    assert info.value.status == 404


def test_forced_error_must_be_documented(node: Sdk, emulator: PokepayEmulator) -> None:
    tray = create_tray(node)
    with pytest.raises(ControlError):
        scan(emulator, tray["id"], error="made_up")


def test_ledger_and_reset(node: Sdk, emulator: PokepayEmulator) -> None:
    request_id = str(uuid.uuid4())
    txn = pay(node, 800, request_id=request_id)
    node.ok("POST", f"/transactions/{txn['id']}/refund")
    (entry,) = emulator.ledger()
    assert (entry.kind, entry.id, entry.key, entry.amount, entry.refunded, entry.status) == (
        "payment",
        txn["id"],
        request_id,
        800,
        800,
        "refunded",
    )
    emulator.reset()
    assert emulator.ledger() == []
    assert emulator.wallets[SANDBOX.customers["funded"][1]].money == 100_000


def test_credentials(emulator: PokepayEmulator) -> None:
    creds = emulator.credentials()
    assert creds["base_url"] == "http://127.0.0.1/pokepay"
    assert creds["client_id"] == SANDBOX.client_id
    assert len(creds["client_secret"]) == 43
    assert creds["customers"]["funded"] == FUNDED
    assert emulator.account_settings()["provider"] == "pokepay"
    assert PokepayProvider.emulator() is PokepayEmulator
    assert PokepayEmulator.name == PokepayProvider.name


def test_balances_and_pages(node: Sdk) -> None:
    balances = node.ok("GET", f"/accounts/{SANDBOX.customers['funded'][1]}/balances")
    assert balances["rows"] == [
        {"expires_at": None, "money_amount": 100_000, "point_amount": 1_000}
    ]
    assert node.fails("GET", f"/accounts/{uuid.uuid4()}/balances")[0] == 404
    assert node.fails("GET", f"/accounts/{uuid.uuid4()}")[0] == 404
    assert node.fails("GET", f"/users/{uuid.uuid4()}/accounts")[0] == 404
    page = node.ok("GET", f"/users/{SHOP}/accounts", {"page": 2, "per_page": 1})
    assert page["rows"] == []
    assert page["pagination"]["has_prev"] is True


# --------------------------------------------------------------------------- documented extras


def test_point_back_campaign_nets_out_of_amount(node: Sdk, emulator: PokepayEmulator) -> None:
    control(emulator, "set_campaign", percent=5)
    txn = pay(node, 1500)  # 1,000 points then 500 money; 75 campaign points
    assert (txn["money_amount"], txn["raw_point_amount"]) == (500, 1000)
    assert txn["campaign_point_amount"] == 75
    # partner.yaml: for a payment, point_amount = raw_point_amount - campaign_point_amount,
    # and amount = money + points.
    assert txn["point_amount"] == 1000 - 75
    assert txn["amount"] == 500 + 925
    assert [t["type"] for t in txn["transfers"]] == ["payment", "campaign-topup"]
    customer = node.ok("GET", f"/accounts/{SANDBOX.customers['funded'][1]}")
    assert customer["point_balance"] == 75
    refunded = node.ok("POST", f"/transactions/{txn['id']}/refund")
    assert [t["type"] for t in refunded["transfers"]] == [
        "payment",
        "campaign-topup",
        "refund-payment",
        "refund-campaign",
    ]
    customer = node.ok("GET", f"/accounts/{SANDBOX.customers['funded'][1]}")
    assert (customer["money_balance"], customer["point_balance"]) == (100_000, 1_000)
    control(emulator, "set_campaign", points=30)
    assert pay(node, 100)["campaign_point_amount"] == 30
    control(emulator, "set_campaign")
    assert pay(node, 100)["campaign_point_amount"] == 0


def test_coupon_discount_and_its_refund(node: Sdk, emulator: PokepayEmulator) -> None:
    coupon = control(emulator, "add_coupon", discount_amount=200)
    txn = pay(node, 1500, coupon_id=coupon["coupon_id"], strategy="money-only")
    assert txn["money_amount"] == 1300
    assert [t["type"] for t in txn["transfers"]] == ["payment", "use-coupon"]
    refunded = node.ok("POST", f"/transactions/{txn['id']}/refund")
    assert [t["type"] for t in refunded["transfers"]][-2:] == ["refund-payment", "refund-coupon"]
    params = {"shop_id": SHOP, "customer_id": FUNDED, "private_money_id": MONEY, "amount": 10}
    status, body = node.fails(
        "POST", "/transactions/payment", {**params, "coupon_id": str(uuid.uuid4())}
    )
    assert (status, body["type"]) == (422, "coupon_not_found")


def test_request_ids_are_purged_after_the_retention(
    node: Sdk, emulator: PokepayEmulator, sandbox_clock: SandboxClock
) -> None:
    request_id = str(uuid.uuid4())
    first = pay(node, 700, request_id=request_id)
    sandbox_clock.advance(timedelta(hours=23))
    assert node.ok("GET", f"/transactions/requests/{request_id}")["id"] == first["id"]
    sandbox_clock.advance(timedelta(hours=2))  # past the default day
    status, body = node.fails("GET", f"/transactions/requests/{request_id}")
    assert (status, body["type"]) == (422, "transaction_not_found")
    # A purged id no longer prevents a second payment.
    assert pay(node, 700, request_id=request_id)["id"] != first["id"]
    assert len(emulator.transactions) == 2
    control(emulator, "set_request_id_retention", seconds=None)
    sandbox_clock.advance(timedelta(days=400))
    assert node.ok("GET", f"/transactions/requests/{request_id}")["id"] != first["id"]


def test_envelope_controls(
    node: Sdk, emulator: PokepayEmulator, sandbox_clock: SandboxClock
) -> None:
    assert control(emulator, "set_envelope", expire_next=2)["expire_next"] == 2
    for _ in range(2):
        response = node.send("POST", "/echo", {"message": "x"})
        assert node.error(response)["type"] == "partner_request_expired"
    assert node.send("POST", "/echo", {"message": "x"}).status_code == 200
    # The freshness window is an assumption: it can be changed or switched off.
    old = (sandbox_clock.now() - timedelta(hours=3)).isoformat()
    assert node.send("POST", "/echo", {"message": "x"}, timestamp=old).status_code == 400
    control(emulator, "set_envelope", freshness_seconds=None)
    assert node.send("POST", "/echo", {"message": "x"}, timestamp=old).status_code == 200
    control(emulator, "set_envelope", freshness_seconds=10)
    late = (sandbox_clock.now() - timedelta(seconds=11)).isoformat()
    assert node.send("POST", "/echo", {"message": "x"}, timestamp=late).status_code == 400
    with pytest.raises(ControlError):
        control(emulator, "set_envelope", expire_next=-1)


def test_request_id_must_be_v4_unless_relaxed(node: Sdk, emulator: PokepayEmulator) -> None:
    # "UUID V4フォーマット": whether Pokepay enforces the version is not documented; the
    # emulator does by default and can be told not to.
    v5 = str(uuid.uuid5(uuid.NAMESPACE_URL, "order-1"))
    params = {
        "shop_id": SHOP,
        "customer_id": FUNDED,
        "private_money_id": MONEY,
        "amount": 10,
        "request_id": v5,
    }
    status, body = node.fails("POST", "/transactions/payment", params)
    assert (status, body["type"], body["errors"]["invalid"]) == (
        400,
        "invalid_parameters",
        ["request_id"],
    )
    assert control(emulator, "set_request_id_check", v4_only=False) == {"v4_only": False}
    assert pay(node, 10, request_id=v5)["amount"] == 10
    with pytest.raises(ControlError):
        control(emulator, "set_request_id_check", v4_only="yes")
