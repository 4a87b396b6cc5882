"""What a provider adapter implements. Public through `paygate.adapter`.

An adapter is a `Provider` subclass registered in the ``paygate.providers`` entry-point
group. It describes its capabilities and idempotency policies, validates requests
without I/O, and returns sans-I/O flows (see `paygate._flow`) for each operation. The
core drives those flows; the adapter never performs I/O itself.
"""

from __future__ import annotations

import base64
import enum
import hashlib
import ipaddress
import logging
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    SecretStr,
    ValidationInfo,
    field_validator,
    model_validator,
)

from ._errors import (
    AuthenticationError,
    ConfigurationError,
    IdempotencyConflict,
    IdempotencyInProgress,
    InvalidRequest,
    MalformedResponse,
    NotFound,
    NotSupported,
    OutcomeUnknown,
    PaygateError,
    PaymentDeclined,
    PermissionDenied,
    ProviderRejected,
    ProviderUnavailable,
    RateLimited,
)
from ._flow import Flow, Reply
from ._models import (
    Capabilities,
    Charge,
    ChargeStatus,
    Failure,
    NextAction,
    PaymentMethod,
    PayoutBalance,
    Refund,
    RefundStatus,
)
from ._money import Money
from ._redact import register_secret

if TYPE_CHECKING:
    from .sandbox._emulator import Emulator

__all__ = [
    "CancelRequest",
    "CaptureRequest",
    "ChargeRef",
    "ChargeRequest",
    "OpContext",
    "Operation",
    "OperationPolicy",
    "Outcome",
    "ParsedEvent",
    "Provider",
    "ProviderSettings",
    "RefundRequest",
    "RetryDecision",
    "check_base_url",
    "derive_key",
]

PAYGATE_NAMESPACE = uuid.UUID("5b0e3a8c-2f7d-5c1e-9a64-706179676174")


class Operation(enum.StrEnum):
    """Mutating operations that go through the idempotency store."""

    CHARGE = "charge"
    REFUND = "refund"
    CANCEL = "cancel"
    CAPTURE = "capture"


class Outcome(enum.StrEnum):
    """What a provider's refusal means for the merchant's idempotency key.

    Adapters map their own error codes to these (`Provider.outcomes`); the core decides
    what each does to the key, the same way for every provider:

    - ``REFUSED``: the provider decided (a decline, a business refusal). The refusal is
      stored and a retry with the same key gets it again without a provider call.
    - ``RETRYABLE``: refused and nothing happened (throttled, "another operation in
      progress", an expired request envelope). The next call with the same key reaches
      the provider again. After a re-send or on recovery the key stays ``unknown``
      (the first attempt may have got through) and the next call recovers it.
    - ``UNKNOWN``: it may have happened (5xx, unreadable answer). The key is kept
      ``unknown``; the next call with it (or `paygate reconcile`) asks the declared
      lookup before anything is re-sent, or ends in `OutcomeUnknown`.
    - ``MAYBE_DONE``: a refusal that can mean an earlier attempt got through ("already
      processed", "order number in use"). On a first attempt it is ``REFUSED``; after a
      re-send or on recovery the core asks the lookup, and when nothing is found the
      outcome is `OutcomeUnknown`, never a final failure.
    """

    REFUSED = "refused"
    RETRYABLE = "retryable"
    UNKNOWN = "unknown"
    MAYBE_DONE = "maybe_done"


def default_outcome(error: BaseException) -> Outcome:
    """The outcome of an error its provider did not classify, from its class alone.

    >>> default_outcome(RateLimited("slow down"))
    <Outcome.RETRYABLE: 'retryable'>
    """
    if isinstance(error, ProviderRejected):
        return Outcome.RETRYABLE if error.retryable else Outcome.REFUSED
    if isinstance(error, PaymentDeclined | IdempotencyConflict):
        return Outcome.REFUSED
    if isinstance(
        error,
        AuthenticationError
        | PermissionDenied
        | NotFound
        | InvalidRequest
        | NotSupported
        | ConfigurationError
        | RateLimited
        | IdempotencyInProgress,
    ):
        return Outcome.RETRYABLE
    if isinstance(error, ProviderUnavailable | MalformedResponse | OutcomeUnknown):
        return Outcome.UNKNOWN
    return Outcome.UNKNOWN


