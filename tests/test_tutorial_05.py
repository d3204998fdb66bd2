"""Tutorial 05 (05_vae.py) runs quick, every claim it makes holds, and its figures are clean."""

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
                          timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["quick"] is True and summary["figures"]
    for name in summary["figures"]:
        assert (out / f"{name}.png").stat().st_size > 5000
    # Every sentence that compares or sizes something is a checked claim, and all hold.
    claims = summary["claims"]
    assert len(claims) >= 8
    assert all(c["holds"] for c in claims if c["checked"]), [
        c["statement"] for c in claims if c["checked"] and not c["holds"]]
    assert not any(summary.get("figure_problems", {}).values()), summary["figure_problems"]
    numbers = summary["numbers"]
    assert numbers["vae_test_elbo"] <= numbers["vae_test_iwae_k50"]
    assert numbers["vae_kl_code_gaussian_to_prior"] < numbers["ae_kl_code_gaussian_to_prior"]
    # The ELBO-surgery split adds up: average KL = information + KL(aggregate || prior).
    for tag in ("2d", "8d"):
        total = numbers[f"mutual_information[{tag}]"] + numbers[f"aggregate_kl_to_prior[{tag}]"]
        assert abs(total - numbers[f"average_kl_per_image[{tag}]"]) < 0.2
