"""Cassette tests: every flow, failures included, replayed from ``cassettes/smaregi``.

By default (``--record-mode`` none) nothing is served and the network is blocked: the
gateway's HTTP calls are answered from the cassettes, on both drivers.

Recording (see docs/providers/smaregi.md, "Re-recording cassettes"):

* against the local sandbox: ``uv run pytest providers/smaregi/tests/test_cassettes.py
  --record-mode=rewrite``;
* against Smaregi's own sandbox: the same, with ``PAYGATE_RECORD_REAL=1`` and
  ``PAYGATE_RECORD_CONFIG`` naming a TOML file with a ``smaregi`` account (with
  ``store_id`` and ``terminal_id``). Flows that need emulator-only controls (faults,
  hiding the app payment method, expiring tokens) are skipped then.

The gateway's clock is fixed, so the sale times, ``terminalTranId`` values and lookup
queries are the same on every run. Control calls to the sandbox are never recorded.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import vcr
from pytest_recording.network import blocking_context
from vcr.serializers import yamlserializer

from paygate import (
    AuthenticationError,
    ChargeStatus,
    Money,
    NotFound,
    PermissionDenied,
    PosLine,
    PosSale,
    ProviderRejected,
    ProviderUnavailable,
)
from paygate._driver import AsyncDriver, SyncDriver
from paygate._retry import RetryPolicy
from paygate._stores import open_store
from paygate.adapter import ChargeRef, ChargeRequest, Flow, OpContext
from paygate.sandbox import offline_accounts
from paygate.testing import DRIVERS, Gateways, cassette_secrets, path_matcher
from paygate.testing import scrub_request as paygate_scrub_request
from paygate.testing import scrub_response as paygate_scrub_response
from paygate.testing import vcr_config as paygate_vcr_config
from paygate_smaregi import SmaregiProvider, SmaregiSettings
from paygate_smaregi._emulator import SmaregiEmulator

CASSETTES = Path(__file__).resolve().parents[3] / "cassettes" / "smaregi"
FIXED_NOW = datetime(2025, 3, 1, 1, 0, tzinfo=UTC)  # 10:00 JST
REPLAY_URL = "http://127.0.0.1:8765"


# ------------------------------------------------------------------------- scrubbing


def scrub_request(request: Any) -> Any:
    """paygate's scrubbing; sandbox control calls are never recorded."""
    if "/_sandbox/" in request.uri:
        return None
    return paygate_scrub_request(request)


def scrub_response(response: dict[str, Any]) -> dict[str, Any]:
    """paygate's scrubbing, plus the access token in token answers.

    A token is registered for redaction only once the flow has read it, which is after
    the recorder saw the answer, so it is replaced here by field.
    """
    response = paygate_scrub_response(response)
    headers = response.get("headers", {})
    for name in list(headers):
        if name.lower() == "www-authenticate":
            headers[name] = ["[redacted]"]
    body = response.get("body", {})
    raw = body.get("string") if isinstance(body, dict) else None
    if raw:
        try:
            data = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            data = None
        if isinstance(data, dict) and "access_token" in data:
            data["access_token"] = "[redacted]"
            text = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
            body["string"] = text.encode() if isinstance(raw, bytes) else text
            for name in list(headers):
                if name.lower() == "content-length":
                    headers[name] = [str(len(text.encode()))]
    return response


class QuotedUriYaml:
    """vcrpy's YAML, with every ``uri`` written as a quoted scalar (same data).

    Smaregi's token endpoint ends in ``/token``; unquoted, the next YAML line
    (``  response:``) reads like ``token <value>`` to paygate's bearer-token pattern when
    a whole cassette is scanned. Quoting ends the word; the cassette loads the same.
    """

    _URI = re.compile(r"^(\s+uri: )(\S+)$", re.MULTILINE)

    @classmethod
    def serialize(cls, cassette_dict: dict[str, Any]) -> str:
        text: str = yamlserializer.serialize(cassette_dict)

        def quote(match: re.Match[str]) -> str:
            value = match.group(2)
            if value.startswith(("'", '"')):
                return match.group(0)
            return match.group(1) + "'" + value.replace("'", "''") + "'"

        return cls._URI.sub(quote, text)

    @staticmethod
    def deserialize(cassette_string: str) -> Any:
        return yamlserializer.deserialize(cassette_string)


