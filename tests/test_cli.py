"""The `vitoolkit` command: list, run, unknown names, failing tutorials; the tutorial runtime."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

from vitoolkit.course import cli
from vitoolkit.course.tutorial import Tutorial, to_jsonable

GOOD = '''# %% [markdown]
# # A good tutorial.
#
# Question: Does the runner work?

# %%
from vitoolkit.course import Tutorial
from vitoolkit.progress import progress_bar
tut = Tutorial("01_good")
tut.record("answer", 42)

# %% [markdown]
# ## A section with a loop

# %%
for _ in progress_bar(range(2), enabled=tut.progress, total=2, desc="loop", unit="step"):
    pass
import matplotlib.pyplot as plt
fig, ax = plt.subplots()
ax.plot([0, 1], [0, 1])
tut.savefig(fig, "line")
tut.finish()
'''

BAD = '''# %% [markdown]
# # A broken tutorial.
#
# Question: What happens when a tutorial fails?

# %%
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


def test_run_one_writes_figures_and_summary(tutorials, tmp_path, capsys):
    out = tmp_path / "out"
    assert cli.main(["run", "01_good", "--quick", "--out", str(out), "--seed", "3"]) == 0
    # The section as reached, the loop's steps (VITOOLKIT_PROGRESS set for the child; plain
    # lines, since the test's output is no terminal), then one summary line.
    lines = [re.sub(r" \(\d+\.\d s\)$", "", line) for line in capsys.readouterr().out.splitlines()]
    assert lines[:4] == ["[1/1] 01_good: running (quick) ...", "    A section with a loop",
                         "    [progress] loop: step 1/2", "    [progress] loop: step 2/2"], lines
    assert lines[4].startswith("[1/1] 01_good: ok; 0 claims hold; 1 figure; "), lines
    assert "answer = 42" not in "\n".join(lines)  # records and claims only with -v
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
        assert t.question, f"{t.name} has no 'Question:' line in its opening Markdown cell"


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




def test_tutorial_runtime_sets_and_restores_torch_threads(tmp_path, capsys):
    import torch

    before = torch.get_num_threads()
    tut = Tutorial("99_x", argv=["--out", str(tmp_path), "--threads", str(before + 1)])
    assert torch.get_num_threads() == before + 1
    tut.finish()
    assert torch.get_num_threads() == before
    with pytest.raises(SystemExit):
        Tutorial("99_x", argv=["--out", str(tmp_path), "--threads", "0"])
    assert "argument --threads: must be an integer >= 1, got 0" in capsys.readouterr().err
    assert torch.get_num_threads() == before


# --------------------------------------------------------------------------- vitoolkit exercise
def _check_lines(out: str) -> list[str]:
    return [line for line in out.splitlines() if line.startswith(("PASS  ", "FAIL  "))]


def test_exercise_list_names_every_exercise(capsys):
    assert cli.main(["exercise", "list"]) == 0
    out = capsys.readouterr().out
    for name in ("gaussian_kl", "cavi_blei_step", "mean_field_variances", "score_function_gradient",
                 "pathwise_gradient", "bernoulli_vae_elbo", "iwae_bound"):
        assert name in out
    assert "02_cavi_gmm" in out


def test_exercise_start_writes_a_stub_that_fails_check(tmp_path, capsys):
    assert cli.main(["exercise", "start", "iwae_bound", "--out", str(tmp_path)]) == 0
    path = tmp_path / "iwae_bound.py"
    assert path.is_file() and "raise NotImplementedError" in path.read_text()
    assert f"vitoolkit exercise check iwae_bound {path}" in capsys.readouterr().out
    assert cli.main(["exercise", "check", "iwae_bound", str(path), "--seed", "0"]) == 1
    out = capsys.readouterr().out
    assert _check_lines(out) == ["FAIL  implemented  not implemented yet: the function raises "
                                 "NotImplementedError (replace that line with your code)"]
    # An existing file is not overwritten without --force.
    assert cli.main(["exercise", "start", "iwae_bound", "--out", str(tmp_path)]) == 1
    assert "exists already" in capsys.readouterr().err
    assert cli.main(["exercise", "start", "iwae_bound", "--out", str(tmp_path), "--force"]) == 0


def test_exercise_check_passes_a_correct_file_with_one_line_per_check(tmp_path, capsys):
    from vitoolkit.exercises import solution

    path = tmp_path / "answer.py"
    path.write_text(solution("gaussian_kl"))
    assert cli.main(["exercise", "check", "gaussian_kl", str(path), "--seed", "4"]) == 0
    out = capsys.readouterr().out
    lines = _check_lines(out)
    assert len(lines) >= 5 and all(line.startswith("PASS  ") for line in lines)
    assert "all passed (seed 4" in out.splitlines()[-1]


def test_exercise_check_reports_a_wrong_file_and_load_errors(tmp_path, capsys):
    wrong = tmp_path / "wrong.py"
    wrong.write_text("import torch\n\ndef iwae_bound(log_weights):\n    return log_weights.mean(0)\n")
    assert cli.main(["exercise", "check", "iwae_bound", str(wrong), "--seed", "0"]) == 1
    assert "a mean of the log-weights where a log-mean-exp belongs" in capsys.readouterr().out
    other = tmp_path / "other.py"
    other.write_text("def helper():\n    pass\n\ndef my_bound(lw):\n    return lw\n")
    assert cli.main(["exercise", "check", "iwae_bound", str(other)]) == 1
    assert "defines no function named 'iwae_bound'; it defines: helper, my_bound" in capsys.readouterr().err
    broken = tmp_path / "broken.py"
    broken.write_text("x = 1\nraise RuntimeError('oops')\n")
    assert cli.main(["exercise", "check", "iwae_bound", str(broken)]) == 1
    assert "line 2" in (err := capsys.readouterr().err) and "RuntimeError: oops" in err
    assert cli.main(["exercise", "check", "iwae_bound", str(tmp_path / "missing.py")]) == 1
    assert "no such file" in capsys.readouterr().err
    assert cli.main(["exercise", "check", "nope", str(wrong)]) == 2
    assert "unknown exercise 'nope'; valid names: gaussian_kl" in capsys.readouterr().err


def test_exercise_solution_prints_the_model_answer(capsys):
    assert cli.main(["exercise", "solution", "cavi_blei_step"]) == 0
    out = capsys.readouterr().out
    assert "def cavi_blei_step(x, m, s2, prior_var):" in out and "NotImplementedError" not in out


def test_exercise_notebook_round_trip(tmp_path, capsys):
    nbformat = pytest.importorskip("nbformat")
    from vitoolkit.exercises import CHECK_TAG, solution
    from vitoolkit.exercises.files import notebook_source

    assert cli.main(["exercise", "start", "mean_field_variances", "--out", str(tmp_path),
                     "--format", "ipynb"]) == 0
    path = tmp_path / "mean_field_variances.ipynb"
    nb = nbformat.read(str(path), as_version=4)
    nbformat.validate(nb)
    assert [c.cell_type for c in nb.cells] == ["markdown", "code", "code"]
    assert CHECK_TAG in nb.cells[2].metadata["tags"]
    assert len(notebook_source(path)) == 1  # the check cell is not run when loading
    assert cli.main(["exercise", "check", "mean_field_variances", str(path), "--seed", "0"]) == 1
    capsys.readouterr()
    # The student writes the answer in the stub's cell (with a magic, as notebooks have).
    nb.cells[1].source = "%matplotlib inline\n" + solution("mean_field_variances")
    nbformat.write(nb, str(path))
    assert cli.main(["exercise", "check", "mean_field_variances", str(path), "--seed", "0"]) == 0
    assert "all passed" in capsys.readouterr().out


def test_exercise_notebook_without_nbformat_is_a_clear_error(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "nbformat", None)
    assert cli.main(["exercise", "start", "gaussian_kl", "--out", str(tmp_path), "--format", "ipynb"]) == 1
    assert "writing a notebook needs nbformat" in capsys.readouterr().err
    assert not (tmp_path / "gaussian_kl.ipynb").exists()


def test_building_the_parser_does_not_import_torch():
    code = "import sys, vitoolkit.course.cli as c; c.build_parser(); print('torch' in sys.modules)"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert proc.stdout.strip() == "False"


def test_algorithm_layers_never_import_the_course_tooling():
    code = (
        "import sys, vitoolkit.distributions, vitoolkit.divergences, vitoolkit.conjugate, "
        "vitoolkit.calibration, vitoolkit.cavi, vitoolkit.fitting, vitoolkit.gradients, vitoolkit.vae, "
        "vitoolkit.datasets, vitoolkit.plotting, vitoolkit.plotting.interactive\n"
        "print(sorted(m for m in sys.modules if m.startswith('vitoolkit.course')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_course_modules_import_without_a_circle():
    # catalog is the shared leaf; cli and book both use it, and cli loads book only on demand.
    code = ("import sys, vitoolkit.course.book\n"
            "print('vitoolkit.course.cli' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


# --------------------------------------------------------------------------- hostile arguments
BAD_SEEDS = [str(2**70), str(2**63), "-1", "1.5", "1e3", "0x10", "seven", ""]


def _outs(tmp_path):
    """An --out that is a file, and one whose parent is a file (ENOTDIR even for root)."""
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    return {"file": a_file, "under_a_file": a_file / "sub"}


@pytest.mark.parametrize("kind", ["file", "under_a_file"])
def test_run_refuses_an_unusable_out_before_running_anything(tutorials, tmp_path, capsys, kind):
    out = _outs(tmp_path)[kind]
    assert cli.main(["run", "01_good", "--quick", "--out", str(out)]) == 2
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert len(err.splitlines()) == 1 and "--out" in err and str(out) in err
    assert "running" not in captured.out  # no tutorial started
    assert "Traceback" not in err


def test_run_refuses_a_tutorial_folder_that_is_a_file(tutorials, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "01_good").write_text("in the way")
    assert cli.main(["run", "all", "--quick", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "--out" in err and str(out / "01_good") in err
    assert not (out / "index.json").exists()


@pytest.mark.skipif(not hasattr(__import__("os"), "geteuid") or __import__("os").geteuid() == 0,
                    reason="root writes into read-only folders")
def test_run_refuses_a_read_only_out(tutorials, tmp_path, capsys):
    out = tmp_path / "ro"
    out.mkdir()
    out.chmod(0o500)
    try:
        assert cli.main(["run", "01_good", "--out", str(out)]) == 2
    finally:
        out.chmod(0o700)
    err = capsys.readouterr().err
    assert "--out" in err and str(out / "01_good") in err


@pytest.mark.parametrize("kind", ["file", "under_a_file"])
def test_book_refuses_an_unusable_out(tmp_path, capsys, kind):
    out = _outs(tmp_path)[kind]
    assert cli.main(["book", "--out", str(out), "--no-run"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--out" in err and str(out) in err


def test_book_does_not_replace_a_folder_that_holds_no_book(tmp_path, capsys):
    keep = tmp_path / "mine"
    keep.mkdir()
    (keep / "thesis.tex").write_text("precious")
    assert cli.main(["book", "--out", str(keep), "--no-run"]) == 2
    assert "holds no book" in capsys.readouterr().err
    assert (keep / "thesis.tex").read_text() == "precious"


@pytest.mark.parametrize("seed", BAD_SEEDS)
def test_every_entry_point_refuses_the_same_bad_seeds(tutorials, tmp_path, capsys, seed):
    commands = [["run", "01_good", "--out", str(tmp_path / "o"), "--seed", seed],
                ["exercise", "check", "gaussian_kl", str(tmp_path / "x.py"), "--seed", seed]]
    for argv in commands:
        with pytest.raises(SystemExit) as info:
            cli.main(argv)
        assert info.value.code == 2
        err = capsys.readouterr().err
        assert "argument --seed: must be an integer in 0..2**63-1" in err, err
    with pytest.raises(SystemExit) as info:
        Tutorial("99_x", argv=["--out", str(tmp_path / "t"), "--seed", seed])
    assert info.value.code == 2
    assert "argument --seed: must be an integer" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_environment_seed_follows_the_same_rule(tmp_path, monkeypatch):
    for bad in ("1.5", str(2**70), "-3"):
        monkeypatch.setenv("VITOOLKIT_SEED", bad)
        with pytest.raises((TypeError, ValueError), match="VITOOLKIT_SEED must be an integer in 0"):
            Tutorial("99_x", argv=["--out", str(tmp_path)])
    monkeypatch.setenv("VITOOLKIT_SEED", "12")
    assert Tutorial("99_x", argv=["--out", str(tmp_path)]).seed == 12


def test_largest_seed_is_accepted_and_derived_seeds_stay_valid(tmp_path):
    import numpy as np
    import torch

    top = 2**63 - 1
    args = cli.build_parser().parse_args(["run", "all", "--seed", str(top)])
    assert args.seed == top
    tut = Tutorial("99_x", argv=["--out", str(tmp_path), "--seed", str(top)])
    assert tut.seed == top and tut.derived_seed(0) == top and tut.derived_seed(1) == 0
    # Independent route: the generators equal ones seeded by hand with the wrapped value.
    assert torch.equal(torch.rand(3, generator=tut.generator(5)),
                       torch.rand(3, generator=torch.Generator().manual_seed(4)))
    assert np.array_equal(tut.rng(2).random(3), np.random.default_rng(1).random(3))
    small = Tutorial("99_x", argv=["--out", str(tmp_path), "--seed", "7"])
    assert small.derived_seed(3) == 10  # unchanged for ordinary seeds
    with pytest.raises(TypeError, match="offset"):
        small.generator(1.5)


def test_threads_and_jobs_are_validated_by_the_parser(tmp_path, capsys):
    with pytest.raises(SystemExit):
        Tutorial("99_x", argv=["--out", str(tmp_path), "--threads", "2.5"])
    assert "argument --threads: must be an integer" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(["book", "--out", str(tmp_path / "b"), "--jobs", "0"])
    assert "argument --jobs" in capsys.readouterr().err


def test_command_line_errors_are_one_line_without_traceback(tutorials, tmp_path):
    a_file = _outs(tmp_path)["file"]
    script = tutorials / "01_good.py"
    runs = {
        "vitoolkit run": [sys.executable, "-m", "vitoolkit", "run", "01_good", "--out", str(a_file)],
        "script --out": [sys.executable, str(script), "--out", str(a_file)],
        "script --seed": [sys.executable, str(script), "--out", str(tmp_path / "s"),
                          "--seed", str(2**70)],
    }
    for what, cmd in runs.items():
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 2, (what, proc.stderr)
        assert "Traceback" not in proc.stderr, what
        last = proc.stderr.strip().splitlines()[-1]
        assert ("--out" in last and str(a_file) in last) or "--seed" in last, (what, last)


def test_run_leaves_no_temporary_files(tutorials, tmp_path):
    out = tmp_path / "out"
    assert cli.main(["run", "01_good", "--quick", "--out", str(out)]) == 0
    names = sorted(p.name for p in out.rglob("*"))
    assert not [n for n in names if n.endswith(".tmp") or n.startswith(".")], names
    assert json.loads((out / "index.json").read_text())["tutorials"]["01_good"]["ok"]


def test_exercise_start_refuses_an_unusable_out(tmp_path, capsys):
    out = _outs(tmp_path)["under_a_file"]
    assert cli.main(["exercise", "start", "gaussian_kl", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert "--out" in err and str(out) in err


def test_figures_in_every_format_are_whole_files_and_a_failed_save_keeps_the_old(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tut = Tutorial("99_x", argv=["--out", str(tmp_path), "--formats", "png,svg,pdf"])
    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    paths = tut.savefig(fig, "f")
    # Saved through a file object, so the format must be explicit: check the magic bytes.
    heads = {p.suffix: p.read_bytes()[:8] for p in paths}
    assert heads[".png"] == b"\x89PNG\r\n\x1a\n" and heads[".pdf"].startswith(b"%PDF")
    assert b"<?xml" in (tmp_path / "f.svg").read_bytes()[:100]
    before = {p.name: p.read_bytes() for p in paths}

    fig2, ax2 = plt.subplots()
    ax2.plot([0, 1], [0, 1])

    def dies_midway(handle, **kwargs):
        handle.write(b"half a figure")
        raise RuntimeError("renderer died")

    fig2.savefig = dies_midway
    with pytest.raises(RuntimeError, match="renderer died"):
        tut.savefig(fig2, "f")
    assert {p.name: p.read_bytes() for p in paths} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.pdf", "f.png", "f.svg"]
    plt.close("all")
    tut.finish()
    assert json.loads((tmp_path / "summary.json").read_text())["figures"] == ["f"]


def test_book_folder_is_replaced_whole_and_dead_builds_are_cleaned(tmp_path, monkeypatch):
    import shutil

    from vitoolkit.course import book

    out = tmp_path / "site"
    old_site, new_site = tmp_path / "old_html", tmp_path / "new_html"
    for folder, text in ((old_site, "old"), (new_site, "new")):
        (folder / "tutorials").mkdir(parents=True)
        (folder / ".buildinfo").write_text(text)
        (folder / "tutorials" / "page.html").write_text(text)
        book._write_manifest(folder)
    book._replace_folder(old_site, out)
    # A copy left by a killed build (its pid no longer runs) is removed by the next one.
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()
    stale = tmp_path / f".site.{dead}.new.tmp"
    stale.mkdir()
    book._check_out(out, "out")  # an earlier book may be replaced
    # A copy that fails midway leaves the old book in place.
    real = shutil.copytree

    def fails(src, dst, *args, **kwargs):
        real(src, dst, *args, **kwargs)
        if src == new_site:  # the top-level call, after the copy is made
            raise OSError(28, "No space left on device (simulated)")

    monkeypatch.setattr(book.shutil, "copytree", fails)
    with pytest.raises(OSError, match="No space left"):
        book._replace_folder(new_site, out)
    monkeypatch.undo()
    assert (out / "tutorials" / "page.html").read_text() == "old"
    assert not list(tmp_path.glob(".site.*"))  # the failed copy was removed
    book._replace_folder(new_site, out)
    assert (out / "tutorials" / "page.html").read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["new_html", "old_html", "site"]
    assert not stale.exists()


def test_tutorial_out_that_cannot_be_a_folder_names_the_option(tmp_path, monkeypatch):
    blocker = _outs(tmp_path)["file"]
    with pytest.raises(NotADirectoryError) as info:
        Tutorial("99_x", argv=["--out", str(blocker)])
    assert "--out" in str(info.value) and str(blocker) in str(info.value)
    monkeypatch.setenv("VITOOLKIT_OUT", str(blocker / "sub"))
    with pytest.raises(OSError) as info:
        Tutorial("99_x", argv=[])
    assert "VITOOLKIT_OUT" in str(info.value) and str(blocker / "sub") in str(info.value)
