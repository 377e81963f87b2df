"""``Upstash-Signature`` JWTs (HS256 keyed with the current signing key)."""

from __future__ import annotations

import base64
import hashlib
import secrets
import time

import jwt

__all__ = ["sign_delivery"]


def sign_delivery(key: str, url: str, body: bytes) -> str:
    """The JWT QStash puts in ``Upstash-Signature`` for a request to ``url`` carrying ``body``."""
    now = int(time.time())
    digest = base64.urlsafe_b64encode(hashlib.sha256(body).digest()).decode().rstrip("=")
    claims = {
        "iss": "Upstash",
        "sub": url,
        "exp": now + 300,
        "iat": now,
        "nbf": now,
        "jti": "jwt_" + secrets.token_hex(12),
        "body": digest,
    }
    return jwt.encode(claims, key, algorithm="HS256")
