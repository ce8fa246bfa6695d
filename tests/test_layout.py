"""Package layout: no import cycle in s2vt/, no module too long without a stated reason.

The checks live in ``scripts/check_imports.py`` (run it by hand for the full report); these
tests run it on s2vt/ and on small packages made in tmp_path, so that the checker itself
is shown to find what it claims to find.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "check_imports.py"


def _load_checker():
    spec = importlib.util.spec_from_file_location("check_imports", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module     # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


checker = _load_checker()


def run_script(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True,
                          text=True, timeout=120)


def make_package(root: Path, files: dict[str, str]) -> Path:
    """A package ``pkg`` under ``root`` with ``files`` (relative path -> source)."""
    package = root / "pkg"
    for name, text in {"__init__.py": "", **files}.items():
        path = package / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return package


def test_s2vt_has_no_import_cycle() -> None:
    cycles = checker.find_cycles(checker.import_edges(ROOT / "s2vt"))
    shown = [" -> ".join([c[0].source] + [f"{e.target} ({e.kind}, line {e.line})" for e in c])
             for c in cycles]
    assert not shown, "import cycles in s2vt/:\n" + "\n".join(shown)


def test_no_s2vt_module_is_too_long_without_a_reason() -> None:
    oversized = checker.oversized_modules(ROOT / "s2vt", 500)
    assert not oversized, (f"modules over 500 lines without a 'Size:' reason in their "
                           f"docstring: {oversized}")


def test_the_script_passes_on_s2vt_cycles() -> None:
    # The size limit is checked above; here the script's own exit code for cycles.
    result = run_script("--max-lines", "1000000")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no import cycle" in result.stdout


@pytest.mark.parametrize(("b_source", "kind"), [
    ("from pkg import a\n", "at module level"),
    ("def f():\n    from pkg.a import x\n    return x\n", "inside a function"),
    ("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg import a\n",
     "under TYPE_CHECKING"),
    ("from . import a\n", "at module level"),
])
def test_a_cycle_is_found_and_printed_with_its_edges(tmp_path: Path, b_source: str,
                                                     kind: str) -> None:
    package = make_package(tmp_path, {"a.py": "from pkg.sub import b\nx = 1\n",
                                      "sub/__init__.py": "",
                                      "sub/b.py": b_source.replace("from . ", "from .. "),
                                      "c.py": "import pkg.a\n"})
    result = run_script(str(package))
    assert result.returncode == 1, result.stdout
    assert "import cycle: pkg.a -> pkg.sub.b -> pkg.a" in result.stdout
    assert "pkg.a imports pkg.sub.b (line 1, at module level)" in result.stdout
    assert "pkg.sub.b imports pkg.a" in result.stdout and kind in result.stdout
    assert "pkg.c" not in result.stdout     # imports the cycle but is not part of it


def test_type_checking_imports_can_be_left_out(tmp_path: Path) -> None:
    package = make_package(tmp_path, {
        "a.py": "from pkg import b\n",
        "b.py": "import typing\nif typing.TYPE_CHECKING:\n    from pkg.a import A\n"
                "else:\n    A = None\n"})
    assert run_script(str(package)).returncode == 1
    result = run_script(str(package), "--runtime-only")
    assert result.returncode == 0, result.stdout


def test_a_package_without_cycles_passes(tmp_path: Path) -> None:
    package = make_package(tmp_path, {"a.py": "from pkg import b\nfrom pkg.b import y\n",
                                      "b.py": "import os\ny = os.sep\n",
                                      "c.py": "def f():\n    from pkg import a, b\n"})
    result = run_script(str(package))
    assert result.returncode == 0, result.stdout


def test_a_long_module_needs_a_size_reason(tmp_path: Path) -> None:
    body = "".join(f"x{i} = {i}\n" for i in range(600))
    package = make_package(tmp_path, {"big.py": '"""A table."""\n' + body,
                                      "small.py": '"""Small."""\n'})
    result = run_script(str(package))
    assert result.returncode == 1
    assert "too long: pkg.big has 601 lines (> 500)" in result.stdout
    assert "pkg.small" not in result.stdout
    assert run_script(str(package), "--max-lines", "700").returncode == 0
    (package / "big.py").write_text('"""A table.\n\nSize: one generated lookup table.\n"""\n'
                                    + body)
    assert run_script(str(package)).returncode == 0
    (package / "big.py").write_text('"""A table.\n\nSize:\n"""\n' + body)   # no reason given
    assert run_script(str(package)).returncode == 1
