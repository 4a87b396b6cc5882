"""The chaos run: thousands of charges, refunds, cancels and captures across every
sandbox provider while the sandbox injects faults, the merchant retries with the same
keys, the process "crashes" and restarts; then paygate's store is compared with the
sandbox's own ledger.

Run the full version (prints its figures, exits 1 when an invariant broke)::

    uv run python tests/reliability/chaos.py --operations 10000

A 500-operation version runs in the test suite (``tests/reliability/test_chaos.py``).

What the merchant does here is what a careful merchant does in production: every
mutating call carries an idempotency key; `OutcomeUnknown`, `ProviderUnavailable`,
`RateLimited` and `IdempotencyInProgress` are retried with the *same* key a bounded
number of times; a key still unresolved is retried later (after `reconcile`) and never
replaced by a new key. A "crash" drops the response of a mutating call after the
provider committed it and abandons the gateway mid-flow, leaving its record ``started``;
the next gateway (same SQLite file) takes the key over once the lease has run out on
the sandbox clock. A "restart" is a new `Gateway` on the same store.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import itertools
import json
import logging
import random
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx

_TESTS = Path(__file__).resolve().parents[1]
if str(_TESTS) not in sys.path:  # run as a script: make the fake provider importable
    sys.path.insert(0, str(_TESTS))

from _asgi_switch import SwitchApp  # noqa: E402
from fakepay import FakeEmulator, FakeProvider  # noqa: E402

from paygate import (  # noqa: E402
    Card,
    Charge,
    ChargeStatus,
    Gateway,
    IdempotencyInProgress,
    Konbini,
    Money,
    OutcomeUnknown,
    PaygateError,
    PosLine,
    PosSale,
    ProviderUnavailable,
    QRCode,
    RateLimited,
    RetryPolicy,
    Wallet,
)
from paygate._reconcile import reconcile  # noqa: E402
from paygate._registry import register_provider  # noqa: E402
from paygate.adapter import OpContext  # noqa: E402
from paygate.sandbox import ControlError  # noqa: E402

__all__ = ["ChaosReport", "ChaosSettings", "SimulatedCrash", "main", "run_chaos"]

RETRYABLE = (OutcomeUnknown, ProviderUnavailable, RateLimited, IdempotencyInProgress)
FAULT_KINDS = ("drop_after_commit", "status", "rate_limit", "reset", "latency")
LEASE = timedelta(seconds=10)

# account -> provider. Three fakepay accounts cover the three recovery policies; "none"
# is the provider that offers neither an idempotency key nor a lookup.
ACCOUNTS = {
    "payjp": "payjp",
    "univapay": "univapay",
    "elepay": "elepay",
    "pokepay": "pokepay",
    "smaregi": "smaregi",
    "fake": "fakepay",
    "fake_lookup": "fakepay",
    "fake_none": "fakepay",
}
# How often each account is picked for a new charge.
WEIGHTS = {
    "payjp": 5,
    "univapay": 5,
    "elepay": 4,
    "pokepay": 4,
    "smaregi": 4,
    "fake": 2,
    "fake_lookup": 2,
    "fake_none": 1,
}
# The money-moving ledger kind of each provider (Pokepay also lists topups).
LEDGER_KIND = {
    "payjp": "charge",
    "univapay": "charge",
    "elepay": "charge",
    "pokepay": "payment",
    "smaregi": "transaction",
    "fakepay": "charge",
}


# Bugs this run found, as reported to their owners (docs/reliability.md has the list).
# The chaos run recognises their symptoms; a symptom of a bug still OPEN is counted
# under its id instead of failing the run, while a symptom of a FIXED bug fails it (a
# regression). Each bug has a deterministic reproduction in the test suite.
BUGS = {
    "B1": "core: an error from the re-send after a transport failure leaves the key "
    "'started' until its lease runs out (IdempotencyInProgress meanwhile)",
    "B2": "core: a refund retried with its key after an unknown outcome is refused "
    "(InvalidRequest) once paygate's record already counts that refund; the key stays "
    "unknown for ever",
    "B3": "core: a status-only webhook moving a charge to refunded keeps the old refunded "
    "amount, and the terminal status freezes it",
    "B4": "smaregi: refund and cancel declared key='none' although the void is idempotent",
    "B5": "core: an abandoned operation flow yields during GeneratorExit "
    "('generator ignored GeneratorExit')",
    "B6": "payjp: a full refund re-sent after a lost answer reports the charge's total "
    "refunded amount as the refund's amount",
    "B7": "pokepay: two lost answers in a row end in ProviderRejected("
    "partner_request_already_done), stored as a definitive failure although the payment "
    "(or refund) exists; a status read fails the same way",
    "B8": "core: a refund adds its amount to the recorded refunded total even when a "
    "webhook or poll already counted it (a recovered attempt), so paygate's refunded "
    "amount exceeds the provider's",
    "B9": "core: reconcile rebuilds the charge request with an empty payment method, so "
    "the Smaregi and Pokepay wallet lookups fail with AttributeError, reconcile stops, "
    "and the key it took stays held until its lease runs out",
    "B10": "core and elepay: deeply nested JSON (answers and webhook bodies) raised RecursionError",
    "B11": "core: account names and charge ids are not type-checked (raw TypeError, "
    "sqlite3 and UnicodeEncodeError)",
    "B12": "payjp: an empty card token is sent to PAY.JP instead of refused before I/O",
    "B13": "core: a refund on a charge that is not succeeded asks the provider before "
    "refusing an amount or currency that is wrong on its face",
    "B14": "core: Refund.reason (free text, often the customer's words) is shown in reprs",
    "B16": "core: after a send whose answer was lost, a 'nothing happened' error of the "
    "re-send (429, 404, 401) releases the key as if the first send had done nothing; the "
    "next attempt starts afresh, and a refund is then refused although it happened",
    "B15": "univapay: a full refund re-sent after a lost answer (the gateway's keyed re-send "
    "or a later retry) re-reads the charge, finds nothing left and raises InvalidRequest: "
    "the merchant is told the refund was refused although it happened",
}
FIXED = frozenset(BUGS)
KNOWN_BUGS = {bug: text for bug, text in BUGS.items() if bug not in FIXED}


class SimulatedCrash(BaseException):
    """The process "dies" right after a mutating call reached the provider."""


# ----------------------------------------------------------------------------- settings


@dataclass(frozen=True)
class ChaosSettings:
    """Knobs of one run. Probabilities are per HTTP call (faults) or per operation."""

    operations: int = 500
    seed: int = 1
    fault_rate: float = 0.05  # per kind, per provider call
    storm_rate: float = 0.01  # a burst of 429s longer than the driver's attempts
    crash_rate: float = 0.01  # per mutating HTTP call
    restart_rate: float = 0.01  # per operation
    reconcile_rate: float = 0.004  # per operation: the reconcile job runs
    attempts: int = 6  # merchant attempts per key before giving up for now
    driver_attempts: int = 2  # HTTP attempts per call: few, so failures reach recovery
    webhooks: bool = True
    latency_ms: int = 3
    # fakepay answers a random outcome class (busy / already done / weird / refused for
    # good) to this share of its mutating requests.
    class_rate: float = 0.15


# ------------------------------------------------------------------------------ figures


@dataclass
class ProviderFigures:
    """What happened at one account."""

    operations: Counter[str] = field(default_factory=Counter)
    retries: int = 0
    errors: Counter[str] = field(default_factory=Counter)  # retryable errors seen
    unknown_keys: int = 0  # keys that ever ended an attempt in OutcomeUnknown
    reconciled: int = 0  # unknown records reconcile resolved (found or not created)
    resolved_by_retry: int = 0  # keys unresolved after the run, completed by a retry
    unresolvable: int = 0  # still unknown at the end
    duplicates: int = 0
    lost: int = 0
    over_refunded: int = 0
    refund_mismatch: int = 0
    regressions: int = 0
    replay_mismatch: int = 0
    superseded: int = 0  # unpaid QR codes replaced after a lost answer (never payable)
    charges: int = 0
    paid: int = 0
    refunded: int = 0  # yen refunded, ledger
    declined: int = 0


@dataclass
class ChaosReport:
    """Figures of a run; `problems` lists every broken invariant."""

    settings: ChaosSettings
    by_account: dict[str, ProviderFigures] = field(
        default_factory=lambda: defaultdict(ProviderFigures)
    )
    faults: Counter[str] = field(default_factory=Counter)
    storms: int = 0
    crashes: int = 0
    restarts: int = 0
    control: Counter[str] = field(default_factory=Counter)
    webhooks: Counter[str] = field(default_factory=Counter)
    webhook_handled_twice: int = 0
    unexpected: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    known: Counter[str] = field(default_factory=Counter)  # symptoms of KNOWN_BUGS
    known_examples: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    unresolvable_allowed: list[str] = field(default_factory=list)
    reconcile_rows: Counter[str] = field(default_factory=Counter)
    requests: int = 0
    duration: float = 0.0

    def total(self, name: str) -> int:
        """Sum of one per-account figure."""
        return sum(getattr(f, name) for f in self.by_account.values())

    @property
    def ok(self) -> bool:
        """No invariant broke (symptoms of the known bugs aside)."""
        return not self.problems and not self.unexpected

    def problem(self, text: str, bug: str | None = None) -> None:
        """Record a broken invariant, attributed to a known bug when ``bug`` is given."""
        if bug is None:
            self.problems.append(text)
            return
        if bug in FIXED:
            self.problems.append(f"{text} [looks like {bug}, fixed: a regression?]")
            return
        self.known[bug] += 1
        if len(self.known_examples[bug]) < 5:
            self.known_examples[bug].append(text)

    def text(self) -> str:
        """The figures as printed by ``main``."""
        s = self.settings
        ops: Counter[str] = Counter()
        for fig in self.by_account.values():
            ops.update(fig.operations)
        lines = [
            f"paygate chaos run: {sum(ops.values())} operations, seed {s.seed}, "
            f"fault rate {s.fault_rate} per kind, {len(self.by_account)} accounts",
            "operations: " + ", ".join(f"{k} {v}" for k, v in sorted(ops.items())),
            "faults injected: "
            + ", ".join(f"{k} {self.faults.get(k, 0)}" for k in FAULT_KINDS)
            + f", 429 storms {self.storms} ({self.faults.get('storm', 0)} answers)",
            "outcome classes answered by fakepay: "
            + ", ".join(
                f"{k.removeprefix('class ')} {v}"
                for k, v in sorted(self.faults.items())
                if k.startswith("class ")
            ),
            f"crashes {self.crashes}, restarts {self.restarts}, provider requests {self.requests}",
            "customer actions: "
            + (", ".join(f"{k} {v}" for k, v in sorted(self.control.items())) or "none"),
            "webhooks: "
            + (", ".join(f"{k} {v}" for k, v in sorted(self.webhooks.items())) or "off")
            + f", handled twice {self.webhook_handled_twice}",
            "reconcile: "
            + (", ".join(f"{k} {v}" for k, v in sorted(self.reconcile_rows.items())) or "-"),
            "",
            f"{'account':<12}{'charges':>8}{'paid':>6}{'retries':>8}{'unknown':>8}"
            f"{'reconc':>7}{'retried':>8}{'unres':>6}{'dup':>5}{'lost':>5}{'refund!':>8}"
            f"{'superseded':>11}",
        ]
        for name in sorted(self.by_account):
            f = self.by_account[name]
            lines.append(
                f"{name:<12}{f.charges:>8}{f.paid:>6}{f.retries:>8}{f.unknown_keys:>8}"
                f"{f.reconciled:>7}{f.resolved_by_retry:>8}{f.unresolvable:>6}"
                f"{f.duplicates:>5}{f.lost:>5}"
                f"{f.over_refunded + f.refund_mismatch:>8}{f.superseded:>11}"
            )
        errors: Counter[str] = Counter()
        for fig in self.by_account.values():
            errors.update(fig.errors)
        lines += [
            "",
            "retryable errors seen by the merchant: "
            + (", ".join(f"{k} {v}" for k, v in sorted(errors.items())) or "none"),
            f"retries {self.total('retries')}, unknown outcomes {self.total('unknown_keys')}, "
            f"reconciled {self.total('reconciled')}, "
            f"resolved by a retry {self.total('resolved_by_retry')}, "
            f"unresolvable {self.total('unresolvable')}"
            + (
                f" (allowed: {', '.join(self.unresolvable_allowed)})"
                if self.unresolvable_allowed
                else ""
            ),
            f"duplicates={self.total('duplicates')} lost={self.total('lost')} "
            f"over_refunded={self.total('over_refunded')} "
            f"refund_mismatch={self.total('refund_mismatch')} "
            f"regressions={self.total('regressions')} "
            f"replay_mismatch={self.total('replay_mismatch')}"
            + (
                "; known-bug symptoms: "
                + ", ".join(f"{bug} x{n}" for bug, n in sorted(self.known.items()))
                if self.known
                else ""
            ),
            f"duration {self.duration:.1f} s",
        ]
        if self.known:
            lines.append("symptoms of known bugs (see docs/reliability.md):")
            for bug in sorted(self.known):
                lines.append(f"  {bug} x{self.known[bug]}: {BUGS[bug]}")
                lines += [f"      e.g. {example}" for example in self.known_examples[bug][:2]]
        if self.unexpected:
            lines.append(f"UNEXPECTED EXCEPTIONS ({len(self.unexpected)}):")
            lines += [f"  {u}" for u in self.unexpected[:20]]
        if self.problems:
            lines.append(f"PROBLEMS ({len(self.problems)}):")
            lines += [f"  {p}" for p in self.problems[:50]]
        return "\n".join(lines)


# ------------------------------------------------------------------------ crash transport


class CrashSwitch:
    """Shared by every gateway's transport: when to crash, and the request count."""

    def __init__(self, rng: random.Random, rate: float) -> None:
        self.rng = rng
        self.rate = rate
        self.armed = True
        self.mutating = False  # only a mutating operation is crashed (Pokepay reads POST too)
        self.crashes = 0
        self.requests = 0
        self._lock = threading.Lock()

    def should_crash(self, method: str) -> bool:
        with self._lock:
            self.requests += 1
            if not (self.armed and self.mutating) or method == "GET":
                return False
            if self.rng.random() >= self.rate:
                return False
            self.crashes += 1
            return True


