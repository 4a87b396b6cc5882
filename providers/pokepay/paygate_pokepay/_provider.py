"""The Pokepay Partner API adapter: wallet payments and Cashtray QR codes (the flows).

Idempotency: a wallet payment carries ``request_id``, a UUID in the documented v4 form
derived from the merchant's idempotency key; Pokepay answers a repeated ``request_id``
with the transaction it already made (and ``request_id_conflict`` when the id belongs
to another user's transaction), and ``GET /transactions/requests/{request_id}`` tells
whether a payment whose answer was lost exists. A Cashtray has no request id and
cannot be listed, so a lost Cashtray cannot be found again; but nobody ever saw its QR
code, so nobody can pay it and it expires unused: creating a fresh one is safe (see
`lookup_charge`). A transaction is refunded at most once
(``transaction_already_refunded`` after that), which makes refunds safe to repeat;
cancelling a Cashtray twice answers ``cashtray_already_canceled``, likewise safe.

Retry: the driver re-sends the very same envelope, so the same ``partner_call_id``;
should Pokepay answer ``partner_request_already_done``, each flow recovers with a fresh
envelope (reads re-read, payments re-send under the same ``request_id``, refunds and
cancels re-read the object first). ``partner_request_expired`` refuses the envelope
before anything is done: it is rebuilt once (fresh timestamp, IV and call id) and sent
again; a second refusal is `Outcome.RETRYABLE` (the key is released).

The envelope is built and opened in ``_api``, Pokepay's objects are mapped in
``_charges`` (amounts and the Cashtray state machine), the checks made before any
request are in ``_validate``.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Mapping
from typing import Any, ClassVar

from paygate import (
    Capabilities,
    Charge,
    ConfigurationError,
    MethodCapabilities,
    NotFound,
    NotSupported,
    PayoutBalance,
    ProviderError,
    ProviderRejected,
    ProviderUnavailable,
    QRCode,
    Refund,
    Wallet,
)
from paygate.adapter import (
    CancelRequest,
    ChargeRef,
    ChargeRequest,
    Effect,
    Flow,
    OpContext,
    Operation,
    OperationPolicy,
    Outcome,
    Provider,
    ProviderSettings,
    RefundRequest,
    Retry,
    capabilities_of,
)

from ._api import (
    ALREADY_DONE,
    EXPIRED,
    Api,
    cashtray_params,
    legacy_request_id,
    payment_params,
    payment_request_id,
    request_id,
)
from ._charges import (
    ParsedRef,
    balance_from,
    cashtray_charge,
    checked_payment,
    paid_amount,
    refund_from,
    transaction_charge,
    wallet_of,
)
from ._crypto import EnvelopeCipher, random_iv
from ._errors import PROVIDER
from ._settings import PokepaySettings, client_certificate_context
from ._validate import MAX_AMOUNT, MIN_AMOUNT, partial_refund, validate_charge, validate_refund
from ._wire import as_amount, field

__all__ = ["PokepayProvider", "payment_request_id"]


class PokepayProvider(Provider):
    """Pokepay: charge a customer's prepaid wallet, or show a Cashtray QR code.

    Methods: `Wallet` (immediate payment from the customer's wallet) and `QRCode`
    (a Cashtray the customer scans in the Pokepay app). Refunds are whole-transaction
    only; an unpaid Cashtray can be cancelled.

    >>> from paygate_pokepay import PokepayProvider, PokepaySettings
    >>> provider = PokepayProvider(PokepaySettings(
    ...     base_url="http://127.0.0.1:8000/pokepay",
    ...     client_id="8d1f3c50-6c1b-4f0e-9a3e-0f5b2a9c7d11", client_secret="A" * 43,
    ...     shop_id="5f9e9d8c-1a2b-4c3d-8e4f-5a6b7c8d9e0f",
    ...     private_money_id="1c2d3e4f-5a6b-4c7d-8e9f-0a1b2c3d4e5f"), account="wallet")
    >>> provider.capabilities().methods["wallet"].refund
    'full'
    """

    name: ClassVar[str] = PROVIDER
    emulator_at = "._emulator:PokepayEmulator"
    demo_at = "._demo:demo"
    display_name: ClassVar[str] = "Pokepay"
    settings_model: ClassVar[type[ProviderSettings]] = PokepaySettings
    policies: ClassVar[Mapping[Operation, OperationPolicy]] = {
        # request_id (v4-form UUID of the merchant key) in the body; GET
        # /transactions/requests/{id} finds a wallet payment whose answer was lost. How
        # long Pokepay keeps request ids is not stated ("リクエストIDは一定期間で削除されます",
        # deleted after some period): "unknown", so a recovery that finds nothing is
        # reported as OutcomeUnknown instead of re-sending blind. Cashtrays have no key;
        # see lookup_charge.
        Operation.CHARGE: OperationPolicy(key="body", key_window="unknown", lookup=True),
        # The refund addresses one transaction, refunded at most once: a repeated
        # refund is turned into the refund that stands.
        Operation.REFUND: OperationPolicy(key="path"),
        # The cancel addresses one Cashtray: a repeated cancel is answered from its state.
        Operation.CANCEL: OperationPolicy(key="path"),
    }
    outcomes: ClassVar[Mapping[str, Outcome]] = {
        # The envelope was refused before anything was done (the flow already rebuilt it
        # once): the next call with the same key must reach Pokepay again.
        EXPIRED: Outcome.RETRYABLE,
    }

    def __init__(
        self,
        settings: ProviderSettings,
        *,
        account: str,
        iv_source: Callable[[], bytes] = random_iv,
    ) -> None:
        if not isinstance(settings, PokepaySettings):
            raise ConfigurationError("settings must be PokepaySettings", key=account)
        super().__init__(settings, account=account)
        self.config: PokepaySettings = settings
        secret = settings.client_secret.get_secret_value()  # registered by the settings
        #: The account's envelope: builds the encrypted calls and opens the answers.
        self.wire = Api(
            cipher=EnvelopeCipher.from_secret(secret, iv_source=iv_source),
            client_id=settings.client_id,
            base_url=settings.base_url,
            zone=settings.zone,
            accept_language=settings.accept_language,
        )

    # -- description ---------------------------------------------------------------

    def capabilities(self) -> Capabilities:
        """Wallet and Cashtray QR; whole refunds; Cashtray cancel; shop wallet balance."""
        return capabilities_of(
            self.name,
            MethodCapabilities(
                method="wallet",
                refund="full",
                cancel=False,
                cancel_alternative="refund (a wallet payment completes at once)",
                updates="polling",
            ),
            # A Cashtray has no metadata field (Partner API CreateCashtray): paygate
            # keeps the merchant's metadata in its own store instead.
            MethodCapabilities(
                method="qr", refund="full", cancel=True, metadata=False, updates="polling"
            ),
            currencies=("JPY",),
            min_amount=MIN_AMOUNT,
            max_amount=MAX_AMOUNT,
            payout_balance=True,
        )

    def http_options(self) -> dict[str, Any]:
        """TLS options: the client certificate for mutual TLS, when configured.

        The certificate is loaded into the SSL context passed as ``verify``
        (`client_certificate_context`); the server is verified as the common settings
        say (``ca_bundle``, or not at all only with ``tls_verify = false`` and
        ``allow_insecure_tls = true``).
        """
        opts = super().http_options()
        if self.config.ssl_cert_file is not None:
            opts["verify"] = client_certificate_context(self.config, opts.get("verify"))
        return opts

    # -- validation ------------------------------------------------------------------

    def validate_charge(self, req: ChargeRequest) -> None:
        """Refuse what Pokepay would refuse, before any I/O.

        Checks: JPY only, 1 to 99,999,999 yen, description up to 200 characters,
        flat string metadata, the customer's id (a UUID) and the product lines of a
        `Wallet`; for a `QRCode` (a Cashtray): no metadata, no product lines, and an
        ``expires_in`` of a second or more.
        """
        validate_charge(req)

    def validate_refund(self, req: RefundRequest) -> None:
        """Refuse a refund Pokepay would refuse, before any I/O.

        JPY only; the whole charge (a partial refund is `NotSupported`) when its amount
        is known; a reason of at most 200 characters.
        """
        validate_refund(req)

    # -- charge ----------------------------------------------------------------------

    def charge(self, req: ChargeRequest, ctx: OpContext) -> Flow[Charge]:
        """Create a wallet payment or a Cashtray."""
        if isinstance(req.method, Wallet):
            return (yield from self._charge_wallet(req, req.method, ctx))
        assert isinstance(req.method, QRCode)  # validate_charge refuses the rest
        return (yield from self._charge_qr(req, req.method, ctx))

    def _charge_wallet(
        self, req: ChargeRequest, method: Wallet, ctx: OpContext
    ) -> Generator[Effect, Any, Charge]:
        params = payment_params(req, method, request_id(ctx), self.config)
        step = "transactions.payment"
        for _ in range(3):
            try:
                answer = yield from self.wire.send(
                    ctx, "POST", "/transactions/payment", params, step=step, retry=Retry.KEYED
                )
            except ProviderError as exc:
                if exc.provider_code != ALREADY_DONE:
                    raise
                # An envelope of ours was processed and its answer lost: the payment may
                # exist. Ask by request_id; re-send (a fresh envelope, same request_id)
                # only if it does not.
                found = yield from self.lookup_charge(req, ctx)
                if found is not None:
                    return found
                continue
            return self._checked_payment(answer.data, req, ctx)
        raise ProviderUnavailable(
            "the payment's answers kept getting lost; retry with the same key",
            provider=self.name,
            provider_code=ALREADY_DONE,
        )

    def _checked_payment(
        self, data: Mapping[str, Any], req: ChargeRequest, ctx: OpContext
    ) -> Charge:
        return checked_payment(
            data,
            req,
            ctx,
            shop_id=self.config.shop_id,
            private_money_id=self.config.private_money_id,
        )

    def _charge_qr(
        self, req: ChargeRequest, method: QRCode, ctx: OpContext
    ) -> Generator[Effect, Any, Charge]:
        params = cashtray_params(req, method, self.config)
        created = ctx.now()
        try:
            answer = yield from self.wire.send(
                ctx, "POST", "/cashtrays", params, step="cashtrays.create", retry=Retry.UNSAFE
            )
        except ProviderError as exc:
            if exc.provider_code != ALREADY_DONE:
                raise
            # The first Cashtray's QR code never reached anyone, so it cannot be paid.
            answer = yield from self.wire.send(
                ctx, "POST", "/cashtrays", params, step="cashtrays.create", retry=Retry.UNSAFE
            )
        return cashtray_charge(answer, ctx, created_at=created)

    def lookup_charge(self, req: ChargeRequest, ctx: OpContext) -> Flow[Charge | None]:
        """Find the charge a possibly-sent `charge` created (None: nothing payable exists).

        Wallet: ``GET /transactions/requests/{request_id}``; both the documented 422
        ``transaction_not_found`` and a 404 mean "not created".

        QRCode: Pokepay offers no way to find a Cashtray without its id. A Cashtray
        whose creation answer was lost was never displayed, so no customer can scan
        it; it expires unused. In the same call, "not created" lets the gateway create
        a fresh one, which is the outcome the merchant wants. On recovery the gateway
        would not re-send past the charge's key window (the wallet's request ids are
        kept for an unstated time), which does not concern a Cashtray: the fresh one is
        created here and returned as the charge.
        """
        if not isinstance(req.method, Wallet):
            if ctx.recovering:
                assert isinstance(req.method, QRCode)  # validate_charge refuses the rest
                return (yield from self._charge_qr(req, req.method, ctx))
            return None
        request_ids = [request_id(ctx)]
        if ctx.recovering:
            # An attempt started by an older paygate may have sent the v5 form.
            request_ids.append(legacy_request_id(ctx))
        for rid in request_ids:
            try:
                answer = yield from self.wire.read(
                    ctx, f"/transactions/requests/{rid}", "transactions.by_request_id"
                )
            except ProviderError as exc:
                if exc.http_status == 404 or exc.provider_code == "transaction_not_found":
                    continue
                raise
            return self._checked_payment(answer.data, req, ctx)
        return None

    # -- status ----------------------------------------------------------------------

    def status(self, ref: ChargeRef, ctx: OpContext) -> Flow[Charge]:
        """GetTransaction for a wallet payment (or a paid Cashtray), GetCashtray otherwise."""
        parsed = ParsedRef(ref)
        if parsed.transaction_id is not None:
            answer = yield from self.wire.read(
                ctx, f"/transactions/{parsed.transaction_id}", "transactions.get"
            )
            return transaction_charge(
                answer.data,
                ctx,
                method=ref.method,
                provider_ref=ref.provider_ref if parsed.cashtray_id else None,
                charge_id=ref.charge_id,
                created_at=ref.created_at,
            )
        assert parsed.cashtray_id is not None
        answer = yield from self.wire.read(ctx, f"/cashtrays/{parsed.cashtray_id}", "cashtrays.get")
        return cashtray_charge(answer, ctx, charge_id=ref.charge_id, created_at=ref.created_at)

    # -- refund ----------------------------------------------------------------------

    def refund(self, req: RefundRequest, ctx: OpContext) -> Flow[Refund]:
        """RefundTransaction: the whole transaction, once.

        When paygate does not know the charge's amount, a refund with an amount reads the
        transaction (or the paid Cashtray) first: less than the whole is `NotSupported`.
        """
        parsed = ParsedRef(req.charge)
        # An amount validate_refund could not compare with the charge's.
        unchecked = req.amount if req.charge.amount is None else None
        txn_id = parsed.transaction_id
        if txn_id is None:
            assert parsed.cashtray_id is not None
            tray = yield from self.wire.read(
                ctx, f"/cashtrays/{parsed.cashtray_id}", "cashtrays.get"
            )
            txn = tray.data.get("transaction")
            if not isinstance(txn, Mapping) or not txn.get("id"):
                raise ProviderRejected(
                    "pokepay: the Cashtray was not paid; there is nothing to refund",
                    provider=PROVIDER,
                )
            txn_id = str(txn["id"])
            paid = abs(as_amount(field(tray.data, "amount"), "amount"))
            if unchecked is not None and unchecked.amount != paid:
                raise partial_refund()
        elif unchecked is not None:
            current = yield from self.wire.read(ctx, f"/transactions/{txn_id}", "transactions.get")
            if unchecked.amount != paid_amount(current.data):
                raise partial_refund()
        params = {"description": req.reason} if req.reason else {}
        path = f"/transactions/{txn_id}/refund"
        try:
            answer = yield from self.wire.send(
                ctx, "POST", path, params, step="transactions.refund", retry=Retry.KEYED
            )
        except ProviderError as exc:
            if exc.provider_code not in ("transaction_already_refunded", ALREADY_DONE):
                raise
            current = yield from self.wire.read(ctx, f"/transactions/{txn_id}", "transactions.get")
            if current.data.get("is_modified"):
                # Refunded before (another key, or the same envelope): that refund stands.
                return refund_from(current, req, ctx)
            if exc.provider_code != ALREADY_DONE:
                raise
            answer = yield from self.wire.send(
                ctx, "POST", path, params, step="transactions.refund", retry=Retry.KEYED
            )
        return refund_from(answer, req, ctx)

    # -- cancel ----------------------------------------------------------------------

    def cancel(self, req: CancelRequest, ctx: OpContext) -> Flow[Charge]:
        """CancelCashtray: only a Cashtray nobody has paid yet can be cancelled."""
        parsed = ParsedRef(req.charge)
        if req.charge.method != "qr" or parsed.cashtray_id is None:
            raise NotSupported(
                "cancel",
                provider=self.name,
                reason="a wallet payment completes at once",
                alternative="refund",
            )
        if parsed.transaction_id is not None:
            raise ProviderRejected(
                "pokepay: the Cashtray was paid; it cannot be cancelled (refund it)",
                provider=PROVIDER,
                provider_code="cashtray_already_proceed",
            )
        path = f"/cashtrays/{parsed.cashtray_id}"
        try:
            answer = yield from self.wire.send(
                ctx, "DELETE", path, {}, step="cashtrays.cancel", retry=Retry.KEYED
            )
        except ProviderError as exc:
            if exc.provider_code not in (
                "cashtray_already_canceled",
                "cashtray_expired",
                "cashtray_already_proceed",
                ALREADY_DONE,
            ):
                raise
            current = yield from self.wire.read(ctx, path, "cashtrays.get")
            charge = cashtray_charge(
                current, ctx, charge_id=req.charge.charge_id, created_at=req.charge.created_at
            )
            if charge.paid:
                raise ProviderRejected(
                    "pokepay: the Cashtray was paid; it cannot be cancelled (refund it)",
                    provider=PROVIDER,
                    provider_code=exc.provider_code,
                    provider_message=exc.provider_message,
                    http_status=exc.http_status,
                ) from None
            if charge.status.is_terminal or exc.provider_code != ALREADY_DONE:
                return charge
            answer = yield from self.wire.send(
                ctx, "DELETE", path, {}, step="cashtrays.cancel", retry=Retry.KEYED
            )
        return cashtray_charge(
            answer, ctx, charge_id=req.charge.charge_id, created_at=req.charge.created_at
        )

    # -- payout balance --------------------------------------------------------------

    def payout_balance(self, ctx: OpContext) -> Flow[PayoutBalance]:
        """The shop's wallet for the configured private money: money + points."""
        s = self.config
        page = 1
        while True:
            answer = yield from self.wire.read(
                ctx,
                f"/users/{s.shop_id}/accounts",
                "users.accounts",
                {"page": page, "per_page": 50},
            )
            row = wallet_of(answer.data.get("rows"), s.private_money_id)
            if row is not None:
                return balance_from(row, ctx, answer)
            pagination = answer.data.get("pagination")
            more = isinstance(pagination, Mapping) and bool(pagination.get("has_next"))
            if not more or page >= 100:
                raise NotFound(
                    "pokepay: no wallet of the shop for the configured private money is "
                    "visible (ListUserAccounts shows only wallets of moneys issued by the "
                    "partner's own organization; a partner that does not issue this money "
                    "cannot read the shop's balance here)",
                    provider=PROVIDER,
                    provider_code="shop_account_not_visible",
                )
            page += 1
