"""The grader run as an instructor runs it: each submission in its own process, with limits.

Every submission kind the grader must survive is a file in a folder graded by
``vitoolkit exercise grade`` (one child process each, forked from a server that
imported torch once: about 0.1 s a submission, plus the time limit for each one
that hangs). Costs on the 2-core machine: the first test that starts a child
also starts that server (3-5 s, once per session); then each submission about
0.1-0.3 s, the two hangs 2 x 0.5 s, the notebooks and function objects well under
a second. Marked slow: the whole adversarial class as one batch through the CSV
report (about 2 s), the mutation table run in child processes (about 15 s, each
child imports the test module), a script run as ``python answer.py`` and a Pool
worker (a fresh interpreter each, about 5 s).
"""

from __future__ import annotations

import csv
import json
import linecache
import math
import os
import sys
import textwrap

import pytest
import torch

from vitoolkit.course import cli
from vitoolkit.exercises import ExerciseFileError, check, check_file
from vitoolkit.exercises.batch import COLUMNS, grade_folder

SEED = 5

CORRECT = """
import math
import torch

def iwae_bound(log_weights):
    return torch.logsumexp(log_weights, 0) - math.log(log_weights.shape[0])
"""

# (file stem, source, expected: "pass" or a fragment of the one-line diagnosis)
SUBMISSIONS = [
    ("correct", CORRECT, "pass"),
    ("float32_constant", """
import torch

def iwae_bound(log_weights):
    K = log_weights.shape[0]
    return torch.logsumexp(log_weights, 0) - torch.log(torch.tensor(K))  # a float32 constant
""", "pass"),
    ("all_float32", """
import math

def iwae_bound(log_weights):
    lw = log_weights.float()
    return lw.logsumexp(0) - math.log(lw.shape[0])
""", "pass"),
    ("exit_in_function", """
import sys

def iwae_bound(log_weights):
    sys.exit(0)
""", "your function raised SystemExit (line 4 of exit_in_function.py): exit(0)"),
    ("keyboard_interrupt", """
def iwae_bound(log_weights):
    raise KeyboardInterrupt
""", "your function raised KeyboardInterrupt"),
    ("os_exit_in_function", """
import os

def iwae_bound(log_weights):
    os._exit(0)
""", "the process running your function ended with exit status 0 (os._exit, or a crash)"),
    ("os_exit_at_module_level", """
import os
os._exit(0)
""", "ended with exit status 0"),
    ("exit_at_module_level", """
raise SystemExit(0)
""", "called exit(0)"),
    ("segfault", """
import ctypes

def iwae_bound(log_weights):
    ctypes.string_at(0)
""", "was killed by SIGSEGV (a crash in native code)"),
    ("patches_the_grader", """
import vitoolkit.exercises.grading as grading
import vitoolkit.exercises.registry as registry
import vitoolkit.exercises.report as report

report.Report.passed = property(lambda self: True)
grading.Case.compare = lambda *args, **kwargs: None
grading.Case.tensor = lambda self, value, *args, **kwargs: value
registry.check = lambda *args, **kwargs: None

def iwae_bound(log_weights):
    return log_weights.mean(0)
""", "a mean of the log-weights where a log-mean-exp belongs"),
    ("forges_a_reply", """
import gc
import os
import pickle
from multiprocessing.connection import Connection

def iwae_bound(log_weights):
    for obj in gc.get_objects():  # the grading child's pipe to the grader: send a reply that runs code
        if isinstance(obj, Connection):
            obj.send_bytes(pickle.dumps(("ok", os.system, [], [])))
    return log_weights.mean(0)
""", "sent a malformed reply"),
    ("changes_global_state", """
import os
import sys
import torch

torch.set_default_dtype(torch.float64)
torch.set_grad_enabled(False)
os.chdir(os.path.dirname(os.getcwd()) or "/")
sys.modules["json"] = None

def iwae_bound(log_weights):
    torch.set_default_dtype(torch.float16)
    return log_weights.mean(0)
""", "a mean of the log-weights"),
    ("no_return", """
import torch

def iwae_bound(log_weights):
    torch.logsumexp(log_weights, 0)
""", "your function returned None; is the return statement missing?"),
    ("returns_a_string", """
def iwae_bound(log_weights):
    return "the bound"
""", "a string was returned; expected a tensor of numbers"),
    ("returns_complex", """
import numpy as np

def iwae_bound(log_weights):
    return np.log(np.mean(np.exp(log_weights.numpy()), 0) - 1e300 + 0j)
""", "is complex (complex128); expected real numbers"),
    ("returns_a_list_of_tensors", """
import math
import torch

def iwae_bound(log_weights):
    lw = log_weights.clone().requires_grad_(True)
    return [torch.logsumexp(lw[:, b], 0) - math.log(lw.shape[0]) for b in range(lw.shape[1])]
""", "a list of tensors was returned; expected one tensor (torch.stack"),
    ("log_b_instead_of_log_k", """
import math
import torch

def iwae_bound(log_weights):
    return torch.logsumexp(log_weights, 0) - math.log(log_weights.shape[1])
""", "log B was subtracted where log K belongs"),
    ("wrong_name", """
def my_bound(log_weights):
    return log_weights
""", "defines no function named 'iwae_bound'; it defines: my_bound"),
    ("wrong_signature", """
def iwae_bound(log_weights, k):
    return log_weights
""", "cannot be called with the 1 positional arguments (log_weights)"),
    ("malformed_notebook", None, "malformed_notebook.ipynb: cell 1 has a 'source' that is neither"),
]


