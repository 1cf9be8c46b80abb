"""``host.code_digest``: the project code an offline tool runs, found by parsing, keys the files cached from it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from host.code_digest import ROOT, code_digest, project_modules

TOOL = '''"""The tool."""
import numpy as np


def main():
    from pkg.helper import helper  # an import inside a function is followed too
    return helper(np.ones(2))
'''
HELPER = '''"""A helper."""
from . import leaf


def helper(x):
    return leaf.twice(x)
'''
LEAF = '''"""The leaf."""


def twice(x):
    """Twice ``x``."""
    return 2 * x  # the arithmetic
'''


@pytest.fixture()
def project(tmp_path) -> Path:
    """A project of one package: a tool, what it imports (a function's import, a relative one) and a module it
    does not import."""
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    for name, text in {"__init__": "", "tool": TOOL, "helper": HELPER, "leaf": LEAF, "other": "X = 1\n"}.items():
        (pkg / f"{name}.py").write_text(text)
    return tmp_path


def test_the_tool_and_what_it_imports_are_found(project):
    assert sorted(project_modules("pkg.tool", project)) == ["pkg", "pkg.helper", "pkg.leaf", "pkg.tool"]
    with pytest.raises(ValueError, match="pkg.missing: no such module"):
        code_digest("pkg.missing", project)


def test_a_change_to_the_code_it_runs_changes_the_digest_and_nothing_else_does(project):
    before = code_digest("pkg.tool", project)
    leaf = project / "pkg" / "leaf.py"
    (project / "pkg" / "other.py").write_text("X = 2\n")  # not imported by the tool
    leaf.write_text(LEAF.replace("Twice ``x``.", "Two times x.").replace("# the arithmetic", "# doubled"))
    assert code_digest("pkg.tool", project) == before
    leaf.write_text(LEAF.replace("2 * x", "x + x"))  # the same result, other code: built again
    assert code_digest("pkg.tool", project) != before


def in_project(file: Path) -> bool:
    """Whether ``file`` is the project's source (not an installed package, not a virtual environment's; not a
    module's placeholder name such as ``torch.classes``' ``__file__``, which is no file)."""
    file = file.resolve()
    if not file.is_file() or not file.is_relative_to(ROOT):
        return False
    return not any(p.startswith(".") or p == "site-packages" for p in file.relative_to(ROOT).parts)


@pytest.mark.parametrize(
    "tool", ["model.export", "model.rotate", "model.distill", "model.calibrate", "model.sensitivity", "model.search"]
)
def test_every_project_module_the_tool_loads_is_digested(tool):
    """What parsing finds covers what Python loads: the project modules in ``sys.modules`` after importing the tool
    in a fresh interpreter."""
    script = (
        f"import json, sys, {tool}\n"
        "print(json.dumps({n: getattr(m, '__file__', None) for n, m in sys.modules.items()}))\n"
    )
    loaded = json.loads(
        subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    )
    ours = {name for name, file in loaded.items() if file and in_project(Path(file))}
    assert tool in ours and len(ours) > 10
    assert ours <= set(project_modules(tool))


def test_another_library_version_or_python_gives_another_tag(monkeypatch):
    import host.code_digest as cd

    def tag() -> str:
        cd.code_tag.cache_clear()
        return cd.code_tag("model.rotate")

    installed = cd.metadata.version
    first = tag()
    assert "torch " + installed("torch") in cd.library_versions()
    monkeypatch.setattr(cd.metadata, "version", lambda name: installed(name) + ("+other" if name == "torch" else ""))
    assert tag() != first
    monkeypatch.setattr(cd.metadata, "version", installed)
    assert tag() == first

    def without_soundfile(name: str) -> str:
        if name == "soundfile":
            raise cd.metadata.PackageNotFoundError(name)
        return installed(name)

    monkeypatch.setattr(cd.metadata, "version", without_soundfile)
    assert "soundfile none" in cd.library_versions() and tag() != first
    monkeypatch.setattr(cd.metadata, "version", installed)
    monkeypatch.setattr(cd.sys, "version_info", (3, 99, 0))
    assert tag() != first and "python 3.99.0" in cd.library_versions()
    monkeypatch.undo()
    cd.code_tag.cache_clear()