class CrashingTransport(httpx.BaseTransport):
    """An httpx transport that may "kill the process" once the provider has answered."""

    def __init__(self, switch: CrashSwitch) -> None:
        self.switch = switch
        self.inner = httpx.HTTPTransport()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self.inner.handle_request(request)
        if self.switch.should_crash(request.method):
            response.read()
            response.close()
            raise SimulatedCrash(f"crash after {request.method} {request.url.path}")
        return response

    def close(self) -> None:
        self.inner.close()


# ------------------------------------------------------------------------- merchant model


@dataclass
class Op:
    """One merchant idempotency key and what became of it."""

    kind: str  # charge, refund, cancel, capture
    account: str
    key: str
    params: dict[str, Any]
    charge_key: str | None = None
    outcome: str = "new"  # ok, error, unresolved, unexpected
    result: Any = None
    error: PaygateError | None = None
    attempts: int = 0
    was_unknown: bool = False
    later: int = 0  # how often the background job retried it
    history: list[str] = field(default_factory=list)  # the error of each failed attempt


@dataclass
class ChargeState:
    """A charge as the merchant knows it."""

    op: Op
    charge: Charge
    method: str
    amount: int
    refunded: int = 0
    canceled: bool = False
    customer_paid: bool = False
    transaction_id: str | None = None  # Pokepay Cashtray payment
    pending: Op | None = None  # an unresolved refund/cancel/capture on it

    @property
    def status(self) -> ChargeStatus:
        return self.charge.status


