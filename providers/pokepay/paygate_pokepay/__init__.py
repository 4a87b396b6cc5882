"""paygate adapter for the Pokepay Partner API: wallet payments and Cashtray QR codes.

>>> from paygate_pokepay import PokepayProvider
>>> PokepayProvider.name
'pokepay'
"""

from ._crypto import CryptoError, EnvelopeCipher, b64url_decode, b64url_encode
from ._emulator import SANDBOX, PokepayEmulator
from ._provider import PokepayProvider
from ._settings import PokepaySettings

__all__ = [
    "SANDBOX",
    "CryptoError",
    "EnvelopeCipher",
    "PokepayEmulator",
    "PokepayProvider",
    "PokepaySettings",
    "b64url_decode",
    "b64url_encode",
]