#: ``key_window`` of a provider that keeps keys for a time it does not state.
KeyWindow = timedelta | None | Literal["unknown"]


@dataclass(frozen=True, slots=True)
class OperationPolicy:
    """How a provider protects one operation against duplicates.

    key: how the provider deduplicates a re-sent request: ``"header"`` (an
        ``Idempotency-Key``), ``"body"`` (a field such as Pokepay's ``request_id``, or a
        tag the flow checks for before sending), ``"path"`` (the operation addresses one
        object whose state makes a repeat harmless, e.g. closing a code) or ``"none"``.
        Anything but ``"none"`` lets the gateway re-send after an unknown outcome.
    key_window: how long the provider remembers a key or request id: a duration, None
        (for ever) or ``"unknown"`` (it forgets after a time it does not state). Past a
        known window, and on recovery from a crash when it is unknown, paygate reports
        `OutcomeUnknown` unless the lookup positively finds the object.
    lookup: the operation's lookup flow (`Provider.lookup_charge`, `lookup_refund`,
        `lookup_cancel`, `lookup_capture`) can tell whether a possibly-sent request took
        effect.

    >>> OperationPolicy(key="header", key_window=timedelta(hours=24)).keyed
    True
    """

    key: str = "none"
    key_window: KeyWindow = None
    lookup: bool = False

    @property
    def keyed(self) -> bool:
        """Whether the provider deduplicates by key."""
        return self.key != "none"

    def window_passed(self, started: datetime, now: datetime) -> bool:
        """Whether a key first used at ``started`` may have been forgotten by ``now``."""
        if self.key_window is None:
            return False
        if self.key_window == "unknown":
            return True
        assert isinstance(self.key_window, timedelta)
        return started + self.key_window < now


class ProviderSettings(BaseModel):
    """Base of every provider's account settings (validated from the config file).

    Secrets are `pydantic.SecretStr`: every one is registered for redaction when the
    settings are built (from the config file or by hand). ``base_url`` (and any other
    field whose name ends in ``base_url``) must be https, except on loopback (the
    sandbox); a trailing ``/`` is dropped. ``tls_verify=false`` is refused unless
    ``allow_insecure_tls`` is set too, and then a warning is logged on every load.
    """

    # Validation errors never quote the input: it may be a secret.
    model_config = ConfigDict(
        frozen=True, extra="forbid", hide_input_in_errors=True, defer_build=True
    )

    base_url: str
    timeout: float = 30.0
    ca_bundle: Path | None = None
    tls_verify: bool = True
    allow_insecure_tls: bool = False

    @field_validator("*")
    @classmethod
    def _check_base_urls(cls, value: Any, info: ValidationInfo) -> Any:
        name = info.field_name or ""
        if name.endswith("base_url") and isinstance(value, str):
            return check_base_url(value, key=name)
        return value

    @model_validator(mode="after")
    def _register_secrets(self) -> ProviderSettings:
        for name in type(self).model_fields:
            value = getattr(self, name)
            if isinstance(value, SecretStr):
                register_secret(value.get_secret_value())
        if not self.tls_verify and self.allow_insecure_tls:
            # Never silently: every load of such settings says so.
            logging.getLogger("paygate").warning(
                "TLS verification is switched off for %s (tls_verify=false, "
                "allow_insecure_tls=true): anyone on the network path can read and change "
                "this account's requests",
                type(self).__name__,
            )
        return self


def check_base_url(url: str, *, key: str = "base_url") -> str:
    """Refuse plain http except on a loopback host (the local sandbox).

    >>> check_base_url("http://127.0.0.1:8000/payjp")
    'http://127.0.0.1:8000/payjp'
    """
    parts = urlsplit(url)
    if parts.scheme == "https":
        return url.rstrip("/")
    if parts.scheme == "http" and is_loopback(parts.hostname or ""):
        return url.rstrip("/")
    raise ConfigurationError("must be an https URL (plain http only on loopback)", key=key)


