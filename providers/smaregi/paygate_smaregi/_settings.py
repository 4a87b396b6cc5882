"""Account settings of a Smaregi account (one app installed on one contract)."""

from __future__ import annotations

import re

from pydantic import Field, SecretStr, field_validator

from paygate.adapter import ProviderSettings, matching

__all__ = ["DEFAULT_SCOPES", "SmaregiSettings"]

#: What the adapter needs: read and register transactions (the app payment method API
#: is covered by the same pair of scopes).
DEFAULT_SCOPES: tuple[str, ...] = ("pos.transactions:read", "pos.transactions:write")

_SCOPE = re.compile(r"^[a-z][a-z0-9_.-]*:(read|write)$")
_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_STORE = re.compile(r"^[0-9]{1,9}$")
_TERMINAL = re.compile(r"^[1-9][0-9]{0,8}$")
_PATH = re.compile(r"^[a-z_]+$")


class SmaregiSettings(ProviderSettings):
    """Settings of one Smaregi app on one contract.

    Smaregi serves tokens and the API from two hosts: ``id_base_url`` (the ID host,
    ``POST {id_base_url}/app/{contract_id}/token``) and ``base_url`` (the API host,
    ``{base_url}/{contract_id}/pos/...``). The defaults are production; the real
    sandbox is ``https://id.smaregi.dev`` / ``https://api.smaregi.dev``; the local
    sandbox serves both under one prefix, ``<sandbox>/smaregi/id`` and
    ``<sandbox>/smaregi/api``.

    ``payment_method_name`` is the name paygate gives the app payment method when it
    registers it: the app sets it, and Smaregi's staff expect the platform app's name,
    the same on every contract (developer forum, discussion 539). Set it to your app's
    name; the default is ``"paygate"``. ``app_payment_code`` is sent only when set.

    ``virtual_terminal`` (default true) says that ``terminal_id`` is not a register of
    the shop: Smaregi cannot settle sales of a terminal that does not exist, so they are
    registered as closed (``sumDivision`` 2, ``sumDate`` = the sale's JST date). Set it
    to false only when the terminal id is a real register whose closing should take the
    sales. ``denomination_code`` is sent as the ``denominationCode`` of the app payment.

    ``store_id`` / ``terminal_id`` are used when a `paygate.PosSale` leaves them empty.

    Example (TOML)::

        [accounts.pos]
        provider = "smaregi"
        client_id = "${SMAREGI_CLIENT_ID}"
        client_secret = "${SMAREGI_CLIENT_SECRET}"
        contract_id = "sb_skx123"
        id_base_url = "https://id.smaregi.dev"
        base_url = "https://api.smaregi.dev"
    """

    base_url: str = "https://api.smaregi.jp"
    id_base_url: str = "https://id.smaregi.jp"
    client_id: str = Field(min_length=1)
    client_secret: SecretStr
    contract_id: str
    scopes: tuple[str, ...] = DEFAULT_SCOPES
    payment_method_name: str = Field(default="paygate", min_length=1, max_length=85)
    app_payment_code: str | None = Field(default=None, min_length=1, max_length=20)
    # The path a developer registered the method at (forum discussion 539, answered by
    # Smaregi staff without correcting it): POST {contract}/pos/app_payment_method.
    app_payment_method_path: str = "app_payment_method"
    store_id: str | None = None
    terminal_id: str | None = None
    virtual_terminal: bool = True
    denomination_code: str | None = Field(default=None, min_length=1, max_length=20)

    _plain_id = field_validator("client_id", "contract_id")(
        matching(_ID, "must be 1-64 characters of letters, digits, '_' or '-'")
    )

    @field_validator("scopes")
    @classmethod
    def _scopes(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value:
            raise ValueError("at least one scope is needed")
        for scope in value:
            if not _SCOPE.match(scope):
                raise ValueError(f"not a Smaregi scope: {scope!r}")
        return value

    _store = field_validator("store_id")(matching(_STORE, "a Smaregi store id is 1-9 digits"))
    _terminal = field_validator("terminal_id")(
        matching(_TERMINAL, "a Smaregi terminal id is 1-9 digits, not starting with 0")
    )
    _path = field_validator("app_payment_method_path")(
        matching(_PATH, "a path segment of lower-case letters and '_'")
    )

    @property
    def scope(self) -> str:
        """The scopes as the token endpoint takes them (space-separated)."""
        return " ".join(self.scopes)
