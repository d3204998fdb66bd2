"""Notebooks show their figures (issue 10, section 4).

Each tutorial is executed as a Jupyter notebook (the book's jupytext percent
conversion, a plain ``python3`` kernel with Jupyter's default inline backend,
``nbclient``) in the quick setting: no cell errors, at least as many inline
images (``image/png`` outputs) as figures it saves, no ``[figure] path``
bookkeeping lines in the cells' output, no echoed return values, the line stating the
setting and seed, and the backend still inline at the end.
The execution is the seed-0 quick run of the ``tutorial_run`` fixture, whose
``summary.json`` ``test_tutorials.py`` checks and whose notebook the book test
renders, so nothing runs twice.

Importing vitoolkit (every subpackage) never changes matplotlib's backend: checked
in a fresh interpreter whose default backend is not Agg.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import textwrap

import pytest

from vitoolkit.course.cli import find_tutorials, tutorials_dir

NAMES = [t.name for t in find_tutorials(tutorials_dir())]
NOTEBOOK_MISSING = [m for m in ("jupytext", "nbformat", "nbclient", "ipykernel")
                    if importlib.util.find_spec(m) is None]

needs_notebook = pytest.mark.skipif(
    bool(NOTEBOOK_MISSING), reason=f"notebook execution needs {', '.join(NOTEBOOK_MISSING)} "
    "(the docs extra); pip install -e '.[docs]'")


def _outputs(nb):
    return [o for cell in nb.cells if cell.cell_type == "code" for o in cell.get("outputs", [])]


@needs_notebook
@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.tutorial_run(n, seed=0, quick=True))
                                  for n in NAMES])
def test_notebook_runs_and_shows_every_figure_inline(tutorial_run, name):
    run = tutorial_run(name, seed=0, quick=True)
    assert run.via == "notebook" and run.notebook is not None, run
    outputs = _outputs(run.notebook)
    errors = [f"{o.get('ename')}: {o.get('evalue')}" for o in outputs if o.get("output_type") == "error"]
    assert not errors, f"{run}: cell errors {errors}\n{run.tail()}"
    assert run.ok, run.tail()
    figures = run.summary["figures"]
    images = sum("image/png" in o.get("data", {}) for o in outputs
                 if o.get("output_type") in ("display_data", "execute_result"))
    assert images >= len(figures), f"{run}: {images} inline images for {len(figures)} saved figures"
    bookkeeping = [line for line in run.output.splitlines() if line.startswith("[figure] ")]
    assert not bookkeeping, f"{run}: bookkeeping lines in the notebook: {bookkeeping[:3]}"
    # No cell echoes a return value (a PosixPath from tut.finish(), a list of paths, a Legend).
    echoed = [o.get("data", {}).get("text/plain", "")[:80] for o in outputs
              if o.get("output_type") == "execute_result"]
    assert not echoed, f"{run}: cells echo their last value: {echoed}"
    # The page states the setting and seed its numbers come from; NaN never shows as a string.
    setting = f"Numbers on this page: {'quick' if run.quick else 'full'} setting, seed {run.seed}"
    assert any(o.get("data", {}).get("text/plain") == setting for o in outputs), f"{run}: no '{setting}'"
    assert "'nan'" not in run.output, f"{run}: a NaN printed as the string 'nan'"
    backend = run.notebook.metadata["vitoolkit"]["backend_after_run"]
    assert "inline" in backend, f"{run}: backend after the lesson: {backend}"


@pytest.mark.parametrize("default", ["svg", "module://matplotlib_inline.backend_inline"])
def test_importing_vitoolkit_never_changes_the_backend(tmp_path, default):
    """Import every vitoolkit module (and apply the theme) under a non-Agg default backend."""
    if default.startswith("module://") and NOTEBOOK_MISSING:
        pytest.skip("matplotlib_inline comes with ipykernel (the docs extra)")
    (tmp_path / "matplotlibrc").write_text(f"backend: {default}\n")
    script = textwrap.dedent("""
        import importlib, pkgutil
        import matplotlib
        before = matplotlib.rcParams["backend"]
        import vitoolkit
        names = [m.name for m in pkgutil.walk_packages(vitoolkit.__path__, "vitoolkit.")
                 if not m.name.endswith("__main__")]
        for name in names:
            importlib.import_module(name)
        after_import = matplotlib.rcParams["backend"]
        from vitoolkit import plotting
        plotting.set_theme()
        after_theme = matplotlib.rcParams["backend"]
        print(len(names), before, after_import, after_theme, matplotlib.get_backend(), sep="|")
    """)
    env = {k: v for k, v in os.environ.items() if k not in ("MPLBACKEND", "MPLCONFIGDIR")}
    env["MPLCONFIGDIR"] = str(tmp_path / "mplconfig")
    proc = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    count, before, after_import, after_theme, resolved = proc.stdout.strip().splitlines()[-1].split("|")
    assert int(count) >= 10
    assert before == default, "the test's matplotlibrc was not read"
    assert after_import == after_theme == resolved == default


@pytest.mark.skipif(importlib.util.find_spec("jupytext") is None,
                    reason="needs jupytext (the notebook extra)")
@pytest.mark.parametrize("name", NAMES)
def test_jupytext_opens_each_tutorial_with_its_title_as_the_first_markdown_cell(name):
    """What JupyterLab shows when the script is opened as a notebook (jupytext's own reader)."""
    import jupytext

    path = tutorials_dir() / f"{name}.py"
    nb = jupytext.read(path)
    first = nb.cells[0]
    assert first.cell_type == "markdown", f"{name}: the first cell is {first.cell_type}"
    lines = first.source.splitlines()
    assert lines[0].startswith("# ") and len(lines[0]) > 4, f"{name}: no title line: {lines[:1]}"
    assert any(line.startswith("Question:") for line in lines), f"{name}: no 'Question:' line"
    assert "\\n" not in first.source and '"""' not in first.source
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code and "Tutorial(" in "".join(c.source for c in code[:2]), \
        f"{name}: Tutorial(...) is not in the first code cells"
