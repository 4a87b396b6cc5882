"""Fault injection: dropped responses after commit, resets, 5xx, 429, latency, seeds."""

from __future__ import annotations

import random

import httpx
import pytest

from paygate.sandbox import Sandbox, SandboxError


def charges_url(sandbox: Sandbox, provider: str = "toypay") -> str:
    return sandbox.base_url(provider) + "/v1/charges"


def test_drop_after_commit_runs_the_handler_but_breaks_the_response(
    sandbox: Sandbox, http: httpx.Client, auth: dict[str, str]
) -> None:
    sandbox.fault("toypay", "drop_after_commit", path="^/v1/charges$", method="POST")
    headers = {**auth, "Idempotency-Key": "order-1042"}
    with pytest.raises(httpx.TransportError):
        http.post(charges_url(sandbox), json={"amount": 1200}, headers=headers)
    # The provider committed: the charge exists although the client never heard of it.
    [entry] = sandbox.ledger()["toypay"]
    assert (entry.key, entry.amount, entry.status) == ("order-1042", 1200, "pending")
    # The fault was for one call: a keyed retry now gets the same charge back.
    retry = http.post(charges_url(sandbox), json={"amount": 1200}, headers=headers)
    assert retry.status_code == 200
    assert retry.json()["id"] == entry.id
    assert len(sandbox.ledger()["toypay"]) == 1


def test_reset_fault_breaks_the_connection_without_running_the_handler(
    sandbox: Sandbox, http: httpx.Client, auth: dict[str, str]
) -> None:
    sandbox.fault("toypay", "reset", path="/v1/charges")
    with pytest.raises(httpx.TransportError):
        http.post(charges_url(sandbox), json={"amount": 1200}, headers=auth)
    assert sandbox.ledger()["toypay"] == []


def test_status_fault_uses_the_emulators_error_body(
    sandbox: Sandbox, http: httpx.Client, auth: dict[str, str]
) -> None:
    sandbox.fault("toypay", "status", status=503, count=2)
    for _ in range(2):
        response = http.post(charges_url(sandbox), json={"amount": 1}, headers=auth)
        assert response.status_code == 503
        assert response.json() == {"error": {"code": "toy_unavailable", "status": 503}}
    assert http.post(charges_url(sandbox), json={"amount": 1}, headers=auth).status_code == 201
    assert len(sandbox.ledger()["toypay"]) == 1


def test_status_fault_without_a_hook_gets_a_generic_body(
    sandbox: Sandbox, http: httpx.Client, auth: dict[str, str]
) -> None:
    rule = sandbox.fault("otherpay", "status")
    response = http.get(charges_url(sandbox, "otherpay") + "/ch_1", headers=auth)
    assert response.status_code == 500
    assert response.json()["error"]["type"] == "sandbox_fault"
    assert rule["id"] in response.json()["error"]["message"]


def test_rate_limit_fault_sends_retry_after(
    sandbox: Sandbox, http: httpx.Client, auth: dict[str, str]
) -> None:
    sandbox.fault("toypay", "rate_limit", retry_after=7)
    response = http.post(charges_url(sandbox), json={"amount": 1}, headers=auth)
    assert response.status_code == 429
    assert response.headers["Retry-After"] == "7"
    assert sandbox.ledger()["toypay"] == []


def test_status_fault_may_carry_retry_after(
    sandbox: Sandbox, http: httpx.Client, auth: dict[str, str]
) -> None:
    sandbox.fault("otherpay", "status", status=503, retry_after=2)
    response = http.get(charges_url(sandbox, "otherpay") + "/x", headers=auth)
    assert (response.status_code, response.headers["Retry-After"]) == (503, "2")


def test_latency_fault_still_answers(
    sandbox: Sandbox, http: httpx.Client, auth: dict[str, str]
) -> None:
    sandbox.fault("toypay", "latency", latency_ms=5)
    response = http.post(charges_url(sandbox), json={"amount": 1}, headers=auth)
    assert response.status_code == 201
    assert sandbox.faults()[0]["fired"] == 1