def _write(folder, stem, source):
    if source is None:  # a notebook whose cell source is a number
        (folder / f"{stem}.ipynb").write_text(json.dumps(
            {"cells": [{"cell_type": "code", "source": 3, "metadata": {}}], "nbformat": 4}))
        return
    (folder / f"{stem}.py").write_text(textwrap.dedent(source).lstrip())


@pytest.mark.slow
def test_a_class_of_adversarial_submissions_is_graded_one_row_each(tmp_path, capsys):
    """Every kind in SUBMISSIONS: about 2 s once the fork server runs (3-5 s more when this starts it)."""
    _grade_class(tmp_path, capsys, SUBMISSIONS)


def test_a_submission_changing_global_state_changes_nothing_here(tmp_path):
    sources = {stem: source for stem, source, _ in SUBMISSIONS}
    _write(tmp_path, "changes_global_state", sources["changes_global_state"])
    state = (torch.get_default_dtype(), torch.is_grad_enabled(), os.getcwd(), sys.modules.get("json"))
    report = check_file("iwae_bound", tmp_path / "changes_global_state.py", seed=0)
    assert (torch.get_default_dtype(), torch.is_grad_enabled(), os.getcwd(), sys.modules.get("json")) == state
    assert not report.passed and "a mean of the log-weights" in report.diagnosis