class Merchant:
    """Drives the gateway like a merchant app under faults, and keeps the op log."""

    def __init__(
        self, sandbox: Any, settings: ChaosSettings, store: str, report: ChaosReport
    ) -> None:
        self.sandbox = sandbox
        self.settings = settings
        self.store = store
        self.report = report
        self.rng = random.Random(settings.seed)
        self.switch = CrashSwitch(random.Random(settings.seed + 7), settings.crash_rate)
        self.clock = sandbox.host.clock
        tables = sandbox.accounts()
        self.config = {
            "store": "memory://",
            "accounts": {
                name: {**tables[provider], **_extra(name)} for name, provider in ACCOUNTS.items()
            },
        }
        self.creds = sandbox.credentials()
        self.ops: list[Op] = []
        self.charges: list[ChargeState] = []
        self.by_key: dict[str, ChargeState] = {}
        self.unresolved: list[Op] = []
        self.counter = 0
        self.handled: Counter[str] = Counter()
        self._handled_lock = threading.Lock()
        self.webhook = SwitchApp()
        self._old: list[Gateway] = []
        self.gw = self._new_gateway()

    # -- gateways ------------------------------------------------------------------------

    def _new_gateway(self) -> Gateway:
        gw = Gateway.from_config(
            self.config,
            store=self.store,
            retry=RetryPolicy.no_wait(attempts=self.settings.driver_attempts),
            clock=self.clock.now,
            lease=LEASE,
            transport=CrashingTransport(self.switch),
        )

        @gw.webhooks.on("*")
        def count(event: Any) -> None:
            with self._handled_lock:
                self.handled[f"{event.account}:{event.provider_event_id or event.id}"] += 1

        self.webhook.app = gw.webhooks.asgi()
        return gw

    def restart(self) -> None:
        """A new gateway on the same store (the old one is closed a little later, since a
        webhook may still be running on it)."""
        self.report.restarts += 1
        self._old.append(self.gw)
        self.gw = self._new_gateway()
        while len(self._old) > 2:
            self._old.pop(0).close()

    def crash(self) -> None:
        """The process died: its flow is abandoned, its records stay ``started``; the new
        process starts once the lease has run out."""
        self.report.crashes += 1
        self._old.append(self.gw)
        self.gw = self._new_gateway()
        gc.collect()  # the abandoned flow is finalised now, not at some random later point
        self.sandbox.advance(LEASE + timedelta(seconds=1))
        while len(self._old) > 2:
            self._old.pop(0).close()

    def close(self) -> None:
        for gw in [*self._old, self.gw]:
            gw.close()

    # -- figures -------------------------------------------------------------------------

    def fig(self, account: str) -> ProviderFigures:
        return self.report.by_account[account]

    # -- one key, bounded retries ----------------------------------------------------------

    def invoke(self, op: Op) -> Any:
        gw = self.gw
        p = op.params
        if op.kind == "charge":
            return gw.charge(op.account, idempotency_key=op.key, **p)
        if op.kind == "refund":
            return gw.refund(op.account, p["charge_id"], idempotency_key=op.key, amount=p["amount"])
        if op.kind == "cancel":
            return gw.cancel(op.account, p["charge_id"], idempotency_key=op.key)
        if op.kind == "capture":
            return gw.capture(op.account, p["charge_id"], idempotency_key=op.key)
        raise AssertionError(op.kind)

    def execute(self, op: Op, attempts: int | None = None) -> None:
        fig = self.fig(op.account)
        for attempt in range(attempts or self.settings.attempts):
            op.attempts += 1
            if attempt:
                fig.retries += 1
            verdict = self._attempt(op)
            # Handled here, outside any except block, so that the abandoned flow of a
            # crash is no longer referenced by a live traceback and can be finalised.
            if verdict == "crash":
                self.crash()
            elif verdict == "retry":
                if self.rng.random() < 0.2:
                    self.restart()
            else:
                return
        op.outcome = "unresolved"

    def _attempt(self, op: Op) -> str:
        fig = self.fig(op.account)
        self.switch.mutating = True
        try:
            result = self.invoke(op)
        except SimulatedCrash:
            return "crash"
        except RETRYABLE as exc:
            op.history.append(type(exc).__name__)
            fig.errors[type(exc).__name__] += 1
            if isinstance(exc, IdempotencyInProgress):
                # Nothing runs concurrently here and a crash waits out its lease, so a
                # held key is one that nobody released.
                self.report.problem(f"{op.account} {op.kind} {op.key}: key held", bug="B1")
            if isinstance(exc, OutcomeUnknown) and not op.was_unknown:
                op.was_unknown = True
                fig.unknown_keys += 1
            return "retry"
        except PaygateError as exc:
            if exc.retryable:
                # The key stays open (a refusal that did nothing, an unknown outcome):
                # a careful merchant retries with the same key.
                op.history.append(f"{type(exc).__name__}:{exc.provider_code}")
                fig.errors[f"retryable {exc.provider_code or type(exc).__name__}"] += 1
                return "retry"
            op.outcome, op.error = "error", exc
            return "done"
        except Exception as exc:  # a bug: paygate must only raise its own errors
            op.outcome = "unexpected"
            self.report.unexpected.append(f"{op.kind} {op.account} {op.key}: {exc!r}")
            return "done"
        finally:
            self.switch.mutating = False
        op.outcome, op.result, op.error = "ok", result, None
        return "done"

    def read(self, account: str, charge_id: str) -> Charge | None:
        """``status`` with bounded retries of transient failures."""
        for _ in range(self.settings.attempts):
            try:
                return self.gw.status(account, charge_id)
            except (ProviderUnavailable, RateLimited) as exc:
                self.fig(account).errors[f"status:{type(exc).__name__}"] += 1
            except PaygateError as exc:
                # A read has no outcome to lose: any other error is a bug.
                bug = "B7" if exc.provider_code == "partner_request_already_done" else None
                self.report.problem(f"{account} status {charge_id}: {exc.code}", bug=bug)
        return None

    # -- operations ----------------------------------------------------------------------

    def new_key(self, account: str, suffix: str) -> str:
        self.counter += 1
        return f"chaos-{account}-{self.counter:06d}-{suffix}"

    def method_for(self, account: str) -> tuple[Any, int]:
        rng = self.rng
        provider = ACCOUNTS[account]
        if provider == "payjp":
            token = "tok_card_declined" if rng.random() < 0.03 else "tok_success"
            return Card(token=token, capture=rng.random() < 0.8), rng.randrange(50, 50_000)
        if provider == "univapay":
            if rng.random() < 0.7:
                return (
                    Konbini(
                        store=rng.choice(["family_mart", "lawson", "seven_eleven", "mini_stop"]),
                        customer_name="カオス 太郎",
                        phone="0364413400",
                        email="chaos@example.com",
                    ),
                    rng.randrange(100, 299_999),
                )
            token = self.sandbox.control("univapay", "card_token", card="success")["id"]
            return Card(token=token, capture=rng.random() < 0.8), rng.randrange(100, 50_000)
        if provider == "elepay":
            return QRCode(), rng.randrange(1, 50_000)
        if provider == "pokepay":
            if rng.random() < 0.6:
                customer = self.creds["pokepay"]["customers"]["funded"]
                return Wallet(customer_id=customer), rng.randrange(1, 2_000)
            return QRCode(), rng.randrange(1, 2_000)
        if provider == "smaregi":
            amount = rng.randrange(1, 30_000)
            line = PosLine(name="chaos", unit_price=amount)
            return PosSale(store_id="1", terminal_id="1", lines=(line,)), amount
        if rng.random() < 0.3:
            return QRCode(), rng.randrange(1, 10_000)
        return Card(token="tok"), rng.randrange(1, 10_000)

    def charge(self) -> None:
        account = self.rng.choices(list(WEIGHTS), weights=list(WEIGHTS.values()))[0]
        if ACCOUNTS[account] == "pokepay" and self.fig(account).charges % 200 == 0:
            self._top_up()
        method, amount = self.method_for(account)
        params: dict[str, Any] = {"amount": Money.jpy(amount), "method": method}
        if not (ACCOUNTS[account] == "pokepay" and method.type == "qr"):
            params["metadata"] = {"run": "chaos"}  # a Pokepay Cashtray takes no metadata
        op = Op("charge", account, self.new_key(account, "c"), params)
        self.fig(account).operations["charge"] += 1
        self.fig(account).charges += 1
        self._run(op)

    def _run(self, op: Op) -> None:
        self.ops.append(op)
        style = self.rng.random()
        if style < 0.2:
            # Tries once and leaves an unknown outcome to the reconcile job alone.
            op.later = 3
            self.execute(op, attempts=1)
        elif style < 0.4:
            # Tries once; a background job retries the key later.
            self.execute(op, attempts=1)
        else:
            self.execute(op)
        self._settle(op)

    def _settle(self, op: Op) -> None:
        """Fold a finished (or given-up) key into the merchant's view."""
        if op.outcome == "unresolved":
            if op not in self.unresolved:
                self.unresolved.append(op)
            if op.charge_key is not None:
                self.by_key[op.charge_key].pending = op
            return
        if op in self.unresolved:
            self.unresolved.remove(op)
        state = self.by_key.get(op.charge_key) if op.charge_key else None
        if state is not None and state.pending is op:
            state.pending = None
        if op.outcome != "ok":
            if op.kind == "charge" and op.error is not None and op.error.code == "payment_declined":
                self.fig(op.account).declined += 1
            return
        if op.kind == "charge":
            charge: Charge = op.result
            state = ChargeState(op, charge, charge.method, charge.amount.amount)
            self.charges.append(state)
            self.by_key[op.key] = state
        elif state is not None and op.kind == "refund":
            state.refunded += op.result.amount.amount
            self._observe(state, None)
        elif state is not None:
            self._observe(state, op.result)
            if op.kind == "cancel":
                state.canceled = True

    def _observe(self, state: ChargeState, fresh: Charge | None) -> None:
        if fresh is None:
            fresh = self.read(state.op.account, state.charge.id)
            if fresh is None:
                return
        before = state.charge.status
        if before != fresh.status and not before.can_become(fresh.status):
            self.fig(state.op.account).regressions += 1
            self.report.problem(
                f"{state.op.account} {state.charge.id}: status went {before} -> {fresh.status}"
            )
            return
        state.charge = fresh

    def _pick(self, wanted: Callable[[ChargeState], bool]) -> ChargeState | None:
        pool = [c for c in self.charges[-400:] if c.pending is None and wanted(c)]
        return self.rng.choice(pool) if pool else None

    def customer(self) -> None:
        """The customer pays a slip or scans a code."""
        state = self._pick(
            lambda c: c.status is ChargeStatus.REQUIRES_ACTION and not c.customer_paid
        )
        if state is None:
            self.charge()
            return
        account = state.op.account
        provider = ACCOUNTS[account]
        ref = state.charge.provider_ref
        self.fig(account).operations["customer"] += 1
        try:
            if provider == "univapay":
                self.sandbox.control("univapay", "pay_konbini", charge_id=ref)
            elif provider == "elepay":
                self.sandbox.control("elepay", "pay_code", code_id=ref.split(":", 1)[1])
            elif provider == "pokepay":
                answer = self.sandbox.control(
                    "pokepay", "scan_cashtray", cashtray_id=ref.split(":", 1)[1].split("/")[0]
                )
                if answer.get("transaction_id"):
                    state.transaction_id = str(answer["transaction_id"])
                else:
                    self.report.control[f"{provider}:scan_failed"] += 1
                    self._observe(state, None)
                    return
            else:
                self.sandbox.control("fakepay", "pay", id=ref)
        except ControlError as exc:
            self.report.control[f"{provider}:refused({str(exc)[:30]})"] += 1
            self._observe(state, None)
            return
        self.report.control[f"{provider}:paid"] += 1
        state.customer_paid = True
        self._observe(state, None)

    def refund(self) -> None:
        def refundable(c: ChargeState) -> bool:
            caps = self.gw.capabilities(c.op.account).method(c.method)
            return (
                caps is not None
                and caps.refund != "none"
                and c.status in (ChargeStatus.SUCCEEDED, ChargeStatus.PARTIALLY_REFUNDED)
                and c.refunded < c.amount
                and (caps.multiple_refunds or c.refunded == 0)
            )

        state = self._pick(refundable)
        if state is None:
            self.charge()
            return
        caps = self.gw.capabilities(state.op.account).method(state.method)
        assert caps is not None
        amount: Money | None = None
        left = state.amount - state.refunded
        if caps.refund == "partial" and self.rng.random() < 0.7:
            amount = Money.jpy(self.rng.randint(1, left))
        n = sum(1 for op in self.ops if op.charge_key == state.op.key and op.kind == "refund")
        op = Op(
            "refund",
            state.op.account,
            f"{state.op.key}-r{n + 1}",
            {"charge_id": state.charge.id, "amount": amount},
            charge_key=state.op.key,
        )
        self.fig(op.account).operations["refund"] += 1
        self._run(op)

    def cancel(self) -> None:
        def cancelable(c: ChargeState) -> bool:
            caps = self.gw.capabilities(c.op.account).method(c.method)
            if caps is None or not caps.cancel or c.canceled:
                return False
            if ACCOUNTS[c.op.account] == "smaregi":  # a void of the sale
                return c.status is ChargeStatus.SUCCEEDED
            return c.status in (
                ChargeStatus.REQUIRES_ACTION,
                ChargeStatus.PENDING,
                ChargeStatus.AUTHORIZED,
            )

        state = self._pick(cancelable)
        if state is None:
            self.charge()
            return
        op = Op(
            "cancel",
            state.op.account,
            f"{state.op.key}-x",
            {"charge_id": state.charge.id},
            charge_key=state.op.key,
        )
        self.fig(op.account).operations["cancel"] += 1
        self._run(op)

    def capture(self) -> None:
        state = self._pick(lambda c: c.status is ChargeStatus.AUTHORIZED)
        if state is None:
            self.charge()
            return
        op = Op(
            "capture",
            state.op.account,
            f"{state.op.key}-k",
            {"charge_id": state.charge.id},
            charge_key=state.op.key,
        )
        self.fig(op.account).operations["capture"] += 1
        self._run(op)

    def status(self) -> None:
        state = self._pick(lambda c: True)
        if state is None:
            self.charge()
            return
        self.fig(state.op.account).operations["status"] += 1
        self._observe(state, None)

    def replay(self) -> None:
        """The same key again: the same answer, without a second provider object."""
        done = [op for op in self.ops[-400:] if op.outcome in ("ok", "error")]
        if not done:
            self.charge()
            return
        op = self.rng.choice(done)
        self.fig(op.account).operations["replay"] += 1
        again = Op(op.kind, op.account, op.key, op.params, charge_key=op.charge_key)
        self.execute(again)
        if again.outcome == "unresolved":
            return  # the provider could not be asked in time (a refund re-reads first)
        same = (
            again.result == op.result if op.outcome == "ok" else type(again.error) is type(op.error)
        )
        if not same:
            self.fig(op.account).replay_mismatch += 1
            self.report.problem(
                f"replay of {op.kind} {op.key}: {op.outcome} then {again.outcome} "
                f"({type(again.error).__name__ if again.error else 'result differs'})"
            )

    def retry_unresolved(self) -> None:
        """A background job: retry one key that was given up earlier (same key)."""
        waiting = [op for op in self.unresolved if op.later < 3]
        if not waiting:
            self.charge()
            return
        op = self.rng.choice(waiting)
        op.later += 1
        self.fig(op.account).operations["retry_later"] += 1
        self.execute(op)
        self._settle(op)

    def reconcile(self, label: str = "during the run") -> None:
        """The reconcile job (run while the faults go on, and once at the end)."""
        try:
            rows = reconcile(self.gw, now=self.clock.now())
        except AttributeError as exc:
            self.report.problem(f"reconcile stopped: {exc}", bug="B9")
            rows = []
        except Exception as exc:
            self.report.unexpected.append(f"reconcile: {exc!r}")
            rows = []
        for row in rows:
            if row.kind == "stale charge":
                continue
            resolved = row.after == "not created" or row.action.startswith("found")
            self.report.reconcile_rows[f"{label}: {'resolved' if resolved else 'left'}"] += 1
            if resolved:
                self.fig(row.account).reconciled += 1
        if label != "during the run":
            return
        # What reconcile advises for the rest: retry with the same key (inside the
        # provider's window). The job does so for the keys still unknown.
        for op in list(self.unresolved):
            policy = self.gw.provider(op.account).policy(op.kind)  # type: ignore[arg-type]
            if not (policy.keyed or policy.lookup):
                continue  # reconcile's advice there: check the provider's dashboard
            record = self.gw.store.get(f"{op.account}\x1f{op.kind}\x1f{op.key}")
            if record is not None and record.state == "unknown":
                self.fig(op.account).operations["retry_after_reconcile"] += 1
                self.execute(op, attempts=2)
                self._settle(op)

    def storm(self) -> None:
        provider = self.rng.choice(sorted(set(ACCOUNTS.values())))
        self.sandbox.fault(provider, "rate_limit", count=self.rng.randint(3, 8), retry_after=1)
        self.report.storms += 1

    def _top_up(self) -> None:
        customer = self.creds["pokepay"]["customers"]["funded"]
        wallet = self.sandbox.control("pokepay", "account", customer_id=customer)
        balance = int(float(wallet.get("balance", wallet.get("money_balance", 0)) or 0))
        if balance < 400_000:
            self.sandbox.control(
                "pokepay",
                "topup",
                customer_id=customer,
                money_amount=400_000 - balance,
                point_amount=0,
            )

    def step(self) -> None:
        rng = self.rng
        if rng.random() < self.settings.restart_rate:
            self.restart()
        if rng.random() < self.settings.storm_rate:
            self.storm()
        if rng.random() < self.settings.reconcile_rate:
            self.reconcile()
            return
        if self.unresolved and rng.random() < 0.1:
            self.retry_unresolved()
            return
        r = rng.random()
        if r < 0.40 or not self.charges:
            self.charge()
        elif r < 0.55:
            self.customer()
        elif r < 0.70:
            self.refund()
        elif r < 0.78:
            self.cancel()
        elif r < 0.83:
            self.capture()
        elif r < 0.92:
            self.status()
        else:
            self.replay()


