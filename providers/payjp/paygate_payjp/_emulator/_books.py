"""The emulator's payout books: Terms, Statements and Balances on the sandbox clock.

What the emulator assumes (PAY.JP's guides describe the rules, not every number):

* Term cycle: calendar months in Japan time by default (``[1st 00:00 JST, next 1st
  00:00 JST)``), or ``cycle_days`` days when configured. A changed cycle applies from
  the next Term, as PAY.JP does for dashboard changes.
* Closing run at a Term's ``end_at``: the Term is closed; for every owner (the merchant,
  each tenant) with captures or refunds fixed in it, a ``sales`` Statement aggregates
  them (``gross_sales``, ``fee``, ``platform_fee``, ``gross_refund``,
  ``refund_fee_offset``, ``refund_platform_fee_offset``) and attaches to that owner's
  open ``collecting`` Balance (created when there is none). A tenant's platform fee is
  credited to the merchant (platformer) as a positive ``platform_fee`` line.
* Judgement of every open ``collecting`` Balance at a closing run: ``net >= 10,000``
  moves it to ``transfer``: a ``transfer_fee`` Statement (-250 JPY) is added, and
  ``due_date`` is the last day of the month after the closing (or ``payout_days`` after
  it). ``net < 0`` moves it to ``claim`` (the merchant owes PAY.JP) with a payment
  deadline computed the same way. Otherwise the payout is deferred.
* Deferral ends one year after the ``end_at`` of the Term of the newest ``sales``
  Statement in the Balance. Then ``0 <= net < 1,000`` is forfeited (a ``forfeit``
  Statement of ``-net``, the Balance becomes ``transfer``, ``closed`` with
  ``closed_date``; a tenant's forfeit is reallocated to the merchant), ``net >= 1,000``
  is paid out as above, and a negative net becomes a claim.
* A ``transfer`` Balance is paid (``closed``) on its ``due_date``; a ``claim`` stays
  open until the ``settle_claim`` control action.
* Fees: 3.00 % of each capture, rounded down, returned pro rata on refunds.
* Events: ``term.created``, ``term.closed``, ``statement.created``,
  ``balance.created``, ``balance.fixed`` (moved to ``transfer`` or ``claim``: the amount
  is fixed) and ``balance.closed``.
"""

from __future__ import annotations

import calendar
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from .._wire import JST

__all__ = ["BookConfig", "Books"]

SUBJECT_NAMES = {
    "gross_sales": "売上",
    "fee": "決済手数料",
    "platform_fee": "プラットフォーム利用料",
    "gross_refund": "返金",
    "refund_fee_offset": "返金による決済手数料の返還",
    "refund_platform_fee_offset": "返金によるプラットフォーム利用料の返還",
    "transfer_fee": "振込手数料",
    "forfeit": "失効",
    "reallocation": "失効残高の振替",
}
_SUBJECT_ORDER = list(SUBJECT_NAMES)

# Test bank account shown on transfer balances (not a real account).
TEST_BANK = {
    "bank_code": "0001",
    "bank_branch_code": "001",
    "bank_account_type": "普通",
    "bank_account_number": "0000000",
    "bank_account_holder_name": "ペイゲート テスト",
}

Owner = str | None  # None: the merchant itself; otherwise a tenant id
Emit = Callable[[str, dict[str, Any], int], None]


@dataclass
class BookConfig:
    """Tunable rules of the emulated payout cycle (see the module note)."""

    cycle_days: int | None = None
    payout_days: int | None = None
    fee_rate: str = "3.00"
    transfer_fee: int = 250
    minimum_payout: int = 10_000
    forfeit_threshold: int = 1_000

    @property
    def fee_basis_points(self) -> int:
        """``fee_rate`` (a percentage string such as ``"3.00"``) in basis points."""
        whole, _, frac = self.fee_rate.partition(".")
        return int(whole) * 100 + int((frac + "00")[:2])


@dataclass
class TermRec:
    id: str
    start_at: int
    end_at: int
    closed: bool = False
    charge_count: int = 0
    refund_count: int = 0
    dispute_count: int = 0

    def wire(self) -> dict[str, Any]:
        return {
            "object": "term",
            "id": self.id,
            "livemode": False,
            "start_at": self.start_at,
            "end_at": self.end_at,
            "closed": self.closed,
            "charge_count": self.charge_count,
            "refund_count": self.refund_count,
            "dispute_count": self.dispute_count,
        }


