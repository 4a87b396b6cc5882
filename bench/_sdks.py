"""The official SDKs, pointed at the sandbox: one blocking charge function each.

Each function is safe to call from many threads (per-thread API clients where the SDK
keeps state). They charge the way the SDK's own documentation does:

* ``payjp``: ``payjp.Charge.create`` with an ``Idempotency-Key`` header (the SDK opens a
  new connection for every request: it calls ``requests.request``);
* ``elepay``: ``CodeApi.create_code`` (an EasyQR code);
* ``univapayclientsdk``: a konbini transaction token, then the charge (two calls).
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["sdk_charge"]


def _payjp(url: str, creds: Mapping[str, Any], ca_file: str | None) -> Callable[[str], Any]:
    # requests takes the CA from REQUESTS_CA_BUNDLE (set by the caller).
    import payjp

    payjp.api_base = f"{url}/payjp"
    payjp.api_key = creds["secret_key"]
    payjp.max_retry = 0

    def charge(key: str) -> Any:
        return payjp.Charge.create(
            amount=1200, currency="jpy", card="tok_success", headers={"Idempotency-Key": key}
        )

    return charge


def _elepay(url: str, creds: Mapping[str, Any], ca_file: str | None) -> Callable[[str], Any]:
    import elepay
    from elepay.apis.tags import code_api

    local = threading.local()

    def api() -> Any:
        codes = getattr(local, "codes", None)
        if codes is None:
            conf = elepay.Configuration(creds["secret_key"])
            conf.host = f"{url}/elepay"
            if ca_file:
                conf.ssl_ca_cert = ca_file
            codes = local.codes = code_api.CodeApi(elepay.ApiClient(conf))
        return codes

    def charge(key: str) -> Any:
        return api().create_code(body={"orderNo": key[:50], "amount": 1200, "currency": "JPY"})

    return charge


def _univapay(url: str, creds: Mapping[str, Any], ca_file: str | None) -> Callable[[str], Any]:
    # requests takes the CA from REQUESTS_CA_BUNDLE (set by the caller).
    from univapayclientsdk.http.auth.oauth_2 import BearerAuthCredentials
    from univapayclientsdk.models.charge_create_request import ChargeCreateRequest
    from univapayclientsdk.models.token_create_konbini_data import TokenCreateKonbiniData
    from univapayclientsdk.models.token_create_phone_number import TokenCreatePhoneNumber
    from univapayclientsdk.models.transaction_token_create_request import (
        TransactionTokenCreateRequest,
    )
    from univapayclientsdk.univapay_client_sdk_client import UnivapayClientSdkClient

    local = threading.local()

    def client() -> Any:
        made = getattr(local, "client", None)
        if made is None:
            made = local.client = UnivapayClientSdkClient(
                base_url=f"{url}/univapay",
                bearer_auth_credentials=BearerAuthCredentials(
                    secret_key=creds["secret"], jwt_token=creds["jwt"]
                ),
                timeout=30,
            )
        return made

    def charge(key: str) -> Any:
        sdk = client()
        token = sdk.transaction_tokens.create_transaction_token(
            TransactionTokenCreateRequest(
                payment_type="konbini",
                mtype="one_time",
                email="demo@example.com",
                data=TokenCreateKonbiniData(
                    customer_name="テスト 太郎",
                    convenience_store="family_mart",
                    phone_number=TokenCreatePhoneNumber(
                        country_code="81", local_number="0364413400"
                    ),
                    expiration_period="P7D",
                ),
            ),
            idempotency_key=f"{key}-token",
        )
        return sdk.charges.create_charge(
            body=ChargeCreateRequest(
                transaction_token_id=token.body.id, amount=1200, currency="JPY"
            ),
            idempotency_key=f"{key}-charge",
        )

    return charge


_FACTORIES = {"payjp": _payjp, "elepay": _elepay, "univapayclientsdk": _univapay}
# HTTP calls per charge for each SDK.
SDK_CALLS = {"payjp": 1, "elepay": 1, "univapayclientsdk": 2}


def sdk_charge(
    sdk: str, url: str, creds: Mapping[str, Any], *, ca_file: str | None = None
) -> Callable[[str], Any] | None:
    """A thread-safe ``charge(key)`` through ``sdk``, or None if it is not installed.

    ``ca_file``: the only CA to trust over https (requests-based SDKs read it from
    ``REQUESTS_CA_BUNDLE``, which the caller sets).
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return _FACTORIES[sdk](url, creds, ca_file)
        except ImportError:
            return None
