"""Reconciliation: resolve unknown outcomes and refresh stale charges.

Unknown outcomes (a request that may have reached the provider, no answer) are asked
for through the provider's lookup, or for a refund, cancel or capture retried under
its own key. Providers without a lookup cannot tell; the row then
says what the merchant can do (retry with the same key inside the provider's window).
Stale non-terminal charges are refreshed with a status call.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from . import _operations as ops
from ._adapter import ChargeRequest, Operation, OperationPolicy
from ._errors import OutcomeUnknown, PaygateError
from ._gateway import Gateway
from ._models import Card, ChargeStatus, Konbini, PosSale, QRCode, Wallet
from ._money import Money
from ._stores import ChargeRecord, IdempotencyRecord

__all__ = ["ReconcileRow", "reconcile"]

_METHODS: dict[str, Any] = {
    "card": Card,
    "konbini": Konbini,
    "qr": QRCode,
    "wallet": Wallet,
    "pos": PosSale,
}
_WAITING = (ChargeStatus.PENDING, ChargeStatus.REQUIRES_ACTION, ChargeStatus.AUTHORIZED)


@dataclass(frozen=True, slots=True)
class ReconcileRow:
    """What reconciliation found for one record."""

    account: str
    kind: str
    reference: str
    before: str
    after: str
    action: str


def reconcile(
    gateway: Gateway,
    *,
    account: str | None = None,
    stale_after: timedelta = timedelta(hours=1),
    now: datetime | None = None,
    dry_run: bool = False,
) -> list[ReconcileRow]:
    """Resolve what can be resolved; return a row per record looked at.

    Unknown charge outcomes are asked of the provider's lookup (found: the key completes
    and a retry replays the charge; not found inside the key window: the key is released;
    otherwise it stays unknown with what to do next). An unknown refund, cancel or
    capture is retried under its own key with what the key kept, where the provider
    deduplicates or looks it up (past a key window the gateway does not re-send).
    Stale pending charges are refreshed.
    ``dry_run`` only lists what would be asked, changing nothing and calling no provider.

    >>> from paygate import Gateway, reconcile
    >>> rows = reconcile(Gateway.from_config("paygate.toml"))  # doctest: +SKIP
    >>> [(row.reference, row.action) for row in rows]  # doctest: +SKIP
    [('ch_...', 'found ch_9f...: a retry replays it')]
    """
    now = now or datetime.now(UTC)
    rows: list[ReconcileRow] = []
    for record in gateway.store.records(states=["unknown", "started"], account=account):
        if (
            record.state == "started"
            and record.lease_until is not None
            and record.lease_until > now
        ):
            continue  # in flight right now
        rows.append(_unknown(gateway, record, dry_run))
    for charge in gateway.store.charges(
        account=account, statuses=_WAITING, updated_before=now - stale_after
    ):
        if charge.account in gateway.accounts:
            rows.append(_stale(gateway, charge, dry_run))
    return rows


def _unknown(gateway: Gateway, record: IdempotencyRecord, dry_run: bool) -> ReconcileRow:
    """The row of a key whose outcome is unknown (asking the lookup unless ``dry_run``)."""
    acct, operation, key = record.key.split("\x1f", 2)
    ref = record.charge_id or key

    def stays(action: str, kind: str = "unknown outcome") -> ReconcileRow:
        return ReconcileRow(acct, kind, ref, record.state, record.state, action)

    if acct not in gateway.accounts:
        return stays("account not configured")
    provider = gateway.provider(acct)
    if operation != Operation.CHARGE:
        return _unknown_change(gateway, record, acct, Operation(operation), key, dry_run)
    policy = provider.policy(Operation.CHARGE)
    if dry_run:
        return stays("would ask the provider's lookup" if policy.lookup else "no lookup")
    if not policy.lookup:
        advice = _retry_advice(provider.name, policy)
        return stays(f"{provider.name} has no lookup: {advice}" if policy.keyed else advice)
    req = _request_from(record.lookup or {})
    if req is None:
        return stays("no lookup hint kept")
    try:
        found = gateway._run(
            acct,
            "reconcile",
            ops.resolve_charge(provider, gateway._env, key, record.fingerprint, req),
        )
    except (AttributeError, KeyError, TypeError, ValueError) as exc:
        return stays(
            f"lookup needs data that is not kept ({type(exc).__name__}): retry with the same key"
        )
    except PaygateError as exc:
        return stays(
            f"still unknown: {exc.message}"
            if isinstance(exc, OutcomeUnknown)
            else f"still unknown ({exc.code})"
        )
    if found is None:
        return ReconcileRow(
            acct,
            "unknown outcome",
            ref,
            record.state,
            "not created",
            "released: a retry creates it",
        )
    return ReconcileRow(
        acct,
        "unknown outcome",
        found.id,
        record.state,
        found.status.value,
        f"found {found.provider_ref}: a retry replays it",
    )


def _unknown_change(
    gateway: Gateway,
    record: IdempotencyRecord,
    acct: str,
    operation: Operation,
    key: str,
    dry_run: bool,
) -> ReconcileRow:
    """The row of a refund, cancel or capture whose outcome is unknown.

    Where the provider deduplicates it or can look it up, it is retried under its own
    key with what the key kept (the same request, so the same fingerprint): the gateway
    then asks the operation's lookup or re-sends inside the key window, and refuses to
    re-send past it. Otherwise the row says what the merchant can do.
    """
    provider = gateway.provider(acct)
    policy = provider.policy(operation)
    kind = f"unknown {operation.value}"
    ref = record.charge_id or key
    advice = _retry_advice(provider.name, policy, operation.value)

    def stays(action: str) -> ReconcileRow:
        return ReconcileRow(acct, kind, ref, record.state, record.state, action)

    hint = record.lookup
    if not (policy.keyed or policy.lookup) or record.charge_id is None or hint is None:
        return stays(advice)
    if dry_run:
        return stays(f"would retry the {operation.value} under its key")
    amount = hint.get("amount")
    money = (
        None
        if amount is None
        else Money(amount=int(amount), currency=str(hint.get("currency", "JPY")))
    )
    try:
        if operation is Operation.REFUND:
            refund = gateway.refund(
                acct,
                record.charge_id,
                idempotency_key=key,
                amount=money,
                reason=hint.get("reason"),
            )
            after, done = refund.status.value, f"retried under its key: refund {refund.id}"
        elif operation is Operation.CAPTURE:
            charge = gateway.capture(acct, record.charge_id, amount=money, idempotency_key=key)
            after, done = charge.status.value, "retried under its key: captured"
        else:
            charge = gateway.cancel(acct, record.charge_id, idempotency_key=key)
            after, done = charge.status.value, "retried under its key: cancelled"
    except OutcomeUnknown as exc:
        return stays(f"still unknown: {exc.message}")
    except PaygateError as exc:
        # A refusal ends the key (failed); a provider still failing leaves it open.
        now = gateway.store.get(record.key)
        state = now.state if now is not None else "released"
        if state in ("unknown", "started"):
            return stays(f"still unknown ({exc.code}): {advice}")
        return ReconcileRow(
            acct, kind, ref, record.state, state, f"retried under its key: {exc.code}"
        )
    return ReconcileRow(acct, kind, ref, record.state, after, done)


def _retry_advice(provider: str, policy: OperationPolicy, operation: str = "") -> str:
    """What the merchant can safely do about an unknown outcome under ``policy``."""
    what = f"the {operation}" if operation else ""
    if not policy.keyed:
        return f"{provider} can neither deduplicate nor look up: check its dashboard"
    if policy.lookup:
        return f"retry {what or 'it'} with the same key (the provider's lookup tells)"
    if policy.key_window == "unknown":
        window = " (its key window is not stated: check its dashboard first)"
    elif policy.key_window:
        window = f" within {_duration(policy.key_window)}"
    else:
        window = ""
    return f"retry {what + ' ' if what else ''}with the same key{window}"


def _duration(span: timedelta) -> str:
    """``span`` in words: "24 hours", "30 minutes" (else timedelta's own form)."""
    seconds = int(span.total_seconds())
    for unit, size in (("hour", 3600), ("minute", 60)):
        if seconds and seconds % size == 0:
            count = seconds // size
            return f"{count} {unit}{'s' if count != 1 else ''}"
    return str(span)


def _request_from(hint: dict[str, Any]) -> ChargeRequest | None:
    """The charge request a lookup asks about, from what the key kept (None: not enough).

    Personal fields were never kept; a lookup that needs them fails, per row."""
    method_cls = _METHODS.get(str(hint.get("method")))
    if method_cls is None or "amount" not in hint:
        return None
    fields = hint.get("method_fields")
    fields = dict(fields) if isinstance(fields, dict) else {}
    fields["type"] = hint["method"]
    if isinstance(fields.get("lines"), list):
        from ._models import PosLine

        fields["lines"] = tuple(PosLine.model_validate(line) for line in fields["lines"])
    return ChargeRequest(
        amount=Money(amount=int(hint["amount"]), currency=str(hint.get("currency", "JPY"))),
        method=method_cls.model_construct(**fields),
    )


def _stale(gateway: Gateway, charge: ChargeRecord, dry_run: bool) -> ReconcileRow:
    """The row of a charge left waiting too long (its status refreshed unless ``dry_run``)."""
    before = charge.status.value

    def row(after: str, action: str) -> ReconcileRow:
        return ReconcileRow(charge.account, "stale charge", charge.charge_id, before, after, action)

    if dry_run:
        return row(before, "would refresh its status")
    try:
        fresh = gateway.status(charge.account, charge.charge_id)
    except PaygateError as exc:
        return row(before, f"status failed ({exc.code})")
    return row(fresh.status.value, "updated" if fresh.status != charge.status else "unchanged")
