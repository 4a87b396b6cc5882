"""The control API: customer actions, clock, reset, ledger, credentials, errors."""

from __future__ import annotations

import tomllib
from datetime import timedelta

import httpx
import pytest

from paygate.sandbox import ControlError, LedgerEntry, Sandbox, SandboxError

SECRET = "sk_test_toy_0123456789"


def create(
    sandbox: Sandbox, http: httpx.Client, auth: dict[str, str], amount: int = 1200, **headers: str
) -> dict:
    response = http.post(
        sandbox.base_url("toypay") + "/v1/charges",
        json={"amount": amount},
        headers={**auth, **headers},
    )
    assert response.status_code in (200, 201), response.text
    return response.json()


def fetch(
    sandbox: Sandbox,
    http: httpx.Client,
    auth: dict[str, str],
    charge_id: str,
    provider: str = "toypay",
):
    return http.get(f"{sandbox.base_url(provider)}/v1/charges/{charge_id}", headers=auth)


def test_health_lists_mounted_providers(sandbox: Sandbox) -> None:
    health = sandbox.health()
    assert health["status"] == "ok"
    assert sandbox.providers() == ["otherpay", "toypay"]
    assert health["url"] == sandbox.url


def test_emulators_are_mounted_under_their_name(
    sandbox: Sandbox, http: httpx.Client, auth: dict[str, str]
) -> None:
    charge = create(sandbox, http, auth)
    assert fetch(sandbox, http, auth, charge["id"]).json()["status"] == "pending"
    # Each provider has its own state behind its own prefix.
    assert fetch(sandbox, http, auth, charge["id"], provider="otherpay").status_code == 404


def test_control_action_drives_the_customer_side(
    sandbox: Sandbox, http: httpx.Client, auth: dict[str, str]
) -> None:
    charge = create(sandbox, http, auth)
    result = sandbox.control("toypay", "pay", charge_id=charge["id"])
    assert result["charge"]["status"] == "succeeded"
    assert fetch(sandbox, http, auth, charge["id"]).json()["status"] == "succeeded"


def test_control_errors_keep_the_emulator_status(
    sandbox: Sandbox, http: httpx.Client, auth: dict[str, str]
) -> None:
    charge = create(sandbox, http, auth)
    sandbox.control("toypay", "pay", charge_id=charge["id"])
    with pytest.raises(ControlError) as conflict:
        sandbox.control("toypay", "pay", charge_id=charge["id"])
    assert conflict.value.status == 409
    assert "succeeded" in str(conflict.value)
    with pytest.raises(SandboxError) as missing:
        sandbox.control("toypay", "pay", charge_id="ch_nope")
    assert missing.value.status == 404
    with pytest.raises(SandboxError) as unknown_action:
        sandbox.control("toypay", "dance")
    assert unknown_action.value.status == 404
    assert "dance" in str(unknown_action.value)
    with pytest.raises(SandboxError) as unknown_provider:
        sandbox.control("nopay", "pay")
    assert unknown_provider.value.status == 404


def test_control_api_answers_json_errors(sandbox: Sandbox, http: httpx.Client) -> None:
    not_object = http.post(f"{sandbox.url}/_sandbox/toypay/pay", json=[1, 2])
    assert not_object.status_code == 400
    assert "JSON object" in not_object.json()["error"]
    unknown = http.get(f"{sandbox.url}/_sandbox/nothing/here/at/all")
    assert unknown.status_code == 404
    assert "error" in unknown.json()
    bad_advance = http.post(f"{sandbox.url}/_sandbox/clock/advance", json={"seconds": -5})
    assert bad_advance.status_code == 400


def test_clock_advance_reaches_emulators(
    sandbox: Sandbox, http: httpx.Client, auth: dict[str, str]
) -> None:
    charge = create(sandbox, http, auth)
    before = sandbox.now()
    after = sandbox.advance(timedelta(minutes=29))
    assert after - before >= timedelta(minutes=29)
    assert fetch(sandbox, http, auth, charge["id"]).json()["status"] == "pending"
    sandbox.advance(120)  # seconds work too
    assert fetch(sandbox, http, auth, charge["id"]).json()["status"] == "expired"
    seen = sandbox.host.emulator("toypay").advanced_to  # type: ignore[attr-defined]
    assert len(seen) == 2
    assert seen[-1] >= after + timedelta(minutes=2)
    assert sandbox.host.emulator("otherpay").advanced_to  # type: ignore[attr-defined]


def test_full_reset_clears_state_faults_and_clock(
    sandbox: Sandbox, http: httpx.Client, auth: dict[str, str]
) -> None:
    charge = create(sandbox, http, auth)
    sandbox.fault("toypay", "status")
    advanced = sandbox.advance(timedelta(days=3))
    sandbox.reset()
    assert fetch(sandbox, http, auth, charge["id"]).status_code == 404
    assert sandbox.ledger() == {"otherpay": [], "toypay": []}
    assert sandbox.faults() == []
    assert sandbox.now() < advanced
    # Ids start over, so runs are repeatable.
    assert create(sandbox, http, auth)["id"] == charge["id"]


def test_reset_of_one_provider_leaves_the_others(
    sandbox: Sandbox, http: httpx.Client, auth: dict[str, str]
) -> None:
    toy = create(sandbox, http, auth)
    other = http.post(
        sandbox.base_url("otherpay") + "/v1/charges", json={"amount": 5}, headers=auth
    ).json()
    sandbox.fault("toypay", "status")
    sandbox.fault("otherpay", "status")
    sandbox.reset("toypay")
    assert fetch(sandbox, http, auth, toy["id"]).status_code == 404
    assert [f["provider"] for f in sandbox.faults()] == ["otherpay"]
    sandbox.clear_faults()
    assert fetch(sandbox, http, auth, other["id"], provider="otherpay").status_code == 200
    with pytest.raises(SandboxError):
        sandbox.reset("nopay")


def test_ledger_lists_every_emulators_objects(
    sandbox: Sandbox, http: httpx.Client, auth: dict[str, str]
) -> None:
    charge = create(sandbox, http, auth, amount=700, **{"Idempotency-Key": "order-7"})
    ledger = sandbox.ledger()
    assert ledger["otherpay"] == []
    assert ledger["toypay"] == [
        LedgerEntry(kind="charge", id=charge["id"], key="order-7", amount=700, status="pending")
    ]


def test_credentials_and_accounts_point_at_the_sandbox(sandbox: Sandbox) -> None:
    creds = sandbox.credentials()
    assert creds["toypay"] == {"secret_key": SECRET, "base_url": sandbox.base_url("toypay")}
    assert sandbox.base_url("otherpay") == f"{sandbox.url}/otherpay"
    assert sandbox.accounts()["otherpay"]["base_url"] == sandbox.base_url("otherpay")
    assert sandbox.account_settings("toypay") == {
        "provider": "toypay",
        "base_url": sandbox.base_url("toypay"),
        "secret_key": SECRET,
    }
    with pytest.raises(SandboxError):
        sandbox.account_settings("nopay")
    config = tomllib.loads(sandbox.config_toml(store="memory://"))
    assert config["store"] == "memory://"
    assert config["accounts"]["toypay"]["secret_key"] == SECRET
