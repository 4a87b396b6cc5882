"""Settings: validation, secrets kept out of text, mutual TLS options."""

from __future__ import annotations

import ssl
import warnings
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from pydantic import ValidationError

from paygate import ConfigurationError
from paygate._redact import redact
from paygate_pokepay import SANDBOX, PokepayProvider, PokepaySettings

Make = Callable[..., PokepaySettings]


def _write_client_cert(tmp_path: Path, password: bytes | None) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "paygate test client")])
    start = datetime(2026, 1, 1, tzinfo=UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(start)
        .not_valid_after(start + timedelta(days=3650))
        .sign(key, hashes.SHA256())
    )
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(password)
        if password
        else serialization.NoEncryption()
    )
    cert_path, key_path = tmp_path / "client.pem", tmp_path / "client.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)
    )
    return cert_path, key_path


def test_defaults(make_settings: Make) -> None:
    s = make_settings()
    assert s.timezone == "Asia/Tokyo"
    assert s.base_url == "http://127.0.0.1/pokepay"


def test_https_required_except_loopback(make_settings: Make) -> None:
    assert make_settings(base_url="http://127.0.0.1:9000/pokepay").base_url.endswith("/pokepay")
    tls = {"ssl_cert_file": "client.pem", "ssl_key_file": "client.key"}
    assert make_settings(base_url="https://partnerapi-sandbox.pokepay.jp/", **tls).base_url == (
        "https://partnerapi-sandbox.pokepay.jp"
    )
    with pytest.raises(ConfigurationError, match="https"):
        make_settings(base_url="http://partnerapi-sandbox.pokepay.jp")


@pytest.mark.parametrize(
    "tls",
    [{}, {"ssl_cert_file": "client.pem"}],
    ids=["no-certificate", "no-key"],
)
def test_https_host_requires_the_client_certificate(make_settings: Make, tls: Any) -> None:
    # Every official SDK requires SSL_CERT_FILE and SSL_KEY_FILE: a config without them
    # fails at load, not as a TLS error on the first call.
    with pytest.raises(ConfigurationError, match="ssl_cert_file and ssl_key_file") as info:
        make_settings(base_url="https://partnerapi-sandbox.pokepay.jp", **tls)
    assert info.value.key == "ssl_cert_file"
    # Loopback (the local TLS sandbox) may go without one.
    assert make_settings(base_url="https://127.0.0.1:9443/pokepay").ssl_cert_file is None


def test_strategy_setting(make_settings: Make) -> None:
    assert make_settings().strategy is None
    assert make_settings(strategy="money-only").strategy == "money-only"
    with pytest.raises(ValidationError):
        make_settings(strategy="points-only")


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("client_id", "not-a-uuid"),
        ("shop_id", "shop-1"),
        ("private_money_id", ""),
        ("client_secret", "too-short"),
        ("timezone", "Mars/Olympus"),
    ],
)
def test_bad_values(make_settings: Make, key: str, value: str) -> None:
    with pytest.raises(ValidationError) as info:
        make_settings(**{key: value})
    assert key in str(info.value)


def test_secret_never_in_errors_or_reprs(make_settings: Make) -> None:
    wrong = "Q" * 40
    with pytest.raises(ValidationError) as info:
        make_settings(client_secret=wrong)
    assert wrong not in str(info.value)
    s = make_settings()
    assert SANDBOX.client_secret not in repr(s)
    assert SANDBOX.client_secret not in str(s.model_dump())


def test_provider_registers_its_secrets(make_settings: Make) -> None:
    s = make_settings(ssl_cert_file="client.pem", ssl_key_password="pem-pass-phrase")
    provider = PokepayProvider(s, account="wallet")
    assert redact(f"key {SANDBOX.client_secret}") == "key [redacted]"
    assert redact("pw pem-pass-phrase") == "pw [redacted]"
    assert SANDBOX.client_secret not in repr(provider)


def test_provider_refuses_other_settings() -> None:
    from paygate.adapter import ProviderSettings

    with pytest.raises(ConfigurationError):
        PokepayProvider(ProviderSettings(base_url="https://x.example"), account="a")


def test_tls_file_rules(make_settings: Make) -> None:
    with pytest.raises(ValidationError, match="ssl_key_file needs ssl_cert_file"):
        make_settings(ssl_key_file="k.pem")
    with pytest.raises(ValidationError, match="ssl_key_password needs ssl_cert_file"):
        make_settings(ssl_key_password="pw")


def test_no_client_certificate_no_tls_options(make_settings: Make) -> None:
    assert PokepayProvider(make_settings(), account="a").http_options() == {}


@pytest.mark.parametrize("password", [None, b"s3cret-pass"], ids=["plain-key", "encrypted-key"])
def test_client_certificate_loads_into_the_ssl_context(
    make_settings: Make, tmp_path: Path, password: bytes | None
) -> None:
    cert, key = _write_client_cert(tmp_path, password)
    extra: dict[str, Any] = {"ssl_key_password": password.decode()} if password else {}
    s = make_settings(
        base_url="https://partnerapi-sandbox.pokepay.jp",
        ssl_cert_file=cert,
        ssl_key_file=key,
        **extra,
    )
    opts = PokepayProvider(s, account="a").http_options()
    assert isinstance(opts["verify"], ssl.SSLContext)
    assert opts["verify"].verify_mode == ssl.CERT_REQUIRED
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        httpx.Client(**opts).close()


def test_wrong_key_password_is_a_configuration_error(make_settings: Make, tmp_path: Path) -> None:
    cert, key = _write_client_cert(tmp_path, b"right")
    s = make_settings(ssl_cert_file=cert, ssl_key_file=key, ssl_key_password="wrong")
    with pytest.raises(ConfigurationError, match="client certificate") as info:
        PokepayProvider(s, account="a").http_options()
    assert "wrong" not in str(info.value)


def test_insecure_tls_with_client_certificate(make_settings: Make, tmp_path: Path) -> None:
    cert, key = _write_client_cert(tmp_path, None)
    s = make_settings(
        ssl_cert_file=cert, ssl_key_file=key, tls_verify=False, allow_insecure_tls=True
    )
    opts = PokepayProvider(s, account="a").http_options()
    assert opts["verify"].verify_mode == ssl.CERT_NONE
    with pytest.raises(ConfigurationError):
        PokepayProvider(make_settings(tls_verify=False), account="a").http_options()


def test_ca_bundle_with_client_certificate(make_settings: Make, tmp_path: Path) -> None:
    cert, key = _write_client_cert(tmp_path, None)
    s = make_settings(ssl_cert_file=cert, ssl_key_file=key, ca_bundle=cert)
    assert isinstance(PokepayProvider(s, account="a").http_options()["verify"], ssl.SSLContext)


def test_emulator_account_settings_are_valid_settings(emulator: Any) -> None:
    table = dict(emulator.account_settings())
    assert table.pop("provider") == "pokepay"
    s = PokepaySettings(**table)
    assert s.client_id == SANDBOX.client_id
