"""Webhooks, all in one place: verify, normalise, deduplicate, record; run handlers once.

- Ingestion (`ingest`): the provider verifies the delivery and parses it (re-fetching
  the object where it signs nothing); each event is claimed in the store so that it is
  handled once across workers; its state is folded into the charge's record, moving
  money figures only to what the provider states.
- `SyncWebhooks` / `AsyncWebhooks`: ``gw.webhooks`` of each gateway, with typed
  ``on()`` decorators and ``handle()``.
- `webhook_app`: the endpoint as an ASGI app (Starlette), mountable in any framework.
  A delivery that fails authentication gets 401 and nothing is recorded; a malformed or
  oversized body 400; a handler failure 500 so the provider delivers again (the event is
  released, not marked done); an event another worker is processing 409.
"""

from __future__ import annotations

import hashlib
import inspect
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypeVar

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from . import _operations as ops
from ._adapter import ParsedEvent, Provider
from ._checks import webhook_input
from ._effects import ClaimEvent, FindCharge, FinishEvent, RecordCharge, ReleaseEvent
from ._errors import (
    ConfigurationError,
    IdempotencyInProgress,
    InvalidRequest,
    MalformedResponse,
    NotSupported,
    PaygateError,
    WebhookVerificationError,
)
from ._exactly_once import Env
from ._flow import Flow
from ._models import ChargeStatus, Event, EventName, EventType
from ._stores import ChargeRecord, ChargeUpdate, ClaimOutcome

if TYPE_CHECKING:
    from ._gateway import AsyncGateway, Gateway

__all__ = ["AsyncWebhooks", "SyncWebhooks", "ingest", "settle_events", "webhook_app"]

log = logging.getLogger("paygate.webhooks")

H = TypeVar("H", bound=Callable[[Event], Any])


# ------------------------------------------------------------------------- ingestion


def event_id_of(parsed: ParsedEvent, body: bytes) -> str:
    """The provider's event id, or a content hash where the provider gives none."""
    if parsed.provider_event_id:
        return parsed.provider_event_id
    return "sha256:" + hashlib.sha256(body + parsed.provider_event_type.encode()).hexdigest()


def ingest(
    provider: Provider, env: Env, headers: Mapping[str, str], body: bytes
) -> Flow[list[tuple[Event, str, bool]]]:
    """Verify, normalise, deduplicate and record a delivery.

    Returns each event with its dedup id and whether this worker claimed it (and must
    run the handlers, then finish or release it).
    """
    try:
        provider.verify_webhook(headers, body)
    except (ValueError, TypeError, KeyError, AttributeError, RecursionError) as exc:
        raise MalformedResponse(
            f"webhook body could not be read ({type(exc).__name__})", provider=provider.name
        ) from None
    ctx = ops._ctx(provider, env, key=None, charge_id=None)
    try:
        parsed: Sequence[ParsedEvent] = yield from ops._read(
            provider.parse_webhook(headers, body, ctx), provider.name
        )
    except (ValueError, TypeError, KeyError, AttributeError, RecursionError) as exc:
        # An authentic but unreadable delivery (wrong shape, absurd nesting): refused as
        # malformed, nothing recorded.
        raise MalformedResponse(
            f"webhook body could not be read ({type(exc).__name__})", provider=provider.name
        ) from None
    out: list[tuple[Event, str, bool]] = []
    account = provider.account
    for item in parsed:
        event_id = event_id_of(item, body)
        claim: ClaimOutcome = yield ClaimEvent(
            account=account, event_id=event_id, owner=env.owner, lease=env.lease, now=env.clock()
        )
        if claim is ClaimOutcome.BUSY:
            raise IdempotencyInProgress("this event is being processed by another worker")
        record: ChargeRecord | None = None
        if item.provider_ref:
            record = yield FindCharge(account=account, provider_ref=item.provider_ref)
        status_ = item.status
        if claim is ClaimOutcome.NEW and record is not None:
            record = yield from _apply_event(provider, env, item, record)
            status_ = record.status
        event = Event(
            id=f"ev_{ops._digest(account, event_id)}",
            type=_event_type(item.type),
            account=account,
            provider=provider.name,
            provider_event_id=item.provider_event_id,
            provider_event_type=item.provider_event_type,
            charge_id=record.charge_id if record is not None else None,
            provider_ref=item.provider_ref,
            status=status_,
            amount=item.amount,
            occurred_at=item.occurred_at,
            received_at=env.clock(),
            duplicate=claim is ClaimOutcome.DONE,
            raw=item.raw,
        )
        out.append((event, event_id, claim is ClaimOutcome.NEW))
    return out