def _extra(account: str) -> dict[str, Any]:
    if account == "fake_lookup":
        return {"mode": "lookup"}
    if account == "fake_none":
        return {"mode": "none"}
    return {}


# ---------------------------------------------------------------------------- the run


def install_faults(sandbox: Any, settings: ChaosSettings) -> None:
    """Random faults on every provider call, each kind with its own seeded draw."""
    p = settings.fault_rate
    for n, provider in enumerate(sorted(set(ACCOUNTS.values()))):
        seed = settings.seed * 1000 + n * 10
        sandbox.fault(provider, "drop_after_commit", probability=p, seed=seed + 1)
        sandbox.fault(provider, "status", status=503, probability=p / 2, seed=seed + 2)
        sandbox.fault(provider, "status", status=500, probability=p / 2, seed=seed + 3)
        sandbox.fault(provider, "rate_limit", retry_after=1, probability=p, seed=seed + 4)
        sandbox.fault(provider, "reset", probability=p, seed=seed + 5)
        sandbox.fault(
            provider,
            "latency",
            latency_ms=settings.latency_ms,
            probability=p * 2,
            seed=seed + 6,
        )


def install_classes(sandbox: Any, settings: ChaosSettings) -> None:
    """fakepay answers each outcome class at random (see tests/fakepay)."""
    sandbox.control(
        "fakepay", "answer_classes", probability=settings.class_rate, seed=settings.seed
    )


