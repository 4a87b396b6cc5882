"""paygate adapter for PAY.JP (API v1): card charges, and payouts through Term /
Statement / Balance.

>>> from paygate_payjp import PayjpProvider, PayjpSettings
>>> PayjpProvider.name
'payjp'
"""

from ._provider import KEY_WINDOW, PayjpProvider
from ._settings import PayjpSettings
from ._wire import Balance, Statement, StatementItem, StatementUrl, Term

__all__ = [
    "KEY_WINDOW",
    "Balance",
    "PayjpProvider",
    "PayjpSettings",
    "Statement",
    "StatementItem",
    "StatementUrl",
    "Term",
]


def __getattr__(name: str) -> object:
    # The emulator pulls in Starlette; load it only when asked for.
    if name == "PayjpEmulator":
        from ._emulator import PayjpEmulator

        return PayjpEmulator
    raise AttributeError(name)
