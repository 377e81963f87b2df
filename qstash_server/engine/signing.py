"""``Upstash-Signature`` JWTs (HS256 keyed with the current signing key).

Built by hand (header and claims as compact JSON, HMAC-SHA256, base64url) rather than through a
JWT library: one is made per delivery attempt, and a library's key checks cost more than the
delivery's HTTP request. The tokens are ordinary HS256 JWTs; the tests verify them with the
official SDK's ``Receiver``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import os
import time

import orjson

__all__ = ["sign_delivery"]

_HEADER = base64.urlsafe_b64encode(b'{"alg":"HS256","typ":"JWT"}').rstrip(b"=")
_JTI_PREFIX = "jwt_" + os.urandom(6).hex()
_counter = itertools.count(1)
_keyed: dict[str, hmac.HMAC] = {}  # HMAC state after the key, copied per token


def _b64(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


def sign_delivery(key: str, url: str, body: bytes) -> str:
    """The JWT QStash puts in ``Upstash-Signature`` for a request to ``url`` carrying ``body``."""
    now = int(time.time())
    claims = {
        "iss": "Upstash",
        "sub": url,
        "exp": now + 300,
        "iat": now,
        "nbf": now,
        "jti": f"{_JTI_PREFIX}{next(_counter):012x}",  # unique without a syscall per token
        "body": _b64(hashlib.sha256(body).digest()).decode(),
    }
    signing_input = _HEADER + b"." + _b64(orjson.dumps(claims))
    keyed = _keyed.get(key)
    if keyed is None:
        if len(_keyed) > 8:  # keys rotate rarely; never grow without bound
            _keyed.clear()
        keyed = _keyed[key] = hmac.new(key.encode(), digestmod=hashlib.sha256)
    mac = keyed.copy()
    mac.update(signing_input)
    signature = _b64(mac.digest())
    return (signing_input + b"." + signature).decode()