def count_faults(sandbox: Any, report: ChaosReport) -> None:
    for code, count in sandbox.control("fakepay", "class_counts").items():
        report.faults[f"class {code}"] += int(count)
    for rule in sandbox.faults():
        kind = rule["kind"]
        if kind == "rate_limit" and rule["probability"] is None:
            kind = "storm"
        report.faults[kind] += int(rule["fired"])


def run_chaos(sandbox: Any, settings: ChaosSettings, workdir: Path) -> ChaosReport:
    """Run the chaos operations against ``sandbox`` (a `paygate.sandbox.Sandbox` served
    in this process, with the fake provider mounted) and check the invariants.

    The sandbox is reset first and its faults and webhook URLs are cleared afterwards.
    """
    register_provider(FakeProvider)
    report = ChaosReport(settings)
    started = time.perf_counter()
    sandbox.reset()
    sandbox.clear_faults()
    store = f"sqlite:///{workdir / 'chaos.db'}"
    merchant = Merchant(sandbox, settings, store, report)
    hook = sys.unraisablehook
    sys.unraisablehook = _abandoned_flows(hook, report)
    try:
        with _webhooks(sandbox, merchant, settings.webhooks):
            try:
                install_faults(sandbox, settings)
                install_classes(sandbox, settings)
                for _ in range(settings.operations):
                    merchant.step()
            finally:
                count_faults(sandbox, report)
                sandbox.clear_faults()
                sandbox.control("fakepay", "answer_classes", probability=0.0)
                merchant.switch.armed = False
            finish(merchant)
            if settings.webhooks:
                for attempt in sandbox.flush_webhooks():
                    report.webhooks[attempt.outcome] += 1
                report.webhook_handled_twice = sum(1 for n in merchant.handled.values() if n > 1)
                report.webhooks["events handled"] = len(merchant.handled)
            verify(merchant)
    finally:
        report.requests = merchant.switch.requests
        merchant.close()
        gc.collect()
        sys.unraisablehook = hook
        sandbox.clear_faults()
    report.duration = time.perf_counter() - started
    return report


