"""The envelope cipher: every SDK's variant reads and writes the same envelopes."""

from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from hypothesis import given
from hypothesis import strategies as st

from paygate_pokepay import CryptoError, EnvelopeCipher, b64url_decode, b64url_encode
from paygate_pokepay._crypto import decode_client_secret

KEY = bytes(range(32))
SECRET = base64.urlsafe_b64encode(KEY).decode().rstrip("=")
PLAIN = b'{"request_data":{"amount":1200},"timestamp":"2026-03-01T12:00:00+09:00"}'


def _pkcs7(data: bytes) -> bytes:
    padder = padding.PKCS7(128).padder()
    return padder.update(data) + padder.finalize()


def _unpad(data: bytes) -> bytes:
    unpadder = padding.PKCS7(128).unpadder()
    return unpadder.update(data) + unpadder.finalize()


def _pad_byte_prefix(plain: bytes) -> bytes:
    # PHP and Common Lisp fill the throw-away block with the pad-length byte.
    return bytes([16 - len(plain) % 16]) * 16


def sdk_encrypt(plain: bytes, prefix: bytes, iv: bytes, *, keep_padding: bool) -> str:
    """An SDK-style sender: prefix block + PKCS#7, AES-256-CBC, IV not sent."""
    enc = Cipher(algorithms.AES(KEY), modes.CBC(iv)).encryptor()
    ct = enc.update(_pkcs7(prefix + plain)) + enc.finalize()
    text = base64.urlsafe_b64encode(ct).decode()
    return text if keep_padding else text.rstrip("=")


def python_sdk_decrypt(text: str) -> bytes:
    """The Python SDK's reader: IV = first ciphertext block, decrypt the rest."""
    ct = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    dec = Cipher(algorithms.AES(KEY), modes.CBC(ct[:16])).decryptor()
    return _unpad(dec.update(ct[16:]) + dec.finalize())


def node_sdk_decrypt(text: str) -> bytes:
    """The Node/Ruby reader: decrypt all blocks under the first block as IV, drop 16 bytes."""
    ct = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    dec = Cipher(algorithms.AES(KEY), modes.CBC(ct[:16])).decryptor()
    return _unpad(dec.update(ct) + dec.finalize())[16:]


def java_sdk_decrypt(text: str) -> bytes:
    """The Java reader: zero IV, drop the first 16 bytes."""
    ct = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    dec = Cipher(algorithms.AES(KEY), modes.CBC(bytes(16))).decryptor()
    return _unpad(dec.update(ct) + dec.finalize())[16:]


PREFIXES = {
    "node-python-ruby": b"0" * 16,
    "java": b"\x00" * 16,
    "php-lisp": _pad_byte_prefix(PLAIN),
}


@pytest.mark.parametrize("prefix", PREFIXES.values(), ids=PREFIXES.keys())
@pytest.mark.parametrize("keep_padding", [False, True], ids=["unpadded", "padded"])
def test_reads_every_sdk_variant(prefix: bytes, keep_padding: bool) -> None:
    text = sdk_encrypt(PLAIN, prefix, iv=bytes(range(16, 32)), keep_padding=keep_padding)
    assert EnvelopeCipher(KEY).decrypt(text) == PLAIN


@pytest.mark.parametrize("pad", [False, True])
@pytest.mark.parametrize("reader", [python_sdk_decrypt, node_sdk_decrypt, java_sdk_decrypt])
def test_every_sdk_reads_what_we_write(pad: bool, reader: object) -> None:
    cipher = EnvelopeCipher(KEY, iv_source=lambda: b"\x42" * 16)
    text = cipher.encrypt(PLAIN, pad=pad)
    if pad:
        assert len(text) % 4 == 0
    else:
        assert "=" not in text
    assert reader(text) == PLAIN  # type: ignore[operator]


def test_prefix_override_and_default() -> None:
    cipher = EnvelopeCipher(KEY, iv_source=lambda: bytes(16))
    text = cipher.encrypt(b"{}")
    dec = Cipher(algorithms.AES(KEY), modes.CBC(bytes(16))).decryptor()
    raw = _unpad(dec.update(b64url_decode(text)) + dec.finalize())
    assert raw[:16] == b"0" * 16
    text = cipher.encrypt(b"{}", prefix=b"\x00" * 16)
    assert cipher.decrypt(text) == b"{}"


def test_same_iv_same_ciphertext_fresh_iv_differs() -> None:
    fixed = EnvelopeCipher(KEY, iv_source=lambda: bytes(16))
    assert fixed.encrypt(PLAIN) == fixed.encrypt(PLAIN)
    fresh = EnvelopeCipher(KEY)
    assert fresh.encrypt(PLAIN) != fresh.encrypt(PLAIN)


@pytest.mark.parametrize(
    "text",
    ["not base64!", "abcde", "ab=c", "abc==", "a", "+/+/", "AAAA" * 3],
    ids=["alphabet", "length-1-mod-4", "inner-pad", "over-pad", "one-char", "std-b64", "short"],
)
def test_bad_text_is_a_crypto_error(text: str) -> None:
    with pytest.raises(CryptoError):
        EnvelopeCipher(KEY).decrypt(text)


def test_wrong_key_is_a_crypto_error() -> None:
    text = EnvelopeCipher(KEY, iv_source=lambda: bytes(16)).encrypt(PLAIN)
    with pytest.raises(CryptoError):
        EnvelopeCipher(bytes(32)).decrypt(text)


def test_ragged_ciphertext_is_a_crypto_error() -> None:
    text = b64url_encode(b"x" * 40)
    with pytest.raises(CryptoError, match="whole number of blocks"):
        EnvelopeCipher(KEY).decrypt(text)


def test_client_secret() -> None:
    assert decode_client_secret(SECRET) == KEY
    assert decode_client_secret(SECRET + "=") == KEY
    with pytest.raises(CryptoError):
        decode_client_secret(SECRET[:-4])
    with pytest.raises(CryptoError):
        EnvelopeCipher(b"short")
    with pytest.raises(CryptoError):
        EnvelopeCipher(KEY, prefix=b"0")
    with pytest.raises(CryptoError):
        EnvelopeCipher(KEY, iv_source=lambda: b"0").encrypt(b"{}")


def test_repr_hides_the_key() -> None:
    assert "redacted" in repr(EnvelopeCipher(KEY))


@given(
    plain=st.binary(max_size=300),
    prefix=st.binary(min_size=16, max_size=16),
    iv=st.binary(min_size=16, max_size=16),
    key=st.binary(min_size=32, max_size=32),
    pad=st.booleans(),
)
def test_round_trip_property(plain: bytes, prefix: bytes, iv: bytes, key: bytes, pad: bool) -> None:
    cipher = EnvelopeCipher(key, iv_source=lambda: iv, prefix=prefix)
    assert cipher.decrypt(cipher.encrypt(plain, pad=pad)) == plain


@given(
    plain=st.binary(max_size=200),
    prefix=st.binary(min_size=16, max_size=16),
    iv=st.binary(min_size=16, max_size=16),
    keep=st.booleans(),
)
def test_sdk_senders_property(plain: bytes, prefix: bytes, iv: bytes, keep: bool) -> None:
    assert EnvelopeCipher(KEY).decrypt(sdk_encrypt(plain, prefix, iv, keep_padding=keep)) == plain


@given(data=st.binary(max_size=100), pad=st.booleans())
def test_b64url_property(data: bytes, pad: bool) -> None:
    text = b64url_encode(data, pad=pad)
    assert "+" not in text
    assert "/" not in text
    assert pad or "=" not in text
    assert b64url_decode(text) == data
