"""The layer order and the package faces, enforced on every import in the four packages.

Layers: butler <- quantumgraph <- bps <- wms_plugins.  A lower layer never imports a higher one,
not even lazily inside a function or under ``TYPE_CHECKING`` (a lazy upward import is still a
cycle in the design, only one that fails later).  A package uses another package only through its
public names: no module path with a ``_private`` part (``butler._dataset_type``,
``butler.registry._sql``) and no ``_private`` name (``from butler import _x``).  A private name a
caller needs is a public name the other package is missing.

``tests/`` is not covered: a test may reach into the privates of the package it tests.  Imports
inside one top-level package (``quantumgraph.cli`` using ``quantumgraph._model``) are that
package's own business and allowed.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LAYERS = ["butler", "quantumgraph", "bps", "wms_plugins"]


@dataclass(frozen=True)
class Violation:
    where: str
    line: int
    target: str
    why: str

    def __str__(self) -> str:
        return f"{self.where}:{self.line}: imports {self.target}: {self.why}"


def _is_private(part: str) -> bool:
    return part.startswith("_") and not (part.startswith("__") and part.endswith("__"))


def _module_name(path: Path) -> tuple[str, bool]:
    """Dotted module name of ``path`` under ROOT, and whether it is a package ``__init__``."""
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    is_init = parts[-1] == "__init__"
    if is_init:
        parts.pop()
    return ".".join(parts), is_init


def _imports(tree: ast.AST, module: str, is_init: bool) -> list[tuple[int, str, list[str]]]:
    """(line, absolute module, imported names) for every import anywhere in ``tree``.

    ``ast.walk`` visits function bodies and ``if TYPE_CHECKING:`` blocks too; a constant-string
    ``import_module("x.y")`` call counts as an import of ``x.y``.
    """
    package = module if is_init else module.rpartition(".")[0]
    found: list[tuple[int, str, list[str]]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name, []) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                assert node.module is not None
                target = node.module
            found.append((node.lineno, target, [alias.name for alias in node.names]))
        elif isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
            if (
                name == "import_module"
                and node.args
                and isinstance(node.args[0], ast.Constant)
                and isinstance(node.args[0].value, str)
                and not node.args[0].value.startswith(".")
            ):
                found.append((node.lineno, node.args[0].value, []))
    return found


def check_source(source: str, module: str, is_init: bool = False, where: str = "<src>") -> list[Violation]:
    """Every layer or face violation in one module's source."""
    own = module.split(".")[0]
    violations: list[Violation] = []
    for line, target, names in _imports(ast.parse(source), module, is_init):
        parts = target.split(".")
        top = parts[0]
        if top not in LAYERS or top == own:
            continue
        if LAYERS.index(top) > LAYERS.index(own):
            violations.append(Violation(where, line, target, f"{own} is below {top} in the layers"))
            continue
        private_parts = [p for p in parts[1:] if _is_private(p)]
        if private_parts:
            violations.append(Violation(where, line, target, f"{private_parts[0]} is private to {top}"))
        for name in names:
            if _is_private(name):
                violations.append(Violation(where, line, f"{target}.{name}", f"{name} is private to {top}"))
    return violations


def _package_files() -> list[Path]:
    return sorted(p for layer in LAYERS for p in (ROOT / layer).rglob("*.py"))


def test_the_packages_are_all_found() -> None:
    files = _package_files()
    for layer in LAYERS:
        assert (ROOT / layer / "__init__.py") in files


def test_no_import_points_up_the_layers_or_into_another_package_s_privates() -> None:
    violations: list[Violation] = []
    for path in _package_files():
        module, is_init = _module_name(path)
        rel = str(path.relative_to(ROOT))
        violations.extend(check_source(path.read_text(), module, is_init, where=rel))
    assert not violations, "\n".join(str(v) for v in violations)


@pytest.mark.parametrize(
    ("source", "module", "expected"),
    [
        ("from quantumgraph import QuantumGraph\n", "butler._butler", "below quantumgraph"),
        (
            "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import bps\n",
            "quantumgraph._model",
            "below bps",
        ),
        ("def f():\n    from wms_plugins.parsl import X\n", "bps._submit", "below wms_plugins"),
        ("from butler._dataset_type import DatasetRef\n", "quantumgraph._model", "_dataset_type is private"),
        ("from butler.registry._sql import X\n", "quantumgraph._builder", "_sql is private"),
        ("import quantumgraph._model\n", "bps._graph", "_model is private"),
        ("from butler import _secret\n", "bps._graph", "_secret is private"),
        ("import importlib\nimportlib.import_module('bps.cli')\n", "butler.cli", "below bps"),
    ],
)
def test_the_checker_catches_each_kind_of_violation(source: str, module: str, expected: str) -> None:
    violations = check_source(source, module)
    assert len(violations) == 1 and expected in violations[0].why, violations


@pytest.mark.parametrize(
    ("source", "module", "is_init"),
    [
        ("from butler import DatasetRef\nfrom butler.registry import Registry\n", "bps._graph", False),
        ("from .._model import QuantumGraph\n", "quantumgraph.cli._main", False),
        ("from ._sql import X\n", "butler.registry", True),
        ("from quantumgraph._model import Q\n", "quantumgraph.cli._commands", False),
        ("from butler.__about__ import v\n", "bps._x", False),
    ],
)
def test_the_checker_allows_public_and_own_imports(source: str, module: str, is_init: bool) -> None:
    assert check_source(source, module, is_init) == []