def _abandoned_flows(previous: Any, report: ChaosReport) -> Any:
    # A crashed flow is abandoned mid-yield on purpose; finalising it makes the gateway's
    # recovery code yield during GeneratorExit (B5). Counted, not printed.
    def hook(unraisable: Any) -> None:
        if isinstance(unraisable.exc_value, RuntimeError) and "GeneratorExit" in str(
            unraisable.exc_value
        ):
            report.problem("an abandoned flow ignored GeneratorExit", bug="B5")
            return
        previous(unraisable)

    return hook


@contextlib.contextmanager
def _webhooks(sandbox: Any, merchant: Merchant, enabled: bool) -> Iterator[None]:
    if not enabled:
        yield
        return
    from paygate.sandbox import serve_app

    with serve_app(merchant.webhook) as url:
        for account, provider in ACCOUNTS.items():
            if account == provider or account == "fake":
                sandbox.set_webhook_url(f"{url}/{account}", provider)
        try:
            yield
        finally:
            sandbox.set_webhook_url(None)


def finish(merchant: Merchant) -> None:
    """Faults are off. Wait out the leases, reconcile, then retry every key still
    unresolved (same key, as reconcile advises)."""
    report = merchant.report
    now = merchant.clock.now()
    for record in merchant.gw.store.records(states=["started"]):
        # Nothing is in flight now: a live lease is one nobody released (B1).
        if record.lease_until is not None and record.lease_until > now:
            report.problem(f"{_name(record.key)}: left started with a live lease", bug="B1")
    merchant.sandbox.advance(LEASE + timedelta(seconds=1))
    merchant.reconcile("at the end")
    for op in list(merchant.unresolved):
        merchant.execute(op, attempts=3)
        merchant._settle(op)
        if op.outcome != "unresolved":
            merchant.fig(op.account).resolved_by_retry += 1
    ops = {f"{op.account}\x1f{op.kind}\x1f{op.key}": op for op in merchant.ops}
    for record in merchant.gw.store.records(states=["unknown", "started"]):
        account = record.key.split("\x1f", 1)[0]
        merchant.fig(account).unresolvable += 1
        policy = merchant.gw.provider(account).policy(record.operation)  # type: ignore[arg-type]
        op = ops.get(record.key)
        text = f"{_name(record.key)} still {record.state} ({record.detail})" + (
            f"; {_describe(op)}" if op is not None else ""
        )
        # Allowed: no key and no lookup (fakepay), or a key window the provider does not
        # state (Pokepay's request ids are "deleted after some period"): paygate cannot
        # tell a lost first attempt from a purged key, so it must not re-send blind.
        unstated = policy.key_window == "unknown" and "key window passed" in (record.detail or "")
        if unstated or (not policy.keyed and not policy.lookup and ACCOUNTS[account] == "fakepay"):
            if account not in report.unresolvable_allowed:
                report.unresolvable_allowed.append(account)
        else:
            report.problem(text, bug=_stuck_bug(record, op, report))
    for state in merchant.charges:
        if not state.charge.status.is_terminal:
            merchant._observe(state, None)


