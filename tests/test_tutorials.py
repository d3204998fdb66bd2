"""Every tutorial runs in its --quick setting as a subprocess and writes figures and numbers."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from vitoolkit.cli import find_tutorials, tutorials_dir

TUTORIALS = find_tutorials(tutorials_dir())


@pytest.mark.parametrize("tutorial", TUTORIALS, ids=[t.name for t in TUTORIALS])
def test_tutorial_runs_quick(tutorial, tmp_path):
    proc = subprocess.run(
        [sys.executable, str(tutorial.path), "--quick", "--out", str(tmp_path), "--seed", "0"],
        capture_output=True, text=True, timeout=300,
        env={**__import__("os").environ, "MPLBACKEND": "Agg"},
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["numbers"], "a tutorial must record its key numbers"
    assert summary["figures"], "a tutorial must save figures"
    for name in summary["figures"]:
        assert (tmp_path / f"{name}.png").stat().st_size > 5000
