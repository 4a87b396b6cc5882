"""A stateful, in-memory emulator of the Pokepay Partner API for the paygate sandbox.

Wire compatibility: it reads every request form the official SDKs send (JSON or form
body; the real HTTP method, or POST with ``request_method``; base64url with or without
``=``; any throw-away block and IV) and answers ``{response_data, timestamp,
partner_call_id}`` with a throw-away block inside the ciphertext, as every SDK expects.

What it assumes where Pokepay's documentation is silent (the "Assumptions" table of
docs/providers/pokepay.md names each, with what would change it):

* Freshness (undocumented; O-P4): a request's ``timestamp`` must be within
  ``envelope_freshness`` (300 seconds unless changed with the ``set_envelope``
  control; None turns the check off) of the emulator's clock (the sandbox clock or the
  real clock, whichever is closer), else 400 ``partner_request_expired``. A
  ``partner_call_id`` seen before (within twice that window) is answered 400
  ``partner_request_already_done`` and not processed again. ``expire_envelopes`` (a
  count, set with the same control) refuses that many next envelopes as expired.
* Error bodies (O-P7): errors before the client is known (``partner_client_not_found``,
  ``partner_decryption_failed``) are plain JSON; all later errors are encrypted.
* Method (O-P5): ``request_method`` wins over the HTTP verb when both are present;
  query strings are ignored.
* Not found (O-P2, O-P3): GET /transactions/requests/{id} answers 422
  ``transaction_not_found``; other unknown objects answer 404 ``notfound``.
* request_id (documented): a repeated ``request_id`` returns the existing transaction,
  whatever else the request says; only a transaction of another customer gives 422
  ``request_id_conflict``. Request ids are "deleted after some period": here after
  ``request_id_retention`` (one day unless changed with the ``set_request_id_retention``
  control; None keeps them for ever); a purged id is unknown to the lookup and to a
  new payment.
* request_id form (whether Pokepay enforces it is not documented): a ``request_id``
  sent to create a transaction must be a UUID of version 4, as documented ("UUID
  V4フォーマット"), else 400 ``invalid_parameters`` (``invalid: [request_id]``);
  ``set_request_id_check`` with ``v4_only`` false accepts any UUID.
* Campaigns (documented fields, configurable amounts): with ``set_campaign`` a
  point-back campaign gives each payment ``percent`` % (rounded down) or ``points``
  points, issued to the customer as a ``campaign-topup`` transfer. The transaction then
  reports ``point_amount = raw_point_amount - campaign_point_amount`` and
  ``amount = money_amount + point_amount``, as the Partner API's schema says. A refund
  adds ``refund-payment`` and ``refund-campaign`` (and ``refund-coupon``) transfers.
* Coupons (shape assumed): ``add_coupon`` registers a coupon with a
  ``discount_amount``; a payment with its ``coupon_id`` charges the customer the
  amount less the discount and records a ``use-coupon`` transfer of the discount.
* Cashtray: one-shot. The first scan (success or error) is recorded as ``attempt``;
  a later scan is refused with ``cashtray_already_proceed`` and does not overwrite it.
  Cancelling a Cashtray whose scan failed answers ``cashtray_already_proceed``.
* Language (O-P8): messages are Japanese when ``Accept-Language`` starts with ``ja``,
  English otherwise.
* The shop's wallet receives payments and pays refunds; topups issue new money and
  do not draw on the shop's wallet.

The package: `._state` (seed identities, tables, money moves), `._routes` (the
envelope and the Partner API), `._control` (the ``control_<action>`` methods).
"""

from __future__ import annotations

from typing import ClassVar

from ._control import PokepayControl
from ._routes import PokepayRoutes
from ._state import SANDBOX, SCAN_ERRORS

__all__ = ["SANDBOX", "SCAN_ERRORS", "PokepayEmulator"]


class PokepayEmulator(PokepayControl, PokepayRoutes):
    """The Pokepay Partner API, in memory, served by the paygate sandbox under /pokepay.

    Seed data (fixed; see `SANDBOX` and docs/providers/pokepay.md): one organization,
    one private money, one shop with a wallet, and customers ``funded`` (¥100,000 and
    1,000 points), ``low_balance`` (¥300), ``suspended``, ``closed`` and ``no_wallet``.
    The tables the sandbox dashboard reads: ``cashtrays``, ``transactions``,
    ``wallets``; `SCAN_ERRORS` lists the errors a forced scan may end in.

    >>> sorted(PokepayEmulator.actions())[:3]
    ['account', 'add_coupon', 'scan_cashtray']
    """

    #: The errors ``scan_cashtray`` may be forced to end in (the dashboard offers them).
    SCAN_ERRORS: ClassVar[tuple[str, ...]] = SCAN_ERRORS