def _stuck_bug(record: Any, op: Op | None, report: ChaosReport | None = None) -> str | None:
    """Which known bug explains a key left unresolved at the end, if one does."""
    if op is None:
        return None
    if (
        report is not None
        and report.known["B9"]
        and record.state == "started"
        and op.kind == "charge"
        and ACCOUNTS[op.account] in ("smaregi", "pokepay")
    ):
        return "B9"  # reconcile's lookup failed with the key taken: it stays held
    if record.state == "started" and op.outcome in ("ok", "error"):
        return "B1"  # the merchant got an answer; the record was never finished
    if _b15(op):
        return "B15"
    if (
        record.state == "unknown"
        and op.kind == "refund"
        and op.outcome == "error"
        and op.error is not None
        and op.error.code == "invalid_request"
    ):
        return "B2"
    return None


def _b16(op: Op) -> bool:
    return (
        op.kind == "refund"
        and op.outcome == "error"
        and op.error is not None
        and op.error.code == "invalid_request"
        and "RateLimited" in op.history
    )


def _b15(op: Op) -> bool:
    return (
        ACCOUNTS[op.account] == "univapay"
        and op.kind == "refund"
        and op.params.get("amount") is None
        and op.error is not None
        and op.error.code == "invalid_request"
        and "nothing left" in op.error.message
    )


def _describe(op: Op) -> str:
    """A short account of one key's history, for problem reports."""
    error = f" {op.error.code}" if op.error is not None else ""
    amount = op.params.get("amount")
    shown = f" {amount.amount}" if isinstance(amount, Money) else ""
    unknown = " was-unknown" if op.was_unknown else ""
    return f"{op.kind} {op.key}{shown}: {op.outcome}{error} after {op.attempts}{unknown}"


def _name(store_key: str) -> str:
    account, operation, key = store_key.split("\x1f", 2)
    return f"{account} {operation} {key}"


# ---------------------------------------------------------------------------- verify


def provider_keys(account: str, key: str) -> list[str]:
    """Every key the provider's ledger may file a charge of merchant key ``key`` under
    (elepay: the key's derived order numbers, one per create whose answer was lost)."""
    if ACCOUNTS[account] != "elepay":
        return [provider_key(account, key)]
    from paygate_elepay._provider import ORDER_ATTEMPTS
    from paygate_elepay._wire import ORDER_NO_MAX

    ctx = OpContext(account=account, provider="elepay", idempotency_key=key)
    return [
        ctx.provider_key("code" if n == 1 else f"code{n}", max_len=ORDER_NO_MAX, alphabet="alnum")
        for n in range(1, ORDER_ATTEMPTS + 1)
    ]


def provider_key(account: str, key: str) -> str:
    """The key the provider's ledger files a charge of merchant key ``key`` under."""
    provider = ACCOUNTS[account]
    ctx = OpContext(account=account, provider=provider, idempotency_key=key)
    if provider == "payjp":
        from paygate_payjp._api import idempotency_key

        return idempotency_key(ctx, "charge")
    if provider == "elepay":
        from paygate_elepay._wire import ORDER_NO_MAX

        return ctx.provider_key("code", max_len=ORDER_NO_MAX, alphabet="alnum")
    if provider == "pokepay":
        from paygate_pokepay._provider import payment_request_id

        return payment_request_id(ctx)
    if provider == "smaregi":
        from paygate_smaregi._provider import terminal_tran_id

        return terminal_tran_id(ctx)
    return ctx.provider_key("charge")


def verify(merchant: Merchant) -> None:
    """Compare the merchant's log and paygate's store with the sandbox ledger."""
    report = merchant.report
    by_key: dict[str, dict[str | None, list[Any]]] = defaultdict(lambda: defaultdict(list))
    by_id: dict[str, dict[str, Any]] = defaultdict(dict)
    for provider, entries in merchant.sandbox.ledger().items():
        for entry in entries:
            if entry.kind == LEDGER_KIND.get(provider):
                by_key[provider][entry.key].append(entry)
                by_id[provider][entry.id] = entry
    claimed: dict[str, set[str]] = defaultdict(set)
    for op in merchant.ops:
        if op.kind == "charge":
            _verify_charge(merchant, op, by_key, by_id, claimed)
    # Objects nobody asked for: a re-sent create the provider did not deduplicate.
    for provider, ids in by_id.items():
        for entry_id, entry in ids.items():
            if entry_id not in claimed[provider]:
                account = next(a for a, p in ACCOUNTS.items() if p == provider)
                merchant.fig(account).duplicates += 1
                report.problem(f"{provider}: ledger object {entry_id} ({entry.key}) unclaimed")
    _superseded(merchant)
    _history(merchant)


def _verify_charge(
    merchant: Merchant,
    op: Op,
    by_key: dict[str, dict[str | None, list[Any]]],
    by_id: dict[str, dict[str, Any]],
    claimed: dict[str, set[str]],
) -> None:
    report = merchant.report
    provider = ACCOUNTS[op.account]
    fig = merchant.fig(op.account)
    method = op.params["method"].type
    state = merchant.by_key.get(op.key)
    if provider == "pokepay" and method == "qr":
        # A Cashtray payment carries no request id: found by the transaction the scan made.
        txn = state.transaction_id if state is not None else None
        entries = [by_id[provider][txn]] if txn and txn in by_id[provider] else []
        if txn and not entries:
            fig.lost += 1
            report.problem(f"pokepay {op.key}: the customer paid, the ledger has nothing")
    else:
        entries = [
            entry
            for pkey in provider_keys(op.account, op.key)
            for entry in by_key[provider].get(pkey, [])
        ]
    claimed[provider].update(e.id for e in entries)
    if len(entries) > 1:
        fig.duplicates += len(entries) - 1
        report.problem(f"{op.account} {op.key}: {len(entries)} provider objects")
    if op.account == "fake_none" and op.outcome != "ok":
        return  # neither key nor lookup: counted as unresolvable, by design
    if op.outcome == "ok":
        # QR codes reach the ledger only once paid (fakepay files them at creation).
        expected = method != "qr" or provider == "fakepay" or (state and state.customer_paid)
        if expected and not entries:
            fig.lost += 1
            report.problem(f"{op.account} {op.key}: paygate has a charge, the ledger not")
        if entries:
            fig.paid += int(entries[0].status not in ("pending", "awaiting"))
            _check_refunds(merchant, op, state, entries[0])
    elif entries:
        error = op.error.code if op.error is not None else op.outcome
        if error == "payment_declined" and entries[0].status in ("failed", ""):
            return
        bug = None
        if op.error is not None and op.error.provider_code == "partner_request_already_done":
            bug = "B7"
        else:
            fig.lost += 1
        report.problem(
            f"{op.account} {op.key}: the merchant was told {error}, "
            f"the provider holds {entries[0].id} ({entries[0].status})",
            bug=bug,
        )


