"""`Gateway` and `AsyncGateway`: the API merchant code calls.

Both share every check and every operation flow; they differ only in the driver that
runs the flows (blocking or asyncio).
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self, TypeVar

from . import _checks as checks
from . import _ledger as ledger
from . import _operations as ops
from ._adapter import ChargeRequest, Provider
from ._errors import ConfigurationError, InvalidRequest, NotSupported
from ._exactly_once import Env
from ._flow import Flow
from ._models import (
    Capabilities,
    Card,
    Charge,
    ChargeStatus,
    ChargeTransition,
    Page,
    PaymentMethod,
    PayoutBalance,
    Refund,
)
from ._money import Money
from ._retry import RetryPolicy
from ._stores import Store, open_store
from ._webhooks import AsyncWebhooks, SyncWebhooks

if TYPE_CHECKING:
    # pydantic-settings is heavy: the config module loads on the first from_config().
    from ._config import AccountConfig, LoadedConfig

if TYPE_CHECKING:
    import httpx

__all__ = ["AsyncGateway", "Gateway"]

T = TypeVar("T")

WAIT_GRACE = 5.0
"""Seconds a `wait`'s requests may run past its ``timeout`` (the last long poll's answer)."""


def _owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"


class _GatewayBase:
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
        self._env = Env(
            owner=_owner(),
            clock=clock or (lambda: datetime.now(UTC)),
            lease=lease,
            new_uuid=uuid.uuid4,
        )

    # -- description -----------------------------------------------------------

    @property
    def accounts(self) -> tuple[str, ...]:
        """The configured account names."""
        return tuple(self._providers)

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

    def _ledger_account(self, account: object) -> str | None:
        if account is None:
            return None
        self.provider(account)  # type: ignore[arg-type]  # refuses an unknown account
        return account  # type: ignore[return-value]

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
            else checks.text(description, "description", limit=checks.MAX_DESCRIPTION)
        )
        checks.encodable(method.model_dump(), "method")  # type: ignore[attr-defined]
        req = ChargeRequest(
            amount=amount,
            method=method,  # type: ignore[arg-type]
            description=text,
            metadata=checks.metadata(metadata),
        )
        provider.validate_charge(checks.as_sent(req, caps.methods[method_type]))
        return provider, req

    # -- each operation's checks and flow, shared by both gateways -------------------
    # Every check runs here, before the driver sees the flow; the sync and the async
    # gateway only run what these return (``flow``, ``timeout``).

    def _charge_op(
        self,
        account: str,
        amount: object,
        method: object,
        idempotency_key: object,
        description: object,
        metadata: object,
        timeout: object,
    ) -> tuple[Flow[Charge], float | None]:
        key = checks.key(idempotency_key)
        limit = checks.operation_timeout(timeout)
        provider, req = self._charge_request(account, amount, method, description, metadata)
        caps = self._caps[account].methods[req.method.type]
        flow = ops.charge(
            provider,
            self._env,
            req,
            key,
            carries_metadata=caps.metadata,
            carries_description=caps.description,
        )
        return flow, limit

    def _status_op(
        self, account: str, charge_id: str, timeout: object
    ) -> tuple[Flow[Charge], float | None]:
        limit = checks.operation_timeout(timeout)
        return ops.status(self.provider(account), self._env, charge_id), limit

    def _wait_op(self, account: str, charge_id: str, timeout: object) -> tuple[Flow[Charge], float]:
        seconds = checks.timeout(timeout)
        flow = ops.wait(
            self.provider(account), self._env, charge_id, seconds, monotonic=self._monotonic
        )
        return flow, seconds + WAIT_GRACE

    def _refund_op(
        self,
        account: str,
        charge_id: str,
        idempotency_key: object,
        amount: object,
        reason: object,
        timeout: object,
    ) -> tuple[Flow[Refund], float | None]:
        key = checks.key(idempotency_key)
        money = checks.optional_money(amount)
        why = checks.reason(reason)
        limit = checks.operation_timeout(timeout)
        return ops.refund(self.provider(account), self._env, charge_id, money, why, key), limit

    def _cancel_op(
        self, account: str, charge_id: str, idempotency_key: object, timeout: object
    ) -> tuple[Flow[Charge], float | None]:
        key = checks.key(idempotency_key) if idempotency_key is not None else f"cancel:{charge_id}"
        limit = checks.operation_timeout(timeout)
        return ops.cancel(self.provider(account), self._env, charge_id, key), limit

    def _capture_op(
        self,
        account: str,
        charge_id: str,
        amount: object,
        idempotency_key: object,
        timeout: object,
    ) -> tuple[Flow[Charge], float | None]:
        key = checks.key(idempotency_key) if idempotency_key is not None else f"capture:{charge_id}"
        limit = checks.operation_timeout(timeout)
        money = checks.optional_money(amount)
        return ops.capture(self.provider(account), self._env, charge_id, money, key), limit

    def _payout_balance_op(
        self, account: str, timeout: object
    ) -> tuple[Flow[PayoutBalance], float | None]:
        limit = checks.operation_timeout(timeout)
        return ops.payout_balance(self.provider(account), self._env), limit

    def _extension_op(
        self, account: str, name: str, timeout: object, kwargs: Mapping[str, Any]
    ) -> tuple[Flow[Any], float | None]:
        limit = checks.operation_timeout(timeout)
        provider = self.provider(account)
        fn = getattr(provider, name, None)
        if fn is None or name.startswith("_"):
            raise NotSupported(name, provider=provider.name)
        ctx = ops._ctx(provider, self._env, key=None, charge_id=None)
        return fn(ctx, **kwargs), limit

    @staticmethod
    def _from_config_args(
        source: Any, store: Any, retry: RetryPolicy | None, webhook_max_body: int | None
    ) -> tuple[list[Any], dict[str, Any]]:
        """The accounts and settings ``from_config`` passes to ``__init__``."""
        from ._config import LoadedConfig, load_config

        cfg = source if isinstance(source, LoadedConfig) else load_config(source)
        return list(cfg.accounts.values()), {
            "store": store if store is not None else cfg.store,
            "retry": retry or cfg.retry,
            "webhook_max_body": (
                cfg.webhook_max_body if webhook_max_body is None else webhook_max_body
            ),
        }


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

    @classmethod
    def from_config(
        cls,
        source: str | Path | Mapping[str, Any] | LoadedConfig | None = None,
        *,
        store: Store | str | None = None,
        retry: RetryPolicy | None = None,
        clock: Callable[[], datetime] | None = None,
        lease: timedelta = timedelta(minutes=5),
        webhook_max_body: int | None = None,
        monotonic: Callable[[], float] | None = None,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] | None = None,
    ) -> Self:
        """Build a gateway from a TOML file (or a mapping with the same shape).

        ``store``, ``retry`` and ``webhook_max_body`` override the config's; the other
        keywords are `__init__`'s. (The methods each account offers come from the config.)

        >>> gw = Gateway.from_config("paygate.toml")  # doctest: +SKIP
        """
        accounts, settings = cls._from_config_args(source, store, retry, webhook_max_body)
        return cls(
            accounts,
            clock=clock,
            lease=lease,
            monotonic=monotonic,
            transport=transport,
            sleep=sleep,
            **settings,
        )

    @property
    def webhooks(self) -> SyncWebhooks:
        """Webhook handling: ``handle``, ``on``, ``asgi``.

        >>> @gw.webhooks.on("charge.succeeded")  # doctest: +SKIP
        ... def paid(event: Event) -> None: ...
        """
        return self._webhooks

    def _run(self, account: str, operation: str, flow: Flow[T], timeout: float | None = None) -> T:
        return self._driver.run(flow, account=account, operation=operation, timeout=timeout)

    def charge(
        self,
        account: str,
        *,
        amount: Money,
        method: PaymentMethod,
        idempotency_key: str,
        description: str | None = None,
        metadata: Mapping[str, str] | None = None,
        timeout: float | None = None,
    ) -> Charge:
        """Create a charge, exactly once per ``idempotency_key``.

        Retrying with the same key (even after a crash) returns the same charge; the
        same key with a different request raises `IdempotencyConflict`.

        ``timeout`` (seconds, default None: no bound beyond the retry policy's) bounds the
        whole operation, retries included; each HTTP attempt's timeouts are capped by what
        is left. When it runs out before the request is sent, nothing was sent and
        `ProviderUnavailable` (retryable) is raised; after it was sent, the outcome is
        resolved as for any lost answer (lookup, else `OutcomeUnknown`).
        """
        flow, limit = self._charge_op(
            account, amount, method, idempotency_key, description, metadata, timeout
        )
        return self._run(account, "charge", flow, limit)

    def status(self, account: str, charge_id: str, *, timeout: float | None = None) -> Charge:
        """The charge as the provider sees it now (never moving a final status back).

        ``timeout``: as for `charge` (a read: `ProviderUnavailable` when it runs out)."""
        return self._run(account, "status", *self._status_op(account, charge_id, timeout))

    def wait(self, account: str, charge_id: str, *, timeout: float = 600.0) -> Charge:
        """Until the charge leaves pending / requires_action (long poll or backoff), or timeout.

        Returns the latest charge either way. ``timeout`` also bounds each request the
        wait makes: its timeouts are capped by what is left of it (plus `WAIT_GRACE`
        seconds for the answer to a long poll that ends with it).
        """
        return self._run(account, "wait", *self._wait_op(account, charge_id, timeout))

    def refund(
        self,
        account: str,
        charge_id: str,
        *,
        idempotency_key: str,
        amount: Money | None = None,
        reason: str | None = None,
        timeout: float | None = None,
    ) -> Refund:
        """Refund ``amount`` (default: everything refundable), exactly once per key.

        ``timeout``: as for `charge`."""
        flow, limit = self._refund_op(account, charge_id, idempotency_key, amount, reason, timeout)
        return self._run(account, "refund", flow, limit)

    def cancel(
        self,
        account: str,
        charge_id: str,
        *,
        idempotency_key: str | None = None,
        timeout: float | None = None,
    ) -> Charge:
        """Cancel an unpaid charge or void an authorisation.

        ``timeout``: as for `charge`."""
        flow, limit = self._cancel_op(account, charge_id, idempotency_key, timeout)
        return self._run(account, "cancel", flow, limit)

    def capture(
        self,
        account: str,
        charge_id: str,
        *,
        amount: Money | None = None,
        idempotency_key: str | None = None,
        timeout: float | None = None,
    ) -> Charge:
        """Capture an authorised charge (all of it, or ``amount``).

        ``timeout``: as for `charge`."""
        flow, limit = self._capture_op(account, charge_id, amount, idempotency_key, timeout)
        return self._run(account, "capture", flow, limit)

    def payout_balance(self, account: str, *, timeout: float | None = None) -> PayoutBalance:
        """What the provider will pay out to the merchant, and when.

        ``timeout``: as for `status`."""
        return self._run(account, "payout_balance", *self._payout_balance_op(account, timeout))

    # -- the local ledger (no provider call) ---------------------------------------

    def charges(
        self,
        account: str | None = None,
        *,
        status: ChargeStatus | str | Sequence[ChargeStatus | str] | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 100,
        after: str | None = None,
    ) -> Page[Charge]:
        """Charges paygate recorded (every provider, or ``account``), newest first.

        Read from paygate's store, not the providers: what paygate knows, with the
        status and amounts of its last observation. ``after`` takes ``page.next``.

        >>> page = gw.charges("konbini", status="requires_action", limit=20)  # doctest: +SKIP
        >>> [c.id for c in page]  # doctest: +SKIP
        """
        return ledger.charge_page(
            self.store,
            account=self._ledger_account(account),
            status=status,
            since=since,
            until=until,
            limit=limit,
            after=after,
        )

    def refunds(
        self,
        account: str | None = None,
        *,
        charge_id: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 100,
        after: str | None = None,
    ) -> Page[Refund]:
        """Refunds (and voids) made through paygate, newest first.

        >>> [r.amount for r in gw.refunds("card", charge_id=charge.id)]  # doctest: +SKIP
        """
        return ledger.refund_page(
            self.store,
            account=self._ledger_account(account),
            charge_id=charge_id,
            since=since,
            until=until,
            limit=limit,
            after=after,
        )

    def history(self, account: str, charge_id: str) -> tuple[ChargeTransition, ...]:
        """Every recorded change of a charge (status, refunded amount), oldest first,
        with what brought it: an answer, a poll, a webhook or reconcile."""
        return ledger.history(self.store, self._ledger_account(account) or "", charge_id)

    def extension(
        self, account: str, name: str, *, timeout: float | None = None, **kwargs: Any
    ) -> Any:
        """Run a provider-specific flow (``provider.<name>(ctx, **kwargs)``).

        ``timeout``: as for `charge` (it is not passed to the flow).

        >>> gw.extension("card", "statement_urls", statement_id="st_...")  # doctest: +SKIP
        """
        return self._run(account, name, *self._extension_op(account, name, timeout, kwargs))

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

    @classmethod
    def from_config(
        cls,
        source: str | Path | Mapping[str, Any] | LoadedConfig | None = None,
        *,
        store: Store | str | None = None,
        retry: RetryPolicy | None = None,
        clock: Callable[[], datetime] | None = None,
        lease: timedelta = timedelta(minutes=5),
        webhook_max_body: int | None = None,
        monotonic: Callable[[], float] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Callable[[float], Awaitable[None]] | None = None,
    ) -> Self:
        """Build a gateway from a TOML file (or a mapping with the same shape).

        ``store``, ``retry`` and ``webhook_max_body`` override the config's; the other
        keywords are `__init__`'s. (The methods each account offers come from the config.)

        >>> gw = AsyncGateway.from_config("paygate.toml")  # doctest: +SKIP
        """
        accounts, settings = cls._from_config_args(source, store, retry, webhook_max_body)
        return cls(
            accounts,
            clock=clock,
            lease=lease,
            monotonic=monotonic,
            transport=transport,
            sleep=sleep,
            **settings,
        )

    @property
    def webhooks(self) -> AsyncWebhooks:
        """Webhook handling: ``handle`` (awaited), ``on``, ``asgi``."""
        return self._webhooks

    def _run(
        self, account: str, operation: str, flow: Flow[T], timeout: float | None = None
    ) -> Awaitable[T]:
        return self._driver.run(flow, account=account, operation=operation, timeout=timeout)

    async def charge(
        self,
        account: str,
        *,
        amount: Money,
        method: PaymentMethod,
        idempotency_key: str,
        description: str | None = None,
        metadata: Mapping[str, str] | None = None,
        timeout: float | None = None,  # noqa: ASYNC109
    ) -> Charge:
        """See `Gateway.charge`."""
        flow, limit = self._charge_op(
            account, amount, method, idempotency_key, description, metadata, timeout
        )
        return await self._run(account, "charge", flow, limit)

    async def status(
        self,
        account: str,
        charge_id: str,
        *,
        timeout: float | None = None,  # noqa: ASYNC109
    ) -> Charge:
        """See `Gateway.status`."""
        return await self._run(account, "status", *self._status_op(account, charge_id, timeout))

    async def wait(self, account: str, charge_id: str, *, timeout: float = 600.0) -> Charge:  # noqa: ASYNC109
        """See `Gateway.wait`."""
        return await self._run(account, "wait", *self._wait_op(account, charge_id, timeout))

    async def refund(
        self,
        account: str,
        charge_id: str,
        *,
        idempotency_key: str,
        amount: Money | None = None,
        reason: str | None = None,
        timeout: float | None = None,  # noqa: ASYNC109
    ) -> Refund:
        """See `Gateway.refund`."""
        flow, limit = self._refund_op(account, charge_id, idempotency_key, amount, reason, timeout)
        return await self._run(account, "refund", flow, limit)

    async def cancel(
        self,
        account: str,
        charge_id: str,
        *,
        idempotency_key: str | None = None,
        timeout: float | None = None,  # noqa: ASYNC109
    ) -> Charge:
        """See `Gateway.cancel`."""
        flow, limit = self._cancel_op(account, charge_id, idempotency_key, timeout)
        return await self._run(account, "cancel", flow, limit)

    async def capture(
        self,
        account: str,
        charge_id: str,
        *,
        amount: Money | None = None,
        idempotency_key: str | None = None,
        timeout: float | None = None,  # noqa: ASYNC109
    ) -> Charge:
        """See `Gateway.capture`."""
        flow, limit = self._capture_op(account, charge_id, amount, idempotency_key, timeout)
        return await self._run(account, "capture", flow, limit)

    async def payout_balance(
        self,
        account: str,
        *,
        timeout: float | None = None,  # noqa: ASYNC109
    ) -> PayoutBalance:
        """See `Gateway.payout_balance`."""
        return await self._run(
            account, "payout_balance", *self._payout_balance_op(account, timeout)
        )

    # -- the local ledger (no provider call) ---------------------------------------

    async def charges(
        self,
        account: str | None = None,
        *,
        status: ChargeStatus | str | Sequence[ChargeStatus | str] | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 100,
        after: str | None = None,
    ) -> Page[Charge]:
        """See `Gateway.charges`."""
        return await self._off_loop(
            ledger.charge_page,
            self.store,
            account=self._ledger_account(account),
            status=status,
            since=since,
            until=until,
            limit=limit,
            after=after,
        )

    async def refunds(
        self,
        account: str | None = None,
        *,
        charge_id: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 100,
        after: str | None = None,
    ) -> Page[Refund]:
        """See `Gateway.refunds`."""
        return await self._off_loop(
            ledger.refund_page,
            self.store,
            account=self._ledger_account(account),
            charge_id=charge_id,
            since=since,
            until=until,
            limit=limit,
            after=after,
        )

    async def history(self, account: str, charge_id: str) -> tuple[ChargeTransition, ...]:
        """See `Gateway.history`."""
        return await self._off_loop(
            ledger.history, self.store, self._ledger_account(account) or "", charge_id
        )

    async def _off_loop(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        if self.store.blocking:
            return await asyncio.to_thread(fn, *args, **kwargs)
        return fn(*args, **kwargs)

    async def extension(
        self,
        account: str,
        name: str,
        *,
        timeout: float | None = None,  # noqa: ASYNC109
        **kwargs: Any,
    ) -> Any:
        """See `Gateway.extension`."""
        return await self._run(account, name, *self._extension_op(account, name, timeout, kwargs))

    async def aclose(self) -> None:
        """Close HTTP clients (and the store when the gateway opened it)."""
        await self._driver.aclose()
        if self._owns_store:
            self.store.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
