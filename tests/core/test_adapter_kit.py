"""The adapter kit's error map and the core Retry-After reading."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
from pydantic import SecretStr

from paygate import (
    AuthenticationError,
    ConfigurationError,
    IdempotencyConflict,
    NotFound,
    PaymentDeclined,
    PermissionDenied,
    ProviderError,
    ProviderRejected,
    ProviderUnavailable,
    RateLimited,
    WebhookVerificationError,
)
from paygate._redact import redact
from paygate.adapter import (
    ErrorMap,
    ProviderSettings,
    Reply,
    check_webhook_token,
    drive,
    no_call,
    retry_after,
    status_error,
)


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (400, ProviderRejected),
        (401, AuthenticationError),
        (403, PermissionDenied),
        (404, NotFound),
        (409, ProviderRejected),
        (429, RateLimited),
        (500, ProviderUnavailable),
        (503, ProviderUnavailable),
    ],
)
def test_shared_fallbacks_by_status(status: int, cls: type[ProviderError]) -> None:
    assert status_error(status) is cls
    assert ErrorMap("toypay").error_class(status) is cls


def test_code_wins_over_status_and_provider_status_over_the_fallback() -> None:
    errors = ErrorMap(
        "toypay", by_code={"key_reused": IdempotencyConflict}, by_status={402: PaymentDeclined}
    )
    assert errors.error_class(400, "key_reused") is IdempotencyConflict
    assert errors.error_class(400, "unknown") is ProviderRejected
    assert errors.error_class(402) is PaymentDeclined
    assert errors.error_class(None) is ProviderError


def test_error_keeps_code_message_status_and_request_id() -> None:
    reply = Reply(404, {"request-id": "req_9"}, b"")
    err = ErrorMap("toypay").error(reply, "no such charge", code="missing", provider_message="gone")
    assert isinstance(err, NotFound)
    assert (err.provider, err.provider_code, err.provider_message) == ("toypay", "missing", "gone")
    assert (err.http_status, err.request_id) == (404, "req_9")


def test_request_id_from_the_body_and_named_headers() -> None:
    errors = ErrorMap("toypay", request_id_headers=("x-toy-request",))
    reply = Reply(400, {"x-request-id": "other", "x-toy-request": "mine"}, b"")
    assert errors.error(reply, "refused").request_id == "mine"
    assert errors.error(reply, "refused", request_id="body_1").request_id == "body_1"
    assert errors.error(None, "refused", status=400).request_id is None


def test_rate_limited_reads_retry_after_also_as_an_http_date() -> None:
    errors = ErrorMap("toypay")
    err = errors.error(Reply(429, {"retry-after": "4"}, b""), "slow down")
    assert isinstance(err, RateLimited)
    assert err.retry_after == 4.0
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=60), usegmt=True)
    dated = errors.error(Reply(429, {"retry-after": when}, b""), "slow down")
    assert isinstance(dated, RateLimited)
    assert dated.retry_after is not None
    assert 50.0 < dated.retry_after <= 60.0


@pytest.mark.parametrize(
    ("value", "expected"), [("3", 3.0), ("-2", 0.0), ("soon", None), ("nan", None), ("inf", None)]
)
def test_retry_after_values(value: str, expected: float | None) -> None:
    assert retry_after(Reply(429, {"retry-after": value}, b"")) == expected


def test_retry_after_absent() -> None:
    assert retry_after(Reply(429, {}, b"")) is None


class _ToySettings(ProviderSettings):
    base_url: str = "https://api.toypay.example"
    id_base_url: str = "https://id.toypay.example"
    api_key: SecretStr
    webhook_token: SecretStr | None = None


def test_settings_register_every_secret_without_config() -> None:
    _ToySettings(api_key=SecretStr("toy-key-5f1c2a"), webhook_token=SecretStr("toy-hook-9d3e"))
    assert redact("key toy-key-5f1c2a hook toy-hook-9d3e") == "key [redacted] hook [redacted]"


def test_settings_check_every_base_url() -> None:
    settings = _ToySettings(api_key=SecretStr("k"), base_url="http://127.0.0.1:9/toy/")
    assert settings.base_url == "http://127.0.0.1:9/toy"
    for name in ("base_url", "id_base_url"):
        with pytest.raises(ConfigurationError) as info:
            _ToySettings(api_key=SecretStr("k"), **{name: "http://api.toypay.example"})
        assert info.value.key == name


def test_webhook_token_check() -> None:
    token = SecretStr("tok-3a9f")

    def check(headers: dict[str, str], expected: SecretStr | None = token) -> None:
        check_webhook_token(
            headers,
            expected,
            header="Authorization",
            provider="toypay",
            setting="webhook_token",
            prefixes=("Bearer ",),
        )

    check({"authorization": "tok-3a9f"})
    check({"Authorization": "bearer tok-3a9f"})
    for headers, expected, words in [
        ({"authorization": "tok-3a9f"}, None, "no webhook_token is configured"),
        ({}, SecretStr("tok-3a9f"), "missing Authorization header"),
        ({"authorization": "Bearer tok-guess"}, SecretStr("tok-3a9f"), "does not match"),
    ]:
        with pytest.raises(WebhookVerificationError, match=words) as info:
            check(headers, expected)
        assert "tok-" not in str(info.value)


def test_no_call_flow_returns_without_a_call() -> None:
    def transport(call: object) -> Reply:
        raise AssertionError("no call expected")

    assert drive(no_call("done"), transport) == "done"
