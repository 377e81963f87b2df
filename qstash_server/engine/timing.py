"""Durations, retry-delay expressions, Retry-After and QStash's default backoff."""

from __future__ import annotations

import ast
import math
import operator
import re
import time
from collections.abc import Callable
from email.utils import parsedate_to_datetime

__all__ = [
    "BadValue",
    "default_backoff_s",
    "evaluate_retry_delay_ms",
    "now_ms",
    "parse_duration_s",
    "parse_go_duration_s",
    "retry_after_s",
    "validate_retry_delay",
]

_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_DURATION = re.compile(r"^(?:(\d+(?:\.\d+)?)([smhd]))+$")
_PART = re.compile(r"(\d+(?:\.\d+)?)([smhd])")
_GO_UNITS = {
    "ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0,
}
_GO_PART = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")


class BadValue(ValueError):
    """A header or parameter value that cannot be parsed."""


def now_ms() -> int:
    return int(time.time() * 1000)


def parse_duration_s(text: str) -> float:
    """``10s``, ``1m``, ``2h``, ``7d``, ``1d10h30m``; a bare number means seconds."""
    value = text.strip().lower()
    if not value:
        raise BadValue("empty duration")
    try:
        return float(value)
    except ValueError:
        pass
    if not _DURATION.match(value):
        raise BadValue(f"invalid duration {text!r}, expected e.g. 10s, 5m, 2h, 1d10h30m")
    return sum(float(n) * _UNITS[u] for n, u in _PART.findall(value))


def parse_go_duration_s(text: str) -> float:
    """Go-style durations as used in Retry-After-like headers: ``6m5s``, ``150ms``."""
    value = text.strip()
    parts = _GO_PART.findall(value)
    if not parts or "".join(n + u for n, u in parts) != value:
        raise BadValue(f"invalid duration {text!r}")
    return sum(float(n) * _GO_UNITS[u] for n, u in parts)


def default_backoff_s(retried: int) -> float:
    """QStash's default: ``min(86400, e^(2.5*n))`` seconds, n = retries so far (1 for the first)."""
    return min(86400.0, math.exp(2.5 * retried))


_FUNCS: dict[str, Callable[..., float]] = {
    "pow": math.pow, "exp": math.exp, "sqrt": math.sqrt, "abs": abs,
    "floor": math.floor, "ceil": math.ceil, "round": round, "min": min, "max": max,
}
_BINOPS: dict[type[ast.operator], Callable[[float, float], float]] = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
    ast.Div: operator.truediv, ast.Mod: operator.mod, ast.Pow: operator.pow,
}


def _eval(node: ast.AST, retried: int) -> float:
    if isinstance(node, ast.Expression):
        return _eval(node.body, retried)
    if isinstance(node, ast.Constant) and isinstance(node.value, int | float):
        return float(node.value)
    if isinstance(node, ast.Name) and node.id == "retried":
        return float(retried)
    if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
        return _BINOPS[type(node.op)](_eval(node.left, retried), _eval(node.right, retried))
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
        value = _eval(node.operand, retried)
        return -value if isinstance(node.op, ast.USub) else value
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id in _FUNCS
        and not node.keywords
    ):
        return float(_FUNCS[node.func.id](*(_eval(a, retried) for a in node.args)))
    raise BadValue("unsupported element in retry delay expression")


def evaluate_retry_delay_ms(expression: str, retried: int) -> float:
    """Evaluate an ``Upstash-Retry-Delay`` expression (milliseconds, variable ``retried``)."""
    try:
        tree = ast.parse(expression.strip(), mode="eval")
        return max(0.0, _eval(tree, retried))
    except (SyntaxError, TypeError, ValueError, ZeroDivisionError, OverflowError) as exc:
        raise BadValue(f"invalid retry delay expression {expression!r}: {exc}") from None


def validate_retry_delay(expression: str) -> str:
    evaluate_retry_delay_ms(expression, 0)
    return expression


def retry_after_s(headers: dict[str, str], now_s: float) -> float | None:
    """Delay asked for by the destination (Retry-After and X-RateLimit-Reset*), capped at 1 day.

    Returns None when no usable header is present or the value exceeds a day (QStash then
    falls back to its default backoff).
    """
    for name in (
        "retry-after", "x-ratelimit-reset", "x-ratelimit-reset-requests",
        "x-ratelimit-reset-tokens",
    ):
        raw = headers.get(name)
        if raw is None:
            continue
        raw = raw.strip()
        seconds: float | None = None
        try:
            seconds = float(raw)
        except ValueError:
            try:
                seconds = parse_go_duration_s(raw)
            except BadValue:
                try:
                    seconds = parsedate_to_datetime(raw).timestamp() - now_s
                except (TypeError, ValueError):
                    seconds = None
        if seconds is None:
            continue
        seconds = max(0.0, seconds)
        if seconds > 86400:
            return None
        return seconds
    return None
