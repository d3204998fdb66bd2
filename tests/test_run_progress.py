"""`vitoolkit run` shows progress: sections as reached, training epochs, one summary line per tutorial.

The script runner (cell by cell, tracebacks into the script's own lines), the plain
progress lines of a loop, the runner's view of them (plain in a log, a redrawn bar on
a terminal) and the whole command on a small tutorial that trains a VAE for a few epochs.
"""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from vitoolkit.course import cli
from vitoolkit.course.runlog import RunView, summary_line
from vitoolkit.course.script import headings, percent_cells
from vitoolkit.progress import PlainProgress, parse_line, progress_bar

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = '''# %% [markdown]
# # The lesson's title
# Question: does the runner show where it is?

# %%
import sys
from vitoolkit.progress import progress_bar

# %% [markdown]
# ## 1. First part
# Some text; a # that is no heading.

# %% tags=["hide-input"]
bar = progress_bar(range(4), enabled=True, total=4, desc="loop", unit="step")
for i in bar:
    bar.set_postfix({"i": str(i)})
bar.close()

# %% [markdown]
# ### 1.1 A subsection

# %%
def broken():
    raise ValueError("broken on purpose")

# %%
print("argv", sys.argv[1:], __name__)
broken()
'''


def _env():
    env = {k: v for k, v in os.environ.items() if k != "VITOOLKIT_PROGRESS"}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    return env


def test_percent_cells_keep_line_numbers_and_headings():
    cells = percent_cells(SCRIPT)
    assert [c.kind for c in cells] == ["markdown", "code", "markdown", "code", "markdown", "code", "code"]
    lines = SCRIPT.splitlines()
    for cell in cells:
        first = cell.text.splitlines()[0]
        assert lines[cell.line - 1] == first
    assert headings(cells[0].text) == []  # the title is the lesson's name, not a section
    assert headings(cells[2].text) == ["1. First part"]
    assert headings(cells[4].text) == ["  1.1 A subsection"]


def test_script_runner_prints_sections_and_progress_and_points_tracebacks_into_the_script(tmp_path):
    path = tmp_path / "lesson.py"
    path.write_text(SCRIPT)
    proc = subprocess.run([sys.executable, "-m", "vitoolkit.course.script", str(path), "--seed", "3"],
                          capture_output=True, text=True, env=_env(), cwd=tmp_path, timeout=120)
    assert proc.returncode == 1
    out = proc.stdout.splitlines()
    assert out[0] == "[section] 1. First part" and out[-2] == "[section]   1.1 A subsection"
    assert out[-1] == "argv ['--seed', '3'] __main__"
    # Not a terminal: one plain line per step, on stderr (tqdm's stream), with the postfix.
    steps = [parse_line(line) for line in proc.stderr.splitlines() if parse_line(line)]
    assert [(s["n"], s["total"], s["rest"].split(" (")[0]) for s in steps] == [
        (1, 4, ", i=0"), (2, 4, ", i=1"), (3, 4, ", i=2"), (4, 4, ", i=3")]
    # The traceback names the script's own lines: the call and the raise.
    source = SCRIPT.splitlines()
    call, raise_ = source.index("broken()") + 1, source.index('    raise ValueError("broken on purpose")') + 1
    assert f'File "{path}", line {call}, in <module>\n    broken()' in proc.stderr
    assert f'File "{path}", line {raise_}, in broken' in proc.stderr
    assert "script.py" not in proc.stderr and proc.stderr.rstrip().endswith("ValueError: broken on purpose")


def test_plain_progress_counts_a_step_left_by_break_and_resumes_from_initial():
    stream = io.StringIO()
    bar = PlainProgress(range(5, 10), total=10, initial=5, desc="train", unit="epoch", file=stream)
    for epoch in bar:
        bar.set_postfix({"loss": f"{epoch / 2:.2f}"})
        if epoch == 7:
            break
    bar.close()
    bar.close()  # a second close adds nothing
    lines = stream.getvalue().splitlines()
    assert [re.sub(r" \(\d+\.\d s\)$", "", line) for line in lines] == [
        "[progress] train: epoch 6/10, loss=2.50", "[progress] train: epoch 7/10, loss=3.00",
        "[progress] train: epoch 8/10, loss=3.50"]
    silent = progress_bar(range(3), enabled=False)
    assert list(silent) == [0, 1, 2]
    silent.set_postfix({"a": 1})
    silent.close()


