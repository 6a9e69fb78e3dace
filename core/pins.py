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

# scrypt with N=2^10, r=8 (1 MiB, about 2 ms here): the cost parameters are stored in each
# hash, so raising them later only affects new hashes.
SCRYPT_N = 2**10
SCRYPT_R = 8
SALT_BYTES = 16


def _derive(pin: str, salt: bytes, pepper: str, n: int, r: int) -> bytes:
    keyed = hmac.new(pepper.encode(), pin.encode(), hashlib.sha256).digest()
    return hashlib.scrypt(keyed, salt=salt, n=n, r=r, p=1, dklen=32, maxmem=256 * n * r)


def hash_pin(pin: str, pepper: str, salt: bytes | None = None) -> str:
    """`scrypt$<N>$<r>$<salt hex>$<hash hex>`."""
    salt = os.urandom(SALT_BYTES) if salt is None else salt
    digest = _derive(pin, salt, pepper, SCRYPT_N, SCRYPT_R)
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${salt.hex()}${digest.hex()}"


def verify_pin(pin: str, stored: str, pepper: str) -> bool:
    scheme, n, r, salt_hex, digest_hex = stored.split("$")
    if scheme != "scrypt":
        raise ValueError(f"unknown PIN hash scheme {scheme!r}")
    derived = _derive(pin, bytes.fromhex(salt_hex), pepper, int(n), int(r))
    return hmac.compare_digest(derived, bytes.fromhex(digest_hex))