def is_loopback(host: str) -> bool:
    """True for localhost and loopback addresses."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def derive_key(merchant_key: str, *, scope: str = "", max_len: int = 64, alphabet: str = "") -> str:
    """A provider idempotency key derived deterministically from the merchant's key.

    The same merchant key always gives the same provider key, so a retry after a crash
    sends what the first attempt sent. Keys that fit are kept readable; longer ones are
    shortened with a hash suffix. ``alphabet="alnum"`` restricts to ``[A-Za-z0-9_-]``.

    >>> derive_key("order-1042", scope="charge")
    'pg-charge-order-1042'
    """
    base = f"pg-{scope}-{merchant_key}" if scope else f"pg-{merchant_key}"
    allowed = (not alphabet) or all(ch.isascii() and (ch.isalnum() or ch in "-_") for ch in base)
    # A key is kept readable only when it fits unchanged: replacing characters would let
    # two merchant keys ("order/1", "order_1") share one provider key.
    if allowed and len(base) <= max_len and base.isascii():
        return base
    digest = base64.b32encode(hashlib.sha256(f"{scope}\0{merchant_key}".encode()).digest())
    tail = digest.decode().rstrip("=").lower()[:26]
    head_len = max(0, max_len - len(tail) - 1)
    head = "".join(ch for ch in base if ch.isascii() and (ch.isalnum() or ch in "-_"))[:head_len]
    return f"{head}-{tail}" if head else tail[:max_len]


@dataclass(frozen=True, slots=True)
class OpContext:
    """What a flow may know about the operation it runs for.

    ``recovering`` is True when an earlier attempt with the same idempotency key may have
    reached the provider (a crash, a lost response). ``now`` and ``new_uuid`` come from
    injected sources so flows stay deterministic under test. ``started_at`` is when the
    operation's idempotency key was first begun: the same on every attempt under that
    key, also after a crash, so a flow can derive a value that must not change between
    re-sends (a deadline in the request body) from it instead of storing one; None when
    the flow runs outside a keyed gateway operation. `charge` and `refund` build a
    flow's result with the operation's own fields (ids, account, provider) filled in.
    """

    account: str
    provider: str
    idempotency_key: str | None = None
    charge_id: str | None = None
    recovering: bool = False
    now: Callable[[], datetime] = field(default=lambda: datetime.now().astimezone())
    new_uuid: Callable[[], uuid.UUID] = uuid.uuid4
    # Last, so a context built with positional arguments means what it did before.
    started_at: datetime | None = None

    def provider_key(self, scope: str = "", *, max_len: int = 64, alphabet: str = "") -> str:
        """`derive_key` of this operation's merchant key (`InvalidRequest` without one)."""
        if self.idempotency_key is None:
            raise InvalidRequest("an idempotency key is required", param="idempotency_key")
        return derive_key(self.idempotency_key, scope=scope, max_len=max_len, alphabet=alphabet)

    def key_uuid(self, scope: str = "") -> uuid.UUID:
        """A UUIDv5 derived from the account, scope and merchant key (Pokepay request_id)."""
        if self.idempotency_key is None:
            raise InvalidRequest("an idempotency key is required", param="idempotency_key")
        return uuid.uuid5(PAYGATE_NAMESPACE, f"{self.account}\0{scope}\0{self.idempotency_key}")

    def charge(
        self,
        provider_ref: str,
        *,
        method: str,
        status: ChargeStatus,
        amount: Money,
        amount_refunded: Money,
        created_at: datetime,
        amount_captured: Money | None = None,
        next_action: NextAction | None = None,
        failure: Failure | None = None,
        updated_at: datetime | None = None,
        raw: Mapping[str, Any] | None = None,
        metadata: Mapping[str, str] | None = None,
        id: str | None = None,
    ) -> Charge:
        """The `Charge` a flow returns, with this operation's account and provider.

        Its ``id`` is ``id`` when given (non-empty), else this operation's ``charge_id``,
        else ``provider_ref`` (an operation with no paygate id yet, such as a webhook).
        The other fields are the `Charge` fields of the same names.

        >>> ctx = OpContext(account="card", provider="acmepay", charge_id="ch_1")
        >>> charge = ctx.charge("ac_9", method="card", status=ChargeStatus.SUCCEEDED,
        ...                     amount=Money.jpy(1200), amount_refunded=Money.jpy(0),
        ...                     created_at=ctx.now())
        >>> charge.id, charge.account, charge.provider, charge.provider_ref
        ('ch_1', 'card', 'acmepay', 'ac_9')
        """
        return Charge(
            id=id or self.charge_id or provider_ref,
            account=self.account,
            provider=self.provider,
            provider_ref=provider_ref,
            method=method,
            status=status,
            amount=amount,
            amount_refunded=amount_refunded,
            amount_captured=amount_captured,
            next_action=next_action,
            failure=failure,
            created_at=created_at,
            updated_at=updated_at,
            raw={} if raw is None else raw,
            metadata={} if metadata is None else metadata,
        )

    def refund(
        self,
        charge_id: str,
        provider_ref: str,
        *,
        amount: Money,
        status: RefundStatus,
        created_at: datetime,
        reason: str | None = None,
        raw: Mapping[str, Any] | None = None,
        kind: Literal["refund", "void"] = "refund",
        charge_refunded_total: Money | None = None,
        id: str | None = None,
    ) -> Refund:
        """The `Refund` of charge ``charge_id`` a flow returns, with this operation's
        account and provider.

        Its ``id`` is ``id`` when given (the adapter's own scheme, kept as given), else
        ``provider_ref``. The other fields are the `Refund` fields of the same names.

        >>> ctx = OpContext(account="card", provider="acmepay", charge_id="ch_1")
        >>> refund = ctx.refund("ch_1", "re_9", amount=Money.jpy(500),
        ...                     status=RefundStatus.SUCCEEDED, created_at=ctx.now())
        >>> refund.id, refund.charge_id, refund.account, refund.provider
        ('re_9', 'ch_1', 'card', 'acmepay')
        """
        return Refund(
            id=provider_ref if id is None else id,
            charge_id=charge_id,
            account=self.account,
            provider=self.provider,
            provider_ref=provider_ref,
            amount=amount,
            status=status,
            reason=reason,
            created_at=created_at,
            raw={} if raw is None else raw,
            kind=kind,
            charge_refunded_total=charge_refunded_total,
        )


