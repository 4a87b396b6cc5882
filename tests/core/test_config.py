"""Configuration: TOML + environment, ${ENV} secrets, errors that name the key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from paygate import ConfigurationError, Gateway, load_config


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "paygate.toml"
    path.write_text(text, encoding="utf-8")
    return path


BASE = """
store = "memory://"
[accounts.fake]
provider = "fakepay"
base_url = "http://127.0.0.1:9/fakepay"
api_key = "${FAKE_KEY}"
"""


def test_env_interpolation_and_secret(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_KEY", "fk_live_supersecret")
    cfg = load_config(write(tmp_path, BASE))
    settings: Any = cfg.accounts["fake"].settings
    assert settings.api_key.get_secret_value() == "fk_live_supersecret"
    assert "fk_live_supersecret" not in repr(settings)
    assert cfg.accounts["fake"].methods == ("card", "qr")


def test_missing_env_names_the_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FAKE_KEY", raising=False)
    with pytest.raises(ConfigurationError) as exc:
        load_config(write(tmp_path, BASE))
    assert exc.value.key == "accounts.fake.api_key"


def test_environment_overrides_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_KEY", "a")
    monkeypatch.setenv("PAYGATE_STORE", "sqlite:///other.db")
    monkeypatch.setenv("PAYGATE_ACCOUNTS__FAKE__MODE", "lookup")
    cfg = load_config(write(tmp_path, BASE))
    assert cfg.store == "sqlite:///other.db"
    assert cfg.accounts["fake"].settings.mode == "lookup"  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("table", "key"),
    [
        ('provider = "nopay"', "accounts.fake.provider"),
        ('provider = "fakepay"\nbase_url = "http://127.0.0.1:9"', "accounts.fake.api_key"),
        (
            'provider = "fakepay"\nbase_url = "http://127.0.0.1:9"\n'
            'api_key = "x"\nmethods = ["konbini"]',
            "accounts.fake.methods",
        ),
        (
            'provider = "fakepay"\nbase_url = "http://127.0.0.1:9"\napi_key = "x"\nbogus = 1',
            "accounts.fake.bogus",
        ),
    ],
)
def test_errors_name_the_key(tmp_path: Path, table: str, key: str) -> None:
    with pytest.raises(ConfigurationError) as exc:
        load_config(write(tmp_path, f"[accounts.fake]\n{table}\n"))
    assert exc.value.key == key


def test_plain_http_only_on_loopback() -> None:
    with pytest.raises(ConfigurationError):
        Gateway.from_config(
            {
                "accounts": {
                    "fake": {
                        "provider": "fakepay",
                        "base_url": "http://pay.example.com",
                        "api_key": "x",
                    }
                }
            },
            store="memory://",
        )


def test_tls_verification_cannot_be_switched_off_silently() -> None:
    cfg = {
        "provider": "fakepay",
        "base_url": "https://pay.example.com",
        "api_key": "x",
        "tls_verify": False,
    }
    gw = Gateway.from_config({"accounts": {"fake": cfg}}, store="memory://")
    with pytest.raises(ConfigurationError) as exc:
        gw.provider("fake").http_options()
    assert exc.value.key == "tls_verify"


def test_bad_toml_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError):
        load_config(write(tmp_path, "store = "))
    with pytest.raises(ConfigurationError):
        load_config(tmp_path / "absent.toml")