# ---------------------------------------------------------------------------- target


def real_account() -> dict[str, Any] | None:
    """The Smaregi account of a real-sandbox recording, or None.

    paygate's convention: ``PAYGATE_RECORD_REAL=1`` and the account tables in the TOML
    file named by ``PAYGATE_RECORD_CONFIG`` (``${ENV}`` references are resolved).
    """
    if os.environ.get("PAYGATE_RECORD_REAL") != "1":
        return None
    from paygate._config import _interpolate, _read

    config = _interpolate(_read(os.environ.get("PAYGATE_RECORD_CONFIG", "paygate.toml")), "")
    for table in config.get("accounts", {}).values():
        if table.get("provider") == "smaregi":
            return dict(table)
    pytest.skip("no smaregi account in PAYGATE_RECORD_CONFIG")


class Tape:
    """One cassette test's surroundings: where calls go, and how to record them."""

    def __init__(
        self, *, mode: str, target: str, account: dict[str, Any], sandbox: Any, driver: str
    ) -> None:
        self.mode = mode
        self.target = target  # "replay", "sandbox" or "smaregi"
        self.account = account
        self.sandbox = sandbox
        self.driver = driver
        config = paygate_vcr_config()
        config.update(
            before_record_request=scrub_request,
            before_record_response=scrub_response,
            # pytest-recording's "rewrite" is "start from an empty cassette" (see cassette()).
            record_mode="once" if mode == "rewrite" else mode,
            cassette_library_dir=str(CASSETTES),
            path_transformer=vcr.VCR.ensure_suffix(".yaml"),
        )
        self._vcr = vcr.VCR(serializer="quoted-uri-yaml", **config)
        self._vcr.register_matcher("paygate_path", path_matcher)
        self._vcr.register_serializer("quoted-uri-yaml", QuotedUriYaml)
        self._gateways = Gateways(driver, retry=RetryPolicy.no_wait(), clock=lambda: FIXED_NOW)

    @property
    def recording(self) -> bool:
        return self.mode != "none"

    def cassette(self, name: str) -> Any:
        if self.mode == "rewrite":
            (CASSETTES / f"{name}.yaml").unlink(missing_ok=True)
        return self._vcr.use_cassette(name)

    def check(self, cassette: Any) -> None:
        """On replay, every recorded interaction was asked for, in order."""
        if not self.recording:
            assert cassette.all_played, f"{cassette.play_count} of {len(cassette)} played"

    def needs_sandbox(self) -> None:
        """Skip when recording against Smaregi itself (the flow needs emulator controls)."""
        if self.target == "smaregi":
            pytest.skip("needs the local sandbox's controls")

    def control(self, action: str, **params: Any) -> None:
        if self.target == "sandbox":
            self.sandbox.control("smaregi", action, **params)

    def fault(self, **rule: Any) -> None:
        if self.target == "sandbox":
            self.sandbox.fault("smaregi", **rule)

    def setup(self, fn: Callable[[], Any]) -> None:
        """Prepare provider state (recording only: a replay finds it in the cassette)."""
        if self.recording:
            fn()

    def gateway(self, store: str = "memory://", **overrides: Any) -> Any:
        return self._gateways({"store": store, "accounts": {"pos": {**self.account, **overrides}}})

    def provider(self) -> SmaregiProvider:
        settings = SmaregiSettings(**{k: v for k, v in self.account.items() if k != "provider"})
        return SmaregiProvider(settings, account="pos")

    def ctx(self, key: str | None = None) -> OpContext:
        return OpContext(
            account="pos", provider="smaregi", idempotency_key=key, now=lambda: FIXED_NOW
        )

    def run(self, provider: SmaregiProvider, flow: Flow[Any]) -> Any:
        """Run one provider flow on the core driver of this test."""
        policy = RetryPolicy.no_wait()
        store = open_store("memory://")
        if self.driver == "async":
            driver = AsyncDriver(store=store, providers={"pos": provider}, policy=policy)

            async def go() -> Any:
                try:
                    return await driver.run(flow, account="pos", operation="flow")
                finally:
                    await driver.aclose()

            return asyncio.run(go())
        sync = SyncDriver(store=store, providers={"pos": provider}, policy=policy)
        try:
            return sync.run(flow, account="pos", operation="flow")
        finally:
            sync.close()

    def close(self) -> None:
        self._gateways.close()


