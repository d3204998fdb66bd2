"""Every tutorial is run in its --quick setting by some test, as a subprocess.

Topic tests run their own tutorial and check its numbers (e.g.
``test_tutorial_02.py``); this file runs every tutorial that no other test
file runs, so a new tutorial is covered the moment it is added.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from vitoolkit.cli import find_tutorials, tutorials_dir

TUTORIALS = find_tutorials(tutorials_dir())
HERE = Path(__file__).resolve()


def _run_elsewhere(name: str) -> bool:
    """True when another test file runs ``tutorials/<name>.py``."""
    for path in HERE.parent.glob("test_*.py"):
        if path != HERE and f"{name}.py" in path.read_text(encoding="utf-8"):
            return True
    return False


UNCOVERED = [t for t in TUTORIALS if not _run_elsewhere(t.name)]


def test_there_are_tutorials():
    assert len(TUTORIALS) >= 6, [t.name for t in TUTORIALS]


def test_every_tutorial_without_its_own_test_runs_quick(tmp_path):
    """Run (as subprocesses) the tutorials that no topic test runs; none is left uncovered."""
    for tutorial in UNCOVERED:
        out = tmp_path / tutorial.name
        proc = subprocess.run(
            [sys.executable, str(tutorial.path), "--quick", "--out", str(out), "--seed", "0"],
            capture_output=True, text=True, timeout=300, env={**os.environ, "MPLBACKEND": "Agg"},
        )
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        summary = json.loads((out / "summary.json").read_text())
        assert summary["numbers"], f"{tutorial.name} must record its key numbers"
        assert summary["figures"], f"{tutorial.name} must save figures"
        for name in summary["figures"]:
            assert (out / f"{name}.png").stat().st_size > 5000
