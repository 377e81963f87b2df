"""The demo's endpoints: local HTTP endpoints that verify the Upstash signature of each delivery
and count what arrived where."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

__all__ = ["Receiver"]


class Receiver:
    """Local endpoints on 127.0.0.1 that verify the Upstash signature of each delivery."""

    def __init__(self, current_key: str, next_key: str) -> None:
        from qstash import Receiver as SignatureReceiver

        self.verifier = SignatureReceiver(current_signing_key=current_key, next_signing_key=next_key)
        self.seen: dict[str, set[tuple[str, str, str]]] = {}
        self.coords: dict[str, list[tuple[str, int, int]]] = {}  # every delivery, repeats kept
        self.deliveries = 0
        self.bad_signatures = 0
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # keep-alive replies are two writes

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                receiver.record(self.path, dict(self.headers.items()), body,
                                f"http://{self.headers.get('Host', '')}{self.path}")
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def record(self, path: str, headers: dict[str, str], body: bytes, url: str) -> None:
        lower = {k.lower(): v for k, v in headers.items()}
        try:
            self.verifier.verify(body=body.decode(), signature=lower.get("upstash-signature", ""), url=url)
            ok = True
        except Exception:
            ok = False
        coords = (lower.get("kafka-topic", ""), lower.get("kafka-partition", ""), lower.get("kafka-offset", ""))
        with self._lock:
            self.deliveries += 1
            self.bad_signatures += 0 if ok else 1
            self.seen.setdefault(path, set()).add(coords)
            if coords[0]:
                self.coords.setdefault(path, []).append((coords[0], int(coords[1]), int(coords[2])))

    def count(self, path: str) -> int:
        with self._lock:
            return len(self.seen.get(path, ()))

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
