"""The Pokepay emulator's control actions: what the customer or the operator does.

Each ``control_<action>`` method is one action of ``POST /_sandbox/pokepay/<action>``
(``paygate sandbox control pokepay <action>``); the first line of its docstring is
what ``paygate sandbox actions pokepay`` lists.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from paygate.sandbox import ControlError, EmulatorError

from ._state import SCAN_ERRORS, PokepayState, StoredWallet, kind_of

__all__ = ["PokepayControl"]

_STATUSES = ("active", "suspended", "pre-closed", "closed")


class PokepayControl(PokepayState):
    """The control actions over the emulator's state."""

    def control_scan_cashtray(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """The customer scans a Cashtray {cashtray_id | token, customer_id, strategy, error}.

        ``customer_id`` defaults to the funded customer; ``error`` forces one of
        `SCAN_ERRORS`. Answers the attempt: ``status_code``, ``error_type``,
        ``error_message`` and the ``transaction_id`` of a successful scan.
        """
        cashtray_id = params.get("cashtray_id")
        token = params.get("token")
        if cashtray_id is None and isinstance(token, str):
            cashtray_id = token.rstrip("/").rsplit("/", 1)[-1]
        cashtray = self.cashtrays.get(str(cashtray_id))
        if cashtray is None:
            raise ControlError("unknown Cashtray", status=404)
        customer = str(params.get("customer_id") or self.seed.customers["funded"][0])
        forced = params.get("error")
        if forced is not None and forced not in SCAN_ERRORS:
            raise ControlError(f"error must be one of {', '.join(SCAN_ERRORS)}")
        strategy = str(params.get("strategy") or "point-preferred")
        try:
            txn = self._scan(cashtray, customer, strategy, forced=forced)
        except EmulatorError as exc:
            kind = kind_of(exc)
            return {
                "status_code": exc.status,
                "error_type": kind,
                "error_message": self._message(kind, "en"),
                "transaction_id": None,
            }
        return {"status_code": 200, "error_type": "", "error_message": "", "transaction_id": txn.id}

    def control_topup(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """Add {money_amount, point_amount} to customer_id's wallet."""
        wallet = self._control_wallet(params)
        money = self._control_int(params, "money_amount")
        points = self._control_int(params, "point_amount")
        wallet.money += money
        wallet.points += points
        return self._account_detail(wallet)

    def control_set_account_status(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """Set customer_id's wallet status: active, suspended, pre-closed or closed."""
        wallet = self._control_wallet(params)
        status = params.get("status")
        if status not in _STATUSES:
            raise ControlError("status must be active, suspended, pre-closed or closed")
        wallet.status = str(status)
        return self._account_detail(wallet)

    def control_account(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """The wallet of customer_id (the shop's when omitted) with its balances."""
        if params.get("customer_id") is None:
            return self._account_detail(self.wallets[self.seed.shop_account_id])
        return self._account_detail(self._control_wallet(params))

    def control_set_campaign(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """A point-back campaign on every payment: percent % plus points (0: off)."""
        self.campaign_percent = self._control_int(params, "percent")
        self.campaign_fixed = self._control_int(params, "points")
        return {"percent": self.campaign_percent, "points": self.campaign_fixed}

    def control_add_coupon(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """A coupon of discount_amount yen; answers its coupon_id."""
        discount = self._control_int(params, "discount_amount")
        coupon_id = str(uuid.UUID(int=self.ctx.rng.getrandbits(128), version=4))
        self.coupons[coupon_id] = discount
        return {"coupon_id": coupon_id, "discount_amount": discount}

    def control_set_request_id_retention(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """How many seconds request ids are kept (null: for ever; default one day)."""
        seconds = params.get("seconds")
        self.request_ids.window = (
            None if seconds is None else timedelta(seconds=self._control_int(params, "seconds"))
        )
        return {"seconds": seconds}

    def control_set_request_id_check(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """v4_only (default true): refuse request ids that are not version-4 UUIDs."""
        v4_only = params.get("v4_only", True)
        if not isinstance(v4_only, bool):
            raise ControlError("v4_only must be true or false")
        self.request_id_v4_only = v4_only
        return {"v4_only": v4_only}

    def control_set_envelope(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """The envelope's freshness_seconds (null: no check) and expire_next refusals."""
        if "freshness_seconds" in params:
            fresh = params.get("freshness_seconds")
            self.envelope_freshness = (
                None
                if fresh is None
                else timedelta(seconds=self._control_int(params, "freshness_seconds"))
            )
        if "expire_next" in params:
            self.expire_next = self._control_int(params, "expire_next")
        freshness = self.envelope_freshness
        return {
            "freshness_seconds": None if freshness is None else freshness.total_seconds(),
            "expire_next": self.expire_next,
        }

    # -- helpers ---------------------------------------------------------------------

    def _control_wallet(self, params: Mapping[str, Any]) -> StoredWallet:
        customer = params.get("customer_id") or self.seed.customers["funded"][0]
        wallet = self._wallet_of(str(customer))
        if wallet is None:
            raise ControlError("no wallet for this customer and money", status=404)
        return wallet

    @staticmethod
    def _control_int(params: Mapping[str, Any], name: str) -> int:
        value = params.get(name, 0)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ControlError(f"{name} must be a non-negative integer")
        return value
