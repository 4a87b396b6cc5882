"""Switching TLS verification off is never silent: refused alone, logged on every load."""

from __future__ import annotations

import logging

import pytest

from paygate import ConfigurationError
from paygate.adapter import ProviderSettings


class _Settings(ProviderSettings):
    pass


def test_verification_off_is_logged_on_every_load(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="paygate")
    for _ in range(2):
        _Settings(base_url="https://api.example.com", tls_verify=False, allow_insecure_tls=True)
    warnings = [r for r in caplog.records if "TLS verification is switched off" in r.message]
    assert len(warnings) == 2
    assert all(r.name == "paygate" and r.levelno == logging.WARNING for r in warnings)
    assert "_Settings" in warnings[0].getMessage()


def test_verified_settings_log_nothing(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="paygate")
    _Settings(base_url="https://api.example.com")
    _Settings(base_url="https://api.example.com", allow_insecure_tls=True)
    assert not [r for r in caplog.records if "TLS" in r.getMessage()]


def test_verification_off_alone_is_refused_when_the_client_is_built() -> None:
    from paygate import Capabilities
    from paygate.adapter import Provider

    class _P(Provider):
        name = "tlsprobe"

        def capabilities(self) -> Capabilities:
            raise NotImplementedError

    settings = _Settings(base_url="https://api.example.com", tls_verify=False)
    provider = _P(settings, account="a")
    with pytest.raises(ConfigurationError, match="allow_insecure_tls"):
        provider.http_options()
