"""The tutorial runtime's claims: printed, recorded, and failing the run when false."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from vitoolkit.course.tutorial import ClaimFailed, Tutorial


def _tut(tmp_path, *extra):
    return Tutorial("t", ["--out", str(tmp_path), *extra])


def test_claims_are_printed_recorded_and_returned(tmp_path, capsys):
    tut = _tut(tmp_path)
    assert tut.claim("one is less than two", 1.0 < 2.0, a=1.0, b=torch.tensor(2.0)) is True
    assert tut.claim("a tensor condition", torch.tensor([3.0]) > 2, v=np.arange(3)) is True
    tut.finish()
    out = capsys.readouterr().out
    assert "[claim \u2713] one is less than two  [a=1, b=2]" in out
    claims = json.loads((tmp_path / "summary.json").read_text())["claims"]
    assert [c["statement"] for c in claims] == ["one is less than two", "a tensor condition"]
    assert claims[0] == {"statement": "one is less than two", "holds": True, "checked": True,
                         "full_only": False, "setting": "full", "evidence": {"a": 1.0, "b": 2.0}}
    assert claims[1]["evidence"] == {"v": [0, 1, 2]}


def test_a_false_claim_fails_finish_with_the_statement_after_writing_the_summary(tmp_path, capsys):
    tut = _tut(tmp_path)
    assert tut.claim("two is less than one", 2 < 1, a=2) is False
    tut.claim("this one holds", True)
    with pytest.raises(ClaimFailed, match="two is less than one"):
        tut.finish()
    assert "[claim \u2717] two is less than one" in capsys.readouterr().out
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert [c["holds"] for c in summary["claims"]] == [False, True]


def test_full_only_claims_are_not_checked_in_the_quick_setting(tmp_path):
    quick = _tut(tmp_path / "q", "--quick")
    quick.claim("only at full size", False, full_only=True)
    quick.finish()  # does not raise
    claim = json.loads((tmp_path / "q" / "summary.json").read_text())["claims"][0]
    assert claim["checked"] is False and claim["setting"] == "quick"
    full = _tut(tmp_path / "f")
    full.claim("only at full size", False, full_only=True)
    with pytest.raises(ClaimFailed):
        full.finish()


@pytest.mark.parametrize("holds", [1.0, "yes", None, torch.tensor([True, False]), np.array([1, 2])])
def test_holds_must_be_a_single_boolean(tmp_path, holds):
    tut = _tut(tmp_path)
    with pytest.raises(TypeError, match="holds must be a bool"):
        tut.claim("s", holds)


def test_statement_must_be_text(tmp_path):
    with pytest.raises(TypeError, match="statement"):
        _tut(tmp_path).claim("", True)


def test_a_script_with_a_false_claim_exits_non_zero_naming_it(tmp_path):
    script = tmp_path / "99_false.py"
    script.write_text(
        "from vitoolkit.course.tutorial import Tutorial\n"
        "tut = Tutorial('99_false')\n"
        "tut.claim('the moon is made of cheese', False, cheese=0.0)\n"
        "tut.finish()\n"
    )
    proc = subprocess.run([sys.executable, str(script), "--out", str(tmp_path / "o")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    assert "the moon is made of cheese" in proc.stderr
    assert (tmp_path / "o" / "summary.json").is_file()


def test_saved_figures_are_checked_and_their_problems_recorded_without_failing_the_run(tmp_path, capsys):
    from vitoolkit.plotting import subplots

    tut = _tut(tmp_path, "--formats", "png,svg")
    fig, ax = subplots()
    ax.plot([0.0, 1.0], [0.0, 1.0], label="diagonal")
    ax.legend(loc="center")
    ax.set_title("covered")
    tut.savefig(fig, "bad")
    fig, ax = subplots()
    ax.plot([0.0, 1.0], [0.0, 1.0])
    ax.set_title("clean")
    tut.savefig(fig, "good")
    tut.finish()  # figure problems do not fail the run
    out = capsys.readouterr().out
    assert '[figure \u26a0] bad: axes "covered": its legend covers plotted data (line "diagonal")' in out
    assert "1 figure problem(s)" in out
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["figures"] == ["bad", "good"]
    assert summary["figure_problems"]["good"] == []
    assert len(summary["figure_problems"]["bad"]) == 1
    assert (tmp_path / "bad.png").is_file() and (tmp_path / "bad.svg").is_file()


def test_in_a_notebook_claims_are_callouts_and_tutorial_calls_do_not_echo(tmp_path):
    """One kernel: the setting line, callouts (held and full-size), rounded records, no echoes."""
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    cells = [
        "%env VITOOLKIT_QUICK=1",
        f"from vitoolkit.course import Tutorial\ntut = Tutorial('nb', ['--out', {str(tmp_path)!r}])",
        "tut.claim('one is less than two', 1 < 2, a=1, b=0.123456789)",
        "tut.claim('only at full size', False, full_only=True, gap=float('nan'))",
        "tut.record('v', [3.14159265, float('nan')])",
        "import matplotlib.pyplot as plt\nfig, ax = plt.subplots()\nax.plot([0, 1])\ntut.savefig(fig, 'f')",
        "tut.finish()",
        "1 + 1",
    ]
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    env_backend = os.environ.pop("MPLBACKEND", None)
    try:
        nbclient.NotebookClient(nb, timeout=120, resources={"metadata": {"path": str(tmp_path)}}).execute()
    finally:
        if env_backend is not None:
            os.environ["MPLBACKEND"] = env_backend
    _env, setting, held, unchecked, record, figure, finish, plain = (c.outputs for c in nb.cells)
    # The page states the setting and seed of its numbers (set here by %env, as a student would).
    assert [o.output_type for o in setting] == ["display_data"]
    assert setting[0].data["text/plain"] == "Numbers on this page: quick setting, seed 0"
    assert 'class="vt-setting"' in setting[0].data["text/html"]
    assert [o.output_type for o in held] == ["display_data"]
    assert 'class="vt-claim"' in held[0].data["text/html"]
    assert "one is less than two" in held[0].data["text/plain"]
    assert "a = 1, b = 0.1235" in held[0].data["text/html"]
    # A full-size claim in the quick setting is neutral: never marked as failed.
    html = unchecked[0].data["text/html"]
    assert 'class="vt-claim vt-claim-unchecked"' in html and "Checked at full size" in html
    assert "failed" not in html and "does not hold" not in html and "gap = nan" in html
    assert "(checked at full size)" in unchecked[0].data["text/plain"]
    assert [o.output_type for o in record] == ["stream"]  # printed once, not echoed
    assert record[0].text == "v = [3.142, nan]\n"
    assert [o.output_type for o in figure] == ["display_data"]  # the image, not the list of paths
    assert finish == []  # no PosixPath('.../summary.json')
    assert plain[0].output_type == "execute_result" and plain[0].data["text/plain"] == "2"