def _grade_class(tmp_path, capsys, submissions):
    folder = tmp_path / "class"
    folder.mkdir()
    for stem, source, _ in submissions:
        _write(folder, stem, source)
    state = (torch.get_default_dtype(), torch.is_grad_enabled(), os.getcwd(), sys.modules.get("json"))
    out = tmp_path / "report.csv"
    code = cli.main(["exercise", "grade", "iwae_bound", str(folder), "--out", str(out), "--seed", str(SEED),
                     "--timeout", "20"])
    assert code == 0
    printed = capsys.readouterr()
    assert "Traceback" not in printed.out + printed.err
    assert f"graded {len(submissions)} submissions of iwae_bound (seed {SEED})" in printed.out
    # Nothing a submission did reached this process.
    assert (torch.get_default_dtype(), torch.is_grad_enabled(), os.getcwd(), sys.modules.get("json")) == state
    with open(out, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert tuple(rows[0]) == COLUMNS
    by_student = {r["student"]: r for r in rows}
    assert sorted(by_student) == sorted(stem for stem, _, _ in submissions)
    for stem, _, expected in submissions:
        row = by_student[stem]
        assert row["seed"] == str(SEED) and float(row["seconds"]) >= 0
        if expected == "pass":
            assert row["passed"] == "yes" and row["checks_passed"] == row["checks_total"] == "7", row
            assert row["diagnosis"] == ""
        else:
            assert row["passed"] == "no", row
            assert expected in row["diagnosis"], (stem, row["diagnosis"])
            assert "\n" not in row["diagnosis"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["class", "report.csv"]  # written whole, no temp


@pytest.mark.parametrize("stem", ["exit_in_function", "os_exit_at_module_level", "patches_the_grader",
                                  "forges_a_reply"])
def test_the_exit_status_of_check_is_the_graders_verdict_never_the_students(tmp_path, capsys, stem):
    _write(tmp_path, stem, {s: source for s, source, _ in SUBMISSIONS}[stem])
    assert cli.main(["exercise", "check", "iwae_bound", str(tmp_path / f"{stem}.py"), "--seed", "0"]) == 1
    printed = capsys.readouterr()
    assert "Traceback" not in printed.out + printed.err


def test_a_hang_in_the_function_or_at_module_level_is_stopped_by_the_time_limit(tmp_path):
    in_function = tmp_path / "in_function.py"
    in_function.write_text("def iwae_bound(log_weights):\n    while True:\n        pass\n")
    report = check_file("iwae_bound", in_function, seed=0, timeout=0.5)
    assert not report.passed
    assert [c.passed for c in report.checks] == [False]  # grading stops at the first check that hangs
    assert "did not finish within the time limit of 0.5 s" in report.diagnosis
    at_module_level = tmp_path / "at_module_level.py"
    at_module_level.write_text("while True:\n    pass\n")
    with pytest.raises(ExerciseFileError,
                       match=r"running .*at_module_level.py did not finish within the time limit of 0.5 s"):
        check_file("iwae_bound", at_module_level, seed=0, timeout=0.5)


def test_the_memory_cap_turns_a_huge_allocation_into_a_failed_check(tmp_path):
    hog = tmp_path / "hog.py"
    hog.write_text("def iwae_bound(log_weights):\n    return bytearray(64 * 2**30)\n")
    report = check_file("iwae_bound", hog, seed=0, memory_mb=256)
    assert not report.passed and "your function raised MemoryError" in report.diagnosis


def test_check_isolates_function_objects_and_says_when_it_cannot():
    # A module-level function of an importable module: sent by reference, graded in a child.
    from vitoolkit.exercises.vae import iwae_bound

    report = check("iwae_bound", iwae_bound, seed=1)
    assert report.passed and report.isolated and report.note == ""
    # A function defined in a notebook cell (module __main__, no file): sent by its source, with the
    # imports and constants it uses, as IPython keeps a cell's source (linecache).
    source = CORRECT.replace("import math\n", "import math as m\nK0 = 0\n").replace(
        "math.log(log_weights.shape[0])", "m.log(log_weights.shape[0] + K0)")
    filename = "<ipython-input-1-cell>"
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    namespace: dict = {"__name__": "__main__"}
    exec(compile(source, filename, "exec"), namespace)  # noqa: S102
    report = check("iwae_bound", namespace["iwae_bound"], seed=1)
    assert report.passed and report.isolated, str(report)
    # A lambda cannot be sent: graded here, and the report says so.
    report = check("iwae_bound", lambda lw: torch.logsumexp(lw, 0) - math.log(lw.shape[0]), seed=1)
    assert report.passed and not report.isolated
    assert "graded in this process, without a time limit: a lambda" in report.note
    assert "note: graded in this process" in str(report)


def test_system_exit_never_escapes_the_python_api():
    def leaves(log_weights):
        raise SystemExit(0)

    for isolate in (True, False):
        report = check("iwae_bound", leaves, seed=0, isolate=isolate)
        assert not report.passed and "SystemExit" in report.diagnosis


def test_limits_are_checked_at_the_boundary(tmp_path):
    from vitoolkit.exercises.vae import iwae_bound

    with pytest.raises(ValueError, match="timeout must be a finite number of seconds > 0, got 0"):
        check("iwae_bound", iwae_bound, timeout=0)
    with pytest.raises(TypeError, match="timeout must be a number of seconds, got str"):
        check("iwae_bound", iwae_bound, timeout="5")
    with pytest.raises(ValueError, match="memory_mb must be >= 16"):
        check("iwae_bound", iwae_bound, memory_mb=1)
    with pytest.raises(TypeError, match="isolate must be True or False"):
        check("iwae_bound", iwae_bound, isolate=1)
    with pytest.raises(SystemExit):
        cli.main(["exercise", "grade", "iwae_bound", str(tmp_path), "--out", "r.csv", "--timeout", "-1"])
    assert cli.main(["exercise", "grade", "iwae_bound", str(tmp_path), "--out", str(tmp_path / "r.csv")]) == 2
    assert cli.main(["exercise", "grade", "iwae_bound", str(tmp_path / "none"), "--out",
                     str(tmp_path / "r.csv")]) == 2


# --------------------------------------------------------------------------- notebooks
def _nb(tmp_path, name, payload: str):
    path = tmp_path / name
    path.write_text(payload)
    return path


@pytest.mark.parametrize("payload, fragment", [
    ("{not json", "is not a readable notebook: invalid JSON"),
    ("[1, 2]", "is not a notebook: its JSON is a list, not an object"),
    ('{"cells": {"a": 1}}', "is not a notebook: 'cells' is a dict, not a list"),
    ('{"cells": [[]]}', "cell 1 is a list, not an object"),
    ('{"cells": [{"source": "x = 1"}]}', "cell 1 has no valid 'cell_type'"),
    ('{"cells": [{"cell_type": "markdown"}, {"cell_type": "code", "source": [1, 2]}]}',
     "cell 2 has a 'source' that is neither a string nor a list of strings"),
    ('{"cells": [{"cell_type": "code", "metadata": [], "source": ""}]}',
     "cell 1 has 'metadata' of type list"),
    ('{"cells": [{"cell_type": "code", "metadata": {"tags": "x"}, "source": ""}]}',
     "cell 1 has 'tags' of type str"),
    ("[" * 200_000 + "]" * 200_000, "nested too deeply"),
], ids=["json", "list", "cells", "cell", "cell_type", "source", "metadata", "tags", "deep"])
def test_a_malformed_notebook_is_one_line_naming_the_file_and_cell(tmp_path, capsys, payload, fragment):
    path = _nb(tmp_path, "answer.ipynb", payload)
    assert cli.main(["exercise", "check", "iwae_bound", str(path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    assert str(path) in err and fragment in err, err


def test_an_oversized_notebook_is_refused_before_it_is_read(tmp_path, capsys):
    path = tmp_path / "huge.ipynb"
    with open(path, "wb") as fh:
        fh.truncate(11 * 2**20)  # sparse: 11 MB on paper, nothing to read
    assert cli.main(["exercise", "check", "iwae_bound", str(path)]) == 1
    err = capsys.readouterr().err
    assert "huge.ipynb is 11.0 MB; a submission may be at most 10 MB" in err and err.count("\n") == 1


def test_a_valid_notebook_is_graded_in_a_child(tmp_path):
    cells = [{"cell_type": "markdown", "source": ["# my answer"], "metadata": {}},
             {"cell_type": "code", "source": CORRECT.splitlines(True), "metadata": {}, "outputs": []},
             {"cell_type": "code", "source": "import os\nos._exit(3)",
              "metadata": {"tags": ["vitoolkit-check"]}}]
    path = _nb(tmp_path, "answer.ipynb", json.dumps({"cells": cells, "nbformat": 4, "metadata": {}}))
    report = check_file("iwae_bound", path, seed=2)
    assert report.passed and report.isolated


# --------------------------------------------------------------------------- same verdicts in a child
@pytest.mark.slow
def test_the_mutation_table_gets_the_same_verdicts_in_a_child_process():
    """Every mutant and alternative of tests/test_exercises.py, graded in a child: same checks.

    About 15 s on an idle machine (each child imports the test module)."""
    import test_exercises as t

    for name, fn, _ in t.MUTANTS:
        here, there = t.check(name, fn, seed=t.SEED), check(name, fn, seed=t.SEED)
        assert there.isolated and here.checks == there.checks, fn.__name__
        assert here.diagnosis == there.diagnosis, fn.__name__
    for name, fn in t.ALTERNATIVES + t.FLOAT32:
        assert check(name, fn, seed=0).checks == t.check(name, fn, seed=0).checks, fn.__name__


@pytest.mark.slow
def test_grading_a_folder_returns_rows_in_name_order(tmp_path):
    for i in range(3):
        wrong = "def iwae_bound(lw):\n    return lw.mean(0)\n"
        (tmp_path / f"s{i}.py").write_text(CORRECT if i != 1 else wrong)
    rows = grade_folder("iwae_bound", tmp_path, seed=0, timeout=30)
    assert [r.student for r in rows] == ["s0", "s1", "s2"]
    assert [r.passed for r in rows] == [True, False, True]


@pytest.mark.slow
def test_a_script_calling_check_at_top_level_is_graded_once_in_a_child(tmp_path):
    """``python answer.py`` with an unguarded check(): the function uses a tensor global, so it is sent
    by running the script again in the child, where that check() does nothing (about 5 s)."""
    import subprocess

    script = tmp_path / "answer.py"
    script.write_text(textwrap.dedent("""
        import math
        import torch
        from vitoolkit.exercises import check

        ZERO = torch.zeros(())

        def iwae_bound(log_weights):
            return torch.logsumexp(log_weights, 0) - math.log(log_weights.shape[0]) + ZERO

        report = check("iwae_bound", iwae_bound, seed=3)
        print(report.summary(), report.isolated, repr(report.note))
    """))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=300,
                         cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.strip().splitlines()
    assert len(lines) == 1, lines
    assert "7 of 7 checks passed - all passed" in lines[0] and "True ''" in lines[0], lines


def _grade_in_a_pool_worker(_):
    from vitoolkit.exercises.vae import iwae_bound

    report = check("iwae_bound", iwae_bound, seed=0)
    return report.passed, report.isolated, report.note


@pytest.mark.slow
def test_inside_a_daemonic_pool_worker_check_grades_in_process_and_says_why():
    """multiprocessing forbids a Pool's worker to start processes (about 5 s: a spawned worker)."""
    import multiprocessing

    with multiprocessing.get_context("spawn").Pool(1) as pool:
        ((passed, isolated, note),) = pool.map(_grade_in_a_pool_worker, [0])
    assert passed and not isolated and "daemonic multiprocessing worker" in note
