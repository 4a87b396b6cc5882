"""paygate adapter for UnivaPay: konbini payment slips, card charges, payouts.

>>> from paygate_univapay import UnivapayProvider
>>> UnivapayProvider.name
'univapay'
"""

from ._provider import UnivapayProvider
from ._settings import UnivapaySettings

__all__ = ["UnivapayProvider", "UnivapaySettings"]