def _feed(view, lines):
    for line in lines:
        view.feed(line + "\n")
    view.close()


LINES = ["# 01_x: Numbers in this run: quick setting, seed 0 (output: o)", "[section] 1. Data",
         *[f"[progress] train: epoch {n}/5, loss={10 - n}.00 ({n}.0 s)" for n in range(1, 6)],
         "[claim \u2713] it holds  [a=1]", "[claim \u2717] it fails  [b=2]", "[section] 2. Fit",
         *[f"[progress] train: epoch {n}/2 ({n}.0 s)" for n in range(1, 3)]]


def test_run_view_in_a_log_shows_sections_thinned_epochs_failures_and_with_verbose_every_line():
    plain = io.StringIO()
    _feed(RunView(stream=plain, tty=False, interval=1e9), LINES)
    assert plain.getvalue().splitlines() == [
        "    1. Data", "    [progress] train: epoch 1/5, loss=9.00 (1.0 s)",
        "    [progress] train: epoch 5/5, loss=5.00 (5.0 s)", "    [claim \u2717] it fails  [b=2]",
        "    2. Fit",
        "    [progress] train: epoch 1/2 (1.0 s)", "    [progress] train: epoch 2/2 (2.0 s)"]
    every = io.StringIO()
    _feed(RunView(stream=every, tty=False, interval=0.0, verbose=True), LINES)
    shown = every.getvalue().splitlines()
    assert shown == ["    " + line.replace("[section] ", "") for line in LINES]


def test_run_view_on_a_terminal_draws_a_bar_that_redraws():
    term = io.StringIO()
    _feed(RunView(stream=term, tty=True), LINES)
    text = term.getvalue()
    assert "    1. Data\n" in text and "    2. Fit\n" in text
    assert "\r" in text and "5/5" in text and "loss=5.00" in text
    assert "[progress]" not in text and "[claim \u2713]" not in text  # the bar, not the raw lines
    assert "    [claim \u2717] it fails  [b=2]\n" in text  # a failure shows as it happens
    assert "(5.0 s)" not in text  # the child's clock: the bar keeps its own


def test_summary_line_counts_claims_figures_and_time(tmp_path):
    path = tmp_path / "summary.json"
    claims = ([{"holds": True, "checked": True}] * 23 + [{"holds": False, "checked": False}] * 2)
    path.write_text(json.dumps({"claims": claims, "figures": ["a", "b", "c"], "interactive": ["d"],
                                "figure_problems": {"a": []}}))
    assert summary_line(path, 61.2) == "23 claims hold, 2 full-size claims not checked; 4 figures; 61 s"
    path.write_text(json.dumps({"claims": [{"holds": False, "checked": True}, {"holds": True}],
                                "figures": ["a"], "figure_problems": {"a": ["covered"]}}))
    assert summary_line(path, 1.4) == "1 claim does not hold, 1 claim holds; 1 figure, 1 figure problem; 1 s"
    assert summary_line(tmp_path / "missing.json", 1.0) == ""


TUTORIAL = '''# %% [markdown]
# # A tutorial that trains.
#
# Question: Does `vitoolkit run` show where it is?

# %%
import torch
from vitoolkit.course import Tutorial
from vitoolkit.vae import VAE, train
tut = Tutorial("01_trains")

# %% [markdown]
# ## 1. Training a small VAE

# %%
x = torch.rand(64, 6, generator=tut.generator())
history = train(VAE(6, 2, hidden_dims=(8,)), x, epochs=3, batch_size=32, seed=tut.seed,
                progress=tut.progress)

# %% tags=["hide-input"]
tut.record("elbo", history.train_elbo[-1])
tut.claim("three epochs ran", len(history.epoch) == 3, epochs=len(history.epoch))
tut.claim("a full-size sentence", False, full_only=True, gap=0.123456)

# %% [markdown]
# ## 2. The end

# %%
tut.finish()
'''


@pytest.fixture
def trains(tmp_path, monkeypatch):
    folder = tmp_path / "tutorials"
    folder.mkdir()
    (folder / "01_trains.py").write_text(TUTORIAL)
    (folder / "02_breaks.py").write_text(TUTORIAL.replace("01_trains", "02_breaks").replace(
        "history = train(", "history = undefined_name + train("))
    monkeypatch.setenv("VITOOLKIT_TUTORIALS", str(folder))
    monkeypatch.delenv("VITOOLKIT_PROGRESS", raising=False)
    return folder


