"""The local ledger: what paygate recorded, across providers, with paging.

Read from paygate's own store (no provider call): charges with their current status and
amounts, refunds (and voids) made through paygate, and the transitions of each charge.
Pages are newest first; ``next`` is an opaque cursor for the following page.
"""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime

from ._errors import InvalidRequest
from ._models import Charge, ChargeStatus, ChargeTransition, Page, Refund
from ._operations import view
from ._stores import ChargeRecord, Store

__all__ = ["charge_of", "charge_page", "history", "refund_page"]

_MAX_LIMIT = 1000


def _cursor(created_at: datetime, ident: str) -> str:
    raw = json.dumps([created_at.isoformat(), ident]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _after(cursor: object) -> tuple[datetime, str] | None:
    if cursor is None:
        return None
    if not isinstance(cursor, str):
        raise InvalidRequest("after must be the `next` of a previous page", param="after")
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        stamp, ident = json.loads(raw)
        return datetime.fromisoformat(stamp), str(ident)
    except (ValueError, TypeError):
        raise InvalidRequest("after must be the `next` of a previous page", param="after") from None


def _time(value: object, param: str) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, datetime):
        raise InvalidRequest(f"{param} must be a datetime", param=param)
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _limit(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= _MAX_LIMIT:
        raise InvalidRequest(f"limit must be an integer from 1 to {_MAX_LIMIT}", param="limit")
    return value


def _statuses(value: object) -> list[ChargeStatus] | None:
    if value is None:
        return None
    items = [value] if isinstance(value, str) else value
    known = ", ".join(s.value for s in ChargeStatus)
    if not isinstance(items, list | tuple | set | frozenset):
        raise InvalidRequest(f"status must be one of {known}", param="status")
    out: list[ChargeStatus] = []
    for item in items:
        if not isinstance(item, str) or item not in ChargeStatus._value2member_map_:
            raise InvalidRequest(f"status must be one of {known}", param="status")
        out.append(ChargeStatus(item))
    return out


def charge_of(record: ChargeRecord) -> Charge:
    """The charge as paygate recorded it."""
    return view(Charge.model_validate(record.charge_json or {}), record)


def charge_page(
    store: Store,
    *,
    account: str | None,
    status: object,
    since: object,
    until: object,
    limit: object,
    after: object,
) -> Page[Charge]:
    """A page of recorded charges, newest first."""
    size = _limit(limit)
    records = store.ledger_charges(
        account=account,
        statuses=_statuses(status),
        since=_time(since, "since"),
        until=_time(until, "until"),
        before=_after(after),
        limit=size + 1,
    )
    items = tuple(charge_of(r) for r in records[:size])
    more = len(records) > size
    last = records[size - 1] if more else None
    return Page(items, _cursor(last.created_at, last.charge_id) if last else None)


def refund_page(
    store: Store,
    *,
    account: str | None,
    charge_id: str | None,
    since: object,
    until: object,
    limit: object,
    after: object,
) -> Page[Refund]:
    """A page of refunds (and voids) made through paygate, newest first."""
    size = _limit(limit)
    records = store.ledger_results(
        "refund",
        account=account,
        charge_id=charge_id,
        since=_time(since, "since"),
        until=_time(until, "until"),
        before=_after(after),
        limit=size + 1,
    )
    items = tuple(Refund.model_validate(r.result or {}) for r in records[:size])
    more = len(records) > size
    last = records[size - 1] if more else None
    return Page(items, _cursor(last.created_at, last.key) if last else None)


def history(store: Store, account: str, charge_id: str) -> tuple[ChargeTransition, ...]:
    """The recorded transitions of one charge, oldest first."""
    given: object = charge_id  # callers may pass anything at run time
    record = store.get_charge(charge_id) if isinstance(given, str) else None
    if record is None or record.account != account:
        raise InvalidRequest(
            f"unknown charge {charge_id!r} for account {account!r}", param="charge_id"
        )
    return tuple(
        ChargeTransition(
            charge_id=t.charge_id,
            from_status=t.from_status,
            to_status=t.to_status,
            amount_refunded=t.amount_refunded,
            source=str(t.source),
            observed_at=t.observed_at,
            recorded_at=t.recorded_at,
            note=t.note,
        )
        for t in store.history(charge_id)
    )
