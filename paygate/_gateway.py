"""`Gateway` and `AsyncGateway`: the API merchant code calls.

Both share every check and every operation flow; they differ only in the driver that
runs the flows (blocking or asyncio).
"""

from __future__ import annotations

import inspect
import os
import socket
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self, TypeVar

from . import _operations as ops
from ._adapter import ChargeRequest, OpContext, Provider
from ._errors import ConfigurationError, InvalidRequest, NotSupported
from ._flow import Flow
from ._models import (
    Capabilities,
    Card,
    Charge,
    Event,
    MethodCapabilities,
    PaymentMethod,
    PayoutBalance,
    Refund,
)
from ._money import Money
from ._retry import RetryPolicy
from ._stores import Store, open_store

if TYPE_CHECKING:
    # pydantic-settings is heavy: the config module loads on the first from_config().
    from ._config import AccountConfig, LoadedConfig

if TYPE_CHECKING:
    import httpx

__all__ = ["AsyncGateway", "Gateway"]

T = TypeVar("T")
Handler = Callable[[Event], Any]

_MAX_KEY = 255
_MAX_METADATA_KEYS = 50
_MAX_METADATA_KEY = 40
_MAX_METADATA_VALUE = 500
_MAX_DESCRIPTION = 255


def _owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"


def _key(value: object, param: str = "idempotency_key") -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidRequest("an idempotency key (non-empty string) is required", param=param)
    if len(value) > _MAX_KEY:
        raise InvalidRequest(f"idempotency key longer than {_MAX_KEY} characters", param=param)
    if not value.isprintable():
        raise InvalidRequest("idempotency key has non-printable characters", param=param)
    return value


def _metadata(value: object) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise InvalidRequest("metadata must be a mapping of strings to strings", param="metadata")
    if len(value) > _MAX_METADATA_KEYS:
        raise InvalidRequest(f"metadata has more than {_MAX_METADATA_KEYS} keys", param="metadata")
    out: dict[str, str] = {}
    for k, v in value.items():
        if not isinstance(k, str) or not isinstance(v, str):
            raise InvalidRequest(
                "metadata must be flat: string keys and string values", param="metadata"
            )
        if not k or len(k) > _MAX_METADATA_KEY:
            raise InvalidRequest(
                f"metadata key must be 1-{_MAX_METADATA_KEY} characters", param="metadata"
            )
        if len(v) > _MAX_METADATA_VALUE:
            raise InvalidRequest(
                f"metadata value longer than {_MAX_METADATA_VALUE} characters", param="metadata"
            )
        out[k] = v
    _encodable(out, "metadata")
    return out


_MAX_REASON = 255
_MAX_WAIT = 86_400.0 * 60


def _text(value: object, param: str, *, limit: int) -> str:
    """A string that every provider and store can carry: UTF-8 encodable, bounded."""
    if not isinstance(value, str):
        raise InvalidRequest(f"{param} must be a string", param=param)
    if len(value) > limit:
        raise InvalidRequest(f"{param} longer than {limit} characters", param=param)
    _encodable(value, param)
    return value


