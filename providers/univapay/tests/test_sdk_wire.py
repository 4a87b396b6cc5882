"""The official univapay-client-sdk against the emulator, over real loopback HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from paygate.sandbox import EmulatorContext, SandboxClock, ServerThread, WebhookDelivery
from paygate.testing import emulator_app
from paygate_univapay._emulator import JWT, SECRET, STORE_ID, UnivapayEmulator

sdk = pytest.importorskip("univapayclientsdk")

from univapayclientsdk.exceptions.api_error_exception import (  # noqa: E402
    ApiErrorException,
)
from univapayclientsdk.http.auth.oauth_2 import BearerAuthCredentials  # noqa: E402
from univapayclientsdk.models.charge_create_request import ChargeCreateRequest  # noqa: E402
from univapayclientsdk.models.token_create_konbini_data import (  # noqa: E402
    TokenCreateKonbiniData,
)
from univapayclientsdk.models.token_create_phone_number import (  # noqa: E402
    TokenCreatePhoneNumber,
)
from univapayclientsdk.models.transaction_token_create_request import (  # noqa: E402
    TransactionTokenCreateRequest,
)
from univapayclientsdk.univapay_client_sdk_client import (  # noqa: E402
    UnivapayClientSdkClient,
)


class Served:
    def __init__(self, emulator: UnivapayEmulator, url: str) -> None:
        self.emulator = emulator
        self.url = url


@pytest.fixture
def served() -> Iterator[Served]:
    box: dict[str, str] = {}
    deliveries: list[WebhookDelivery] = []
    emulator = UnivapayEmulator(
        EmulatorContext(
            clock=SandboxClock(start=datetime(2026, 1, 1, 1, 0, tzinfo=UTC)),
            base_url=lambda: box["url"],
            deliver=deliveries.append,
        )
    )
    # The socket is bound in the constructor, so the URL is known before the server starts.
    server = ServerThread(emulator_app(emulator))
    box["url"] = f"{server.url}/univapay"
    with server:
        yield Served(emulator, box["url"])


def client_for(url: str, secret: str = SECRET) -> Any:
    return UnivapayClientSdkClient(
        base_url=url,
        bearer_auth_credentials=BearerAuthCredentials(secret_key=secret, jwt_token=JWT),
        timeout=10,
    )


def konbini_token_request(store: str = "family_mart", local_number: str = "0364413400") -> Any:
    return TransactionTokenCreateRequest(
        payment_type="konbini",
        mtype="one_time",
        email="demo@example.com",
        data=TokenCreateKonbiniData(
            customer_name="テスト 太郎",
            convenience_store=store,
            phone_number=TokenCreatePhoneNumber(country_code="81", local_number=local_number),
            expiration_period="P7D",
        ),
    )


def test_sdk_token_charge_and_retrieval(served: Served) -> None:
    client = client_for(served.url)
    assert str(client.get_current_store_id()) == STORE_ID

    token = client.transaction_tokens.create_transaction_token(
        konbini_token_request(), idempotency_key="sdk-token-1"
    )
    assert token.status_code == 201
    assert token.headers["Idempotency-Status"] == "successfully_stored"
    assert token.body.payment_type == "konbini"
    assert token.body.data.convenience_store == "family_mart"
    assert token.body.data.phone_number.local_number == "0364413400"

    charge = client.charges.create_charge(
        body=ChargeCreateRequest(transaction_token_id=token.body.id, amount=1200, currency="JPY"),
        idempotency_key="sdk-charge-1",
    )
    assert charge.status_code == 201
    assert charge.body.status == "pending"
    assert charge.body.requested_amount == 1200
    # The konbini guide's charge: capture_at null unless the request set it.
    assert charge.body.capture_at is None

    fetched = client.charges.get_charge(STORE_ID, charge.body.id)
    assert fetched.status_code == 200
    assert fetched.body.status == "awaiting"
    assert fetched.body.id == charge.body.id
    assert fetched.body.metadata is not None
    metadata = fetched.body.metadata
    fields = metadata if isinstance(metadata, dict) else vars(metadata)
    flat = {**fields, **(fields.get("additional_properties") or {})}
    assert "internal_convenience_payment_number" in flat

    held = client.charges.get_charge(STORE_ID, charge.body.id, polling=True)
    assert held.body.status == "awaiting"

    # The store-less shortcut reads the store from the JWT's claims.
    shortcut = client.get_charge(charge.body.id)
    assert shortcut.body.id == charge.body.id


def test_sdk_replays_with_the_same_key(served: Served) -> None:
    client = client_for(served.url)
    first = client.transaction_tokens.create_transaction_token(
        konbini_token_request(), idempotency_key="sdk-token-2"
    )
    again = client.transaction_tokens.create_transaction_token(
        konbini_token_request(), idempotency_key="sdk-token-2"
    )
    assert again.headers["Idempotency-Status"] == "retrieved_idempotent_response"
    assert again.body.id == first.body.id


def test_sdk_poll_charge(served: Served) -> None:
    client = client_for(served.url)
    token = client.transaction_tokens.create_transaction_token(konbini_token_request("lawson"))
    charge = client.charges.create_charge(
        body=ChargeCreateRequest(transaction_token_id=token.body.id, amount=500, currency="JPY")
    )
    polled = client.charges.poll_charge(STORE_ID, charge.body.id, max_attempts=1)
    assert polled.body.status == "awaiting"


def test_sdk_sees_typed_errors(served: Served) -> None:
    client = client_for(served.url)
    with pytest.raises(ApiErrorException) as info:
        client.transaction_tokens.create_transaction_token(
            konbini_token_request(local_number="0" * 16)
        )
    assert info.value.response_code == 400
    with pytest.raises(ApiErrorException) as auth:
        client_for(served.url, secret="wrong").charges.get_charge(STORE_ID, "x")
    assert auth.value.response_code == 401


def test_sdk_sets_the_konbini_deadline_with_capture_at(served: Served) -> None:
    client = client_for(served.url)
    token = client.transaction_tokens.create_transaction_token(konbini_token_request("lawson"))
    deadline = datetime(2026, 1, 8, 14, 59, 59, tzinfo=UTC)
    charge = client.charges.create_charge(
        body=ChargeCreateRequest(
            transaction_token_id=token.body.id, amount=500, currency="JPY", capture_at=deadline
        )
    )
    capture_at = getattr(charge.body.capture_at, "datetime", charge.body.capture_at)
    assert capture_at == deadline