@pytest.fixture(params=DRIVERS)
def tape(request: pytest.FixtureRequest, record_mode: str) -> Iterator[Tape]:
    driver = request.param
    if record_mode == "none":
        account = offline_accounts([SmaregiEmulator], REPLAY_URL)["smaregi"]
        made = Tape(mode="none", target="replay", account=account, sandbox=None, driver=driver)
        with blocking_context(allowed_hosts=None):
            yield made
        made.close()
        return
    if driver == "async":
        pytest.skip("cassettes are recorded once, with the blocking driver")
    real = real_account()
    if real is not None:
        made = Tape(mode=record_mode, target="smaregi", account=real, sandbox=None, driver=driver)
    else:
        sandbox = request.getfixturevalue("sandbox")
        account = sandbox.account_settings("smaregi")
        made = Tape(
            mode=record_mode, target="sandbox", account=account, sandbox=sandbox, driver=driver
        )
    yield made
    made.close()


def sale(amount: int = 1200, **kw: Any) -> PosSale:
    # Empty store and terminal: the account's defaults (the recording target's own).
    kw.setdefault("store_id", "")
    kw.setdefault("terminal_id", "")
    return PosSale(
        lines=(
            PosLine(product_id="8000001", unit_price=500, quantity=2),
            PosLine(name="袋", unit_price=amount - 1000),
        ),
        **kw,
    )


def charge(gw: Any, key: str, **kw: Any) -> Any:
    return gw.charge("pos", amount=Money.jpy(1200), method=sale(**kw), idempotency_key=key)


def request_of(**kw: Any) -> ChargeRequest:
    return ChargeRequest(amount=Money.jpy(1200), method=sale(**kw))


def played(cassette: Any) -> list[tuple[str, str]]:
    """(method, path inside the API) of every recorded interaction, in order."""
    out = []
    for req in cassette.requests:
        path = (
            req.path.split("/pos/", 1)[-1] if "/pos/" in req.path else req.path.rsplit("/", 1)[-1]
        )
        out.append((req.method, path))
    return out


# --------------------------------------------------------------------------------- flows


def test_charge_first_sale(tape: Tape) -> None:
    gw = tape.gateway()
    with tape.cassette("charge_first_sale") as cassette:
        first = charge(gw, "cassette-first-1", slip_number="S-0001", card_company="VISA")
        second = charge(gw, "cassette-first-2")
    assert first.status is ChargeStatus.SUCCEEDED
    assert second.status is ChargeStatus.SUCCEEDED
    assert first.provider_ref != second.provider_ref
    assert first.created_at == FIXED_NOW
    tape.check(cassette)
    if tape.target != "smaregi":
        assert played(cassette) == [
            ("POST", "token"),
            ("GET", "app_payment_method"),
            ("POST", "app_payment_method"),
            ("POST", "transactions"),
            ("POST", "transactions"),  # token and method cached
        ]


def test_charge_with_existing_method(tape: Tape) -> None:
    tape.setup(lambda: tape.gateway().extension("pos", "ensure_payment_method"))
    gw = tape.gateway()
    with tape.cassette("charge_with_existing_method") as cassette:
        result = charge(gw, "cassette-existing-1")
    assert result.status is ChargeStatus.SUCCEEDED
    tape.check(cassette)
    assert ("POST", "app_payment_method") not in played(cassette)


