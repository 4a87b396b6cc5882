"""The PAY.JP sandbox emulator (API v1), stateful and driven by the sandbox clock.

Mounted by the sandbox host under ``/payjp``; its routes are ``/v1/...``, so the
official Python SDK works with ``payjp.api_base = "http://127.0.0.1:PORT/payjp"`` (the
SDK appends ``/v1``) and paygate with ``base_url = "http://127.0.0.1:PORT/payjp"``.

Credentials (fixed, documented, test mode only): secret key `SECRET_KEY`, public key
`PUBLIC_KEY`, webhook token `WEBHOOK_TOKEN`. Any other key is answered 401.

Test card tokens (reusable, unlike real tokens): ``tok_success``; declines
``tok_card_declined``, ``tok_expired_card``, ``tok_invalid_cvc``,
``tok_incorrect_card_data``, ``tok_card_flagged``, ``tok_unacceptable_brand`` and
``tok_processing_error`` (402 ``card_error`` with that code); ``tok_3ds_failed`` (a
3-D Secure charge whose authentication fails). The ``token`` control action mints a
single-use token that behaves like real ones (``token_already_used`` on reuse).
Customers ``cus_success`` and ``cus_card_declined``; tenant ``ten_test`` (platform fee
10.00 %).

Idempotency: a POST with an ``Idempotency-Key`` seen in the last 24 hours (sandbox
time) on the same path with the same parameters gets the stored answer again, without
acting twice; the same key with other parameters gets 409 ``idempotency_conflict``
(PAY.JP's v1 behaviour is undocumented; these names are those of its v2 API). The
``reading`` control action makes keys count on charge creation only
(``idempotent_writes="create"``), the other plausible reading.

Refunds as https://pay.jp/docs/refund describes them: after any refund, partial or
full, ``refunded`` is true and ``amount_refunded`` holds the sum; the rest stays
refundable (with an ``amount`` or without one). A partial capture books the released
rest of the authorisation in ``amount_refunded`` (payjp-go ``Capture``: 400 of 500
gives ``amount_refunded = 100``); whether ``amount`` then stays the authorised amount
(default) or becomes the captured one, and whether ``refunded`` turns true, are
readings (``capture_amount``, ``refunded_after_capture``).

Authorisations (``capture=false``) expire after ``expiry_days`` (default 7) at
``expired_at``; whether PAY.JP then also marks them ``refunded`` is a reading
(``expiry_marks_refunded``, default true). 3-D Secure charges are created unpaid and
charged at ``tds_finish``, where a declining card answers 402; a flow not finished
within ``tds_timeout_minutes`` (default 30) of the charge's creation answers
``three_d_secure_expired`` there. Payouts follow `paygate_payjp._emulator._books`.

Every reading and its default is listed in docs/providers/payjp.md ("Assumptions").

Webhooks: every event is delivered through the sandbox with header
``X-Payjp-Webhook-Token`` and retried three times at three-minute intervals.

Layout: `._state` (the tables, seed data and clock effects), `._routes` (the HTTP
handlers), `._control` (the control actions), `._books` (the payout books).
"""

from __future__ import annotations

from typing import ClassVar

from ._control import PayjpControl
from ._routes import PayjpRoutes
from ._state import PUBLIC_KEY, SECRET_KEY, TEST_TOKENS, WEBHOOK_TOKEN, Readings

__all__ = [
    "PUBLIC_KEY",
    "SECRET_KEY",
    "TEST_TOKENS",
    "WEBHOOK_TOKEN",
    "PayjpEmulator",
    "Readings",
]


class PayjpEmulator(PayjpControl, PayjpRoutes):
    """PAY.JP v1 as the sandbox serves it (see the module note for what it assumes).

    Control actions (``POST /_sandbox/payjp/<action>``; ``PayjpEmulator.actions()``):

    * ``close_term`` ``{}``: run a closing now (the current Term ends now).
    * ``configure`` ``{cycle_days, payout_days, fee_rate, transfer_fee,
      minimum_payout}``: payout rules, applied from the next Term.
    * ``token`` ``{"card": "success" | "card_declined" | ...}``: mint a single-use token.
    * ``tds`` ``{"charge": id, "result": "verified" | "attempted" | "failed"}``: the
      customer completes (or fails) 3-D Secure.
    * ``payout`` ``{"balance": id}``: pay a ``transfer`` Balance out now.
    * ``settle_claim`` ``{"balance": id}``: the merchant paid a ``claim`` Balance.
    * ``tenant`` ``{"id", "name", "platform_fee_rate"}``: create a tenant.
    * ``webhook`` ``{"type": "charge.succeeded", "id": object id}``: deliver an event
      for an existing object again.
    * ``reading`` ``{idempotent_writes: "all" | "create", capture_amount: "authorized" |
      "captured", refunded_after_capture, expiry_marks_refunded, tds_timeout_minutes,
      terms_order: "newest" | "oldest"}``:
      how facts PAY.JP does not document are played (see `Readings`); reset restores
      the defaults.
    """

    name: ClassVar[str] = "payjp"
