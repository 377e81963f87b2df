"""Every module of every package the project ships declares a sorted, complete ``__all__``
(httpx's habit). The packages are the ones ``pyproject.toml`` ships
(``[tool.setuptools.packages.find] include``), so a new top-level package is covered at once."""

from __future__ import annotations

import ast
import fnmatch
import importlib
import inspect
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _shipped_modules() -> list[tuple[str, Path]]:
    patterns = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"][
        "packages"]["find"]["include"]
    found: list[tuple[str, Path]] = []
    for path in sorted(ROOT.glob("*/**/*.py")):
        rel = path.relative_to(ROOT)
        package = ".".join(rel.parent.parts)
        if not (ROOT / rel.parts[0] / "__init__.py").exists():
            continue
        if not any(fnmatch.fnmatchcase(package, pattern) for pattern in patterns):
            continue
        name = package if path.name == "__init__.py" else f"{package}.{path.stem}"
        found.append((name, path))
    return found


MODULES = _shipped_modules()


def _isort_style(name: str) -> tuple[int, str]:
    """CONSTANTS, then Classes, then functions (ruff's RUF022 order)."""
    return (0 if name.isupper() else 1 if name[:1].isupper() else 2), name


def _declares_all(path: Path) -> bool:
    """A module-level ``__all__ = [...]`` (read from the source: ``__main__`` is not imported)."""
    for node in ast.parse(path.read_text(), str(path)).body:
        targets = (node.targets if isinstance(node, ast.Assign)
                   else [node.target] if isinstance(node, ast.AnnAssign) else [])
        if any(isinstance(t, ast.Name) and t.id == "__all__" for t in targets):
            return True
    return False


def test_the_shipped_packages_are_found() -> None:
    packages = {name.split(".")[0] for name, _ in MODULES}
    assert {"migrator", "connectors"} <= packages
    assert len(MODULES) > 50


@pytest.mark.parametrize(("name", "path"), MODULES, ids=[name for name, _ in MODULES])
def test_all_is_declared_sorted_and_complete(name: str, path: Path) -> None:
    assert _declares_all(path), f"{path.relative_to(ROOT)}: no module-level __all__"
    if name.endswith("__main__"):
        return  # importing it would run the program
    module = importlib.import_module(name)
    exported = list(module.__all__)
    assert exported == sorted(exported, key=_isort_style), f"{name}: __all__ is not sorted"
    assert len(exported) == len(set(exported)), f"{name}: a name is in __all__ twice"
    for item in exported:
        assert hasattr(module, item), f"{name}.{item} is in __all__ but not defined"
    if path.name == "__init__.py" or name.endswith(".scaffold"):
        return  # a package re-exports; scaffold keeps its template helpers private by name
    defined = {
        n for n, obj in vars(module).items()
        if not n.startswith("_") and (inspect.isfunction(obj) or inspect.isclass(obj))
        and getattr(obj, "__module__", None) == name
    }
    assert defined <= set(exported), f"{name}: public but not in __all__: {defined - set(exported)}"