@dataclass(frozen=True, slots=True)
class ChargeRequest:
    """A validated charge request as a flow sees it."""

    amount: Money
    method: PaymentMethod
    description: str | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ChargeRef:
    """What paygate knows of an existing charge: enough for a flow to address it."""

    charge_id: str
    provider_ref: str
    method: str
    amount: Money | None = None
    created_at: datetime | None = None
    raw: Mapping[str, Any] = field(default_factory=dict)
    #: paygate's record when the operation started (what a lookup compares against).
    amount_refunded: Money | None = None
    amount_captured: Money | None = None


@dataclass(frozen=True, slots=True)
class RefundRequest:
    """Refund ``amount`` (None: everything refundable) of ``charge``."""

    charge: ChargeRef
    amount: Money | None = None
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class CancelRequest:
    """Cancel (void) ``charge``."""

    charge: ChargeRef


@dataclass(frozen=True, slots=True)
class CaptureRequest:
    """Capture ``amount`` (None: all) of an authorised ``charge``."""

    charge: ChargeRef
    amount: Money | None = None


@dataclass(frozen=True, slots=True)
class RetryDecision:
    """A provider's verdict on a reply: retry it (after ``after`` seconds, if given)."""

    retry: bool
    after: float | None = None


@dataclass(frozen=True, slots=True)
class ParsedEvent:
    """A webhook event as the adapter understood it, before the core records it.

    ``type`` is the normalised paygate event type (see `paygate.Event`). ``charge`` is a
    fresh `Charge` when the adapter fetched one (providers that sign nothing).

    The event carries the provider's state, never a guess: ``amount_refunded`` and
    ``amount_captured`` as the provider states them (None: not stated; a refunded status
    without them makes the core re-fetch the charge), and ``occurred_at`` only when the
    provider gives the event's own time (None: the core uses the time of receipt; never
    the charge's creation time, which would make the event look stale).
    """

    provider_event_type: str
    type: str
    provider_event_id: str | None = None
    provider_ref: str | None = None
    status: ChargeStatus | None = None
    amount: Money | None = None
    occurred_at: datetime | None = None
    charge: Charge | None = None
    raw: Mapping[str, Any] = field(default_factory=dict)
    amount_refunded: Money | None = None
    amount_captured: Money | None = None


