"""WeChat's security mode (安全模式) for pushes, as pure functions: the body's signature,
decryption of a push and encryption of our reply.

From WeChat's documentation for official accounts (消息加解密说明, 技术方案):

- The account's EncodingAESKey is 43 characters of base64; the AES key is those characters
  plus "=" decoded: 32 bytes (AES-256). The IV is the key's first 16 bytes. CBC mode, with
  PKCS#7 padding to a multiple of 32 bytes (not AES's 16: pad bytes of value 1..32).
- The plaintext is 16 random bytes, the XML's length as 4 bytes in network order, the XML
  (UTF-8), then the account's appid. The ciphertext travels in base64.
- A push in security mode comes with `encrypt_type=aes` and `msg_signature` in the query
  besides `signature`, `timestamp` and `nonce`; its body is `<xml><ToUserName>...
  <Encrypt>CIPHERTEXT</Encrypt></xml>`. `msg_signature` is the hex SHA-1 of the token,
  timestamp, nonce and CIPHERTEXT sorted as strings and joined: it covers the body, which
  plaintext mode's `signature` does not.
- The reply to an encrypted push is encrypted as well: `<xml><Encrypt>` `<MsgSignature>`
  `<TimeStamp>` `<Nonce></xml>`, its MsgSignature made the same way.

The signature is checked before anything is decrypted, so nobody learns from our answers
whether a ciphertext of their making decrypts (no padding oracle).

>>> key = aes_key("abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG")
>>> len(key), key[:4]
(32, b'i\\xb7\\x1dy')
>>> sealed = encrypt(key, b"<xml/>", "wx1", random16=bytes(16))
>>> decrypt(key, sealed, "wx1")
b'<xml/>'
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import struct
from typing import Final

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from sms.errors import BadPush

BLOCK: Final = 32  # WeChat pads to 32 bytes (its PKCS7Encoder's block_size), not AES's 16
KEY_CHARS: Final = 43


def aes_key(encoding_aes_key: str) -> bytes:
    """The 32-byte AES key of an EncodingAESKey (ValueError if it is not one)."""
    if len(encoding_aes_key) != KEY_CHARS:
        raise ValueError(f"an EncodingAESKey has {KEY_CHARS} characters, not {len(encoding_aes_key)}")
    try:
        key = base64.b64decode(encoding_aes_key + "=", validate=True)
    except binascii.Error as exc:
        raise ValueError(f"an EncodingAESKey is base64: {exc}") from None
    if len(key) != 32:
        raise ValueError("an EncodingAESKey decodes to 32 bytes")
    return key


def msg_signature(token: str, timestamp: str, nonce: str, ciphertext: str) -> str:
    return hashlib.sha1("".join(sorted((token, timestamp, nonce, ciphertext))).encode()).hexdigest()


def body_signed(token: str, timestamp: str, nonce: str, ciphertext: str, given: str) -> bool:
    """Whether `given` is WeChat's msg_signature of this ciphertext under our token."""
    if not (token and timestamp and nonce and ciphertext and given):
        return False
    return hmac.compare_digest(msg_signature(token, timestamp, nonce, ciphertext), given.lower())


def _cipher(key: bytes) -> Cipher[modes.CBC]:
    return Cipher(algorithms.AES(key), modes.CBC(key[:16]))


def encrypt(key: bytes, xml: bytes, app_id: str, random16: bytes | None = None) -> str:
    """The base64 ciphertext of `xml` for account `app_id`."""
    plain = (random16 or secrets.token_bytes(16)) + struct.pack("!I", len(xml)) + xml + app_id.encode()
    pad = BLOCK - len(plain) % BLOCK
    encryptor = _cipher(key).encryptor()
    return base64.b64encode(encryptor.update(plain + bytes([pad]) * pad) + encryptor.finalize()).decode()


def decrypt(key: bytes, ciphertext: str, app_id: str) -> bytes:
    """The XML inside a push's ciphertext; BadPush if it is not one for account `app_id`."""
    try:
        raw = base64.b64decode(ciphertext, validate=True)
    except binascii.Error:
        raise BadPush("<Encrypt> is not base64") from None
    if not raw or len(raw) % 16:
        raise BadPush("<Encrypt> is not whole AES blocks")
    decryptor = _cipher(key).decryptor()
    plain = decryptor.update(raw) + decryptor.finalize()
    pad = plain[-1]
    if not 1 <= pad <= BLOCK or plain[-pad:] != bytes([pad]) * pad or len(plain) - pad < 20:
        raise BadPush("<Encrypt> does not decrypt under wechat.encoding_aes_key")
    plain = plain[:-pad]
    (length,) = struct.unpack("!I", plain[16:20])
    xml, tail = plain[20 : 20 + length], plain[20 + length :]
    if len(xml) != length or not hmac.compare_digest(tail, app_id.encode()):
        raise BadPush("the encrypted push is not for this account (its appid differs)")
    return xml


def sealed_reply(token: str, key: bytes, app_id: str, reply: str, timestamp: int, nonce: int) -> str:
    """Our reply to an encrypted push, encrypted and signed as WeChat documents it, with a
    timestamp and nonce of our own (numbers: nothing to escape)."""
    ciphertext = encrypt(key, reply.encode(), app_id)
    signature = msg_signature(token, str(timestamp), str(nonce), ciphertext)
    return (
        f"<xml><Encrypt><![CDATA[{ciphertext}]]></Encrypt><MsgSignature><![CDATA[{signature}]]></MsgSignature>"
        f"<TimeStamp>{timestamp}</TimeStamp><Nonce><![CDATA[{nonce}]]></Nonce></xml>"
    )
