"""Query PINs are stored only as salted, peppered scrypt hashes.

A 6-digit PIN has a million values, so no hash alone protects it against someone who
holds the table; the pepper (a server secret, not in the database) and the lockout after
repeated failures do. scrypt's cost is kept moderate so that verification does not stall
a busy FastAGI server.
"""

from __future__ import annotations

import hashlib
import hmac
import os

SCRYPT_N = 2**11
SCRYPT_R = 8
SALT_BYTES = 16


def _derive(pin: str, salt: bytes, pepper: str) -> bytes:
    keyed = hmac.new(pepper.encode(), pin.encode(), hashlib.sha256).digest()
    return hashlib.scrypt(keyed, salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=1, dklen=32)


def hash_pin(pin: str, pepper: str, salt: bytes | None = None) -> str:
    """`scrypt$<salt hex>$<hash hex>`."""
    salt = os.urandom(SALT_BYTES) if salt is None else salt
    return f"scrypt${salt.hex()}${_derive(pin, salt, pepper).hex()}"


def verify_pin(pin: str, stored: str, pepper: str) -> bool:
    scheme, salt_hex, digest_hex = stored.split("$")
    if scheme != "scrypt":
        raise ValueError(f"unknown PIN hash scheme {scheme!r}")
    return hmac.compare_digest(_derive(pin, bytes.fromhex(salt_hex), pepper), bytes.fromhex(digest_hex))
