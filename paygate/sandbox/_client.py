"""Python client of the sandbox control API."""

from __future__ import annotations

from datetime import datetime, timedelta
from types import TracebackType
from typing import TYPE_CHECKING, Any

import httpx

from ._accounts import render_config
from ._emulator import ControlError, LedgerEntry
from ._webhooks import WebhookAttempt

if TYPE_CHECKING:
    from ._host import SandboxHost
    from ._server import SandboxTLS

__all__ = ["Sandbox", "SandboxClient", "SandboxError"]


class SandboxError(ControlError):
    """The sandbox refused a control API request; ``status`` is its HTTP status."""


class SandboxClient:
    """Drive a running sandbox over its control API.

    Works against any sandbox: one started with ``paygate sandbox serve`` or the one
    `paygate.sandbox.running` starts in-process (which yields a `Sandbox`, a subclass).

    Example::

        sandbox = SandboxClient("http://127.0.0.1:8765")
        sandbox.control("univapay", "pay", charge_id=charge.provider_ref)
        sandbox.advance(timedelta(hours=1))
        sandbox.fault("payjp", "drop_after_commit", path="^/v1/charges$", method="POST")
    """

    def __init__(self, url: str, *, timeout: float = 30.0, tls: SandboxTLS | None = None) -> None:
        self.url = url.rstrip("/")
        #: The certificates of a TLS sandbox (None: plain http).
        self.tls = tls
        # trust_env off: the sandbox is on loopback, and no proxy should see it.
        verify: Any = tls.client_context() if tls is not None else True
        self._http = httpx.Client(
            base_url=self.url, timeout=timeout, trust_env=False, verify=verify
        )

    # -- plumbing ----------------------------------------------------------------------------------

    def _call(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        params: dict[str, str] | None = None,
    ) -> Any:
        response = self._http.request(method, f"/_sandbox/{path}", json=body, params=params)
        if response.status_code >= 400:
            try:
                message = str(response.json().get("error", response.text))
            except ValueError:
                message = response.text or f"HTTP {response.status_code}"
            raise SandboxError(message, status=response.status_code)
        if response.status_code == 204 or not response.content:
            return {}
        return response.json()

    def close(self) -> None:
        """Close the HTTP connection pool."""
        self._http.close()

    def __enter__(self) -> SandboxClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.url}>"

    # -- what is served ----------------------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        """Mounted providers, skipped ones (with the reason), sandbox time, request counts."""
        result: dict[str, Any] = self._call("GET", "health")
        return result

    def providers(self) -> list[str]:
        """Names of the mounted providers."""
        return list(self.health()["providers"])

    def base_url(self, provider: str) -> str:
        """Where ``provider``'s emulator is served, e.g. ``http://127.0.0.1:PORT/payjp``."""
        return f"{self.url}/{provider}"

    def credentials(self) -> dict[str, dict[str, Any]]:
        """Every emulator's fixed test credentials and seed ids, keyed by provider."""
        result: dict[str, dict[str, Any]] = self._call("GET", "credentials")
        return result

    def accounts(self) -> dict[str, dict[str, Any]]:
        """A paygate account table per provider, pointing at this sandbox (with
        ``ca_bundle`` when it serves TLS)."""
        result: dict[str, dict[str, Any]] = self._call("GET", "accounts")
        if self.tls is not None:
            for table in result.values():
                table["ca_bundle"] = str(self.tls.ca_file)
        return result

    def account_settings(self, provider: str) -> dict[str, Any]:
        """The paygate account table of one provider."""
        accounts = self.accounts()
        if provider not in accounts:
            raise SandboxError(f"no emulator mounted for provider {provider!r}", status=404)
        return accounts[provider]

    def config_toml(self, *, store: str = "sqlite:///paygate.db") -> str:
        """A ready paygate config (TOML) with one account per provider plus the aliases."""
        return render_config(self.accounts(), store=store)

    # -- customer and operator actions -------------------------------------------------------------

    def control(self, provider: str, action: str, **params: Any) -> dict[str, Any]:
        """Run `Emulator.control` (pay a slip, scan a QR, decline a card, ...).

        Raises `SandboxError` (a `ControlError`) with the emulator's status when refused.
        """
        result: dict[str, Any] = self._call("POST", f"{provider}/{action}", params)
        return result

    # -- clock -------------------------------------------------------------------------------------

    def now(self) -> datetime:
        """Sandbox time."""
        return datetime.fromisoformat(self._call("GET", "clock")["now"])

    def advance(self, delta: timedelta | float) -> datetime:
        """Move sandbox time forward (a timedelta or seconds); returns the new time.

        Emulators react (expiries, closing runs) and due webhook retries are started;
        call `flush_webhooks` to wait for those deliveries.
        """
        seconds = delta.total_seconds() if isinstance(delta, timedelta) else float(delta)
        return datetime.fromisoformat(
            self._call("POST", "clock/advance", {"seconds": seconds})["now"]
        )

    # -- reset -------------------------------------------------------------------------------------

    def reset(self, provider: str | None = None) -> None:
        """Forget all state (or one provider's): objects, faults, webhook queues and log.

        A full reset also puts the clock back to real time. Webhook URLs are kept.
        """
        self._call("POST", "reset", {"provider": provider} if provider else {})

    # -- faults ------------------------------------------------------------------------------------

    def fault(
        self,
        provider: str,
        kind: str,
        path: str = ".*",
        method: str | None = None,
        count: int | None = None,
        probability: float | None = None,
        seed: int | None = None,
        status: int | None = None,
        retry_after: int | None = None,
        latency_ms: int | None = None,
        jitter_ms: int | None = None,
    ) -> dict[str, Any]:
        """Inject a fault into ``provider``'s API; returns the rule (with its ``id``).

        ``kind``: ``"drop_after_commit"``, ``"reset"``, ``"status"``, ``"rate_limit"`` or
        ``"latency"``. ``path`` is a regex searched in the path inside the provider's
        mount (``"^/v1/charges$"``). Without ``probability`` the fault hits the next
        ``count`` matching calls (default 1); with it, each matching call is hit with that
        probability drawn from ``random.Random(seed)`` (``count`` then caps the hits).
        ``latency_ms`` holds each hit call back (an ``asyncio.sleep``: no sandbox CPU),
        ``jitter_ms`` spreads it uniformly by ± that much (seeded by ``seed``). For a
        provider that is always slow: ``fault(p, "latency", latency_ms=100,
        jitter_ms=20, probability=1.0)``.
        """
        body: dict[str, Any] = {"provider": provider, "kind": kind, "path": path}
        optional = {
            "method": method,
            "count": count,
            "probability": probability,
            "seed": seed,
            "status": status,
            "retry_after": retry_after,
            "latency_ms": latency_ms,
            "jitter_ms": jitter_ms,
        }
        body.update({k: v for k, v in optional.items() if v is not None})
        result: dict[str, Any] = self._call("POST", "faults", body)
        return result

    def faults(self) -> list[dict[str, Any]]:
        """Every fault rule, with how often it matched and fired."""
        return list(self._call("GET", "faults")["faults"])

    def remove_fault(self, fault_id: str) -> None:
        """Drop one fault rule."""
        self._call("DELETE", f"faults/{fault_id}")

    def clear_faults(self, provider: str | None = None) -> None:
        """Drop every fault rule (or one provider's)."""
        self._call("DELETE", "faults", params={"provider": provider} if provider else None)

    # -- ledger ------------------------------------------------------------------------------------

    def ledger(self) -> dict[str, list[LedgerEntry]]:
        """Every money-moving object each emulator holds, keyed by provider."""
        data: dict[str, list[dict[str, Any]]] = self._call("GET", "ledger")
        return {name: [LedgerEntry(**entry) for entry in entries] for name, entries in data.items()}

    # -- webhooks ----------------------------------------------------------------------------------

    def set_webhook_url(self, url: str | None, provider: str | None = None) -> None:
        """Send webhooks (of one provider, or by default of all) to ``url``; None stops."""
        body: dict[str, Any] = {"url": url}
        if provider is not None:
            body["provider"] = provider
        self._call("POST", "webhooks/config", body)

    def webhook_log(self) -> list[WebhookAttempt]:
        """Every delivery attempt so far, oldest first."""
        data = self._call("GET", "webhooks")
        return [WebhookAttempt.from_json(item) for item in data["deliveries"]]

    def pending_webhooks(self) -> list[dict[str, Any]]:
        """Deliveries waiting for a retry (with the sandbox time they are due)."""
        return list(self._call("GET", "webhooks")["pending"])

    def flush_webhooks(self) -> list[WebhookAttempt]:
        """Attempt every due delivery now, wait until done, and return the delivery log."""
        data = self._call("POST", "webhooks/flush")
        return [WebhookAttempt.from_json(item) for item in data["deliveries"]]


class Sandbox(SandboxClient):
    """The client `paygate.sandbox.running` yields; ``host`` is the in-process host.

    ``host`` runs on the server thread's event loop: read from it for diagnostics, but
    change state only through the control API.
    """

    def __init__(
        self,
        url: str,
        *,
        host: SandboxHost,
        timeout: float = 30.0,
        tls: SandboxTLS | None = None,
    ) -> None:
        super().__init__(url, timeout=timeout, tls=tls)
        self.host = host

    def __enter__(self) -> Sandbox:
        return self