class Provider(ABC):
    """Base class of provider adapters.

    Subclasses set the class attributes and implement the flows they support; the
    defaults raise `NotSupported`. One instance serves one configured account.

    Example (a third-party adapter)::

        class AcmePay(Provider):
            name = "acmepay"
            settings_model = AcmeSettings
            policies = {Operation.CHARGE: OperationPolicy(key="header")}

            def capabilities(self) -> Capabilities: ...
            def charge(self, req, ctx): ...
    """

    name: ClassVar[str]
    display_name: ClassVar[str] = ""
    settings_model: ClassVar[type[ProviderSettings]]
    policies: ClassVar[Mapping[Operation, OperationPolicy]] = {}
    #: The provider's own error codes and what they mean for the key (see `Outcome`).
    outcomes: ClassVar[Mapping[str, Outcome]] = {}

    def __init__(self, settings: ProviderSettings, *, account: str) -> None:
        self.settings = settings
        self.account = account

    # -- description ---------------------------------------------------------------

    @abstractmethod
    def capabilities(self) -> Capabilities:
        """What this account can do."""

    def policy(self, operation: Operation) -> OperationPolicy:
        """The idempotency policy of ``operation`` (no key, no lookup by default)."""
        return self.policies.get(operation, OperationPolicy())

    def outcome_of(self, error: PaygateError) -> Outcome | None:
        """What ``error`` means for the key; None: decide by the error's class.

        The default looks the provider's code up in `outcomes`; override for rules that
        need more than the code (an HTTP status, a message).
        """
        code = error.provider_code
        return self.outcomes.get(code) if code is not None else None

    def http_options(self) -> dict[str, Any]:
        """Extra keyword arguments for the account's httpx client (``cert``, ``verify``)."""
        opts: dict[str, Any] = {}
        if self.settings.ca_bundle is not None:
            import ssl  # only with a custom CA bundle (httpx imports it anyway)

            opts["verify"] = ssl.create_default_context(cafile=str(self.settings.ca_bundle))
        if not self.settings.tls_verify:
            if not self.settings.allow_insecure_tls:
                raise ConfigurationError(
                    "tls_verify=false needs allow_insecure_tls=true as well", key="tls_verify"
                )
            opts["verify"] = False
        return opts

    #: Where this provider's sandbox emulator class is, as ``"module:Name"`` (a module
    #: starting with ``.`` is relative to the provider's package); imported on first use,
    #: so loading an adapter never loads Starlette. None: no emulator.
    emulator_at: ClassVar[str | None] = None
    #: Where its ``paygate demo`` script is, the same way. None: no demo.
    demo_at: ClassVar[str | None] = None

    @classmethod
    def emulator(cls) -> type[Emulator] | None:
        """The sandbox emulator class of this provider, if it ships one.

        Declared by path::

            class PayjpProvider(Provider):
                emulator_at = "._emulator:PayjpEmulator"
        """
        found: type[Emulator] | None = _load(cls, cls.emulator_at)
        return found

    @classmethod
    def demo_script(cls) -> Callable[[Any], None] | None:
        """This provider's ``paygate demo`` script, if it ships one.

        The script gets the ``paygate demo`` driver: ``demo.gateway`` (an account named after
        the provider points at the sandbox), ``demo.sandbox`` (the customer's side),
        ``demo.step(operation, fn)`` for each step and shorthands for the usual ones
        (``demo.charge``, ``demo.status``, ``demo.refund``, ...). Declared by path::

            class PayjpProvider(Provider):
                demo_at = "._demo:demo"
        """
        found: Callable[[Any], None] | None = _load(cls, cls.demo_at)
        return found

    # -- validation (pure, before any I/O) --------------------------------------------

    def validate_charge(self, req: ChargeRequest) -> None:  # noqa: B027
        """Raise `InvalidRequest` when the provider would refuse ``req``.

        The gateway calls it once, before the key is recorded and before any request;
        flows do not check again.
        """

    def validate_refund(self, req: RefundRequest) -> None:  # noqa: B027
        """Raise `InvalidRequest` when the provider would refuse the refund ``req``.

        Called once by the gateway after its own checks (the charge is known, the amount
        is positive, in the charge's currency and not above it) and before any request::

            def validate_refund(self, req: RefundRequest) -> None:
                if req.reason is not None and len(req.reason) > 100:
                    raise InvalidRequest("reason longer than 100 characters", param="reason")
        """

    # -- flows ----------------------------------------------------------------------

    def charge(self, req: ChargeRequest, ctx: OpContext) -> Flow[Charge]:
        """Create a charge."""
        raise NotSupported("charge", provider=self.name)

    def lookup_charge(self, req: ChargeRequest, ctx: OpContext) -> Flow[Charge | None]:
        """Find the charge a possibly-sent `charge` flow created (None: not created)."""
        raise NotSupported("lookup", provider=self.name)

    def status(self, ref: ChargeRef, ctx: OpContext) -> Flow[Charge]:
        """Fetch the charge's current state from the provider."""
        raise NotSupported("status", provider=self.name)

    def wait_status(self, ref: ChargeRef, ctx: OpContext, timeout: float) -> Flow[Charge] | None:
        """A server-side long poll, when the provider has one (None otherwise)."""
        return None

    def refund(self, req: RefundRequest, ctx: OpContext) -> Flow[Refund]:
        """Refund (part of) a charge."""
        raise NotSupported("refund", provider=self.name)

    def lookup_refund(self, req: RefundRequest, ctx: OpContext) -> Flow[Refund | None]:
        """Find the refund a possibly-sent `refund` flow made.

        None only when sure it took no effect (the core then re-sends); raise
        `OutcomeUnknown` when the provider cannot tell.
        """
        raise NotSupported("lookup", provider=self.name)

    def lookup_cancel(self, req: CancelRequest, ctx: OpContext) -> Flow[Charge | None]:
        """The canceled charge if a possibly-sent `cancel` took effect, else None."""
        raise NotSupported("lookup", provider=self.name)

    def lookup_capture(self, req: CaptureRequest, ctx: OpContext) -> Flow[Charge | None]:
        """The captured charge if a possibly-sent `capture` took effect, else None."""
        raise NotSupported("lookup", provider=self.name)

    def cancel(self, req: CancelRequest, ctx: OpContext) -> Flow[Charge]:
        """Cancel a charge that is not paid yet (or void an authorisation)."""
        raise NotSupported("cancel", provider=self.name)

    def capture(self, req: CaptureRequest, ctx: OpContext) -> Flow[Charge]:
        """Capture an authorised charge."""
        raise NotSupported("capture", provider=self.name)

    def payout_balance(self, ctx: OpContext) -> Flow[PayoutBalance]:
        """What the provider will pay out."""
        raise NotSupported("payout_balance", provider=self.name)

    # -- replies and webhooks --------------------------------------------------------

    def classify(self, reply: Reply) -> RetryDecision | None:
        """Provider-specific retry verdict (e.g. a "try again" code sent as HTTP 400).

        None: use the generic rule (429 and 5xx are retried, honouring Retry-After).
        """
        return None

    def verify_webhook(self, headers: Mapping[str, str], body: bytes) -> None:
        """Raise `WebhookVerificationError` unless the delivery is authentic."""
        raise NotSupported("webhooks", provider=self.name)

    def parse_webhook(
        self, headers: Mapping[str, str], body: bytes, ctx: OpContext
    ) -> Flow[Sequence[ParsedEvent]]:
        """Normalise a verified delivery; may fetch the object when the body is unsigned."""
        raise NotSupported("webhooks", provider=self.name)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} account={self.account!r}>"


def _load(owner: type, where: str | None) -> Any:
    """The object ``where`` (``"module:Name"``) names, importing its module now."""
    if where is None:
        return None
    import importlib

    module, _, name = where.partition(":")
    package = owner.__module__.rpartition(".")[0] or None
    return getattr(importlib.import_module(module, package=package), name)
