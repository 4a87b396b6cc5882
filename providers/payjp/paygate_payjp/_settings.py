"""Account settings of a PAY.JP account.

``base_url`` is the API root *without* ``/v1`` (the same convention as the official
Python SDK's ``payjp.api_base``); the adapter appends ``/v1/...`` itself. A URL that
ends in ``/v1`` (the Node SDK convention) is accepted and normalised, so both spellings
configure the same thing. The sandbox serves the emulator at
``http://127.0.0.1:PORT/payjp``, whose routes are ``/payjp/v1/...``.
"""

from __future__ import annotations

from pydantic import Field, SecretStr, field_validator

from paygate.adapter import ProviderSettings

__all__ = ["DEFAULT_BASE_URL", "PayjpSettings"]

DEFAULT_BASE_URL = "https://api.pay.jp"


class PayjpSettings(ProviderSettings):
    """Settings of one PAY.JP account (one secret key).

    Keys:
        secret_key: the secret API key (``sk_live_...`` / ``sk_test_...``). Public keys
            (``pk_...``) are refused: they only tokenise cards.
        public_key: the public key; needed only for 3-D Secure, whose start page is
            addressed with it. Not a secret.
        webhook_token: the per-account token PAY.JP sends in ``X-Payjp-Webhook-Token``.
        tenant: PAY.JP Platform tenant id (``ten_...``). When set, charges are created
            for this tenant and payout balances are read for it.
        tds_back: identifier of the 3-D Secure return URL registered in the dashboard.
        base_url: API root without ``/v1`` (default ``https://api.pay.jp``).
        tds_timeout_minutes: how long a 3-D Secure flow stays open after the charge is
            created (PAY.JP: "一定時間"; the API reference gives 30 minutes). Past it an
            unfinished flow is probed once with ``tds_finish``; only PAY.JP's
            ``three_d_secure_expired`` makes it expired, so a longer real timeout costs
            one extra call per poll, never a wrong status.
        tds_finish_attempted: finish 3-D Secure results ``attempted`` (the issuer took
            no part) like ``verified`` ones (default). False: such a charge is not
            finished and is reported failed (``three_d_secure_attempted``).

    >>> PayjpSettings(secret_key="sk_test_x").base_url
    'https://api.pay.jp'
    >>> PayjpSettings(secret_key="sk_test_x", base_url="http://127.0.0.1:9/payjp/v1").base_url
    'http://127.0.0.1:9/payjp'
    """

    base_url: str = DEFAULT_BASE_URL
    secret_key: SecretStr
    public_key: str | None = None
    webhook_token: SecretStr | None = None
    tenant: str | None = None
    tds_back: str | None = None
    tds_timeout_minutes: int = Field(default=30, ge=1, le=24 * 60)
    tds_finish_attempted: bool = True

    @field_validator("base_url")
    @classmethod
    def _base_url(cls, value: str) -> str:
        # https (or loopback) is checked by ProviderSettings.
        url = value.rstrip("/")
        if url.endswith("/v1"):
            url = url[: -len("/v1")]
        return url

    @field_validator("tenant")
    @classmethod
    def _tenant(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise ValueError("tenant must not be empty")
        return value
