"""Credentials at rest: Fernet (AES-128-CBC + HMAC) under a key derived from the secret key."""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

from cryptography.fernet import Fernet, InvalidToken

from bot.errors import ConfigError


class Vault:
    def __init__(self, secret_key: bytes) -> None:
        # a separate key per purpose: web-chat sessions use the secret key itself
        derived = hashlib.sha256(b"chancenter credentials\x00" + secret_key).digest()
        self._fernet = Fernet(base64.urlsafe_b64encode(derived))

    def seal(self, credentials: dict[str, Any]) -> str:
        return self._fernet.encrypt(json.dumps(credentials).encode()).decode()

    def open(self, sealed: str | None) -> dict[str, Any]:
        if not sealed:
            return {}
        try:
            return json.loads(self._fernet.decrypt(sealed.encode()))
        except InvalidToken:
            raise ConfigError(
                "stored credentials cannot be decrypted: CHANCENTER_SECRET_KEY (or "
                "data/secret.key) changed since the channel was added; restore it or add the "
                "channel again"
            ) from None
