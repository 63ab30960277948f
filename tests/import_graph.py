"""The pkd modules a Python file imports, read from its source with `ast`: imports inside
functions count as much as top-level ones, annotation-only imports (`if TYPE_CHECKING:`) not at all.
tests/test_dvc_deps.py and tests/test_imports.py check dvc.yaml and the package layers with it."""
import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "pkd"


def module_file(name: str) -> Path | None:
    """pkd.a.b -> pkd/a/b.py or pkd/a/b/__init__.py (None outside pkd or if absent)."""
    parts = name.split(".")
    if parts[0] != "pkd":
        return None
    base = ROOT.joinpath(*parts)
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def package_of(path: Path) -> str:
    """The package a relative import starts from: pkd.data for pkd/data/x.py and pkd/data/__init__.py."""
    return ".".join(path.relative_to(ROOT).parts[:-1])


def is_type_checking(node: ast.AST) -> bool:
    test = getattr(node, "test", None)
    return isinstance(node, ast.If) and (
        (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING")
        or (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")
    )


def runtime_nodes(tree: ast.AST):
    """Every node, functions included, except the bodies of `if TYPE_CHECKING:` (never run)."""
    todo = [tree]
    while todo:
        node = todo.pop()
        yield node
        if is_type_checking(node):
            todo.extend(node.orelse)
        else:
            todo.extend(ast.iter_child_nodes(node))


def imported_modules(path: Path) -> set[str]:
    """Dotted names of the modules a file imports, parents included (their __init__ runs first)."""
    names: set[str] = set()
    package = package_of(path) if path.is_relative_to(PKG) else ""
    for node in runtime_nodes(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            # `from pkg import name` imports pkg.name when name is a submodule.
            targets = [module] + [f"{module}.{alias.name}" for alias in node.names]
        else:
            continue
        for target in targets:
            parts = target.split(".")
            names.update(".".join(parts[: i + 1]) for i in range(len(parts)))
    return names
