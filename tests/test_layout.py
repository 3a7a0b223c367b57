"""The product's layout rules, read from its source: no module reaches into another's private names."""

from __future__ import annotations

import ast
import functools
import tomllib
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# The product's packages, each importing only itself and those before it (README, "Architecture").
LAYERS = (
    "herbarium",
    "catalog",
    "ml_backends",
    "connectors",
    "training",
    "local_services",
    "fiftyone_plugins",
    "plantai",
)
# The catalog's transactions are its own: other packages go through public Catalog methods.
CATALOG_INTERNALS = ("_read", "_write", "_sessions", "_model")


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


@functools.cache
def _modules() -> tuple[tuple[Path, ast.Module], ...]:
    """Every product module, parsed once for all the rules."""
    paths = [path for package in LAYERS for path in sorted((REPO / package).rglob("*.py"))]
    return tuple((path, ast.parse(path.read_text(encoding="utf-8"), str(path))) for path in paths)


def _violations(path: Path, tree: ast.Module) -> Iterator[str]:
    where = path.relative_to(REPO)
    module_aliases: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] in LAYERS:
                    module_aliases.add(alias.asname or alias.name.split(".")[0])
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] in LAYERS:
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


# ---------------------------------------------------------------------------------------------
# Settings: the environment is read in one module, herbarium/settings.py

SETTINGS_MODULE = Path("herbarium/settings.py")
ONE_HOME = (
    "LABEL_STUDIO_URL",
    "LABEL_STUDIO_API_KEY",
    "LOCAL_FILES_DOCUMENT_ROOT",
    "PLANTAI_CATALOG_URL",
    "PLANTAI_HOME",
)
DYNAMIC = "<a name computed at run time>"


def _is_os(node: ast.expr, name: str) -> bool:
    """``os.<name>`` (or ``<name>`` imported from os)."""
    if isinstance(node, ast.Attribute):
        return node.attr == name and isinstance(node.value, ast.Name) and node.value.id == "os"
    return isinstance(node, ast.Name) and node.id == name


def _environment_reads(tree: ast.Module) -> Iterator[tuple[int, str]]:
    """(line, variable) for every read of one environment variable: ``os.environ.get(X)``, ``os.environ[X]``,
    ``.setdefault``, ``.pop``, ``X in os.environ``, ``os.getenv(X)``, click's ``envvar=X``. X is resolved
    when it is a string or a module-level string constant; composing a child's environment
    (``{**os.environ, ...}``, ``dict(os.environ)``) reads no one variable and is not listed."""
    constants = {
        target.id: node.value.value
        for node in tree.body
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)
        for target in node.targets
        if isinstance(target, ast.Name)
    }

    def named(key: ast.expr) -> str:
        if isinstance(key, ast.Constant) and isinstance(key.value, str):
            return key.value
        if isinstance(key, ast.Name) and key.id in constants:
            return constants[key.id]
        return DYNAMIC

    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            function = node.func
            reads_one = _is_os(function, "getenv") or (
                isinstance(function, ast.Attribute)
                and _is_os(function.value, "environ")
                and function.attr in {"get", "setdefault", "pop"}
            )
            if reads_one and node.args:
                yield node.lineno, named(node.args[0])
            for keyword in node.keywords:
                if keyword.arg == "envvar":
                    values = keyword.value.elts if isinstance(keyword.value, ast.List | ast.Tuple) else [keyword.value]
                    for value in values:
                        yield node.lineno, named(value)
        elif isinstance(node, ast.Subscript) and _is_os(node.value, "environ") and isinstance(node.ctx, ast.Load):
            yield node.lineno, named(node.slice)
        elif isinstance(node, ast.Compare) and any(
            isinstance(op, ast.In | ast.NotIn) and _is_os(c, "environ")
            for op, c in zip(node.ops, node.comparators, strict=True)
        ):
            yield node.lineno, named(node.left)  # "X" in os.environ


