"""A digest of the project code that an offline tool runs, found without importing it: what the demo's cached
packages and rotated models are named by, and ``model.export``'s step caches and ``model.distill``'s pseudo-labels
keyed by, so that a file that other code built is built again.

The tool's module and every project module it imports (and their packages' ``__init__``), at any depth and
anywhere in a file (a function's own ``import`` too), are found by parsing (``ast``); each is digested as its
syntax tree without docstrings, so that a comment or docstring edit keeps the cache and any other change to the
code that builds it does not (another Python version may write the same tree otherwise: a rebuild, no harm).
Imports outside the repository (numpy, torch) are not followed; instead :func:`code_tag` adds the versions of
Python and of the libraries that compute the numbers (:data:`LIBRARIES`), so that a package or statistics that
another torch or numpy computed (last-bit differences that can move a tile choice) are computed again too.
"""

from __future__ import annotations

import ast
import hashlib
import sys
from functools import cache
from importlib import metadata
from pathlib import Path
from typing import Dict, List, Optional

ROOT = Path(__file__).resolve().parents[1]
LIBRARIES = ("numpy", "scipy", "torch", "soundfile")  # what the offline tools compute and decode audio with


def module_file(name: str, root: Path = ROOT) -> Optional[Path]:
    """The file of the project module ``name`` under ``root`` (a module or a package's ``__init__.py``), or None for
    a module from elsewhere."""
    base = root.joinpath(*name.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def imported_names(tree: ast.AST, name: str, is_package: bool) -> List[str]:
    """Every module that the module ``name``'s syntax tree imports, anywhere in it (``from A import b`` names ``A``
    and ``A.b``, as ``b`` may be a submodule; relative imports are resolved against ``name``;
    ``importlib.import_module("literal")`` counts too)."""
    package = name if is_package else name.rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            found += [base] + [f"{base}.{alias.name}" for alias in node.names if alias.name != "*"]
        elif (
            isinstance(node, ast.Call)
            and (getattr(node.func, "attr", None) or getattr(node.func, "id", None)) == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            found.append(node.args[0].value)
    return found


def without_docstrings(tree: ast.AST) -> ast.AST:
    """``tree`` with each module's, class's and function's docstring removed (in place)."""
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (
            isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
            and body
            and isinstance(body[0], ast.Expr)
            and isinstance(body[0].value, ast.Constant)
            and isinstance(body[0].value.value, str)
        ):
            node.body = body[1:] or [ast.Pass()]
    return tree


def project_modules(module: str, root: Path = ROOT) -> Dict[str, ast.AST]:
    """``module`` and every project module it imports at any depth, each as its syntax tree, by name."""
    trees: Dict[str, ast.AST] = {}
    todo = [module]
    while todo:
        name = todo.pop()
        if name in trees:
            continue
        todo += [name.rsplit(".", i)[0] for i in range(1, name.count(".") + 1)]  # its packages run first
        path = module_file(name, root)
        if path is None:
            continue
        trees[name] = ast.parse(path.read_bytes(), filename=str(path))
        todo += imported_names(trees[name], name, path.name == "__init__.py")
    if module not in trees:
        raise ValueError(f"{module}: no such module under {root}")
    return trees


def code_digest(module: str, root: Path = ROOT) -> str:
    """SHA-256 of the code that running ``module`` executes from the project (:func:`project_modules`), each module
    by name and syntax tree without docstrings."""
    h = hashlib.sha256()
    for name, tree in sorted(project_modules(module, root).items()):
        h.update(f"{name}\n{ast.dump(without_docstrings(tree))}\n".encode())
    return h.hexdigest()


def library_versions() -> str:
    """Python's version and each of :data:`LIBRARIES`' installed versions ("none" where one is not installed), as
    one line."""

    def version(name: str) -> str:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return "none"

    python = "python " + ".".join(map(str, sys.version_info[:3]))
    return " ".join([python, *(f"{name} {version(name)}" for name in LIBRARIES)])


@cache
def code_tag(module: str) -> str:
    """A short name for the code of ``module`` and the libraries that run it (:func:`code_digest` and
    :func:`library_versions`, once per process): files that other code or other library versions built are cached
    apart."""
    h = hashlib.sha256(f"{code_digest(module)}\n{library_versions()}".encode())
    return "code-" + h.hexdigest()[:8]