_MONEY_STATUSES = (ChargeStatus.REFUNDED, ChargeStatus.PARTIALLY_REFUNDED)


def _apply_event(
    provider: Provider, env: Env, item: ParsedEvent, record: ChargeRecord
) -> Flow[ChargeRecord]:
    """Fold an event into the record: only what the provider stated moves money.

    A re-fetched charge is recorded as it is. A status with the provider's amounts is
    recorded with them. A refunded status without amounts is never turned into a sum
    (a partial refund can look "refunded"): the charge is fetched and that recorded.
    """
    account = record.account
    if item.charge is not None:
        fresh = item.charge.model_copy(update={"id": record.charge_id, "account": account})
        return (yield from ops._record(env, ops._local(fresh, record), "webhook"))
    if item.status is None:
        return record
    refunded = item.amount_refunded
    if refunded is None and item.status in _MONEY_STATUSES:
        ctx = ops._ctx(provider, env, key=None, charge_id=record.charge_id)
        try:
            fetched = yield from ops._read(provider.status(ops.ref_of(record), ctx), provider.name)
        except NotSupported:
            pass  # nothing to ask: the status is kept, the money figure stays as it was
        else:
            fresh = fetched.model_copy(update={"id": record.charge_id, "account": account})
            return (yield from ops._record(env, ops._local(fresh, record), "webhook"))
    charge_json = dict(record.charge_json or {})
    if item.amount_captured is not None:
        charge_json["amount_captured"] = item.amount_captured.model_dump(mode="json")
    updated: ChargeRecord = yield RecordCharge(
        update=ChargeUpdate(
            charge_id=record.charge_id,
            account=account,
            provider=provider.name,
            provider_ref=record.provider_ref,
            method=record.method,
            status=item.status,
            amount=record.amount,
            currency=record.currency,
            amount_refunded=(record.amount_refunded if refunded is None else refunded.amount),
            observed_at=item.occurred_at or env.clock(),
            source="webhook",
            charge_json=charge_json or record.charge_json,
        ),
        now=env.clock(),
    )
    return updated


def settle_events(env: Env, account: str, event_ids: Sequence[str], ok: bool) -> Flow[None]:
    """Finish (handlers succeeded) or release (they failed) claimed events."""
    for event_id in event_ids:
        yield (FinishEvent if ok else ReleaseEvent)(
            account=account, event_id=event_id, owner=env.owner
        )


def _event_type(value: str) -> EventType:
    """An adapter's normalised type; an unknown one is reported as ``provider.other``."""
    try:
        return EventType(value)
    except ValueError:
        return EventType.PROVIDER_OTHER


# --------------------------------------------------------------------- gw.webhooks


class _Host(Protocol):
    """What the webhook classes use of their gateway."""

    webhook_max_body: int
    _env: Env

    @property
    def accounts(self) -> tuple[str, ...]: ...

    def provider(self, account: str) -> Provider: ...


class _Webhooks:
    def __init__(self, gateway: _Host) -> None:
        self._gateway = gateway
        self._handlers: dict[str, list[Callable[[Event], Any]]] = {}

    def on(self, event_type: EventType | EventName | Literal["*"] = "*") -> Callable[[H], H]:
        """Register a handler for ``event_type`` (``"*"``: every event).

        Handlers run once per event, however often the provider delivers it. The
        decorated function is returned unchanged (its type too). An unknown event type
        is a `ConfigurationError` (and a type error under mypy).

        >>> @gw.webhooks.on("charge.succeeded")  # doctest: +SKIP
        ... def paid(event: Event) -> None: ...
        """
        if event_type != "*":
            try:
                event_type = EventType(event_type)
            except ValueError:
                known = ", ".join(t.value for t in EventType)
                raise ConfigurationError(
                    f"unknown event type {event_type!r} (known: {known}, or '*')",
                    key="webhooks.on",
                ) from None

        def register(fn: H) -> H:
            self._handlers.setdefault(str(event_type), []).append(fn)
            return fn

        return register

    def _for(self, event: Event) -> list[Callable[[Event], Any]]:
        return [*self._handlers.get(str(event.type), ()), *self._handlers.get("*", ())]

    def _input(
        self, account: str, headers: object, body: object
    ) -> tuple[Provider, dict[str, str], bytes]:
        headers_, body_ = webhook_input(headers, body)
        if len(body_) > self._gateway.webhook_max_body:
            raise InvalidRequest("webhook body too large", param="body")
        return self._gateway.provider(account), headers_, body_

    def asgi(self) -> Starlette:
        """A Starlette app with one route per account: ``POST /{account}``.

        Bad token: 401, nothing recorded. Malformed or oversized body: 400. Handler
        failure: 500, so the provider retries.

        >>> app.mount("/webhooks", gw.webhooks.asgi())  # doctest: +SKIP
        """
        return webhook_app(self)


