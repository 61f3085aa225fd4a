"""Session tokens at rest: AES-256-GCM when ``ENCRYPTION_KEY`` is set, plaintext (and said so) when it is not.

The AES key is derived from the setting with HKDF-SHA256, so any passphrase-like string works. Each ciphertext is
bound to its account id (GCM associated data): a value copied onto another account does not decrypt.
Stored form: ``v1.<base64url(nonce || ciphertext || tag)>``; plaintext is stored as is with ``enc=none``.
"""

from __future__ import annotations

import base64
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from core.errors import GatewayError

ENCRYPTED = "aesgcm"
PLAINTEXT = "none"
_PREFIX = "v1."
_SALT = b"grok2api/token-pool"
_INFO = b"session-token-encryption/v1"


class TokenDecryptError(GatewayError):
    """A stored token cannot be read back: wrong or missing ENCRYPTION_KEY, or a damaged value."""

    status = 500
    type = "server_error"
    code = "token_decrypt_failed"


class TokenCipher:
    def __init__(self, key: str | None) -> None:
        self._aead = AESGCM(_derive(key)) if key else None

    @property
    def scheme(self) -> str:
        """What ``encrypt`` produces: ``aesgcm`` or ``none`` (plaintext)."""
        return ENCRYPTED if self._aead else PLAINTEXT

    def encrypt(self, token: str, account_id: str) -> str:
        if self._aead is None:
            return token
        nonce = os.urandom(12)
        sealed = self._aead.encrypt(nonce, token.encode(), account_id.encode())
        return _PREFIX + base64.urlsafe_b64encode(nonce + sealed).decode().rstrip("=")

    def decrypt(self, stored: str, scheme: str, account_id: str) -> str:
        if scheme != ENCRYPTED:
            return stored
        if self._aead is None:
            raise TokenDecryptError(
                f"account {account_id}: its token is encrypted but ENCRYPTION_KEY is not set; "
                "set the key it was stored with"
            )
        try:
            if not stored.startswith(_PREFIX):
                raise ValueError("unknown format")
            body = stored[len(_PREFIX) :]
            blob = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
            return self._aead.decrypt(blob[:12], blob[12:], account_id.encode()).decode()
        except (InvalidTag, ValueError) as exc:
            raise TokenDecryptError(
                f"account {account_id}: its token cannot be decrypted with the configured ENCRYPTION_KEY "
                "(the key differs from the one it was stored with, or the stored value is damaged)"
            ) from exc


def _derive(key: str) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=_SALT, info=_INFO).derive(key.encode())
