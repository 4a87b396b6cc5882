"""What the Smaregi emulator stores: apps, tokens, contracts with their stores,
terminals, app payment methods and transactions; the seed data; the readings in force;
and the changes a register makes to a sale (取消, 返品取消)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar

from paygate.sandbox import Emulator, EmulatorContext, LedgerEntry, account_table

from .._wire import format_jst

__all__ = ["READ", "READINGS", "READING_CHOICES", "WRITE", "App", "Contract", "SmaregiState"]

READ = "pos.transactions:read"
WRITE = "pos.transactions:write"

#: The readings the emulator plays where no public source settles a fact (defaults).
READINGS: dict[str, Any] = {
    "payment_method_name": "required",
    "sum_division": "enforced",
    "transaction_uuid_filter": "exact",
    "cancel_time": "optional",
    "token_lifetime": 3600,
    "token_calls_count": False,
}
READING_CHOICES: dict[str, tuple[str, ...]] = {
    "payment_method_name": ("required", "optional"),
    "sum_division": ("enforced", "lenient"),
    "transaction_uuid_filter": ("exact", "ignored", "refused"),
    "cancel_time": ("optional", "required"),
}

#: Amounts that change sign on the offsetting record of a 返品取消.
_SIGNED = ("subtotal", "total", "deposit", "depositCash", "depositCredit", "change")


@dataclass
class App:
    """An installed app: its client credentials, scopes and contracts."""

    client_id: str
    client_secret: str
    app_id: str
    app_name: str
    scopes: frozenset[str]
    contracts: frozenset[str]


@dataclass
class Token:
    """An issued access token."""

    client_id: str
    contract_id: str
    scopes: frozenset[str]
    expires_at: datetime


@dataclass
class Stats:
    """Counters the ``stats`` control action answers."""

    token_requests: int = 0
    app_payment_method_posts: int = 0
    app_payment_methods_created: int = 0
    transactions_created: int = 0


@dataclass
class Contract:
    """One contract (a shop): stores, registers, app payment methods, transactions."""

    stores: dict[str, str]
    # store id -> the terminal ids the shop has (registers)
    terminals: dict[str, frozenset[str]] = field(default_factory=dict)
    # (client id) -> the app payment method object
    app_methods: dict[str, dict[str, str]] = field(default_factory=dict)
    transactions: dict[str, dict[str, Any]] = field(default_factory=dict)
    details: dict[str, list[dict[str, str]]] = field(default_factory=dict)


class SmaregiState(Emulator):
    """The emulator's tables, seed data and credentials (routes and control actions
    come from the classes that build on this one)."""

    name: ClassVar[str] = "smaregi"

    CLIENT_ID: ClassVar[str] = "pgsbx_smaregi_client"
    CLIENT_SECRET: ClassVar[str] = "pgsbx_smaregi_secret_7c1e94a2"  # noqa: S105 (public test value)
    APP_ID: ClassVar[str] = "9001"
    APP_NAME: ClassVar[str] = "paygate sandbox app"
    CONTRACT_ID: ClassVar[str] = "sb_pgsandbox"
    STORE_ID: ClassVar[str] = "1"
    TERMINAL_ID: ClassVar[str] = "1"
    SCOPES: ClassVar[tuple[str, ...]] = (READ, WRITE, "pos.products:read")

    def __init__(self, ctx: EmulatorContext) -> None:
        super().__init__(ctx)
        self.reset()

    def reset(self) -> None:
        """Forget everything; seed the test app, contract and stores."""
        self._apps: dict[str, App] = {
            self.CLIENT_ID: App(
                client_id=self.CLIENT_ID,
                client_secret=self.CLIENT_SECRET,
                app_id=self.APP_ID,
                app_name=self.APP_NAME,
                scopes=frozenset(self.SCOPES),
                contracts=frozenset({self.CONTRACT_ID}),
            )
        }
        self._contracts: dict[str, Contract] = {
            self.CONTRACT_ID: Contract(
                stores={"1": "paygate 本店", "2": "paygate 二号店"},
                terminals={"1": frozenset({"1", "2"}), "2": frozenset({"1"})},
            )
        }
        self._readings: dict[str, Any] = dict(READINGS)
        self._tokens: dict[str, Token] = {}
        self._stats = Stats()
        self._next_head_id = 1001
        self._next_payment_method_id = 101
        self._next_app_payment_method_id = 1
        self._limits: dict[str, int | None] = {"read": None, "write": None}
        # (seconds, how many more) for slow app payment method reads (``slow_reads``).
        self._slow_reads: tuple[float, int] = (0.0, 0)
        self._stale_reads = 0
        self._hits: dict[tuple[str, str, str, int], int] = {}

    def credentials(self) -> dict[str, Any]:
        """The fixed test credentials and seed ids."""
        return {
            "client_id": self.CLIENT_ID,
            "client_secret": self.CLIENT_SECRET,
            "contract_id": self.CONTRACT_ID,
            "app_name": self.APP_NAME,
            "scopes": list(self.SCOPES),
            "store_id": self.STORE_ID,
            "terminal_id": self.TERMINAL_ID,
            "base_url": f"{self.base_url}/api",
            "id_base_url": f"{self.base_url}/id",
        }

    def account_settings(self) -> dict[str, Any]:
        """A paygate account pointing at this emulator."""
        return account_table(
            self,
            "client_id",
            "client_secret",
            "contract_id",
            "base_url",
            "id_base_url",
            "store_id",
            "terminal_id",
            # The app names its payment method after itself (forum 539, staff).
            payment_method_name=self.APP_NAME,
        )

    def ledger(self) -> list[LedgerEntry]:
        """Every registered sale, keyed by its terminalTranId."""
        entries = []
        for contract in self._contracts.values():
            for tran in contract.transactions.values():
                if tran["disposeDivision"] == "2":
                    continue  # the offsetting record of a 返品取消, not a sale
                canceled = tran["cancelDivision"] == "1" or tran["disposeDivision"] == "1"
                total = int(tran["total"])
                entries.append(
                    LedgerEntry(
                        kind="transaction",
                        id=tran["transactionHeadId"],
                        key=tran["terminalTranId"],
                        amount=total,
                        refunded=total if canceled else 0,
                        status="canceled" if canceled else "registered",
                    )
                )
        return entries

    # -- what a register does to a sale -------------------------------------------------

    def _void(
        self,
        head: dict[str, Any],
        slip: tuple[int, str] | None = None,
        when: str | None = None,
    ) -> None:
        """取消: ``cancelDivision`` 1 (``slip``: the cancel slip number of a payment)."""
        now = format_jst(self.now)
        head["cancelDivision"] = "1"
        head["cancelDateTime"] = when or now
        head["updDateTime"] = now
        if slip is not None:
            index, value = slip
            head["depositOthers"][index]["cancelSlipNumber"] = value
            head["cancelSlipNumber"] = value

    def _dispose(self, contract: Contract, head: dict[str, Any]) -> dict[str, Any]:
        """返品取消 at the register: mark the original, add the offsetting record."""
        now = format_jst(self.now)
        head_id = str(self._next_head_id)
        self._next_head_id += 1
        negative = {
            key: (str(-int(value)) if key in _SIGNED and value is not None else value)
            for key, value in head.items()
        }
        negative.update(
            {
                "transactionHeadId": head_id,
                "transactionDateTime": now,
                "terminalTranDateTime": now,
                "updDateTime": now,
                "disposeDivision": "2",
                "disposeServerTransactionHeadId": head["transactionHeadId"],
                "transactionUuid": f"{int(self.now.timestamp()) % 10**9:09d}"
                f"{int(head['terminalId']):04d}",
                "depositOthers": [
                    {
                        **item,
                        "transactionHeadId": head_id,
                        "depositOthers": str(-int(str(item["depositOthers"]))),
                    }
                    for item in head["depositOthers"]
                ],
            }
        )
        contract.transactions[head_id] = negative
        contract.details[head_id] = [
            {**d, "transactionHeadId": head_id, "quantity": str(-int(d["quantity"]))}
            for d in contract.details[head["transactionHeadId"]]
        ]
        head["disposeDivision"] = "1"
        head["disposeServerTransactionHeadId"] = head_id
        head["updDateTime"] = now
        return negative
