"""The Pokepay Partner API envelope cipher.

Every request's ``data`` and every response's ``response_data`` is the base64url text
of AES-256-CBC ciphertext (PKCS#7 padding) whose first plaintext block is thrown away.
The IV is never transmitted: in CBC only the first plaintext block depends on the IV,
so the sender prepends 16 throw-away bytes, encrypts under any IV, and the receiver
decrypts under any IV and drops the first 16 bytes. The key is the base64url decoding
of the account's ``CLIENT_SECRET`` (32 bytes).

The official SDKs differ in the throw-away bytes (ASCII ``"0"`` x16, ``0x00`` x16, or
16 copies of the pad byte) and in base64url padding (Java keeps ``=``, the others strip
it); this module reads all of them and writes the unpadded ``"0"`` x16 form unless told
otherwise.

>>> key = bytes(range(32))
>>> cipher = EnvelopeCipher(key, iv_source=lambda: bytes(16))
>>> cipher.decrypt(cipher.encrypt(b'{"a":1}'))
b'{"a":1}'
"""

from __future__ import annotations

import base64
import binascii
import os
import re
from collections.abc import Callable

from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

__all__ = [
    "BLOCK",
    "CryptoError",
    "EnvelopeCipher",
    "b64url_decode",
    "b64url_encode",
    "decode_client_secret",
    "random_iv",
]

BLOCK = 16
KEY_BYTES = 32
ZERO_PREFIX = b"0" * BLOCK

_B64URL = re.compile(r"[A-Za-z0-9_-]*={0,2}")


def random_iv() -> bytes:
    """16 bytes from the operating system's CSPRNG: a fresh IV."""
    return os.urandom(BLOCK)


class CryptoError(ValueError):
    """The text is not valid base64url, or does not decrypt to a well-padded envelope."""


def b64url_encode(data: bytes, *, pad: bool = False) -> str:
    """base64url of ``data``, without ``=`` padding unless ``pad``.

    >>> b64url_encode(b"\\xfb\\xff")
    '-_8'
    >>> b64url_encode(b"\\xfb\\xff", pad=True)
    '-_8='
    """
    text = base64.urlsafe_b64encode(data).decode("ascii")
    return text if pad else text.rstrip("=")


def b64url_decode(text: str) -> bytes:
    """Decode base64url with or without ``=`` padding; anything else is a `CryptoError`.

    >>> b64url_decode("-_8"), b64url_decode("-_8=")
    (b'\\xfb\\xff', b'\\xfb\\xff')
    """
    if not _B64URL.fullmatch(text):
        raise CryptoError("not base64url text")
    bare = text.rstrip("=")
    if len(bare) % 4 == 1:
        raise CryptoError("truncated base64url text")
    padded = bare + "=" * (-len(bare) % 4)
    if text not in (bare, padded):
        raise CryptoError("wrong base64url padding")
    try:
        return base64.urlsafe_b64decode(padded)
    except (binascii.Error, ValueError) as exc:  # pragma: no cover - the regex guards this
        raise CryptoError("not base64url text") from exc


def decode_client_secret(secret: str) -> bytes:
    """The AES-256 key behind a ``CLIENT_SECRET`` (43 base64url characters).

    >>> len(decode_client_secret("A" * 43))
    32
    """
    key = b64url_decode(secret.strip())
    if len(key) != KEY_BYTES:
        raise CryptoError(f"the client secret must decode to {KEY_BYTES} bytes")
    return key


class EnvelopeCipher:
    """Encrypts and decrypts Partner API envelopes under one client secret.

    ``iv_source`` returns 16 bytes per encryption (the OS CSPRNG by default); inject a
    fixed source to make ciphertext reproducible in tests. ``prefix`` is the throw-away
    block written on encryption; decryption ignores whatever the sender put there.

    >>> cipher = EnvelopeCipher.from_secret("A" * 43)
    >>> cipher.decrypt(cipher.encrypt(b"{}", pad=True))
    b'{}'
    """

    def __init__(
        self,
        key: bytes,
        *,
        iv_source: Callable[[], bytes] = random_iv,
        prefix: bytes = ZERO_PREFIX,
    ) -> None:
        if len(key) != KEY_BYTES:
            raise CryptoError(f"the key must be {KEY_BYTES} bytes")
        if len(prefix) != BLOCK:
            raise CryptoError(f"the throw-away prefix must be {BLOCK} bytes")
        self._key = key
        self._iv_source = iv_source
        self._prefix = prefix

    @classmethod
    def from_secret(
        cls, secret: str, *, iv_source: Callable[[], bytes] = random_iv
    ) -> EnvelopeCipher:
        """A cipher keyed by a ``CLIENT_SECRET``."""
        return cls(decode_client_secret(secret), iv_source=iv_source)

    def __repr__(self) -> str:
        return "EnvelopeCipher(key=[redacted])"

    def encrypt(self, plaintext: bytes, *, pad: bool = False, prefix: bytes | None = None) -> str:
        """base64url ciphertext of ``plaintext`` behind a throw-away block.

        ``pad`` keeps base64 ``=`` padding (the Java SDK's form); ``prefix`` overrides
        the throw-away block for this call.
        """
        head = self._prefix if prefix is None else prefix
        if len(head) != BLOCK:
            raise CryptoError(f"the throw-away prefix must be {BLOCK} bytes")
        iv = self._iv_source()
        if len(iv) != BLOCK:
            raise CryptoError(f"the IV source must return {BLOCK} bytes")
        padder = padding.PKCS7(BLOCK * 8).padder()
        padded = padder.update(head + plaintext) + padder.finalize()
        encryptor = Cipher(algorithms.AES(self._key), modes.CBC(iv)).encryptor()
        ciphertext = encryptor.update(padded) + encryptor.finalize()
        return b64url_encode(ciphertext, pad=pad)

    def decrypt(self, text: str) -> bytes:
        """The plaintext behind ``text``, the throw-away block removed.

        Raises `CryptoError` for bad base64url, a length that is not whole blocks,
        or bad PKCS#7 padding (usually: a different key).
        """
        data = b64url_decode(text)
        if len(data) < 2 * BLOCK or len(data) % BLOCK:
            raise CryptoError("ciphertext is not a whole number of blocks")
        # Any IV works: only the throw-away block depends on it.
        decryptor = Cipher(algorithms.AES(self._key), modes.CBC(bytes(BLOCK))).decryptor()
        padded = decryptor.update(data) + decryptor.finalize()
        unpadder = padding.PKCS7(BLOCK * 8).unpadder()
        try:
            plain = unpadder.update(padded) + unpadder.finalize()
        except ValueError as exc:
            raise CryptoError("bad padding (wrong key or damaged ciphertext)") from exc
        if len(plain) < BLOCK:
            raise CryptoError("ciphertext shorter than the throw-away block")
        return plain[BLOCK:]
