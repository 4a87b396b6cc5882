"""Account settings of a Pokepay account.

>>> s = PokepaySettings(
...     base_url="https://partnerapi-sandbox.pokepay.jp",
...     client_id="8d1f3c50-6c1b-4f0e-9a3e-0f5b2a9c7d11",
...     client_secret="A" * 43,
...     shop_id="5f9e9d8c-1a2b-4c3d-8e4f-5a6b7c8d9e0f",
...     private_money_id="1c2d3e4f-5a6b-4c7d-8e9f-0a1b2c3d4e5f",
...     ssl_cert_file="client.pem",
...     ssl_key_file="client.key",
... )
>>> s.timezone
'Asia/Tokyo'
"""

from __future__ import annotations

import ssl
import uuid
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import ConfigDict, SecretStr, field_validator, model_validator

from paygate import ConfigurationError
from paygate.adapter import ProviderSettings, is_loopback

from ._crypto import CryptoError, decode_client_secret

__all__ = ["PokepaySettings", "client_certificate_context"]


def _uuid(value: str, what: str) -> str:
    try:
        return str(uuid.UUID(value))
    except (ValueError, AttributeError, TypeError):
        raise ValueError(f"{what} must be a UUID") from None


class PokepaySettings(ProviderSettings):
    """Settings of one Pokepay Partner API account (the SDKs' ``config.ini`` keys).

    Attributes:
        base_url: ``API_BASE_URL``; https only, plain http only on loopback (the sandbox).
            The sandbox is ``https://partnerapi-sandbox.pokepay.jp``.
        client_id: ``CLIENT_ID`` (a UUID, sent in clear as ``partner_client_id``).
        client_secret: ``CLIENT_SECRET`` (43 base64url characters: the AES-256 key).
        shop_id: the shop's user id; payments are paid to its wallet.
        private_money_id: the default private money (a charge's `Wallet` may name another).
        ssl_cert_file / ssl_key_file / ssl_key_password: the client certificate for
            mutual TLS (PEM). The key may be password protected. Required for an https
            ``base_url`` on any host but loopback: every official SDK requires
            ``SSL_CERT_FILE`` and ``SSL_KEY_FILE``.
        strategy: ``point-preferred`` or ``money-only``, sent as the payment's
            ``strategy`` (None: not sent, Pokepay's default ``point-preferred``).
        timezone: ``TIMEZONE``, used for the envelope timestamp (default Asia/Tokyo).
        accept_language: sent as ``Accept-Language`` (the server seems to pick the
            message language from it; undocumented).
    """

    # Validation errors would otherwise quote the offending input: the secret itself.
    model_config = ConfigDict(hide_input_in_errors=True)

    client_id: str
    client_secret: SecretStr
    shop_id: str
    private_money_id: str
    ssl_cert_file: Path | None = None
    ssl_key_file: Path | None = None
    ssl_key_password: SecretStr | None = None
    strategy: Literal["point-preferred", "money-only"] | None = None
    timezone: str = "Asia/Tokyo"
    accept_language: str | None = None

    @field_validator("client_id")
    @classmethod
    def _client_id(cls, value: str) -> str:
        return _uuid(value, "client_id")

    @field_validator("shop_id")
    @classmethod
    def _shop_id(cls, value: str) -> str:
        return _uuid(value, "shop_id")

    @field_validator("private_money_id")
    @classmethod
    def _money_id(cls, value: str) -> str:
        return _uuid(value, "private_money_id")

    @field_validator("client_secret")
    @classmethod
    def _secret(cls, value: SecretStr) -> SecretStr:
        try:
            decode_client_secret(value.get_secret_value())
        except CryptoError:
            # Never echo the value: it is the encryption key.
            raise ValueError("client_secret must be 43 base64url characters (32 bytes)") from None
        return value

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError("timezone must be an IANA time zone name") from None
        return value

    @model_validator(mode="after")
    def _tls_files(self) -> PokepaySettings:
        if self.ssl_key_file is not None and self.ssl_cert_file is None:
            raise ValueError("ssl_key_file needs ssl_cert_file")
        if self.ssl_key_password is not None and self.ssl_cert_file is None:
            raise ValueError("ssl_key_password needs ssl_cert_file (and usually ssl_key_file)")
        url = urlsplit(self.base_url)
        # Pokepay's hosts require the partner's client certificate (mutual TLS); without
        # it every call would fail as a TLS error.
        remote = url.scheme == "https" and not is_loopback(url.hostname or "")
        if remote and (self.ssl_cert_file is None or self.ssl_key_file is None):
            raise ConfigurationError(
                "ssl_cert_file and ssl_key_file are required for an https base_url "
                "(Pokepay requires the partner's client certificate)",
                key="ssl_cert_file",
            )
        return self

    @property
    def zone(self) -> ZoneInfo:
        """The `ZoneInfo` of ``timezone``."""
        return ZoneInfo(self.timezone)


def client_certificate_context(settings: PokepaySettings, verify: Any) -> ssl.SSLContext:
    """The TLS context carrying the client certificate of ``settings`` (mutual TLS).

    ``verify`` is what the common settings chose for the server's certificate
    (`Provider.http_options`): absent or True (certifi's CA bundle), a context built
    from ``ca_bundle``, or False. False is reached only through the explicit opt-in
    ``tls_verify = false`` together with ``allow_insecure_tls = true`` (without the
    second the common settings refuse the first); it is kept for the certificate's
    context too: the server's certificate and host name are then not checked. The
    certificate (and a password-protected key) is loaded here because httpx 0.28
    deprecates ``cert=``; a file or password that does not load is a
    `ConfigurationError` naming ``ssl_cert_file`` (the password is never shown).
    """
    assert settings.ssl_cert_file is not None
    import certifi

    if verify is False:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    elif settings.ca_bundle is not None:
        context = ssl.create_default_context(cafile=str(settings.ca_bundle))
    else:
        context = ssl.create_default_context(cafile=certifi.where())
    password = settings.ssl_key_password.get_secret_value() if settings.ssl_key_password else None
    try:
        context.load_cert_chain(
            str(settings.ssl_cert_file),
            str(settings.ssl_key_file) if settings.ssl_key_file else None,
            password,
        )
    except (OSError, ssl.SSLError) as exc:
        raise ConfigurationError(
            f"cannot load the client certificate ({type(exc).__name__})", key="ssl_cert_file"
        ) from None
    return context