def _settings_readers(path: Path, tree: ast.Module) -> Iterator[str]:
    """Reads, outside the settings module, of a declared setting or of a variable named at run time."""
    from herbarium.settings import SETTINGS

    declared = {s.name for s in SETTINGS}
    where = path.relative_to(REPO)
    for line, name in _environment_reads(tree):
        if where != SETTINGS_MODULE and (name in declared or name == DYNAMIC):
            yield f"{where}:{line}: {name}"


def test_settings_are_read_from_the_environment_in_one_module() -> None:
    from herbarium.settings import SETTINGS

    assert set(ONE_HOME) <= {s.name for s in SETTINGS}
    found = [v for path, tree in _modules() for v in _settings_readers(path, tree)]
    assert found == []
    [settings_tree] = [tree for path, tree in _modules() if path == REPO / SETTINGS_MODULE]
    settings_reads = list(_environment_reads(settings_tree))
    assert settings_reads, "herbarium/settings.py is where settings are read"


def test_the_settings_rule_catches_what_it_is_meant_to() -> None:
    source = (
        "import os\n"
        "from os import environ, getenv\n"
        'URL_ENV = "LABEL_STUDIO_URL"\n'
        'os.environ.get("PLANTAI_HOME")\n'
        "os.environ[URL_ENV]\n"
        'getenv("PLANTAI_CATALOG_URL", "")\n'
        'click.option("--document-root", envvar="LOCAL_FILES_DOCUMENT_ROOT")\n'
        'os.environ.setdefault("LABEL_STUDIO_API_KEY", key)\n'
        '"PLANTAI_HOME" in environ\n'
        "os.environ.get(key)\n"
        'os.environ["LABEL_STUDIO_URL"] = url\n'  # writing is not reading
        'env = {**os.environ, "PLANTAI_HOME": home}\n'  # composing a child's environment
        'os.environ.get("FIFTYONE_DATABASE_URI")\n'  # not a PlantAI setting
    )
    found = list(_settings_readers(REPO / "connectors" / "example.py", ast.parse(source)))
    assert found == [
        "connectors/example.py:4: PLANTAI_HOME",
        "connectors/example.py:5: LABEL_STUDIO_URL",
        "connectors/example.py:6: PLANTAI_CATALOG_URL",
        "connectors/example.py:7: LOCAL_FILES_DOCUMENT_ROOT",
        "connectors/example.py:8: LABEL_STUDIO_API_KEY",
        "connectors/example.py:9: PLANTAI_HOME",
        f"connectors/example.py:10: {DYNAMIC}",
    ]
    assert list(_settings_readers(REPO / SETTINGS_MODULE, ast.parse(source))) == []


def _imported_packages(tree: ast.Module) -> Iterator[tuple[int, str]]:
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.lineno, node.module.split(".")[0]


def _upward_imports(package: str, where: Path, tree: ast.Module) -> Iterator[str]:
    allowed = LAYERS[: LAYERS.index(package) + 1]
    for line, imported in _imported_packages(tree):
        if imported in LAYERS and imported not in allowed:
            yield f"{where}:{line}: {package} imports {imported}"


def test_every_package_imports_only_the_layers_below_it() -> None:
    mypy_packages = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["mypy"]["packages"]
    assert set(LAYERS) == set(mypy_packages)  # every product package has its layer
    found = [v for path, tree in _modules() for v in _upward_imports(path.relative_to(REPO).parts[0], path, tree)]
    assert found == []


def test_the_layer_rule_catches_what_it_is_meant_to() -> None:
    source = "import training.bootstrap\nfrom plantai.cli import main\nfrom herbarium import labels\nimport os\n"
    found = list(_upward_imports("connectors", Path("connectors/example.py"), ast.parse(source)))
    assert found == [
        "connectors/example.py:1: connectors imports training",
        "connectors/example.py:2: connectors imports plantai",
    ]