@pytest.mark.slow
def test_vitoolkit_run_shows_sections_epochs_and_one_summary_line(trains, tmp_path, capsys):
    out = tmp_path / "out"
    assert cli.main(["run", "01_trains", "--quick", "--out", str(out)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "[1/1] 01_trains: running (quick) ..."
    assert lines[1] == "    1. Training a small VAE"
    epochs = [parse_line(line.strip()) for line in lines if parse_line(line.strip())]
    assert epochs[0]["n"] == 1 and epochs[-1]["n"] == epochs[-1]["total"] == 3
    assert "    2. The end" in lines
    assert re.fullmatch(r"\[1/1\] 01_trains: ok; 1 claim holds, 1 full-size claim not checked; "
                        rf"0 figures; \d+ s -> {re.escape(str(out / '01_trains'))}", lines[-2]), lines[-2]
    assert not any("[claim" in line or "elbo =" in line for line in lines)  # claims only with -v
    log = (out / "01_trains" / "log.txt").read_text()
    assert "[claim \u2713] three epochs ran  [epochs=3]" in log and "[progress] train: epoch 3/3" in log

    assert cli.main(["run", "01_trains", "--quick", "--out", str(out), "-v"]) == 0
    verbose = capsys.readouterr().out
    assert "    [claim \u2713] three epochs ran  [epochs=3]" in verbose
    assert "    [claim ~] a full-size sentence  [gap=0.1235]  (checked at full size)" in verbose
    assert re.search(r"    elbo = -?\d+(\.\d+)?\n", verbose)


@pytest.mark.slow
def test_vitoolkit_run_reports_a_failing_cell_with_the_scripts_line(trains, tmp_path, capsys):
    out = tmp_path / "out"
    assert cli.main(["run", "02_breaks", "--quick", "--out", str(out)]) == 1
    captured = capsys.readouterr()
    line = TUTORIAL.splitlines().index("history = train(VAE(6, 2, hidden_dims=(8,)), x, epochs=3, "
                                       "batch_size=32, seed=tut.seed,") + 1
    path = trains / "02_breaks.py"
    assert f'File "{path}", line {line}, in <module>' in captured.err
    assert "NameError: name 'undefined_name' is not defined" in captured.err
    assert "02_breaks: FAILED (exit code 1)" in captured.out


def test_book_reports_each_notebook_with_its_time_and_the_time_so_far(capsys):
    import time

    from vitoolkit.course.book import _progress_printer
    from vitoolkit.course.notebooks import Execution

    report = _progress_printer(time.perf_counter() - 100.0)
    report(Execution("05_vae", True, 0, Path("x"), True, "", "", 61.2, False), 1, 10)
    report(Execution("06_vae_beyond", True, 0, Path("y"), False, "ClaimFailed: s", "", 3.0, False), 2, 10)
    out = capsys.readouterr().out.splitlines()
    assert re.fullmatch(r"\[1/10\] 05_vae: executed in 61 s, ok \(10[01] s so far\)", out[0]), out
    failed = r"\[2/10\] 06_vae_beyond: executed in 3 s, FAILED: ClaimFailed: s \(10[01] s so far\)"
    assert re.fullmatch(failed, out[1]), out


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="a pseudo-terminal (Linux)")
def test_vitoolkit_run_on_a_terminal_draws_the_epochs_as_a_bar(trains, tmp_path):
    """The whole command in a pseudo-terminal of 100 columns, as a student's shell runs it."""
    import fcntl
    import pty
    import struct
    import termios

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 100, 0, 0))
    env = {**_env(), "VITOOLKIT_TUTORIALS": str(trains)}
    env.pop("COLUMNS", None)
    proc = subprocess.Popen([sys.executable, "-m", "vitoolkit", "run", "01_trains", "--quick",
                             "--out", str(tmp_path / "out")], stdout=slave, stderr=slave, env=env)
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:  # the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    assert proc.wait(timeout=300) == 0
    text = b"".join(chunks).decode()
    assert "    1. Training a small VAE\r\n" in text
    assert re.search(r"\r    train: +100%\|[^\r]*\| 3/3 \[", text), text[-2000:]
    assert "[progress]" not in text and "01_trains: ok; 1 claim holds" in text