def test_faults_match_provider_method_and_path(
    sandbox: Sandbox, http: httpx.Client, auth: dict[str, str]
) -> None:
    sandbox.fault("toypay", "status", method="GET", path=r"^/v1/charges/")
    assert http.post(charges_url(sandbox), json={"amount": 1}, headers=auth).status_code == 201
    other = http.get(charges_url(sandbox, "otherpay") + "/ch_0001", headers=auth)
    assert other.status_code == 404
    hit = http.get(charges_url(sandbox) + "/ch_0001", headers=auth)
    assert hit.status_code == 500
    [rule] = sandbox.faults()
    assert (rule["seen"], rule["fired"], rule["active"]) == (1, 1, False)


def test_control_api_is_never_faulted(sandbox: Sandbox) -> None:
    sandbox.fault("toypay", "status", count=5)
    assert sandbox.health()["status"] == "ok"
    assert sandbox.ledger()["toypay"] == []


def outcomes(sandbox: Sandbox, http: httpx.Client, auth: dict[str, str], n: int) -> list[bool]:
    return [
        http.get(charges_url(sandbox) + "/ch_x", headers=auth).status_code == 500 for _ in range(n)
    ]


def test_probability_faults_repeat_with_the_same_seed(
    sandbox: Sandbox, http: httpx.Client, auth: dict[str, str]
) -> None:
    sandbox.fault("toypay", "status", probability=0.4, seed=1234)
    first = outcomes(sandbox, http, auth, 30)
    sandbox.clear_faults()
    sandbox.fault("toypay", "status", probability=0.4, seed=1234)
    second = outcomes(sandbox, http, auth, 30)
    rng = random.Random(1234)
    assert first == second == [rng.random() < 0.4 for _ in range(30)]
    assert 0 < sum(first) < 30
    sandbox.clear_faults()
    sandbox.fault("toypay", "status", probability=0.4, seed=99)
    assert outcomes(sandbox, http, auth, 30) != first


def test_probability_fault_count_caps_the_hits(
    sandbox: Sandbox, http: httpx.Client, auth: dict[str, str]
) -> None:
    sandbox.fault("toypay", "status", probability=1.0, count=3)
    assert outcomes(sandbox, http, auth, 5) == [True, True, True, False, False]


def test_remove_and_clear_faults(sandbox: Sandbox) -> None:
    keep = sandbox.fault("toypay", "status")
    drop = sandbox.fault("toypay", "rate_limit")
    other = sandbox.fault("otherpay", "reset")
    sandbox.remove_fault(drop["id"])
    assert [f["id"] for f in sandbox.faults()] == [keep["id"], other["id"]]
    sandbox.clear_faults("otherpay")
    assert [f["id"] for f in sandbox.faults()] == [keep["id"]]
    with pytest.raises(SandboxError) as missing:
        sandbox.remove_fault(drop["id"])
    assert missing.value.status == 404


@pytest.mark.parametrize(
    ("params", "needle"),
    [
        ({"kind": "explode"}, "kind"),
        ({"kind": "status", "path": "("}, "path"),
        ({"kind": "latency"}, "latency_ms"),
        ({"kind": "status", "probability": 1.5}, "probability"),
        ({"kind": "status", "status": 42}, "status"),
        ({"kind": "status", "count": 0}, "count"),
    ],
)
def test_invalid_faults_are_refused(sandbox: Sandbox, params: dict, needle: str) -> None:
    with pytest.raises(SandboxError) as refused:
        sandbox.fault("toypay", **params)
    assert refused.value.status == 400
    assert needle in str(refused.value)
    assert sandbox.faults() == []


def test_faults_for_unknown_providers_are_refused(sandbox: Sandbox) -> None:
    with pytest.raises(SandboxError) as refused:
        sandbox.fault("nopay", "status")
    assert refused.value.status == 404


def test_drop_after_commit_also_cuts_off_an_emulator_crash(
    sandbox: Sandbox, http: httpx.Client, auth: dict[str, str]
) -> None:
    crashed = http.post(sandbox.base_url("toypay") + "/v1/boom", headers=auth)
    assert crashed.status_code == 500
    sandbox.fault("toypay", "drop_after_commit", path="^/v1/boom$")
    with pytest.raises(httpx.TransportError):
        http.post(sandbox.base_url("toypay") + "/v1/boom", headers=auth)
    assert sandbox.host.emulator("toypay").booms == 2  # type: ignore[attr-defined]
