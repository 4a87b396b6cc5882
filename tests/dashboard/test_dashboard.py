"""The sandbox dashboard's pages and forms over HTTP (no browser), and DisplayQR pictures."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from paygate import (
    Card,
    Charge,
    ChargeStatus,
    DisplayQR,
    Gateway,
    Konbini,
    KonbiniSlip,
    Money,
    QRCode,
    RetryPolicy,
)
from paygate.sandbox import Sandbox, running, serve_app
from paygate.sandbox._dashboard import parse_duration

PROVIDERS = ["elepay", "payjp", "smaregi", "univapay"]


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    with running(providers=PROVIDERS) as sb:
        yield sb


@pytest.fixture
def client(sandbox: Sandbox) -> Iterator[httpx.Client]:
    sandbox.reset()
    with httpx.Client(base_url=sandbox.url, trust_env=False) as c:
        yield c


@pytest.fixture
def gw(sandbox: Sandbox) -> Iterator[Gateway]:
    accounts = {p: sandbox.account_settings(p) for p in ("elepay", "payjp", "univapay")}
    gateway = Gateway.from_config(
        {"store": "memory://", "accounts": accounts}, retry=RetryPolicy.no_wait()
    )
    yield gateway
    gateway.close()


def _post(client: httpx.Client, path: str, **form: str) -> tuple[bool, str]:
    response = client.post(path, data={"back": "/", **form})
    assert response.status_code == 303, response.text
    query = parse_qs(urlsplit(response.headers["location"]).query)
    return query["ok"] == ["1"], query["msg"][0]


def _konbini(gw: Gateway, key: str) -> Charge:
    return gw.charge(
        "univapay",
        amount=Money.jpy(1200),
        method=Konbini(store="family_mart", customer_name="テスト 花子", phone="0312345678"),
        idempotency_key=key,
    )


def test_root_lists_objects_in_both_languages(client: httpx.Client, gw: Gateway) -> None:
    charge = gw.charge("elepay", amount=Money.jpy(700), method=QRCode(), idempotency_key="d-1")
    assert charge.next_action is not None
    page = client.get("/", params={"lang": "en"})
    assert page.status_code == 200
    assert "Customer actions" in page.text
    code_id = charge.next_action.url.rsplit("/", 1)[-1]
    assert f'id="obj-{code_id}"' in page.text
    assert "¥700" in page.text
    assert page.cookies.get("paygate_lang") == "en"
    client.cookies.clear()
    ja = client.get("/", headers={"Accept-Language": "ja-JP"})
    assert "顧客側の操作" in ja.text


def test_pay_a_konbini_slip_through_the_form(client: httpx.Client, gw: Gateway) -> None:
    charge = _konbini(gw, "d-2")
    slip = client.get(f"/customer/univapay/slip/{charge.provider_ref}")
    assert slip.status_code == 200
    assert isinstance(charge.next_action, KonbiniSlip)
    assert charge.next_action.payment_number
    assert charge.next_action.payment_number in slip.text
    ok, message = _post(
        client,
        "/_dashboard/act",
        provider="univapay",
        action="pay_konbini",
        **{"p.charge_id": charge.provider_ref},
    )
    assert ok, message
    assert gw.status("univapay", charge.id).status is ChargeStatus.SUCCEEDED
    # Paying again is refused by the emulator, and the message says why.
    ok, message = _post(
        client,
        "/_dashboard/act",
        provider="univapay",
        action="pay_konbini",
        **{"p.charge_id": charge.provider_ref},
    )
    assert not ok
    assert "successful" in message


def test_expire_moves_the_clock_past_the_deadline(
    client: httpx.Client, gw: Gateway, sandbox: Sandbox
) -> None:
    charge = gw.charge("elepay", amount=Money.jpy(500), method=QRCode(), idempotency_key="d-3")
    assert charge.next_action is not None
    assert charge.next_action.expires_at is not None
    ok, _ = _post(client, "/_dashboard/clock", until=charge.next_action.expires_at.isoformat())
    assert ok
    assert sandbox.now() > charge.next_action.expires_at
    # The code ran out (which paygate reads as expired or canceled, by its own clock).
    assert gw.status("elepay", charge.id).status in (ChargeStatus.EXPIRED, ChargeStatus.CANCELED)
    code_id = charge.next_action.url.rsplit("/", 1)[-1]
    assert f'id="obj-{code_id}" data-status="pending"' not in client.get("/").text


def test_clock_faults_and_generic_control(client: httpx.Client, sandbox: Sandbox) -> None:
    before = sandbox.now()
    ok, _ = _post(client, "/_dashboard/clock", by="1d 2h")
    assert ok
    assert sandbox.now() - before >= timedelta(days=1, hours=2)
    assert not _post(client, "/_dashboard/clock", by="soon")[0]

    ok, message = _post(
        client, "/_dashboard/faults", op="add", rule='{"provider": "elepay", "kind": "status"}'
    )
    assert ok, message
    rules = sandbox.faults()
    assert len(rules) == 1
    assert rules[0]["id"] in client.get("/").text
    assert _post(client, "/_dashboard/faults", op="remove", id=rules[0]["id"])[0]
    assert sandbox.faults() == []
    assert not _post(client, "/_dashboard/faults", op="add", rule='{"kind": "nope"}')[0]

    ok, message = _post(
        client, "/_dashboard/act", provider="elepay", action="rate_limit", json='{"count": 2}'
    )
    assert ok, message
    assert "throttled" in message
    assert not _post(client, "/_dashboard/act", provider="elepay", action="no_such")[0]


def test_void_and_dispose_at_the_register(client: httpx.Client, sandbox: Sandbox) -> None:
    from paygate import PosLine, PosSale
    from paygate_smaregi._emulator import SmaregiEmulator

    accounts = {"smaregi": sandbox.account_settings("smaregi")}
    gw = Gateway.from_config({"store": "memory://", "accounts": accounts})
    try:
        sales = [
            gw.charge(
                "smaregi",
                amount=Money.jpy(500),
                method=PosSale(
                    store_id=SmaregiEmulator.STORE_ID,
                    terminal_id=SmaregiEmulator.TERMINAL_ID,
                    lines=(PosLine(product_id="8000001", unit_price=500),),
                    slip_number=f"DASH-{n}",
                ),
                idempotency_key=f"d-pos-{n}",
            )
            for n in (1, 2)
        ]
        page = client.get("/", params={"lang": "ja"}).text
        assert "レジで取消" in page
        assert "レジで返品取消" in page
        for sale, action in zip(sales, ("void_transaction", "dispose_transaction"), strict=True):
            assert sale.status is ChargeStatus.SUCCEEDED
            ok, message = _post(
                client,
                "/_dashboard/act",
                provider="smaregi",
                action=action,
                **{"p.transaction_head_id": sale.provider_ref},
            )
            assert ok, message
            assert f'id="obj-{sale.provider_ref}" data-status="canceled"' in client.get("/").text
        ok, message = _post(
            client,
            "/_dashboard/act",
            provider="smaregi",
            action="void_transaction",
            **{"p.transaction_head_id": "999999"},
        )
        assert not ok
        assert "unknown" in message
    finally:
        gw.close()


def test_webhook_log_and_replay(client: httpx.Client, gw: Gateway, sandbox: Sandbox) -> None:
    seen: list[bytes] = []

    async def hook(request: Request) -> Response:
        seen.append(await request.body())
        return Response(status_code=500 if len(seen) == 1 else 200)

    receiver = Starlette(routes=[Route("/hook", hook, methods=["POST"])])
    with serve_app(receiver) as url:
        ok, _ = _post(
            client, "/_dashboard/webhooks", op="url", provider="univapay", url=f"{url}/hook"
        )
        assert ok
        _konbini(gw, "d-4")
        sandbox.flush_webhooks()
        log = sandbox.webhook_log()
        assert log[0].status_code == 500
        assert log[0].outcome == "retrying"
        page = client.get("/").text
        assert f'id="delivery-{log[0].delivery_id}"' in page
        assert "500" in page
        ok, message = _post(
            client, "/_dashboard/webhooks", op="replay", delivery_id=str(log[0].delivery_id)
        )
        assert ok, message
        assert len(seen) == 2
        assert seen[1] == seen[0]
        assert not _post(client, "/_dashboard/webhooks", op="replay", delivery_id="9999")[0]
        sandbox.set_webhook_url(None, provider="univapay")


def test_a_form_from_another_site_is_refused(client: httpx.Client) -> None:
    response = client.post(
        "/_dashboard/reset", data={"back": "/"}, headers={"Origin": "https://evil.example"}
    )
    assert response.status_code == 403


def test_unknown_customer_page(client: httpx.Client) -> None:
    assert client.get("/customer/elepay/easyqr/nope").status_code == 404
    assert client.get("/customer/nobody/x/y").status_code == 404


def test_parse_duration() -> None:
    assert parse_duration("90s") == timedelta(seconds=90)
    assert parse_duration("15m") == timedelta(minutes=15)
    assert parse_duration("1w") == timedelta(days=7)
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration("2 fortnights")


def test_display_qr_pictures() -> None:
    qr = DisplayQR(url="https://pay.example/c/1")
    svg = qr.svg()
    assert svg.startswith("<svg")
    assert svg.endswith("</svg>")
    assert 'width="132"' in svg  # 25 modules + 2 x 4 quiet zone, 4 px each
    assert 'width="66"' in qr.svg(scale=2)
    png = qr.png(scale=2)
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    assert int.from_bytes(png[16:20], "big") == 66  # IHDR width


def test_payjp_three_d_secure_page(client: httpx.Client, gw: Gateway) -> None:
    charge = gw.charge(
        "payjp",
        amount=Money.jpy(3000),
        method=Card(token="tok_success", three_d_secure=True),
        idempotency_key="d-5",
    )
    assert charge.status is ChargeStatus.REQUIRES_ACTION
    assert "Pass 3-D Secure" in client.get("/", params={"lang": "en"}).text
    page = client.get(f"/customer/payjp/3ds/{charge.provider_ref}", params={"lang": "ja"})
    assert "3-D セキュア本人認証" in page.text
    assert "¥3,000" in page.text
    ok, message = _post(
        client,
        "/_dashboard/act",
        provider="payjp",
        action="tds",
        **{"p.charge": charge.provider_ref, "p.result": "verified"},
    )
    assert ok, message
    assert gw.status("payjp", charge.id).status is ChargeStatus.SUCCEEDED


def test_every_reader_finds_the_tables_it_reads(caplog: pytest.LogCaptureFixture) -> None:
    """The dashboard reads the shipped emulators' tables as instance attributes: an
    emulator that moves them makes this fail instead of falling back to its ledger."""
    from paygate.sandbox._dashboard import _READERS, _rows

    with running(providers=list(_READERS)) as sb:
        gateway = Gateway.from_config(
            {"store": "memory://", "accounts": {"payjp": sb.account_settings("payjp")}},
            retry=RetryPolicy.no_wait(),
        )
        with gateway:
            gateway.charge(
                "payjp",
                amount=Money.jpy(1000),
                method=Card(token="tok_success", three_d_secure=True),
                idempotency_key="dash-read",
            )
        for name, emulator in sb.host.emulators.items():
            reader = _READERS[name]
            reader(emulator, emulator.now)  # raises if a table moved
            with caplog.at_level("WARNING", logger="paygate.sandbox"):
                _rows(name, emulator, emulator.now)
            assert "cannot read" not in caplog.text
        (row,) = _READERS["payjp"](sb.host.emulators["payjp"], sb.host.clock.now())
        assert row.page.startswith("/customer/payjp/3ds/")