@dataclass
class StatementRec:
    id: str
    type: str
    created: int
    owner: Owner
    term_id: str | None
    balance_id: str | None
    items: list[dict[str, Any]]
    title: str | None = None
    updated: int | None = None

    @property
    def net(self) -> int:
        return sum(int(item["amount"]) for item in self.items)


@dataclass
class BalanceRec:
    id: str
    created: int
    owner: Owner
    state: str = "collecting"
    closed: bool = False
    closed_date: int | None = None
    due_date: int | None = None
    statement_ids: list[str] = field(default_factory=list)
    bank_status: str | None = None
    deferral_until: int | None = None


class Books:
    """Terms, Statements and Balances of one emulated PAY.JP account."""

    def __init__(
        self,
        start: int,
        *,
        new_id: Callable[[str], str],
        emit: Emit,
        config: BookConfig | None = None,
    ) -> None:
        self.config = config or BookConfig()
        self._next_config: BookConfig | None = None
        self._new_id = new_id
        self._emit = emit
        self.terms: list[TermRec] = []
        self.statements: dict[str, StatementRec] = {}
        self.balances: dict[str, BalanceRec] = {}
        self.pending: dict[Owner, list[tuple[str, int]]] = {}
        self.terms.append(self._new_term(self._cycle_start(start)))

    # -- calendar ------------------------------------------------------------------

    def _cycle_start(self, ts: int) -> int:
        if self.config.cycle_days:
            return ts
        day = datetime.fromtimestamp(ts, JST)
        return int(datetime(day.year, day.month, 1, tzinfo=JST).timestamp())

    def _term_end(self, start: int) -> int:
        if self.config.cycle_days:
            return start + self.config.cycle_days * 86_400
        day = datetime.fromtimestamp(start, JST)
        year, month = (day.year + 1, 1) if day.month == 12 else (day.year, day.month + 1)
        return int(datetime(year, month, 1, tzinfo=JST).timestamp())

    def _due(self, closed_at: int) -> int:
        """Payout date (or claim deadline) of a Balance fixed at ``closed_at``."""
        if self.config.payout_days:
            day = datetime.fromtimestamp(closed_at, JST).date()
            return _jst_midnight(day + timedelta(days=self.config.payout_days))
        closing_day = datetime.fromtimestamp(closed_at - 1, JST).date()
        year, month = closing_day.year, closing_day.month + 1
        if month == 13:
            year, month = year + 1, 1
        return _jst_midnight(date(year, month, calendar.monthrange(year, month)[1]))

    @staticmethod
    def _one_year_after(ts: int) -> int:
        moment = datetime.fromtimestamp(ts, JST)
        try:
            later = moment.replace(year=moment.year + 1)
        except ValueError:  # 29 February
            later = moment.replace(year=moment.year + 1, day=28)
        return int(later.timestamp())

    # -- objects ---------------------------------------------------------------------

    def _new_term(self, start: int) -> TermRec:
        return TermRec(id=self._new_id("tm"), start_at=start, end_at=self._term_end(start))

    @property
    def current_term(self) -> TermRec:
        """The open Term (there is always exactly one)."""
        return self.terms[-1]

    def term(self, term_id: str) -> TermRec | None:
        return next((t for t in self.terms if t.id == term_id), None)

    def statement_wire(self, st: StatementRec) -> dict[str, Any]:
        term = self.term(st.term_id) if st.term_id else None
        return {
            "object": "statement",
            "id": st.id,
            "livemode": False,
            "created": st.created,
            "updated": st.updated or st.created,
            "title": st.title,
            "type": st.type,
            "net": st.net,
            "tenant_id": st.owner,
            "term": term.wire() if term else None,
            "balance_id": st.balance_id,
            "items": [dict(item) for item in st.items],
        }

    def net(self, balance: BalanceRec) -> int:
        return sum(self.statements[sid].net for sid in balance.statement_ids)

    def balance_wire(self, balance: BalanceRec) -> dict[str, Any]:
        bank = None
        if balance.bank_status is not None:
            bank = {**TEST_BANK, "bank_account_status": balance.bank_status}
        return {
            "object": "balance",
            "id": balance.id,
            "livemode": False,
            "created": balance.created,
            "tenant_id": balance.owner,
            "net": self.net(balance),
            "statements": [self.statement_wire(self.statements[s]) for s in balance.statement_ids],
            "state": balance.state,
            "closed": balance.closed,
            "closed_date": balance.closed_date,
            "due_date": balance.due_date,
            "bank_info": bank,
        }

    def _collecting(self, owner: Owner, at: int) -> BalanceRec:
        for balance in self.balances.values():
            if balance.owner == owner and balance.state == "collecting" and not balance.closed:
                return balance
        balance = BalanceRec(id=self._new_id("ba"), created=at, owner=owner)
        self.balances[balance.id] = balance
        self._emit("balance.created", self.balance_wire(balance), at)
        return balance

    def _add_statement(
        self,
        kind: str,
        owner: Owner,
        lines: list[tuple[str, int]],
        at: int,
        *,
        term: TermRec | None,
        balance: BalanceRec | None = None,
    ) -> StatementRec:
        totals: dict[str, int] = {}
        for subject, amount in lines:
            totals[subject] = totals.get(subject, 0) + amount
        items = [
            {
                "subject": subject,
                "name": SUBJECT_NAMES.get(subject, subject),
                "amount": totals[subject],
                "tax_rate": "0.00",
            }
            for subject in sorted(totals, key=_SUBJECT_ORDER.index)
            if totals[subject] != 0 or subject == "forfeit"
        ]
        target = balance or self._collecting(owner, at)
        st = StatementRec(
            id=self._new_id("st"),
            type=kind,
            created=at,
            owner=owner,
            term_id=term.id if term else None,
            balance_id=target.id,
            items=items,
        )
        self.statements[st.id] = st
        target.statement_ids.append(st.id)
        if kind == "sales" and term is not None:
            until = self._one_year_after(term.end_at)
            target.deferral_until = max(target.deferral_until or 0, until)
        self._emit("statement.created", self.statement_wire(st), at)
        return st

    # -- recording -------------------------------------------------------------------

    def fee(self, amount: int) -> int:
        """PAY.JP's fee on ``amount`` (rounded down)."""
        return amount * self.config.fee_basis_points // 10_000

    def record_capture(self, owner: Owner, amount: int, fee: int, platform_fee: int) -> str:
        """A capture fixed now: it counts in the current Term. Returns the Term id."""
        term = self.current_term
        term.charge_count += 1
        lines = self.pending.setdefault(owner, [])
        lines += [("gross_sales", amount), ("fee", -fee)]
        if owner is not None and platform_fee:
            lines.append(("platform_fee", -platform_fee))
            self.pending.setdefault(None, []).append(("platform_fee", platform_fee))
        return term.id

    def record_refund(self, owner: Owner, amount: int, fee_back: int, platform_back: int) -> None:
        """A refund fixed now (fees come back pro rata)."""
        self.current_term.refund_count += 1
        lines = self.pending.setdefault(owner, [])
        lines += [("gross_refund", -amount), ("refund_fee_offset", fee_back)]
        if owner is not None and platform_back:
            lines.append(("refund_platform_fee_offset", platform_back))
            self.pending.setdefault(None, []).append(("refund_platform_fee_offset", -platform_back))

    def configure(self, config: BookConfig) -> None:
        """New rules, applied from the next Term."""
        self._next_config = config

    # -- time ------------------------------------------------------------------------

    def run_until(self, now: int) -> None:
        """Process every closing, deferral end and payout due up to ``now``, in order."""
        for _ in range(100_000):
            due: list[tuple[int, int, str, str]] = []
            term = self.current_term
            if term.end_at <= now:
                due.append((term.end_at, 0, "close", term.id))
            for balance in self.balances.values():
                if balance.closed:
                    continue
                if (
                    balance.state == "collecting"
                    and balance.deferral_until is not None
                    and balance.deferral_until <= now
                ):
                    due.append((balance.deferral_until, 1, "expire", balance.id))
                if (
                    balance.state == "transfer"
                    and balance.due_date is not None
                    and balance.due_date <= now
                ):
                    due.append((balance.due_date, 2, "pay", balance.id))
            if not due:
                return
            at, _, kind, ref = min(due)
            if kind == "close":
                self._close(at)
            elif kind == "expire":
                self._end_deferral(self.balances[ref], at)
            else:
                self.pay(ref, at)
        raise RuntimeError("the payout books did not settle")

    def close_term(self, at: int) -> tuple[TermRec, list[StatementRec]]:
        """Force a closing run now: the current Term ends at ``at``."""
        term = self.current_term
        term.end_at = max(at, term.start_at)
        return term, self._close(term.end_at)

    def _close(self, at: int) -> list[StatementRec]:
        term = self.current_term
        term.closed = True
        self._emit("term.closed", term.wire(), at)
        if self._next_config is not None:
            self.config, self._next_config = self._next_config, None
        created: list[StatementRec] = []
        pending, self.pending = self.pending, {}
        for owner in sorted(pending, key=lambda o: o or ""):
            if pending[owner]:
                created.append(self._add_statement("sales", owner, pending[owner], at, term=term))
        nxt = TermRec(
            id=self._new_id("tm"), start_at=term.end_at, end_at=self._term_end(term.end_at)
        )
        self.terms.append(nxt)
        self._emit("term.created", nxt.wire(), at)
        for balance in list(self.balances.values()):
            if balance.closed or balance.state != "collecting":
                continue
            net = self.net(balance)
            if net >= self.config.minimum_payout:
                self._to_transfer(balance, at, term)
            elif net < 0:
                self._to_claim(balance, at)
        return created

    def _to_transfer(self, balance: BalanceRec, at: int, term: TermRec | None) -> None:
        self._add_statement(
            "transfer_fee",
            balance.owner,
            [("transfer_fee", -self.config.transfer_fee)],
            at,
            term=term,
            balance=balance,
        )
        balance.state = "transfer"
        balance.due_date = self._due(at)
        balance.bank_status = "pending"
        balance.deferral_until = None
        self._emit("balance.fixed", self.balance_wire(balance), at)

    def _to_claim(self, balance: BalanceRec, at: int) -> None:
        balance.state = "claim"
        balance.due_date = self._due(at)
        balance.deferral_until = None
        self._emit("balance.fixed", self.balance_wire(balance), at)

    def _end_deferral(self, balance: BalanceRec, at: int) -> None:
        net = self.net(balance)
        balance.deferral_until = None
        if net < 0:
            self._to_claim(balance, at)
        elif net >= self.config.forfeit_threshold:
            self._to_transfer(balance, at, None)
        else:
            self._add_statement(
                "forfeit", balance.owner, [("forfeit", -net)], at, term=None, balance=balance
            )
            if balance.owner is not None and net > 0:
                self._add_statement("misc", None, [("reallocation", net)], at, term=None)
            balance.state = "transfer"
            balance.closed = True
            balance.closed_date = at
            self._emit("balance.fixed", self.balance_wire(balance), at)
            self._emit("balance.closed", self.balance_wire(balance), at)

    def pay(self, balance_id: str, at: int) -> BalanceRec:
        """PAY.JP pays a ``transfer`` Balance out."""
        balance = self.balances[balance_id]
        if balance.state != "transfer" or balance.closed:
            raise ValueError("only an open transfer balance can be paid out")
        balance.closed = True
        balance.closed_date = at
        balance.bank_status = "success"
        self._emit("balance.closed", self.balance_wire(balance), at)
        return balance

    def settle_claim(self, balance_id: str, at: int) -> BalanceRec:
        """The merchant paid what a ``claim`` Balance billed."""
        balance = self.balances[balance_id]
        if balance.state != "claim" or balance.closed:
            raise ValueError("only an open claim balance can be settled")
        balance.closed = True
        balance.closed_date = at
        self._emit("balance.closed", self.balance_wire(balance), at)
        return balance


def _jst_midnight(day: date) -> int:
    return int(datetime(day.year, day.month, day.day, tzinfo=JST).timestamp())


def utc(ts: int) -> datetime:
    """A Unix timestamp as an aware UTC datetime (for messages and tests)."""
    return datetime.fromtimestamp(ts, UTC)
