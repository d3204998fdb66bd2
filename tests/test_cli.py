"""The `vitoolkit` command: list, run, unknown names, failing tutorials; the tutorial runtime."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from vitoolkit import cli
from vitoolkit.tutorial import Tutorial, to_jsonable

GOOD = '''"""A good tutorial.

Question: Does the runner work?
"""
from vitoolkit.tutorial import Tutorial
tut = Tutorial("01_good")
tut.record("answer", 42)
import matplotlib.pyplot as plt
fig, ax = plt.subplots()
ax.plot([0, 1], [0, 1])
tut.savefig(fig, "line")
tut.finish()
'''

BAD = '''"""A broken tutorial.

Question: What happens when a tutorial fails?
"""
raise RuntimeError("boom")
'''


@pytest.fixture
def tutorials(tmp_path, monkeypatch):
    folder = tmp_path / "tutorials"
    folder.mkdir()
    (folder / "01_good.py").write_text(GOOD)
    (folder / "02_bad.py").write_text(BAD)
    monkeypatch.setenv("VITOOLKIT_TUTORIALS", str(folder))
    return folder


def test_list_shows_names_and_questions(tutorials, capsys):
    assert cli.main(["list"]) == 0
    out = capsys.readouterr().out
    assert "01_good" in out and "Does the runner work?" in out
    assert "02_bad" in out and "What happens when a tutorial fails?" in out


def test_unknown_name_lists_the_valid_ones(tutorials, tmp_path, capsys):
    assert cli.main(["run", "nope", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "unknown tutorial 'nope'" in err and "01_good" in err and "02_bad" in err


def test_run_one_writes_figures_and_summary(tutorials, tmp_path):
    out = tmp_path / "out"
    assert cli.main(["run", "01_good", "--quick", "--out", str(out), "--seed", "3"]) == 0
    summary = json.loads((out / "01_good" / "summary.json").read_text())
    assert summary["numbers"] == {"answer": 42}
    assert summary["quick"] is True and summary["seed"] == 3
    assert (out / "01_good" / "line.png").stat().st_size > 1000


def test_run_all_runs_the_rest_and_fails_after_a_failing_tutorial(tutorials, tmp_path):
    out = tmp_path / "out"
    (tutorials / "03_also_good.py").write_text(GOOD.replace("01_good", "03_also_good"))
    assert cli.main(["run", "all", "--quick", "--out", str(out)]) == 1
    index = json.loads((out / "index.json").read_text())["tutorials"]
    assert index["01_good"]["ok"] and index["03_also_good"]["ok"]
    assert not index["02_bad"]["ok"]
    assert "boom" in (out / "02_bad" / "log.txt").read_text()


def test_python_dash_m_entry_point(tutorials):
    proc = subprocess.run([sys.executable, "-m", "vitoolkit", "list"], capture_output=True,
                          text=True, check=True)
    assert "01_good" in proc.stdout


def test_the_real_tutorials_all_declare_a_question():
    found = cli.find_tutorials(cli.tutorials_dir())
    assert found, "no tutorials found"
    for t in found:
        assert t.question, f"{t.name} has no 'Question:' line in its docstring"


def test_tutorial_runtime_reads_environment_and_ignores_unknown_arguments(tmp_path, monkeypatch):
    monkeypatch.setenv("VITOOLKIT_QUICK", "1")
    monkeypatch.setenv("VITOOLKIT_OUT", str(tmp_path / "env"))
    tut = Tutorial("99_x", argv=["-f", "/kernel.json"])
    assert tut.quick and tut.out == tmp_path / "env" and tut.seed == 0
    with pytest.raises(ValueError, match="formats"):
        Tutorial("99_x", argv=["--formats", "gif"])


def test_to_jsonable_keeps_non_finite_values_visible():
    import numpy as np
    import torch

    assert to_jsonable(torch.tensor([1.0, float("nan")])) == [1.0, "nan"]
    assert to_jsonable({"a": np.float32(2.5), "b": (np.int64(3), float("-inf"))}) == {
        "a": 2.5, "b": [3, "-inf"]}


def test_tutorial_scripts_are_notebook_cells():
    for t in cli.find_tutorials(cli.tutorials_dir()):
        text = t.path.read_text()
        assert "# %%" in text and "tut.finish()" in text, t.name




def test_tutorial_runtime_sets_and_restores_torch_threads(tmp_path):
    import torch

    before = torch.get_num_threads()
    tut = Tutorial("99_x", argv=["--out", str(tmp_path), "--threads", str(before + 1)])
    assert torch.get_num_threads() == before + 1
    tut.finish()
    assert torch.get_num_threads() == before
    with pytest.raises(ValueError, match="threads must be a positive integer"):
        Tutorial("99_x", argv=["--out", str(tmp_path), "--threads", "0"])
    assert torch.get_num_threads() == before