def test_ensure_after_already_registered(tape: Tape) -> None:
    tape.needs_sandbox()
    tape.setup(lambda: tape.gateway().extension("pos", "ensure_payment_method"))
    tape.control("stale_reads", count=1)  # another process registers between GET and POST
    gw = tape.gateway()
    with tape.cassette("ensure_after_already_registered") as cassette:
        pm = gw.extension("pos", "ensure_payment_method")
    assert pm.payment_method_id
    tape.check(cassette)
    assert played(cassette)[1:] == [
        ("GET", "app_payment_method"),
        ("POST", "app_payment_method"),  # 403: limit reached
        ("GET", "app_payment_method"),
    ]
    assert cassette.responses[2]["status"]["code"] == 403


def test_charge_refused_by_smaregi(tape: Tape) -> None:
    gw = tape.gateway()
    with tape.cassette("charge_refused_unknown_store") as cassette:
        with pytest.raises(ProviderRejected) as info:
            charge(gw, "cassette-refused-1", store_id="99")
    assert info.value.http_status == 400
    assert info.value.provider_message
    tape.check(cassette)


def test_charge_missing_scope(tape: Tape) -> None:
    gw = tape.gateway(scopes=["pos.transactions:read"])
    with tape.cassette("charge_missing_scope") as cassette:
        with pytest.raises(PermissionDenied) as info:
            charge(gw, "cassette-scope-1")
    assert info.value.http_status == 403
    tape.check(cassette)


def test_charge_bad_credentials(tape: Tape) -> None:
    gw = tape.gateway(client_secret="not-the-right-secret")
    with tape.cassette("charge_bad_credentials") as cassette:
        with pytest.raises(AuthenticationError) as info:
            charge(gw, "cassette-auth-1")
    assert info.value.http_status == 401
    assert info.value.provider_code == "invalid_client" or tape.target == "smaregi"
    tape.check(cassette)


def test_server_error_then_lookup(tape: Tape) -> None:
    tape.needs_sandbox()
    tape.fault(kind="status", path="/pos/transactions$", method="POST", status=503)
    gw = tape.gateway()
    with tape.cassette("charge_server_error_then_lookup") as cassette:
        with pytest.raises(ProviderUnavailable):
            charge(gw, "cassette-5xx-1")
        again = charge(gw, "cassette-5xx-1")  # unknown outcome: look up first, then send
    assert again.status is ChargeStatus.SUCCEEDED
    tape.check(cassette)
    assert played(cassette)[-2:] == [("GET", "transactions"), ("POST", "transactions")]


def test_throttled_then_retried(tape: Tape) -> None:
    tape.needs_sandbox()
    tape.fault(kind="rate_limit", path="/pos/transactions$", method="POST", retry_after=0)
    gw = tape.gateway()
    with tape.cassette("charge_throttled_then_retried") as cassette:
        result = charge(gw, "cassette-429-1")
    assert result.status is ChargeStatus.SUCCEEDED
    tape.check(cassette)
    assert [r["status"]["code"] for r in cassette.responses][-2:] == [429, 200]


def test_token_refresh_after_401(tape: Tape) -> None:
    tape.needs_sandbox()
    gw = tape.gateway()
    with tape.cassette("token_refresh_after_401") as cassette:
        charge(gw, "cassette-401-1")
        tape.control("expire_tokens")
        second = charge(gw, "cassette-401-2")
    assert second.status is ChargeStatus.SUCCEEDED
    tape.check(cassette)
    assert played(cassette)[-3:] == [
        ("POST", "transactions"),  # 401
        ("POST", "token"),
        ("POST", "transactions"),
    ]


def test_lookup_finds_the_sale(tape: Tape) -> None:
    tape.setup(lambda: charge(tape.gateway(), "cassette-lookup-1"))
    provider = tape.provider()
    with tape.cassette("lookup_found") as cassette:
        found = tape.run(
            provider, provider.lookup_charge(request_of(), tape.ctx("cassette-lookup-1"))
        )
    assert found is not None
    assert found.status is ChargeStatus.SUCCEEDED
    tape.check(cassette)


