"""paygate adapter for the Smaregi Platform API (POS).

A charge registers a sale in the shop's Smaregi POS, paid through the app's own payment
method (個別アプリ専用支払方法), which the adapter creates on first use.

* Idempotency: Smaregi has no idempotency key. ``terminalTranId`` and the receipt
  number ``transactionUuid`` are derived from the merchant's key and the sale's terminal
  time is recorded before sending, so an unknown outcome is resolved by looking the
  sale up (its receipt number) before anything is re-sent. The app payment method is
  created at most once per (client id, contract): GET first, POST only if absent, a
  403 "limit reached" means GET again.
* Retry: reads, token requests and cancels are safe to repeat; the sale create is not
  (no key), so the driver repeats it only when it surely never arrived. 429 and 5xx
  follow the generic rule; a 401 refreshes the access token once and repeats the call.
* Status: a registered sale is ``succeeded``; reversed at Smaregi (取消,
  ``cancelDivision`` 1, or 返品取消, ``disposeDivision`` 1) it is ``refunded``. Refunds
  and cancels are whole-sale voids (``Refund.kind == "void"``): Smaregi moves no money.

>>> from paygate_smaregi import SmaregiProvider
>>> SmaregiProvider.name
'smaregi'
"""

from ._auth import AccessToken, TokenKeeper
from ._charges import terminal_tran_id, transaction_uuid
from ._errors import ALREADY_REGISTERED
from ._provider import SmaregiProvider
from ._settings import DEFAULT_SCOPES, SmaregiSettings
from ._wire import AppPaymentMethod

__all__ = [
    "ALREADY_REGISTERED",
    "DEFAULT_SCOPES",
    "AccessToken",
    "AppPaymentMethod",
    "SmaregiProvider",
    "SmaregiSettings",
    "TokenKeeper",
    "terminal_tran_id",
    "transaction_uuid",
]
