"""paygate adapter and sandbox emulator for elepay EasyQR.

>>> from paygate_elepay import ElepayProvider
>>> ElepayProvider.name
'elepay'
"""

from ._provider import ElepayProvider
from ._settings import ElepaySettings

__all__ = ["ElepayProvider", "ElepaySettings"]
