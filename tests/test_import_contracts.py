"""The package's layers as a contract (pyproject ``[tool.importlinter]``), checked by import-linter.

import-linter reads every import statement, those inside functions included, so a lazy
``from ..course import cli`` inside a topic function breaks the layers as surely as a
module-level one. The second test proves the check can fail: it plants a back-running
import and a cycle in a copy of the package and expects both to be reported.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("importlinter")

ROOT = Path(__file__).resolve().parents[1]


def _lint(root: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(root)}
    code = "import sys; from importlinter.cli import lint_imports_command; sys.exit(lint_imports_command())"
    args = [sys.executable, "-c", code, "--no-cache", "--config", str(root / "pyproject.toml")]
    return subprocess.run(args, cwd=root, env=env, capture_output=True, text=True, timeout=120)


def test_the_package_keeps_its_import_contracts():
    out = _lint(ROOT)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "0 broken" in out.stdout


def test_a_function_level_import_up_the_layers_and_a_cycle_are_reported(tmp_path):
    shutil.copytree(ROOT / "vitoolkit", tmp_path / "vitoolkit",
                    ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    with open(tmp_path / "vitoolkit" / "cavi" / "blei.py", "a") as f:  # a topic reaching the course
        f.write("\n\ndef _planted():\n    from ..course import catalog\n\n    return catalog\n")
    with open(tmp_path / "vitoolkit" / "fitting" / "routes.py", "a") as f:  # routes <-> settings again
        f.write("\n\ndef _planted():\n    from .settings import FitSettings\n\n    return FitSettings\n")
    out = _lint(tmp_path)
    assert out.returncode == 1, out.stdout + out.stderr
    assert "vitoolkit.cavi.blei -> vitoolkit.course.catalog" in out.stdout
    assert "No cycles are allowed in vitoolkit.fitting" in out.stdout
    assert "2 broken" in out.stdout
