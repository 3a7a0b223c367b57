"""The product's layout rules, read from its source: no module reaches into another's private names."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGES = (
    "herbarium",
    "catalog",
    "connectors",
    "ml_backends",
    "plantai",
    "fiftyone_plugins",
    "training",
    "local_services",
)
# The catalog's transactions are its own: other packages go through public Catalog methods.
CATALOG_INTERNALS = ("_read", "_write", "_sessions", "_model")


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def _modules() -> Iterator[tuple[Path, ast.Module]]:
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            yield path, ast.parse(path.read_text(encoding="utf-8"), str(path))


def _violations(path: Path, tree: ast.Module) -> Iterator[str]:
    where = path.relative_to(REPO)
    module_aliases: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] in PACKAGES:
                    module_aliases.add(alias.asname or alias.name.split(".")[0])
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] in PACKAGES:
            for alias in node.names:
                if _private(alias.name):
                    yield f"{where}:{node.lineno}: from {node.module} import {alias.name}"
                folder = REPO.joinpath(*node.module.split("."))
                if (folder / f"{alias.name}.py").is_file() or (folder / alias.name).is_dir():
                    module_aliases.add(alias.asname or alias.name)  # ``from connectors import sync``
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and _private(node.attr):
            owner = node.value.id
            if owner in module_aliases:
                yield f"{where}:{node.lineno}: {owner}.{node.attr}"
            elif owner == "catalog" and node.attr in CATALOG_INTERNALS and where.parts[0] != "catalog":
                yield f"{where}:{node.lineno}: catalog.{node.attr}"


def test_no_module_imports_or_reaches_a_private_name_of_another() -> None:
    found = [v for path, tree in _modules() for v in _violations(path, tree)]
    assert found == []


def test_the_rule_catches_what_it_is_meant_to() -> None:
    source = (
        "import connectors.sync as sync\n"
        "from catalog.registry import _x, public\n"
        "from catalog import store\n"
        "sync._Reader\n"
        "catalog._write(apply)\n"
        "self._write(apply)\n"
        "store._blob\n"
    )
    found = sorted(_violations(REPO / "connectors" / "example.py", ast.parse(source)))
    assert found == [
        "connectors/example.py:2: from catalog.registry import _x",
        "connectors/example.py:4: sync._Reader",
        "connectors/example.py:5: catalog._write",
        "connectors/example.py:7: store._blob",
    ]
