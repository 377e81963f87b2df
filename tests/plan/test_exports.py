"""Every module of migrator.plan declares a sorted, complete ``__all__`` (httpx's habit)."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import pytest

import migrator.plan

MODULES = sorted(m.name for m in pkgutil.walk_packages(migrator.plan.__path__, "migrator.plan."))


def _isort_style(name: str) -> tuple[int, str]:
    """CONSTANTS, then Classes, then functions (ruff's RUF022 order)."""
    return (0 if name.isupper() else 1 if name[:1].isupper() else 2), name


@pytest.mark.parametrize("name", ["migrator.plan", *MODULES])
def test_all_is_sorted_and_complete(name: str) -> None:
    module = importlib.import_module(name)
    exported = list(module.__all__)
    assert exported == sorted(exported, key=_isort_style), f"{name}: __all__ is not sorted"
    for item in exported:
        assert hasattr(module, item), f"{name}.{item}"
    if name == "migrator.plan" or name.endswith(".scaffold"):
        return
    defined = {
        n for n, obj in vars(module).items()
        if not n.startswith("_") and (inspect.isfunction(obj) or inspect.isclass(obj))
        and getattr(obj, "__module__", None) == name
    }
    assert defined <= set(exported), f"{name}: public but not in __all__: {defined - set(exported)}"
