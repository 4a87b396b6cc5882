"""Account settings of an elepay account."""

from __future__ import annotations

from pydantic import Field, SecretStr, field_validator

from paygate.adapter import ProviderSettings, matching

from ._wire import (
    DEFAULT_BASE_URL,
    EXPIRY_MINUTES_DEFAULT,
    EXPIRY_MINUTES_MAX,
    EXPIRY_MINUTES_MIN,
    FRONT_URL_PATTERN,
    MAX_AMOUNT,
)

__all__ = ["ElepaySettings"]


class ElepaySettings(ProviderSettings):
    """Settings of one elepay account (one elepay application).

    ``secret_key`` is the application's secret key (``sk_test_...`` in test mode); it is
    sent as the Basic user name with an empty password, as the official SDK does.
    ``front_url`` is where elepay sends the payer's browser after paying when the
    charge itself names no ``return_url``. elepay signs no webhook, so every event is
    built from the charge fetched back from the API; ``verify_webhooks_by_refetch`` is
    kept for old configuration files and cannot be turned off. ``location_id`` (an
    elepay location, ``locationId``) is sent with every code so that events and the
    dashboard tell this account's store apart from others of the same application.
    With ``revoke_paid``, cancelling a paid code revokes its charge (``POST
    /charges/{id}/revoke``: the whole payment is cancelled, where elepay allows it for
    the payment method) instead of being refused with "refund instead".

    Example (``paygate.toml``)::

        [accounts.qr]
        provider = "elepay"
        secret_key = "sk_test_..."
        front_url = "https://shop.example.com/paid"
    """

    base_url: str = DEFAULT_BASE_URL
    secret_key: SecretStr
    front_url: str | None = None
    verify_webhooks_by_refetch: bool = True
    location_id: str | None = Field(default=None, min_length=1, max_length=255)
    revoke_paid: bool = False
    expiry_minutes: int = Field(
        default=EXPIRY_MINUTES_DEFAULT, ge=EXPIRY_MINUTES_MIN, le=EXPIRY_MINUTES_MAX
    )
    max_amount: int = Field(default=MAX_AMOUNT, ge=1, le=MAX_AMOUNT)
    # How far back (hours) and how many pages of 100 charges a lookup by order number
    # scans. elepay cannot filter the charge list by orderNo.
    lookup_window_hours: int = Field(default=72, ge=1, le=24 * 90)
    lookup_max_pages: int = Field(default=20, ge=1, le=1000)

    @field_validator("secret_key")
    @classmethod
    def _secret_key(cls, value: SecretStr) -> SecretStr:
        if not value.get_secret_value().strip():
            raise ValueError("secret_key must not be empty")
        return value

    @field_validator("verify_webhooks_by_refetch")
    @classmethod
    def _refetch(cls, value: bool) -> bool:
        if not value:
            raise ValueError(
                "elepay signs no webhook: events are always built from the charge "
                "fetched back from the API, so verify_webhooks_by_refetch cannot be false"
            )
        return value

    _front_url = field_validator("front_url")(
        matching(FRONT_URL_PATTERN, "front_url must be an http(s) URL")
    )
