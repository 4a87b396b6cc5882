"""The environment of a cassette test (see the ``paygate_cassette`` fixture)."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

import pytest

REPLAY_URL = "http://127.0.0.1:9"


class CassetteEnv:
    """Gateways and control actions for replaying or recording a cassette."""

    def __init__(
        self, *, mode: str, sandbox: Any = None, real: dict[str, Any] | None = None
    ) -> None:
        self.mode = mode
        self.sandbox = sandbox
        self.real = real
        self._gateways: list[Any] = []
        self._client: Any = None

    @classmethod
    def for_request(cls, request: pytest.FixtureRequest) -> CassetteEnv:
        mode = str(request.config.getoption("--record-mode", default="none") or "none")
        if mode == "none":
            return cls(mode=mode)
        if os.environ.get("PAYGATE_RECORD_REAL") == "1":
            from .._config import _interpolate, _read

            path = os.environ.get("PAYGATE_RECORD_CONFIG", "paygate.toml")
            return cls(mode=mode, real=_interpolate(_read(path), ""))
        sandbox = request.getfixturevalue("paygate_sandbox")
        sandbox.reset()
        sandbox.clear_faults()
        return cls(mode=mode, sandbox=sandbox)

    @property
    def recording(self) -> bool:
        """True while recording (against the sandbox or a real provider)."""
        return self.mode != "none"

    def account(self, provider: str) -> dict[str, Any]:
        """The account table used for ``provider``."""
        if self.real is not None:
            tables = self.real.get("accounts", {})
            for table in tables.values():
                if table.get("provider") == provider:
                    return dict(table)
            pytest.skip(f"no {provider} account in PAYGATE_RECORD_CONFIG")
        if self.sandbox is not None:
            return dict(self.sandbox.account_settings(provider))
        return _replay_settings(provider)

    def gateway(
        self,
        provider: str,
        *,
        account: str | None = None,
        driver: str = "sync",
        clock: Callable[[], datetime] | None = None,
        overrides: Mapping[str, Any] | None = None,
    ) -> Any:
        """A gateway with one account for ``provider`` (memory store).

        ``driver="async"`` gives a blocking facade over an `AsyncGateway`. ``clock`` pins
        the gateway's clock (flows whose requests carry times replay byte-for-byte);
        ``overrides`` change account settings.
        """
        from .._retry import RetryPolicy
        from ._kit import gateway_on

        name = account or provider
        table = {**self.account(provider), **(overrides or {})}
        config = {"store": "memory://", "accounts": {name: table}}
        kwargs: dict[str, Any] = {"store": "memory://", "retry": RetryPolicy.no_wait()}
        if clock is not None:
            kwargs["clock"] = clock
        gw = gateway_on("async" if driver == "async" else "sync", config, **kwargs)
        self._gateways.append(gw)
        return gw

    def control(self, provider: str, action: str, **params: Any) -> dict[str, Any]:
        """A customer action: on the sandbox, or replayed from the cassette."""
        if self.real is not None:
            pytest.skip("customer actions need the sandbox; skipped against a real provider")
        if self.sandbox is not None:
            return dict(self.sandbox.control(provider, action, **params))
        from ..sandbox import SandboxClient

        if self._client is None:
            self._client = SandboxClient(REPLAY_URL)
        return dict(self._client.control(provider, action, **params))

    def advance(self, seconds: float) -> None:
        """Move the sandbox clock (replayed from the cassette in replay mode)."""
        if self.real is not None:
            pytest.skip("the clock is the sandbox's; skipped against a real provider")
        if self.sandbox is not None:
            self.sandbox.advance(seconds)
            return
        from ..sandbox import SandboxClient

        if self._client is None:
            self._client = SandboxClient(REPLAY_URL)
        self._client.advance(seconds)

    def close(self) -> None:
        for gw in self._gateways:
            gw.close()
        if self._client is not None:
            self._client.close()


def _replay_settings(provider: str) -> dict[str, Any]:
    from .._registry import provider_class
    from ..sandbox import EmulatorContext, SandboxClock

    cls = provider_class(provider)
    emulator_cls = cls.emulator()
    if emulator_cls is None:
        pytest.skip(f"{provider} has no emulator to take replay settings from")
    ctx = EmulatorContext(
        clock=SandboxClock(),
        base_url=lambda: f"{REPLAY_URL}/{provider}",
        deliver=lambda _delivery: None,
    )
    return dict(emulator_cls(ctx).account_settings())