def _check_refunds(merchant: Merchant, op: Op, state: ChargeState | None, entry: Any) -> None:
    fig = merchant.fig(op.account)
    report = merchant.report
    fig.refunded += entry.refunded
    if entry.refunded > entry.amount:
        fig.over_refunded += 1
        report.problem(f"{op.account} {op.key}: refunded {entry.refunded} > {entry.amount}")
    if state is None or state.canceled:
        return
    record = merchant.gw.store.get_charge(state.charge.id)
    stored = record.amount_refunded if record is not None else None
    if state.refunded == entry.refunded == stored:
        return
    refunds = [o for o in merchant.ops if o.charge_key == op.key and o.kind != "charge"]
    text = (
        f"{op.account} {op.key}: refunded per merchant {state.refunded}, "
        f"ledger {entry.refunded}, paygate {stored}; " + ", ".join(_describe(o) for o in refunds)
    )
    bug = _refund_bug(merchant, op, state, entry.refunded, stored)
    if bug is None:
        fig.refund_mismatch += 1
    report.problem(text, bug=bug)


def _refund_bug(
    merchant: Merchant, op: Op, state: ChargeState, ledger: int, stored: int | None
) -> str | None:
    """Which known bug explains a refund mismatch, if one does exactly."""
    store = merchant.gw.store
    refunds = [o for o in merchant.ops if o.charge_key == op.key and o.kind == "refund"]
    if any(_b15(refund) for refund in refunds) and state.refunded < ledger:
        return "B15"
    if any(_b16(refund) for refund in refunds) and state.refunded < ledger:
        return "B16"
    for refund in refunds:
        record = store.get(f"{op.account}\x1frefund\x1f{refund.key}")
        if record is not None and record.state in ("unknown", "started"):
            bug = _stuck_bug(record, refund)
            if bug is not None:
                return bug
    provider = ACCOUNTS[op.account]
    if provider == "payjp" and state.refunded > ledger == stored:
        return "B6"
    if stored is not None and stored > ledger == state.refunded:
        return "B8"
    history = store.history(state.charge.id)
    if (
        stored is not None
        and stored < ledger == state.refunded
        and any(
            t.source == "webhook"
            and t.to_status is ChargeStatus.REFUNDED
            and t.amount_refunded < ledger
            for t in history
        )
    ):
        return "B3"
    return None


def _superseded(merchant: Merchant) -> None:
    """Unpaid QR codes replaced after a lost answer (never shown, so never payable)."""
    host = getattr(merchant.sandbox, "host", None)
    if host is None:
        return
    elepay = host.emulators.get("elepay")
    if elepay is not None:
        orders = Counter(code.order_no for code in elepay.codes.values())
        merchant.fig("elepay").superseded = sum(n - 1 for n in orders.values())
        paid = Counter(charge.order_no for charge in elepay.charges.values())
        for order, n in paid.items():
            if n > 1:
                merchant.fig("elepay").duplicates += n - 1
                merchant.report.problem(f"elepay order {order} paid {n} times")
    pokepay = host.emulators.get("pokepay")
    if pokepay is not None:
        shown = sum(
            1
            for op in merchant.ops
            if op.kind == "charge"
            and op.account == "pokepay"
            and op.outcome == "ok"
            and op.params["method"].type == "qr"
        )
        merchant.fig("pokepay").superseded = max(0, len(pokepay.cashtrays) - shown)


def _history(merchant: Merchant) -> None:
    """paygate's own history: a terminal status never moves, refunds never shrink."""
    store = merchant.gw.store
    for state in merchant.charges:
        history = store.history(state.charge.id)
        for before, after in itertools.pairwise(history):
            if before.to_status.is_terminal and after.to_status != before.to_status:
                merchant.fig(state.op.account).regressions += 1
                merchant.report.problem(
                    f"{state.charge.id}: {before.to_status} -> {after.to_status}"
                )
            if after.amount_refunded < before.amount_refunded:
                merchant.fig(state.op.account).regressions += 1
                merchant.report.problem(f"{state.charge.id}: refunded amount went down")


# ------------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    """Command line: run the chaos operations on an in-process sandbox, print figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--operations", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--fault-rate", type=float, default=ChaosSettings.fault_rate)
    parser.add_argument("--crash-rate", type=float, default=ChaosSettings.crash_rate)
    parser.add_argument("--no-webhooks", action="store_true")
    parser.add_argument("--json", type=Path, help="also write the figures as JSON here")
    args = parser.parse_args(argv)
    # The driver's retries are logged as warnings; thousands of them would bury the figures.
    logging.getLogger("stamina").setLevel(logging.ERROR)
    settings = ChaosSettings(
        operations=args.operations,
        seed=args.seed,
        fault_rate=args.fault_rate,
        crash_rate=args.crash_rate,
        webhooks=not args.no_webhooks,
    )
    from paygate.sandbox import running
    from paygate.sandbox._host import discover_emulators

    register_provider(FakeProvider)
    classes, _skipped = discover_emulators(None)
    with (
        running(emulators=[*classes.values(), FakeEmulator]) as sandbox,
        tempfile.TemporaryDirectory() as tmp,
    ):
        report = run_chaos(sandbox, settings, Path(tmp))
    print(report.text())
    if args.json is not None:
        args.json.write_text(json.dumps(_figures(report), indent=2, sort_keys=True))
    return 0 if report.ok else 1


def _figures(report: ChaosReport) -> dict[str, Any]:
    return {
        "settings": report.settings.__dict__,
        "faults": dict(report.faults),
        "storms": report.storms,
        "crashes": report.crashes,
        "restarts": report.restarts,
        "requests": report.requests,
        "duration_s": round(report.duration, 1),
        "accounts": {
            name: {k: (dict(v) if isinstance(v, Counter) else v) for k, v in f.__dict__.items()}
            for name, f in report.by_account.items()
        },
        "problems": report.problems,
        "unexpected": report.unexpected,
    }


if __name__ == "__main__":
    sys.exit(main())
