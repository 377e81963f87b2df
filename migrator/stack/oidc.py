"""A local OIDC issuer for the stack's OAUTHBEARER listener: a client-credentials token endpoint
and a JWKS document, as Kafka's OIDC support (KIP-768) expects of an identity provider.

``POST /token`` (``grant_type=client_credentials``, client id and secret as HTTP basic auth or
form fields) answers ``{"access_token": <RS256 JWT>, "token_type": "Bearer", "expires_in": N}``
with ``sub`` = the client id, ``iss``, ``aud``, ``iat``, ``exp`` and ``scope``; ``GET /jwks``
serves the public key. Run as ``python -m migrator.stack.oidc --port P --client-id ID`` with the
secret in ``MIGRATOR_OIDC_CLIENT_SECRET``. For local testing only.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

__all__ = ["AUDIENCE", "Issuer", "main"]

AUDIENCE = "kafka"
TOKEN_SECONDS = 3600


class Issuer:
    """One RSA key, one client; issues and publishes."""

    def __init__(self, issuer: str, client_id: str, client_secret: str) -> None:
        from cryptography.hazmat.primitives.asymmetric import rsa

        self.issuer, self.client_id, self._secret = issuer, client_id, client_secret
        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.kid = uuid.uuid4().hex[:16]

    def jwks(self) -> dict[str, Any]:
        numbers = self._key.public_key().public_numbers()

        def b64(n: int) -> str:
            raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
            return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

        return {"keys": [{"kty": "RSA", "use": "sig", "alg": "RS256", "kid": self.kid,
                          "n": b64(numbers.n), "e": b64(numbers.e)}]}

    def token(self, client_id: str, client_secret: str, scope: str) -> str | None:
        import jwt

        if client_id != self.client_id or client_secret != self._secret:
            return None
        now = int(time.time())
        claims = {"sub": client_id, "iss": self.issuer, "aud": AUDIENCE, "iat": now,
                  "exp": now + TOKEN_SECONDS, "scope": scope or "kafka"}
        return jwt.encode(claims, self._key, algorithm="RS256", headers={"kid": self.kid})


def _handler(issuer: Issuer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path.split("?")[0] == "/jwks":
                self._reply(200, issuer.jwks())
            else:
                self._reply(404, {"error": "not_found"})

        def do_POST(self) -> None:
            if self.path.split("?")[0] != "/token":
                self._reply(404, {"error": "not_found"})
                return
            length = int(self.headers.get("Content-Length") or 0)
            form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
            client_id, secret = form.get("client_id", ""), form.get("client_secret", "")
            auth = self.headers.get("Authorization", "")
            if auth.startswith("Basic "):
                client_id, _, secret = base64.b64decode(auth[6:]).decode().partition(":")
            if form.get("grant_type") != "client_credentials":
                self._reply(400, {"error": "unsupported_grant_type"})
                return
            token = issuer.token(client_id, secret, form.get("scope", ""))
            if token is None:
                self._reply(401, {"error": "invalid_client"})
                return
            self._reply(200, {"access_token": token, "token_type": "Bearer",
                              "expires_in": TOKEN_SECONDS})

        def _reply(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: object) -> None:
            pass

    return Handler


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m migrator.stack.oidc")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--client-id", required=True)
    args = parser.parse_args(argv)
    secret = os.environ["MIGRATOR_OIDC_CLIENT_SECRET"]
    issuer = Issuer(f"http://127.0.0.1:{args.port}", args.client_id, secret)
    server = ThreadingHTTPServer(("127.0.0.1", args.port), _handler(issuer))
    server.daemon_threads = True
    server.serve_forever()


if __name__ == "__main__":
    main()
