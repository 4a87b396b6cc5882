"""Account settings of a UnivaPay account.

UnivaPay authenticates server calls with an *application token*: a JWT issued in the
merchant console plus its secret, sent together as ``Authorization: Bearer
{secret}.{jwt}``. A store-level token carries the store id in its claims, so
``store_id`` may be left out when the JWT has one.
"""

from __future__ import annotations

import base64
import json
import re
from typing import Any

from pydantic import SecretStr, field_validator, model_validator

from paygate.adapter import ProviderSettings

__all__ = ["DEFAULT_BASE_URL", "UnivapaySettings"]

DEFAULT_BASE_URL = "https://api.univapay.com"

_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


class UnivapaySettings(ProviderSettings):
    """Settings of one UnivaPay store.

    ``secret`` and ``jwt`` form the application token; ``webhook_auth_token`` is the
    string configured as the webhook's ``auth_token`` (UnivaPay echoes it in the
    ``Authorization`` header of every delivery).

    >>> s = UnivapaySettings(store_id="11111111-2222-4333-8444-555555555555",
    ...                      secret="s3cr3t", jwt="a.b.c")
    >>> s.base_url
    'https://api.univapay.com'
    >>> s.secret
    SecretStr('**********')
    """

    base_url: str = DEFAULT_BASE_URL
    store_id: str = ""
    secret: SecretStr
    jwt: SecretStr
    webhook_auth_token: SecretStr | None = None

    @field_validator("secret", "jwt")
    @classmethod
    def _not_blank(cls, value: SecretStr) -> SecretStr:
        if not value.get_secret_value().strip():
            raise ValueError("must not be empty")
        return value

    @model_validator(mode="after")
    def _store(self) -> UnivapaySettings:
        if not self.store_id:
            claim = jwt_claim(self.jwt.get_secret_value(), "store_id")
            if claim is None:
                raise ValueError(
                    "store_id is missing: give it, or use a store-level application token"
                )
            object.__setattr__(self, "store_id", claim)
        if not _UUID.match(self.store_id):
            raise ValueError("store_id must be a UUID")
        return self

    @property
    def authorization(self) -> str:
        """The ``Authorization`` header value for server-side calls."""
        return f"Bearer {self.secret.get_secret_value()}.{self.jwt.get_secret_value()}"


def jwt_claim(token: str, claim: str) -> str | None:
    """A string claim of a JWT's payload, read without verifying the signature.

    The token is the merchant's own credential; the claim only saves configuring the
    store id twice and is never used to authorise anything.
    """
    parts = token.split(".")
    if len(parts) != 3:
        return None
    segment = parts[1] + "=" * (-len(parts[1]) % 4)
    try:
        payload: Any = json.loads(base64.urlsafe_b64decode(segment))
    except (ValueError, TypeError):
        return None
    value = payload.get(claim) if isinstance(payload, dict) else None
    return value if isinstance(value, str) and _UUID.match(value) else None