def test_lookup_absent(tape: Tape) -> None:
    provider = tape.provider()
    with tape.cassette("lookup_absent") as cassette:
        found = tape.run(
            provider, provider.lookup_charge(request_of(), tape.ctx("cassette-never-sent"))
        )
    assert found is None
    tape.check(cassette)


def test_status(tape: Tape) -> None:
    gw = tape.gateway()
    with tape.cassette("status") as cassette:
        created = charge(gw, "cassette-status-1")
        fresh = gw.status("pos", created.id)
    assert fresh.status is ChargeStatus.SUCCEEDED
    assert fresh.provider_ref == created.provider_ref
    tape.check(cassette)


def test_status_unknown_transaction(tape: Tape) -> None:
    provider = tape.provider()
    ref = ChargeRef(charge_id="ch_x", provider_ref="987654", method="pos")
    with tape.cassette("status_unknown_transaction") as cassette:
        with pytest.raises(NotFound) as info:
            tape.run(provider, provider.status(ref, tape.ctx()))
    assert info.value.http_status == 404
    tape.check(cassette)


def test_refund(tape: Tape) -> None:
    gw = tape.gateway()
    with tape.cassette("refund_whole_sale") as cassette:
        created = charge(gw, "cassette-refund-1")
        refund = gw.refund("pos", created.id, idempotency_key="cassette-refund-1-r")
        after = gw.status("pos", created.id)
    assert refund.amount == Money.jpy(1200)
    assert refund.kind == "void"  # Smaregi moves no money
    assert after.status is ChargeStatus.REFUNDED
    tape.check(cassette)
    if tape.target != "smaregi":
        cancel = cassette.requests[played(cassette).index(("POST", "transactions/1001/cancel"))]
        assert json.loads(cancel.body) == {"cancelDateTime": "2025-03-01T10:00:00+09:00"}


def test_status_after_dispose_at_the_register(tape: Tape) -> None:
    """返品取消 at the register: the original carries disposeDivision 1 (refunded)."""
    tape.needs_sandbox()
    gw = tape.gateway()
    with tape.cassette("status_after_dispose") as cassette:
        created = charge(gw, "cassette-dispose-1")
        tape.control("dispose_transaction", transaction_head_id=created.provider_ref)
        after = gw.status("pos", created.id)
    assert after.status is ChargeStatus.REFUNDED
    assert after.amount_refunded == Money.jpy(1200)
    assert after.raw["disposeDivision"] == "1"
    tape.check(cassette)


def test_cancel_twice(tape: Tape) -> None:
    gw = tape.gateway()
    with tape.cassette("cancel_twice") as cassette:
        created = charge(gw, "cassette-cancel-1")
        first = gw.cancel("pos", created.id, idempotency_key="cassette-cancel-1-a")
        # A second cancel (another key) is refused by Smaregi and resolved by reading.
        second = gw.cancel("pos", created.id, idempotency_key="cassette-cancel-1-b")
    assert first.status is ChargeStatus.REFUNDED
    assert second.status is ChargeStatus.REFUNDED
    tape.check(cassette)


# ---------------------------------------------------------------------- the cassettes


def test_cassettes_hold_no_secrets() -> None:
    files = sorted(CASSETTES.glob("*.yaml"))
    assert files, "no cassettes recorded"
    secrets = [SmaregiEmulator.CLIENT_SECRET, "not-the-right-secret"]
    real = real_account() if os.environ.get("PAYGATE_RECORD_REAL") == "1" else None
    if real is not None:
        secrets.append(str(real.get("client_secret", "")))
    for path in files:
        text = path.read_text(encoding="utf-8")
        assert cassette_secrets(text, secrets) == [], path.name
        assert '"access_token":"[redacted]"' in text or "access_token" not in text, path.name


def test_every_cassette_has_a_test() -> None:
    names = {p.stem for p in CASSETTES.glob("*.yaml")}
    source = Path(__file__).read_text(encoding="utf-8")
    assert {n for n in names if f'"{n}"' not in source} == set()
