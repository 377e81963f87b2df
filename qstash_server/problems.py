"""API errors answered as QStash does: a status and ``{"error": "..."}``."""

from __future__ import annotations

__all__ = ["ApiError"]


class ApiError(Exception):
    """An error answer: HTTP status, message, optional extra response headers."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}