class SyncWebhooks(_Webhooks):
    """``gw.webhooks`` of a `Gateway`."""

    def __init__(self, gateway: Gateway) -> None:
        super().__init__(gateway)
        self._gw = gateway

    def handle(self, account: str, headers: Mapping[str, str], body: bytes) -> list[Event]:
        """Verify, normalise, deduplicate and record a delivery; run handlers once.

        >>> events = gw.webhooks.handle("konbini", request.headers, request.body)  # doctest: +SKIP
        """
        gw = self._gw
        provider, headers_, body_ = self._input(account, headers, body)
        results = gw._run(account, "webhook", ingest(provider, gw._env, headers_, body_))
        claimed = [event_id for _, event_id, mine in results if mine]
        try:
            for event, _, mine in results:
                if mine:
                    for handler in self._for(event):
                        outcome = handler(event)
                        if inspect.isawaitable(outcome):
                            raise TypeError("async webhook handlers need AsyncGateway")
        except BaseException:
            gw._run(account, "webhook.release", settle_events(gw._env, account, claimed, ok=False))
            raise
        gw._run(account, "webhook.finish", settle_events(gw._env, account, claimed, ok=True))
        return [event for event, _, _ in results]


class AsyncWebhooks(_Webhooks):
    """``gw.webhooks`` of an `AsyncGateway`; handlers may be coroutines."""

    def __init__(self, gateway: AsyncGateway) -> None:
        super().__init__(gateway)
        self._gw = gateway

    async def handle(self, account: str, headers: Mapping[str, str], body: bytes) -> list[Event]:
        """Verify, normalise, deduplicate and record a delivery; run handlers once.

        >>> events = await gw.webhooks.handle("qr", headers, body)  # doctest: +SKIP
        """
        gw = self._gw
        provider, headers_, body_ = self._input(account, headers, body)
        results = await gw._run(account, "webhook", ingest(provider, gw._env, headers_, body_))
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
                account, "webhook.release", settle_events(gw._env, account, claimed, ok=False)
            )
            raise
        await gw._run(account, "webhook.finish", settle_events(gw._env, account, claimed, ok=True))
        return [event for event, _, _ in results]


# --------------------------------------------------------------------- the endpoint


async def _read_limited(request: Request, limit: int) -> bytes | None:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        return None
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def webhook_app(webhooks: SyncWebhooks | AsyncWebhooks | _Webhooks) -> Starlette:
    """Build the endpoint for a gateway's ``webhooks`` (see `_Webhooks.asgi`)."""
    gateway = webhooks._gateway

    async def receive(request: Request) -> JSONResponse:
        account = request.path_params["account"]
        if account not in gateway.accounts:
            return JSONResponse({"error": "unknown account"}, status_code=404)
        body = await _read_limited(request, gateway.webhook_max_body)
        if body is None:
            return JSONResponse({"error": "body too large"}, status_code=400)
        headers = dict(request.headers)
        try:
            if isinstance(webhooks, AsyncWebhooks):
                events = await webhooks.handle(account, headers, body)
            else:
                from starlette.concurrency import run_in_threadpool

                assert isinstance(webhooks, SyncWebhooks)
                events = await run_in_threadpool(webhooks.handle, account, headers, body)
        except WebhookVerificationError:
            return JSONResponse({"error": "unauthorized"}, status_code=401)
        except (InvalidRequest, MalformedResponse):
            return JSONResponse({"error": "malformed delivery"}, status_code=400)
        except NotSupported:
            return JSONResponse(
                {"error": "webhooks not supported for this account"}, status_code=404
            )
        except IdempotencyInProgress:
            return JSONResponse({"error": "event in progress"}, status_code=409)
        except ConfigurationError:
            return JSONResponse({"error": "not configured"}, status_code=500)
        except PaygateError as exc:
            log.warning("webhook for %s failed: %s", account, exc)
            return JSONResponse({"error": exc.code}, status_code=503)
        except Exception as exc:
            # A handler failed: answer 5xx so the provider delivers again.
            log.exception("webhook handler for %s failed: %s", account, type(exc).__name__)
            return JSONResponse({"error": "handler failed"}, status_code=500)
        payload: dict[str, Any] = {
            "received": len(events),
            "duplicates": sum(1 for e in events if e.duplicate),
        }
        return JSONResponse(payload)

    return Starlette(routes=[Route("/{account}", receive, methods=["POST"])])
