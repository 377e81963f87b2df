"""Shared helpers for the QStash server tests."""

from __future__ import annotations

from tests.fixtures.wait import wait_until  # the shared helper, re-exported for the server tests

__all__ = ["wait_until"]
