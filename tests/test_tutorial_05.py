"""Tutorial 05 (05_vae.py) runs quick, every claim it makes holds, and its figures are saved."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from vitoolkit.cli import tutorials_dir


def test_tutorial_05_runs_quick(tmp_path):
    env = {**os.environ, "MPLBACKEND": "Agg", "PYTHONWARNINGS": "error::RuntimeWarning"}
    out = tmp_path / "t05"
    proc = subprocess.run([sys.executable, str(tutorials_dir() / "05_vae.py"), "--quick",
                           "--out", str(out)], capture_output=True, text=True, env=env,
                          timeout=240)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["quick"] is True and summary["figures"]
    for name in summary["figures"]:
        assert (out / f"{name}.png").is_file()
    numbers = summary["numbers"]
    assert numbers["vae_test_elbo"] <= numbers["vae_test_iwae_k50"]
    assert numbers["vae_test_elbo"] <= numbers["vae_test_log_likelihood"]
    assert numbers["vae_kl_code_gaussian_to_prior"] < numbers["ae_kl_code_gaussian_to_prior"]