def _encodable(value: object, param: str) -> None:
    """Refuse text that cannot be sent (a lone surrogate cannot be encoded as UTF-8)."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise InvalidRequest(
                f"{param} has characters that cannot be encoded (lone surrogates)", param=param
            ) from None
    elif isinstance(value, Mapping):
        for k, v in value.items():
            _encodable(k, param)
            _encodable(v, param)
    elif isinstance(value, list | tuple):
        for item in value:
            _encodable(item, param)


def _as_sent(req: ChargeRequest, caps: MethodCapabilities) -> ChargeRequest:
    """What goes to the provider: metadata or a description the method cannot carry is
    kept by paygate, not sent (see `MethodCapabilities.metadata`)."""
    if caps.metadata and caps.description:
        return req
    return replace(
        req,
        metadata=req.metadata if caps.metadata else {},
        description=req.description if caps.description else None,
    )


def _optional_money(value: object, param: str = "amount") -> Money | None:
    if value is not None and not isinstance(value, Money):
        raise InvalidRequest(f"{param} must be Money (e.g. Money.jpy(500)) or None", param=param)
    return value


def _reason(value: object) -> str | None:
    return None if value is None else _text(value, "reason", limit=_MAX_REASON)


def _timeout(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidRequest("timeout must be a number of seconds", param="timeout")
    seconds = float(value)
    if not 0 <= seconds <= _MAX_WAIT:  # also refuses NaN
        raise InvalidRequest(
            f"timeout must be between 0 and {_MAX_WAIT:.0f} seconds", param="timeout"
        )
    return seconds


def _webhook_input(headers: object, body: object) -> tuple[dict[str, str], bytes]:
    """The delivery as paygate reads it, or `InvalidRequest` (the endpoint answers 400)."""
    if isinstance(body, bytearray | memoryview):
        body = bytes(body)
    if isinstance(body, str):
        try:
            body = body.encode("utf-8")
        except UnicodeEncodeError:
            raise InvalidRequest("webhook body cannot be encoded", param="body") from None
    if not isinstance(body, bytes):
        raise InvalidRequest("webhook body must be bytes", param="body")
    if not isinstance(headers, Mapping):
        raise InvalidRequest("webhook headers must be a mapping", param="headers")
    out: dict[str, str] = {}
    for raw_k, raw_v in headers.items():
        k = raw_k.decode("latin-1") if isinstance(raw_k, bytes) else raw_k
        v = raw_v.decode("latin-1") if isinstance(raw_v, bytes) else raw_v
        if not isinstance(k, str) or not isinstance(v, str):
            raise InvalidRequest("webhook headers must be strings", param="headers")
        out[k.lower()] = v
    return out, body


class _Webhooks:
    def __init__(self, gateway: _GatewayBase) -> None:
        self._gateway = gateway
        self._handlers: dict[str, list[Handler]] = {}

    def on(self, event_type: str = "*") -> Callable[[Handler], Handler]:
        """Register a handler for ``event_type`` (``"*"``: every event).

        Handlers run once per event, however often the provider delivers it.

        >>> @gw.webhooks.on("charge.succeeded")  # doctest: +SKIP
        ... def paid(event): ...
        """

        def register(fn: Handler) -> Handler:
            self._handlers.setdefault(event_type, []).append(fn)
            return fn

        return register

    def _for(self, event: Event) -> list[Handler]:
        return [*self._handlers.get(event.type, ()), *self._handlers.get("*", ())]

    def _check_body(self, body: bytes) -> None:
        if len(body) > self._gateway.webhook_max_body:
            raise InvalidRequest("webhook body too large", param="body")

    def asgi(self) -> Any:
        """A Starlette app with one route per account: ``POST /{account}``.

        Bad token: 401, nothing recorded. Malformed or oversized body: 400. Handler
        failure: 500, so the provider retries.
        """
        from ._webhooks_asgi import webhook_app

        return webhook_app(self._gateway)


class SyncWebhooks(_Webhooks):
    """``gw.webhooks`` of a `Gateway`."""

    def handle(self, account: str, headers: Mapping[str, str], body: bytes) -> list[Event]:
        """Verify, normalise, deduplicate and record a delivery; run handlers once.

        >>> events = gw.webhooks.handle("konbini", request.headers, request.body)  # doctest: +SKIP
        """
        gw = self._gateway
        assert isinstance(gw, Gateway)
        headers, body = _webhook_input(headers, body)
        self._check_body(body)
        provider = gw.provider(account)
        results = gw._run(account, "webhook", ops.webhook(provider, gw._env, headers, body))
        claimed = [event_id for _, event_id, mine in results if mine]
        try:
            for event, _, mine in results:
                if mine:
                    for handler in self._for(event):
                        outcome = handler(event)
                        if inspect.isawaitable(outcome):
                            raise TypeError("async webhook handlers need AsyncGateway")
        except BaseException:
            gw._run(
                account, "webhook.release", ops.settle_events(gw._env, account, claimed, ok=False)
            )
            raise
        gw._run(account, "webhook.finish", ops.settle_events(gw._env, account, claimed, ok=True))
        return [event for event, _, _ in results]


class AsyncWebhooks(_Webhooks):
    """``gw.webhooks`` of an `AsyncGateway`."""

    async def handle(self, account: str, headers: Mapping[str, str], body: bytes) -> list[Event]:
        """Verify, normalise, deduplicate and record a delivery; run handlers once."""
        gw = self._gateway
        assert isinstance(gw, AsyncGateway)
        headers, body = _webhook_input(headers, body)
        self._check_body(body)
        provider = gw.provider(account)
        results = await gw._run(account, "webhook", ops.webhook(provider, gw._env, headers, body))
        claimed = [event_id for _, event_id, mine in results if mine]
        try:
            for event, _, mine in results:
                if mine:
                    for handler in self._for(event):
                        outcome = handler(event)
                        if inspect.isawaitable(outcome):
                            await outcome
        except BaseException:
            await gw._run(
                account, "webhook.release", ops.settle_events(gw._env, account, claimed, ok=False)
            )
            raise
        await gw._run(
            account, "webhook.finish", ops.settle_events(gw._env, account, claimed, ok=True)
        )
        return [event for event, _, _ in results]


class _GatewayBase:
    _webhooks: _Webhooks

    def __init__(
        self,
        accounts: Mapping[str, Provider] | Sequence[AccountConfig],
        *,
        store: Store | str = "memory://",
        retry: RetryPolicy | None = None,
        clock: Callable[[], datetime] | None = None,
        lease: timedelta = timedelta(minutes=5),
        webhook_max_body: int = 1_048_576,
        methods: Mapping[str, Sequence[str]] | None = None,
        monotonic: Callable[[], float] | None = None,
    ) -> None:
        # ``monotonic`` (and the drivers' ``sleep``) let tests run `wait` on a virtual
        # clock, e.g. the sandbox's (`paygate.testing.VirtualTime`).
        self._monotonic = monotonic or time.monotonic
        providers: dict[str, Provider] = {}
        allowed: dict[str, tuple[str, ...]] = {}
        if isinstance(accounts, Mapping):
            for name, provider in accounts.items():
                providers[name] = provider
                allowed[name] = (
                    tuple(methods[name])
                    if methods and name in methods
                    else tuple(provider.capabilities().methods)
                )
        else:
            for acct in accounts:
                providers[acct.name] = acct.provider(acct.settings, account=acct.name)
                allowed[acct.name] = acct.methods
        self._providers = providers
        self._methods = allowed
        # An adapter's capabilities follow from its settings, fixed at construction;
        # charge checks read them on every call, so they are built once per account.
        self._caps: dict[str, Capabilities] = {}
        self._owns_store = isinstance(store, str)
        self.store: Store = open_store(store) if isinstance(store, str) else store
        self.retry = retry or RetryPolicy()
        self.webhook_max_body = webhook_max_body
        self._env = ops.Env(
            owner=_owner(),
            clock=clock or (lambda: datetime.now(UTC)),
            lease=lease,
            new_uuid=uuid.uuid4,
        )

    @classmethod
    def from_config(
        cls,
        source: str | Path | Mapping[str, Any] | LoadedConfig | None = None,
        *,
        store: Store | str | None = None,
        retry: RetryPolicy | None = None,
        **kwargs: Any,
    ) -> Self:
        """Build a gateway from a TOML file (or a mapping with the same shape).

        >>> gw = Gateway.from_config("paygate.toml")  # doctest: +SKIP
        """
        from ._config import LoadedConfig, load_config

        cfg = source if isinstance(source, LoadedConfig) else load_config(source)
        return cls(
            list(cfg.accounts.values()),
            store=store if store is not None else cfg.store,
            retry=retry or cfg.retry,
            webhook_max_body=cfg.webhook_max_body,
            **kwargs,
        )

    # -- description -----------------------------------------------------------

    @property
    def accounts(self) -> tuple[str, ...]:
        """The configured account names."""
        return tuple(self._providers)

    @property
    def webhooks(self) -> Any:
        """Webhook handling: ``handle``, ``on``, ``asgi``."""
        return self._webhooks

    def provider(self, account: str) -> Provider:
        """The adapter instance serving ``account``."""
        given: object = account  # callers may pass anything at run time
        if not isinstance(given, str):
            raise ConfigurationError(
                f"no account {given!r}: accounts are named by strings", key="accounts"
            )
        try:
            return self._providers[account]
        except KeyError:
            raise ConfigurationError(
                f"no account {account!r} (configured: {', '.join(self._providers) or 'none'})",
                key=f"accounts.{account}",
            ) from None

    def capabilities(self, account: str) -> Capabilities:
        """What ``account`` can do, limited to the methods configured for it.

        >>> gw.capabilities("konbini").methods["konbini"].refund  # doctest: +SKIP
        'none'
        """
        caps = self.provider(account).capabilities()
        allowed = self._methods[account]
        return caps.model_copy(
            update={"methods": {k: v for k, v in caps.methods.items() if k in allowed}}
        )

    # -- checks before I/O -------------------------------------------------------

    def _charge_request(
        self,
        account: str,
        amount: object,
        method: object,
        description: object,
        metadata: object,
    ) -> tuple[Provider, ChargeRequest]:
        provider = self.provider(account)
        if not isinstance(amount, Money):
            raise InvalidRequest("amount must be Money (e.g. Money.jpy(1200))", param="amount")
        if amount.amount <= 0:
            raise InvalidRequest("amount must be positive", param="amount")
        method_type = getattr(method, "type", None)
        if not isinstance(method_type, str):
            raise InvalidRequest(
                "method must be a payment method (Card, Konbini, ...)", param="method"
            )
        if isinstance(method, Card) and not (method.token or method.customer):
            raise InvalidRequest("a card payment needs a token or a customer", param="method")
        caps = self._caps.get(account)
        if caps is None:
            caps = self._caps[account] = self.capabilities(account)
        if method_type not in caps.methods:
            others = [
                name
                for name in self._providers
                if name != account and method_type in self._methods[name]
            ]
            raise NotSupported(
                f"{method_type} payments on account {account!r}",
                provider=provider.name,
                alternative=f"use account {others[0]!r}" if others else None,
            )
        if amount.currency not in caps.currencies:
            raise InvalidRequest(
                f"{provider.name} does not accept {amount.currency}"
                f" (accepts {', '.join(caps.currencies)})",
                param="amount",
            )
        if caps.min_amount is not None and amount.amount < caps.min_amount:
            raise InvalidRequest(
                f"amount below the provider minimum {caps.min_amount}", param="amount"
            )
        if caps.max_amount is not None and amount.amount > caps.max_amount:
            raise InvalidRequest(
                f"amount above the provider maximum {caps.max_amount}", param="amount"
            )
        text = (
            None
            if description is None
            else _text(description, "description", limit=_MAX_DESCRIPTION)
        )
        _encodable(method.model_dump(), "method")  # type: ignore[attr-defined]
        req = ChargeRequest(
            amount=amount,
            method=method,  # type: ignore[arg-type]
            description=text,
            metadata=_metadata(metadata),
        )
        provider.validate_charge(_as_sent(req, caps.methods[method_type]))
        return provider, req

    def _charge_flow(
        self, account: str, provider: Provider, req: ChargeRequest, key: str
    ) -> Flow[Charge]:
        caps = self._caps[account].methods[req.method.type]
        return ops.charge(
            provider,
            self._env,
            req,
            key,
            carries_metadata=caps.metadata,
            carries_description=caps.description,
        )

    def _ext_ctx(self, provider: Provider) -> OpContext:
        return ops._ctx(provider, self._env, key=None, charge_id=None)


class Gateway(_GatewayBase):
    """One payment API over every configured provider (blocking I/O).

    >>> from paygate import Gateway, Money, Konbini
    >>> gw = Gateway.from_config("paygate.toml")  # doctest: +SKIP
    >>> charge = gw.charge("konbini", amount=Money.jpy(1200),
    ...                    method=Konbini(store="family_mart", customer_name="テスト 太郎",
    ...                                   phone="0364413400"),
    ...                    idempotency_key="order-1042")  # doctest: +SKIP
    >>> charge.next_action  # doctest: +SKIP
    KonbiniSlip(store='family_mart', ...)
    """

    def __init__(
        self,
        accounts: Mapping[str, Provider] | Sequence[AccountConfig],
        *,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(accounts, **kwargs)
        # Imported here: the drivers bring httpx, stamina and OpenTelemetry, which
        # ``import paygate`` alone does not need.
        from ._driver import SyncDriver

        self._driver = SyncDriver(
            store=self.store,
            providers=self._providers,
            policy=self.retry,
            transport=transport,
            sleep=sleep,
        )
        self._webhooks = SyncWebhooks(self)

    def _run(self, account: str, operation: str, flow: Flow[T]) -> T:
        return self._driver.run(flow, account=account, operation=operation)

    def charge(
        self,
        account: str,
        *,
        amount: Money,
        method: PaymentMethod,
        idempotency_key: str,
        description: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> Charge:
        """Create a charge, exactly once per ``idempotency_key``.

        Retrying with the same key (even after a crash) returns the same charge; the
        same key with a different request raises `IdempotencyConflict`.
        """
        key = _key(idempotency_key)
        provider, req = self._charge_request(account, amount, method, description, metadata)
        return self._run(account, "charge", self._charge_flow(account, provider, req, key))

    def status(self, account: str, charge_id: str) -> Charge:
        """The charge as the provider sees it now (never moving a final status back)."""
        return self._run(
            account, "status", ops.status(self.provider(account), self._env, charge_id)
        )

    def wait(self, account: str, charge_id: str, *, timeout: float = 600.0) -> Charge:
        """Until the charge leaves pending / requires_action (long poll or backoff), or timeout.

        Returns the latest charge either way.
        """
        return self._run(
            account,
            "wait",
            ops.wait(
                self.provider(account),
                self._env,
                charge_id,
                _timeout(timeout),
                monotonic=self._monotonic,
            ),
        )

    def refund(
        self,
        account: str,
        charge_id: str,
        *,
        idempotency_key: str,
        amount: Money | None = None,
        reason: str | None = None,
    ) -> Refund:
        """Refund ``amount`` (default: everything refundable), exactly once per key."""
        key = _key(idempotency_key)
        amount = _optional_money(amount)
        reason = _reason(reason)
        return self._run(
            account,
            "refund",
            ops.refund(self.provider(account), self._env, charge_id, amount, reason, key),
        )

    def cancel(self, account: str, charge_id: str, *, idempotency_key: str | None = None) -> Charge:
        """Cancel an unpaid charge or void an authorisation."""
        key = _key(idempotency_key) if idempotency_key is not None else f"cancel:{charge_id}"
        return self._run(
            account, "cancel", ops.cancel(self.provider(account), self._env, charge_id, key)
        )

    def capture(
        self,
        account: str,
        charge_id: str,
        *,
        amount: Money | None = None,
        idempotency_key: str | None = None,
    ) -> Charge:
        """Capture an authorised charge (all of it, or ``amount``)."""
        key = _key(idempotency_key) if idempotency_key is not None else f"capture:{charge_id}"
        return self._run(
            account,
            "capture",
            ops.capture(self.provider(account), self._env, charge_id, _optional_money(amount), key),
        )

    def payout_balance(self, account: str) -> PayoutBalance:
        """What the provider will pay out to the merchant, and when."""
        return self._run(
            account, "payout_balance", ops.payout_balance(self.provider(account), self._env)
        )

    def extension(self, account: str, name: str, **kwargs: Any) -> Any:
        """Run a provider-specific flow (``provider.<name>(ctx, **kwargs)``).

        >>> gw.extension("card", "statement_urls", statement_id="st_...")  # doctest: +SKIP
        """
        provider = self.provider(account)
        fn = getattr(provider, name, None)
        if fn is None or name.startswith("_"):
            raise NotSupported(name, provider=provider.name)
        return self._run(account, name, fn(self._ext_ctx(provider), **kwargs))

    def close(self) -> None:
        """Close HTTP clients (and the store when the gateway opened it)."""
        self._driver.close()
        if self._owns_store:
            self.store.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncGateway(_GatewayBase):
    """`Gateway` for asyncio: every call is awaited.

    >>> async with AsyncGateway.from_config("paygate.toml") as gw:  # doctest: +SKIP
    ...     charge = await gw.charge("qr", amount=Money.jpy(500), method=QRCode(),
    ...                              idempotency_key="order-7")
    """

    def __init__(
        self,
        accounts: Mapping[str, Provider] | Sequence[AccountConfig],
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Callable[[float], Awaitable[None]] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(accounts, **kwargs)
        from ._driver import AsyncDriver

        self._driver = AsyncDriver(
            store=self.store,
            providers=self._providers,
            policy=self.retry,
            transport=transport,
            sleep=sleep,
        )
        self._webhooks = AsyncWebhooks(self)

    def _run(self, account: str, operation: str, flow: Flow[T]) -> Awaitable[T]:
        return self._driver.run(flow, account=account, operation=operation)

    async def charge(
        self,
        account: str,
        *,
        amount: Money,
        method: PaymentMethod,
        idempotency_key: str,
        description: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> Charge:
        """See `Gateway.charge`."""
        key = _key(idempotency_key)
        provider, req = self._charge_request(account, amount, method, description, metadata)
        return await self._run(account, "charge", self._charge_flow(account, provider, req, key))

    async def status(self, account: str, charge_id: str) -> Charge:
        """See `Gateway.status`."""
        return await self._run(
            account, "status", ops.status(self.provider(account), self._env, charge_id)
        )

    async def wait(self, account: str, charge_id: str, *, timeout: float = 600.0) -> Charge:  # noqa: ASYNC109
        """See `Gateway.wait`."""
        return await self._run(
            account,
            "wait",
            ops.wait(
                self.provider(account),
                self._env,
                charge_id,
                _timeout(timeout),
                monotonic=self._monotonic,
            ),
        )

    async def refund(
        self,
        account: str,
        charge_id: str,
        *,
        idempotency_key: str,
        amount: Money | None = None,
        reason: str | None = None,
    ) -> Refund:
        """See `Gateway.refund`."""
        key = _key(idempotency_key)
        amount = _optional_money(amount)
        reason = _reason(reason)
        return await self._run(
            account,
            "refund",
            ops.refund(self.provider(account), self._env, charge_id, amount, reason, key),
        )

    async def cancel(
        self, account: str, charge_id: str, *, idempotency_key: str | None = None
    ) -> Charge:
        """See `Gateway.cancel`."""
        key = _key(idempotency_key) if idempotency_key is not None else f"cancel:{charge_id}"
        return await self._run(
            account, "cancel", ops.cancel(self.provider(account), self._env, charge_id, key)
        )

    async def capture(
        self,
        account: str,
        charge_id: str,
        *,
        amount: Money | None = None,
        idempotency_key: str | None = None,
    ) -> Charge:
        """See `Gateway.capture`."""
        key = _key(idempotency_key) if idempotency_key is not None else f"capture:{charge_id}"
        return await self._run(
            account,
            "capture",
            ops.capture(self.provider(account), self._env, charge_id, _optional_money(amount), key),
        )

    async def payout_balance(self, account: str) -> PayoutBalance:
        """See `Gateway.payout_balance`."""
        return await self._run(
            account, "payout_balance", ops.payout_balance(self.provider(account), self._env)
        )

    async def extension(self, account: str, name: str, **kwargs: Any) -> Any:
        """See `Gateway.extension`."""
        provider = self.provider(account)
        fn = getattr(provider, name, None)
        if fn is None or name.startswith("_"):
            raise NotSupported(name, provider=provider.name)
        return await self._run(account, name, fn(self._ext_ctx(provider), **kwargs))

    async def aclose(self) -> None:
        """Close HTTP clients (and the store when the gateway opened it)."""
        await self._driver.aclose()
        if self._owns_store:
            self.store.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
