"""A hypothesis state machine over charge, status, customer action, refund, cancel,
capture, replay and webhook delivery against the sandbox, with a model.

Invariants, checked after every step:

* a terminal status never changes, and a paid charge never becomes unpaid again (in
  every answer paygate gives and in its store);
* refunded never exceeds charged, and equals the sum of the refunds paygate confirmed
  (in the store and at the provider);
* the same key replays an equal result (or the same error);
* a webhook is handled once however often it is delivered, in whatever order;
* a request paygate refuses (refund above what is left, an unsupported refund) is
  refused before any request reaches the provider.

Webhooks are caught by a small receiver and handed to ``gw.webhooks.handle`` by the
machine, in an order and with repetitions hypothesis chooses.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from paygate import (
    AsyncGateway,
    Card,
    Charge,
    ChargeStatus,
    Gateway,
    IdempotencyInProgress,
    InvalidRequest,
    Konbini,
    Money,
    NotSupported,
    OutcomeUnknown,
    PaygateError,
    PosLine,
    PosSale,
    ProviderRejected,
    ProviderUnavailable,
    QRCode,
    RateLimited,
    RetryPolicy,
    Wallet,
)
from paygate.sandbox import serve_app
from paygate.testing import BlockingAsyncGateway

# (account, method kind): what a new charge can be.
KINDS = [
    ("payjp", "card"),
    ("payjp", "card_auth"),
    ("univapay", "konbini"),
    ("elepay", "qr"),
    ("pokepay", "wallet"),
    ("pokepay", "qr"),
    ("smaregi", "pos"),
    ("fakepay", "qr"),
]
PAID = (ChargeStatus.SUCCEEDED, ChargeStatus.PARTIALLY_REFUNDED, ChargeStatus.REFUNDED)


class Receiver:
    """Collects webhook deliveries: ``(account, headers, body)``, answered 200."""

    def __init__(self) -> None:
        self.deliveries: list[tuple[str, dict[str, str], bytes]] = []

    async def receive(self, request: Request) -> Response:
        body = await request.body()
        self.deliveries.append((request.path_params["account"], dict(request.headers), body))
        return Response(status_code=200)


@pytest.fixture(scope="module")
def receiver_url() -> Iterator[tuple[Receiver, str]]:
    from starlette.applications import Starlette

    receiver = Receiver()
    app = Starlette(routes=[Route("/{account}", receiver.receive, methods=["POST"])])
    with serve_app(app) as url:
        yield receiver, url


@dataclass
class Tracked:
    """One charge as the model knows it."""

    key: str
    account: str
    kind: str
    amount: int
    charge: Charge
    statuses: list[ChargeStatus] = field(default_factory=list)
    refunded: int = 0  # sum of refunds paygate confirmed
    refund_keys: list[str] = field(default_factory=list)
    canceled: bool = False
    paid_by_customer: bool = False


class PaymentMachine(RuleBasedStateMachine):
    """Drives one gateway; the class attributes are set by the test before each run."""

    sandbox: Any = None
    driver = "sync"
    accounts: dict[str, Any] = {}
    receiver: Receiver | None = None
    stats: Counter[str] = Counter()  # what the runs did, so the test can tell it did it

    def __init__(self) -> None:
        super().__init__()
        self.sandbox.reset()
        self.sandbox.clear_faults()
        assert self.receiver is not None
        self.receiver.deliveries.clear()
        config = {"store": "memory://", "accounts": self.accounts}
        self.gw: Any
        if self.driver == "async":
            self.gw = BlockingAsyncGateway(
                AsyncGateway.from_config(config, retry=RetryPolicy.no_wait())
            )
        else:
            self.gw = Gateway.from_config(config, retry=RetryPolicy.no_wait())
        self.handled: Counter[str] = Counter()
        self.gw.webhooks.on("*")(self._count)
        self.tracked: list[Tracked] = []
        self.results: dict[str, Any] = {}  # key -> first answer (result or error type)
        self.calls: dict[str, tuple[str, dict[str, Any]]] = {}
        self.counter = 0
        self.customer = self.sandbox.credentials()["pokepay"]["customers"]["funded"]

    def _count(self, event: Any) -> None:
        self.handled[f"{event.account}:{event.provider_event_id or event.id}"] += 1

    def teardown(self) -> None:
        self.gw.close()

    # -- plumbing -----------------------------------------------------------------------

    def _requests(self) -> int:
        return sum(self.sandbox.health()["requests"].values())

    def _seen(self, item: Tracked, charge: Charge) -> None:
        if item.statuses:
            last = item.statuses[-1]
            assert last == charge.status or last.can_become(charge.status), (
                f"{item.key}: {last} -> {charge.status}"
            )
        item.statuses.append(charge.status)
        item.charge = charge
        assert charge.amount_refunded.amount <= charge.amount.amount

    def _call(self, key: str, operation: str, **kwargs: Any) -> Any:
        """Run a mutating call and remember its first answer for the replay rule."""
        try:
            result = self._retrying(operation, key, kwargs)
        except (InvalidRequest, NotSupported):
            raise  # refused before the provider: nothing stored, a later retry may pass
        except PaygateError as exc:
            if not exc.retryable:  # settled for the key: a replay must give it again
                self.calls[key] = (operation, kwargs)
                self.results.setdefault(key, type(exc))
            raise
        self.calls[key] = (operation, kwargs)
        self.results.setdefault(key, result)
        return result

    def _retrying(self, operation: str, key: str, kwargs: dict[str, Any]) -> Any:
        """What a merchant does: an ambiguous failure is retried with the same key."""
        for _ in range(3):
            try:
                return getattr(self.gw, operation)(idempotency_key=key, **kwargs)
            except (OutcomeUnknown, ProviderUnavailable, RateLimited):
                self.stats["merchant retries"] += 1
            except PaygateError as exc:
                if not exc.retryable or isinstance(exc, IdempotencyInProgress):
                    raise
                self.stats["merchant retries"] += 1
        return getattr(self.gw, operation)(idempotency_key=key, **kwargs)

    def _method(self, kind: str) -> Any:
        if kind == "card":
            return Card(token="tok_success")
        if kind == "card_auth":
            return Card(token="tok_success", capture=False)
        if kind == "konbini":
            return Konbini(store="lawson", customer_name="状態 機械", phone="0364413400")
        if kind == "wallet":
            return Wallet(customer_id=self.customer)
        if kind == "pos":
            return None  # built with the amount
        return QRCode()

    # -- rules -------------------------------------------------------------------------

    def _caps(self, item: Tracked) -> Any:
        caps = self.gw.capabilities(item.account).method(item.charge.method)
        assert caps is not None
        return caps

    def _payable(self, item: Tracked) -> bool:
        return item.charge.status is ChargeStatus.REQUIRES_ACTION and not item.paid_by_customer

    def _refundable(self, item: Tracked) -> bool:
        return item.charge.status in (ChargeStatus.SUCCEEDED, ChargeStatus.PARTIALLY_REFUNDED)

    def _cancelable(self, item: Tracked) -> bool:
        if item.canceled or not self._caps(item).cancel:
            return False
        if item.account == "smaregi":  # a void of the whole sale
            return item.charge.status is ChargeStatus.SUCCEEDED
        return item.charge.status in (
            ChargeStatus.REQUIRES_ACTION,
            ChargeStatus.PENDING,
            ChargeStatus.AUTHORIZED,
        )

    def _pick(self, data: st.DataObject, wanted: Any) -> Tracked:
        pool = [item for item in self.tracked if wanted(item)]
        # A fixed-shape draw: the pool's size follows what the sandbox answered.
        return pool[data.draw(st.integers(0, 1 << 16), label="charge") % len(pool)]

    def _any(self, wanted: Any) -> bool:
        return any(wanted(item) for item in self.tracked)

    @rule(kind=st.sampled_from(KINDS), amount=st.integers(min_value=50, max_value=20_000))
    def charge(self, kind: tuple[str, str], amount: int) -> None:
        account, what = kind
        self.counter += 1
        key = f"sm-{self.counter}"
        method = self._method(what)
        if what == "pos":
            method = PosSale(
                store_id="1", terminal_id="1", lines=(PosLine(name="sm", unit_price=amount),)
            )
        charge = self._call(key, "charge", account=account, amount=Money.jpy(amount), method=method)
        self.stats["charge"] += 1
        item = Tracked(key, account, what, amount, charge)
        self._seen(item, charge)
        self.tracked.append(item)

    @precondition(lambda self: bool(self.tracked))
    @rule(data=st.data())
    def status(self, data: st.DataObject) -> None:
        item = self._pick(data, lambda item: True)
        self._seen(item, self.gw.status(item.account, item.charge.id))

    @precondition(lambda self: self._any(self._payable))
    @rule(data=st.data())
    def customer_pays(self, data: st.DataObject) -> None:
        item = self._pick(data, self._payable)
        ref = item.charge.provider_ref
        if item.account == "univapay":
            self.sandbox.control("univapay", "pay_konbini", charge_id=ref)
        elif item.account == "elepay":
            self.sandbox.control("elepay", "pay_code", code_id=ref.split(":", 1)[1])
        elif item.account == "pokepay":
            self.sandbox.control("pokepay", "scan_cashtray", cashtray_id=ref.split(":", 1)[1])
        else:
            self.sandbox.control("fakepay", "pay", id=ref)
        item.paid_by_customer = True
        self.stats["customer pays"] += 1
        fresh = self.gw.status(item.account, item.charge.id)
        self._seen(item, fresh)
        assert fresh.status is ChargeStatus.SUCCEEDED

    @precondition(lambda self: bool(self.tracked))
    @rule(data=st.data(), part=st.integers(min_value=1, max_value=100), whole=st.booleans())
    def refund(self, data: st.DataObject, part: int, whole: bool) -> None:
        item = self._pick(data, lambda item: True)
        self._seen(item, self.gw.status(item.account, item.charge.id))
        caps = self._caps(item)
        key = f"{item.key}-r{len(item.refund_keys) + 1}"
        args = {"account": item.account, "charge_id": item.charge.id}
        left = item.amount - item.refunded
        amount = Money.jpy(max(1, left * part // 100)) if caps.refund == "partial" else None
        if whole:
            amount = None
        before = self._requests()
        if caps.refund == "none":
            with pytest.raises(NotSupported):
                self._call(key, "refund", amount=amount, **args)
            assert self._requests() == before, "refused only after asking the provider"
            self.stats["refund refused: not supported"] += 1
            return
        if not self._refundable(item):
            with pytest.raises(InvalidRequest):
                self._call(key, "refund", amount=amount, **args)
            self.stats["refund refused: not refundable"] += 1
            return
        refund = self._call(key, "refund", amount=amount, **args)
        item.refund_keys.append(key)
        expected = amount.amount if amount is not None else left
        assert refund.amount == Money.jpy(expected)
        item.refunded += expected
        self.stats["refund"] += 1
        self._seen(item, self.gw.status(item.account, item.charge.id))

    @precondition(
        lambda self: self._any(
            lambda item: self._refundable(item) and self._caps(item).refund == "partial"
        )
    )
    @rule(data=st.data())
    def refund_too_much(self, data: st.DataObject) -> None:
        item = self._pick(
            data, lambda item: self._refundable(item) and self._caps(item).refund == "partial"
        )
        before = self._requests()
        with pytest.raises(InvalidRequest) as info:
            self.gw.refund(
                item.account,
                item.charge.id,
                amount=Money.jpy(item.amount - item.refunded + 1),
                idempotency_key=f"{item.key}-too-much",
            )
        assert info.value.param == "amount"
        assert self._requests() == before
        self.stats["refund refused: too much"] += 1

    @precondition(lambda self: self._any(self._cancelable))
    @rule(data=st.data())
    def cancel(self, data: st.DataObject) -> None:
        item = self._pick(data, self._cancelable)
        result = self._call(
            f"{item.key}-x", "cancel", account=item.account, charge_id=item.charge.id
        )
        item.canceled = True
        self.stats["cancel"] += 1
        self._seen(item, result)
        assert result.status in (ChargeStatus.CANCELED, ChargeStatus.REFUNDED)

    @precondition(lambda self: self._any(lambda i: i.charge.status is ChargeStatus.AUTHORIZED))
    @rule(data=st.data())
    def capture(self, data: st.DataObject) -> None:
        item = self._pick(data, lambda i: i.charge.status is ChargeStatus.AUTHORIZED)
        result = self._call(
            f"{item.key}-k", "capture", account=item.account, charge_id=item.charge.id
        )
        self._seen(item, result)
        assert result.status is ChargeStatus.SUCCEEDED
        self.stats["capture"] += 1

    @precondition(lambda self: bool(self.calls))
    @rule(data=st.data())
    def replay(self, data: st.DataObject) -> None:
        keys = sorted(self.calls)
        key = keys[data.draw(st.integers(0, 1 << 16)) % len(keys)]
        operation, kwargs = self.calls[key]
        first = self.results[key]
        self.stats["replay"] += 1
        if isinstance(first, type):
            with pytest.raises(first):
                getattr(self.gw, operation)(idempotency_key=key, **kwargs)
            return
        assert getattr(self.gw, operation)(idempotency_key=key, **kwargs) == first, key

    @rule(data=st.data())
    def deliver_webhooks(self, data: st.DataObject) -> None:
        assert self.receiver is not None
        # Wait for what the emulators sent, so the draw below sees the same list on replay.
        self.sandbox.flush_webhooks()
        pending = list(self.receiver.deliveries)
        self.receiver.deliveries.clear()
        # One draw whatever the sandbox sent (a seeded shuffle and repeats), so hypothesis
        # sees the same data shape on every run of an example.
        rng = data.draw(st.randoms(use_true_random=False))
        if not pending:
            return
        order = list(range(len(pending)))
        rng.shuffle(order)
        again = [rng.randrange(len(pending)) for _ in range(rng.randrange(4))]
        for index in [*order, *again]:
            account, headers, body = pending[index]
            events = self.gw.webhooks.handle(account, headers, body)
            self.stats["webhook deliveries"] += 1
            self.stats["webhook duplicates"] += sum(1 for e in events if e.duplicate)

    @rule(
        provider=st.sampled_from(["payjp", "univapay", "elepay", "pokepay", "smaregi"]),
        kind=st.sampled_from(["status", "drop_after_commit", "rate_limit"]),
    )
    def fault(self, provider: str, kind: str) -> None:
        # The next call to the provider fails; the driver or the merchant retries.
        self.sandbox.clear_faults(provider)
        self.sandbox.fault(provider, kind, count=1)
        self.stats[f"fault {kind}"] += 1

    @rule(
        codes=st.sampled_from(
            [("busy",), ("weird",), ("declined_for_good",), ("weird", "already_done")]
        ),
        operation=st.sampled_from(["charge", "refund"]),
    )
    def provider_answers_class(self, codes: tuple[str, ...], operation: str) -> None:
        """fakepay answers one outcome class (or a chain): the key ends truthfully."""
        self.counter += 1
        key = f"sm-class-{self.counter}"
        if operation == "refund":
            base = self._call(
                f"{key}-base",
                "charge",
                account="fakepay",
                amount=Money.jpy(1000),
                method=Card(token="tok_success"),
            )
            base_item = self._seen_new(f"{key}-base", "fakepay", "card", 1000, base)
            kwargs: dict[str, Any] = {
                "account": "fakepay",
                "charge_id": base.id,
                "amount": Money.jpy(100),
            }
        else:
            kwargs = {
                "account": "fakepay",
                "amount": Money.jpy(1000),
                "method": Card(token="tok_success"),
            }
        self.sandbox.control("fakepay", "answer_classes", codes=list(codes))
        self.stats[f"class {'+'.join(codes)}"] += 1
        if codes == ("declined_for_good",):
            with pytest.raises(ProviderRejected) as refused:
                self._call(key, operation, **kwargs)
            assert refused.value.provider_code == "declined_for_good"
            assert not refused.value.retryable
            return
        result = self._call(key, operation, **kwargs)
        if operation == "charge":
            self._seen_new(key, "fakepay", "card", 1000, result)
        else:
            assert result.amount == Money.jpy(100)
            base_item.refund_keys.append(key)
            base_item.refunded += 100
            self._seen(base_item, self.gw.status("fakepay", base_item.charge.id))

    def _seen_new(self, key: str, account: str, what: str, amount: int, charge: Charge) -> Tracked:
        item = Tracked(key, account, what, amount, charge)
        self._seen(item, charge)
        self.tracked.append(item)
        return item

    # -- invariants --------------------------------------------------------------------

    @invariant()
    def store_agrees(self) -> None:
        for item in self.tracked:
            record = self.gw.store.get_charge(item.charge.id)
            assert record is not None
            assert record.amount_refunded <= record.amount
            if not item.canceled:
                assert record.amount_refunded == item.refunded, item.key
            if item.statuses and item.statuses[-1].is_terminal:
                assert record.status == item.statuses[-1], item.key

    @invariant()
    def handlers_once(self) -> None:
        assert all(n == 1 for n in self.handled.values()), self.handled

    @precondition(lambda self: bool(self.tracked))
    @invariant()
    def provider_agrees(self) -> None:
        ledger = self.sandbox.ledger()
        by_id = {e.id: e for entries in ledger.values() for e in entries}
        for item in self.tracked:
            ref = item.charge.provider_ref.rsplit(":", 1)[-1].split("/")[0]
            entry = by_id.get(ref)
            if entry is not None and not item.canceled and item.account != "pokepay":
                assert entry.refunded == item.refunded, item.key
                assert entry.refunded <= entry.amount


@pytest.mark.timeout(900)
@pytest.mark.parametrize("driver", ["sync", "async"])
def test_payment_state_machine(
    paygate_sandbox: Any, receiver_url: tuple[Receiver, str], paygate_accounts: Any, driver: str
) -> None:
    receiver, url = receiver_url
    PaymentMachine.stats.clear()
    PaymentMachine.driver = driver
    PaymentMachine.sandbox = paygate_sandbox
    PaymentMachine.receiver = receiver
    PaymentMachine.accounts = {
        name: table
        for name, table in paygate_accounts.items()
        if name in {account for account, _ in KINDS}
    }
    for provider in ("payjp", "univapay", "elepay", "fakepay"):
        paygate_sandbox.set_webhook_url(f"{url}/{provider}", provider)
    try:
        run_state_machine_as_test(
            PaymentMachine,
            settings=settings(
                max_examples=int(os.environ.get("PAYGATE_SM_EXAMPLES", "20")),
                stateful_step_count=40,
                deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
                derandomize="PAYGATE_SM_EXAMPLES" not in os.environ,
                # The machine drives a live sandbox: replaying an example for shrinking
                # meets different external state, so report the first failure as it is.
                phases=[Phase.explicit, Phase.reuse, Phase.generate],
            ),
        )
    finally:
        paygate_sandbox.set_webhook_url(None)
        paygate_sandbox.reset()
    stats = PaymentMachine.stats
    for what in ("charge", "customer pays", "refund", "cancel", "capture", "replay"):
        assert stats[what] > 0, dict(stats)
    assert stats["webhook deliveries"] > 0, stats
    assert stats["webhook duplicates"] > 0, stats
    assert stats["refund refused: not supported"] + stats["refund refused: too much"] > 0, stats
