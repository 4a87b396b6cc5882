"""The order numbers of an idempotency key, and what paygate remembers of them.

elepay has no idempotency header: a code is created with an ``orderNo`` derived from
the merchant's key (at most 50 characters of ``[A-Za-z0-9_-]``). elepay refuses
(``M002007``) an orderNo that was paid *or* whose code is still valid, and frees one
after the code is closed or expires; so a create whose answer was lost goes out again
under the key's next orderNo (``pg-code2-…``, ``pg-code3-…``). Every orderNo sent under
a key is recorded in the entity cache before it is sent.

Entity-cache entries (per account):

- ``elepay:<account>:key:<base>``: the key's state, ``{orders, since, last}`` (every
  orderNo sent, when the first and the latest were sent, epoch ms);
- ``elepay:<account>:order:<orderNo>``: ``{codeId, chargeId, key}``, what elepay
  answered for an orderNo;
- ``elepay:<account>:closed:<codeId>``: paygate closed the code (``{at}``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from paygate import InvalidRequest, OutcomeUnknown
from paygate.adapter import CacheGet, CachePut, Flow, OpContext

from ._charges import NAME
from ._wire import ORDER_NO_MAX, from_millis, to_millis

__all__ = ["ORDER_ATTEMPTS", "RESENDS", "OrderBook"]

# Order numbers one key may use (``pg-code-…``, ``pg-code2-…``, …) and how many of them
# one charge call sends after lost answers before it reports the outcome as unknown.
ORDER_ATTEMPTS: Final = 6
RESENDS: Final = 2
# A code lives at most 30 minutes (expiryDuration); with the skew, its orderNo is free.
_CODE_LIFETIME_MS: Final = (30 + 5) * 60_000


class OrderBook:
    """The order numbers and entity-cache entries of one elepay account.

    >>> OrderBook("qr").order_key("pg-code-order-1")
    'elepay:qr:order:pg-code-order-1'
    """

    def __init__(self, account: str) -> None:
        self.account = account

    # -- cache keys ----------------------------------------------------------------------

    def order_key(self, order_no: str) -> str:
        """The cache entry of what elepay answered for ``order_no``."""
        return f"elepay:{self.account}:order:{order_no}"

    def key_key(self, base: str) -> str:
        """The cache entry of a key's state (``base``: its first orderNo)."""
        return f"elepay:{self.account}:key:{base}"

    def closed_key(self, code_id: str) -> str:
        """The cache entry that says paygate closed ``code_id``."""
        return f"elepay:{self.account}:closed:{code_id}"

    # -- order numbers -------------------------------------------------------------------

    @staticmethod
    def base(ctx: OpContext) -> str:
        """The key's first orderNo (``pg-code-…``); it also names the key's state."""
        # No key: provider_key refuses (InvalidRequest).
        order_no = ctx.provider_key("code", max_len=ORDER_NO_MAX, alphabet="alnum")
        if len(order_no) > ORDER_NO_MAX:  # derive_key guarantees this; elepay insists
            raise InvalidRequest("orderNo too long", param="idempotency_key")
        return order_no

    @staticmethod
    def next_order_no(state: Mapping[str, Any], ctx: OpContext) -> str:
        """The key's next unused orderNo; `OutcomeUnknown` once all were sent and the
        latest code may still be valid."""
        tried: list[str] = state["orders"]
        for attempt in range(1, ORDER_ATTEMPTS + 1):
            scope = "code" if attempt == 1 else f"code{attempt}"
            order_no = ctx.provider_key(scope, max_len=ORDER_NO_MAX, alphabet="alnum")
            if order_no not in tried:
                return order_no
        last = state.get("last")
        if isinstance(last, int) and to_millis(ctx.now()) > last + _CODE_LIFETIME_MS:
            # Every code of the key has expired unpaid (the lookup that precedes a re-run
            # found none paid): elepay frees their orderNos, and paygate starts over.
            tried.clear()
            return ctx.provider_key("code", max_len=ORDER_NO_MAX, alphabet="alnum")
        free_at = from_millis(last + _CODE_LIFETIME_MS) if isinstance(last, int) else None
        when = f" after {free_at.isoformat(timespec='minutes')}" if free_at else " later"
        raise OutcomeUnknown(
            f"elepay was sent {len(tried)} codes for this key and none could be confirmed; "
            f"they expire unpaid: retry with the same key{when}",
            provider=NAME,
        )

    # -- the key's state -------------------------------------------------------------------

    def state(self, base: str, ctx: OpContext) -> Flow[dict[str, Any]]:
        """Every orderNo sent under a key, and when the first was sent (epoch ms)."""
        entry = yield CacheGet(self.key_key(base))
        orders: list[str] = []
        since: int | None = None
        last: int | None = None
        if isinstance(entry, Mapping):
            raw = entry.get("orders")
            if isinstance(raw, list):
                orders = [o for o in raw if isinstance(o, str)]
            first = entry.get("since")
            since = first if isinstance(first, int) else None
            latest = entry.get("last")
            last = latest if isinstance(latest, int) else None
        now = to_millis(ctx.now())
        return {
            "orders": orders,
            "since": since if since is not None else now,
            "last": last if isinstance(entry, Mapping) and last is not None else since,
        }

    def forget(self, base: str, order_no: str) -> Flow[None]:
        """Drop ``order_no`` from the key's state (elepay made nothing with it)."""
        entry = yield CacheGet(self.key_key(base))
        if isinstance(entry, Mapping) and isinstance(entry.get("orders"), list):
            orders = [o for o in entry["orders"] if o != order_no]
            yield CachePut(self.key_key(base), {**entry, "orders": orders})
