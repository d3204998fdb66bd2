"""The course book: notebook conversion, the gallery build and the browser check.

Cost control (the suite must stay within ~10 minutes on 2 cores): the real book
is built once per module, in the quick setting, by the ``book`` fixture; every
tutorial is converted to a notebook but only the first is executed (set
``VITOOLKIT_BOOK_EXECUTE_ALL=1`` to execute every notebook); a second, tiny
build through the ``vitoolkit book`` command uses a throwaway tutorial.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

from vitoolkit import book
from vitoolkit.cli import find_tutorials

ROOT = Path(__file__).resolve().parents[1]
TUTORIALS = find_tutorials(ROOT / "tutorials")
TUTORIAL_IDS = [t.name for t in TUTORIALS]
BROWSER_SCRIPT = ROOT / "scripts" / "check_book_browser.py"

MISSING = book.missing_modules()
needs_docs = pytest.mark.skipif(
    bool(MISSING), reason=f"the docs extra is not installed (missing: {', '.join(MISSING)}); "
    "pip install -e '.[docs]'")
_NB_MISSING = [m for m in ("jupytext", "nbformat", "nbclient", "ipykernel")
               if importlib.util.find_spec(m) is None]
needs_notebook = pytest.mark.skipif(
    bool(_NB_MISSING), reason=f"notebook execution needs {', '.join(_NB_MISSING)} "
    "(the docs extra); pip install -e '.[docs]'")
needs_tutorials = pytest.mark.skipif(not TUTORIALS, reason="no tutorials/NN_*.py yet")


def _chromium():
    spec = importlib.util.spec_from_file_location("check_book_browser", BROWSER_SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.find_chromium()


def _code_ast(source: str) -> str:
    """ast.dump of a module without its docstring: what actually executes."""
    body = ast.parse(source).body
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
        body = body[1:]
    return ast.dump(ast.Module(body=body, type_ignores=[]))


def _assert_valid_rst(text: str, what: str) -> None:
    """Parse reST with docutils, failing on any warning (an independent parser)."""
    from docutils.core import publish_doctree
    from docutils.utils import SystemMessage

    try:
        publish_doctree(text, settings_overrides={"report_level": 2, "halt_level": 2,
                                                  "warning_stream": False})
    except SystemMessage as err:
        raise AssertionError(f"{what} is not valid reStructuredText: {err}\n{text}") from err


# -- conversion of the sources (no build) ---------------------------------------------

THROWAWAY = '''\
"""A throwaway lesson: p(z|x) and a closed figure.

Question: Does every saved figure reach the page, even when the script closes it?

The docstring's body is Markdown too: $x^2$.
"""

# %%
# a comment that must stay in the code
import matplotlib.pyplot as plt

from vitoolkit.plotting import subplots
from vitoolkit.tutorial import Tutorial

tut = Tutorial("98_throwaway")

# %% [markdown]
# ## Squares
#
# The square $x^2$ of $x$, and a display:
#
# $$\\sum_{i=1}^n i = \\frac{n (n + 1)}{2}$$
#
# - `code`, **bold** and *italic*

# %%
fig, ax = subplots(1, 1, size=3)
ax.plot([0, 1, 2], [0, 1, 4], label="x^2")
ax.set(title="Squares grow", xlabel="x", ylabel="x^2")
tut.savefig(fig, "squares")
plt.close(fig)
extra, _ = plt.subplots()  # drawn but never saved: not part of the lesson
tut.record("n_points", 3)

# %%
tut.finish()
'''


@pytest.fixture
def throwaway(tmp_path):
    folder = tmp_path / "tutorials"
    folder.mkdir()
    path = folder / "98_throwaway.py"
    path.write_text(THROWAWAY, encoding="utf-8")
    return path


@needs_docs
def test_gallery_script_keeps_code_and_leading_comments(throwaway):
    from sphinx_gallery.py_source_parser import split_code_and_text_blocks

    staged = throwaway.parent / "staged.py"
    staged.write_text(book.gallery_script(throwaway, note="built quick"), encoding="utf-8")
    assert _code_ast(staged.read_text()) == _code_ast(THROWAWAY)
    _conf, blocks = split_code_and_text_blocks(staged)
    kinds = [b.type for b in blocks]
    assert kinds == ["text", "code", "text", "code", "code"]
    # sphinx-gallery reads comments right after "# %%" as text; ours stay code.
    assert "# a comment that must stay in the code" in blocks[1].content
    header, cell = blocks[0].content, blocks[2].content
    # The title stays as written (thumbnails show its source); the body is converted.
    assert header.splitlines()[:2] == ["A throwaway lesson: p(z|x) and a closed figure.", "=" * 47]
    assert ":math:`x^2`" in header and "**Question:**" in header and ".. note::" in header
    assert ":math:`x^2`" in cell and ".. math::" in cell and "``code``" in cell
    for block in (header, cell):
        _assert_valid_rst(block, "a converted block")


def test_markdown_to_rst_returns_one_fragment_per_input():
    if importlib.util.find_spec("pypandoc") is None:
        pytest.skip("pandoc comes with pypandoc-binary (the docs extra)")
    texts = ["# Title", "a $b$ c", "", "$$\\int f$$", "- one\n- two"]
    out = book.markdown_to_rst(texts)
    assert len(out) == len(texts)
    assert out[1].strip() == "a :math:`b` c"
    assert ".. math::" in out[3] and "\\int f" in out[3]
    assert out[2].strip() == ""
    with pytest.raises(ValueError, match="reserved"):
        book.markdown_to_rst([f"x {book._BREAK} y"])


def test_split_warnings_keeps_multiline_entries_together():
    log = ("/x/a.py:docstring of a.f:1: ERROR: Malformed table.\n"
           "=====  =====\n"
           "a      b\n"
           "/x/b.rst:3: WARNING: undefined label\n"
           "WARNING: a warning without location\n")
    entries = book.split_warnings(log)
    assert len(entries) == 3
    assert entries[0].endswith("a      b") and entries[1].startswith("/x/b.rst:3")


def test_reset_torch_restores_the_defaults_between_tutorials():
    import torch

    old, threads = torch.get_default_dtype(), torch.get_num_threads()
    try:
        book.reset_torch({}, None)  # the first call records the thread count to restore
        torch.set_default_dtype(torch.float64)
        torch.set_grad_enabled(False)
        torch.set_num_threads(threads + 1)
        book.reset_torch({}, None)
        assert torch.get_default_dtype() == torch.float32 and torch.is_grad_enabled()
        assert torch.get_num_threads() == book._TORCH_THREADS[0]
    finally:
        torch.set_default_dtype(old)
        torch.set_grad_enabled(True)
        torch.set_num_threads(threads)


def test_split_cells_rejects_a_script_without_docstring(tmp_path):
    path = tmp_path / "99_bad.py"
    path.write_text("# %%\nx = 1\n")
    with pytest.raises(ValueError, match="docstring"):
        book.split_cells(path.read_text())


@needs_docs
@needs_tutorials
@pytest.mark.parametrize("tutorial", TUTORIALS, ids=TUTORIAL_IDS)
def test_tutorial_converts_for_the_gallery_and_to_a_notebook(tutorial, tmp_path):
    import jupytext
    import nbformat

    source = tutorial.path.read_text(encoding="utf-8")
    # Our cell split agrees with jupytext's reading of the percent format.
    _doc, cells = book.split_cells(source)
    reference = jupytext.reads(source, fmt="py:percent").cells
    ours_md = [c.source.strip() for c in cells if c.kind == "markdown"]
    theirs_md = [c.source.strip() for c in reference if c.cell_type == "markdown"]
    assert ours_md == theirs_md
    assert len(theirs_md) == len(re.findall(r"^# %% \[markdown\]", source, flags=re.M))

    # The gallery example executes exactly the tutorial's code; its text is valid reST.
    staged = book.gallery_script(tutorial.path)
    assert _code_ast(staged) == _code_ast(source)
    from sphinx_gallery.py_source_parser import split_code_and_text_blocks

    path = tmp_path / tutorial.path.name
    path.write_text(staged, encoding="utf-8")
    _conf, blocks = split_code_and_text_blocks(path)
    texts = [b.content for b in blocks if b.type == "text"]
    assert len(texts) == 1 + len(theirs_md)
    for i, text in enumerate(texts):
        _assert_valid_rst(text, f"text block {i} of {tutorial.name}")
    dollars = sum("$" in md for md in theirs_md)
    assert sum(":math:" in t or ".. math::" in t for t in texts[1:]) >= dollars

    # The notebook: valid nbformat 4, title cell first, same code as the script.
    notebook = book.tutorial_notebook(tutorial.path)
    nbformat.validate(notebook)
    assert notebook.cells[0].cell_type == "markdown"
    assert notebook.cells[0].source.startswith(f"# {tutorial.title}")
    code = "\n".join(c.source for c in notebook.cells if c.cell_type == "code")
    assert _code_ast(code) == _code_ast(source)
    assert [c.source.strip() for c in notebook.cells[1:] if c.cell_type == "markdown"] == ours_md


def _execute_ids():
    if os.environ.get("VITOOLKIT_BOOK_EXECUTE_ALL", "").lower() in {"1", "true", "yes"}:
        return TUTORIALS
    return TUTORIALS[:1]


@needs_notebook
@needs_tutorials
@pytest.mark.parametrize("tutorial", _execute_ids(), ids=[t.name for t in _execute_ids()])
def test_converted_notebook_executes_in_quick_mode(tutorial, tmp_path, monkeypatch):
    import nbformat
    from nbclient import NotebookClient

    out = tmp_path / "out"
    monkeypatch.setenv("VITOOLKIT_QUICK", "1")
    monkeypatch.setenv("VITOOLKIT_OUT", str(out))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.setenv("JUPYTER_PLATFORM_DIRS", "1")
    notebook = book.tutorial_notebook(tutorial.path)
    nbformat.write(notebook, tmp_path / f"{tutorial.name}.ipynb")
    client = NotebookClient(notebook, timeout=300, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}})
    client.execute()
    errors = [o for c in notebook.cells if c.cell_type == "code"
              for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors
    summary = json.loads((out / "summary.json").read_text())
    assert summary["quick"] is True and summary["tutorial"] == tutorial.name
    for name in summary["figures"]:
        assert (out / f"{name}.png").stat().st_size > 0


# -- the real book, built once -------------------------------------------------------------


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    if MISSING:
        pytest.skip(f"the docs extra is not installed (missing: {', '.join(MISSING)})")
    if not TUTORIALS:
        pytest.skip("no tutorials/NN_*.py yet")
    base = tmp_path_factory.mktemp("book")
    return book.build_book(base / "html", quick=True, workdir=base / "work",
                           tutorials=ROOT / "tutorials", docs=ROOT / "docs")


class _Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.images: list[str] = []
        self.links: list[str] = []
        self.scripts: list[str] = []
        self.classes: list[str] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "img":
            self.images.append(attrs.get("src", ""))
            self.images += [s.strip().split()[0] for s in (attrs.get("srcset") or "").split(",")
                            if s.strip()]
            self.classes.append(attrs.get("class", ""))
        elif tag == "a" and attrs.get("href"):
            self.links.append(attrs["href"])
        elif tag == "script" and attrs.get("src"):
            self.scripts.append(attrs["src"])


def _parse(page: Path) -> _Links:
    parser = _Links()
    parser.feed(page.read_text(encoding="utf-8"))
    return parser


def _local(page: Path, ref: str) -> Path | None:
    parts = urlsplit(ref)
    if parts.scheme or parts.netloc or not parts.path:
        return None
    return (page.parent / unquote(parts.path)).resolve()


def _docstring_warning(line: str) -> bool:
    return "docstring of" in line or "/generated/" in line


def test_book_builds_a_page_per_tutorial_with_downloads(built):
    assert built.quick and set(built.tutorial_pages) == set(TUTORIAL_IDS)
    for t in TUTORIALS:
        page = built.tutorial_pages[t.name]
        html = page.read_text(encoding="utf-8")
        assert "VITOOLKIT_QUICK=1" in html  # the page says it was built quick
        downloads = {Path(urlsplit(h).path).name: _local(page, h)
                     for h in _parse(page).links if "_downloads/" in h}
        script, notebook = downloads[f"{t.name}.py"], downloads[f"{t.name}.ipynb"]
        assert script.read_bytes() == t.path.read_bytes()  # the author's script, untouched
        import nbformat

        got = nbformat.read(notebook, as_version=4)
        want = book.tutorial_notebook(t.path)
        assert [(c.cell_type, c.source) for c in got.cells] == [
            (c.cell_type, c.source) for c in want.cells]
        with zipfile.ZipFile(downloads[f"{t.name}.zip"]) as zf:
            assert zf.read(t.path.name) == t.path.read_bytes()


def test_pages_reference_only_existing_files(built):
    missing = []
    for page in built.pages:
        parsed = _parse(page)
        for ref in parsed.images + parsed.links + parsed.scripts:
            target = _local(page, ref)
            if target is not None and not target.exists():
                missing.append(f"{page.relative_to(built.out)} -> {ref}")
        # MathJax and every other script come from the book itself: it works offline.
        assert not [s for s in parsed.scripts if urlsplit(s).scheme], page
    assert not missing, "\n".join(missing)
    assert (built.out / "_static" / "tex-svg-full.js").stat().st_size > 1_000_000


def test_tutorial_pages_show_every_figure_and_number_the_tutorial_saved(built):
    results = built.workdir / "source" / "_gallery_src" / "results"
    for t in TUTORIALS:
        summary = json.loads((results / t.name / "summary.json").read_text())
        assert summary["quick"] is True
        parsed = _parse(built.tutorial_pages[t.name])
        shown = [c for c in parsed.classes if "sphx-glr-single-img" in c]
        assert len(shown) == len(summary["figures"]), t.name
        text = built.tutorial_pages[t.name].read_text(encoding="utf-8")
        for name in summary["numbers"]:
            assert f"{name} = " in text, f"{t.name}: number {name} is not printed on its page"


def test_index_maps_questions_to_the_pages_that_answer_them(built):
    index = _parse(built.out / "index.html")
    gallery = _parse(built.out / book.GALLERY_DIR / "index.html")
    for t in TUTORIALS:
        target = (built.out / book.GALLERY_DIR / f"{t.name}.html").resolve()
        assert target in {_local(built.out / book.GALLERY_DIR / "index.html", h)
                          for h in gallery.links}, t.name
        if f"answered-by:: {t.name}" in (ROOT / "docs" / "index.rst").read_text():
            assert target in {_local(built.out / "index.html", h) for h in index.links}, t.name


def test_gallery_builds_without_warnings(built):
    own = [w for w in built.warnings if not _docstring_warning(w)]
    assert not own, "\n".join(own)


def test_api_reference_renders_every_docstring_without_warnings(built):
    import pkgutil

    import vitoolkit

    for info in pkgutil.walk_packages(vitoolkit.__path__, "vitoolkit."):
        if info.name.rsplit(".", 1)[-1].startswith("_"):
            continue
        assert (built.out / "generated" / f"{info.name}.html").is_file(), info.name
    docstrings = [w for w in built.warnings if _docstring_warning(w)]
    assert not docstrings, ("docstrings that are not valid reStructuredText (use :math: "
                            "for formulas):\n" + "\n".join(docstrings))


def test_browser_check_passes_on_every_page(built, tmp_path):
    chromium = _chromium()
    if chromium is None:
        pytest.skip("Chromium not found: apt-get install chromium (Debian) to run the check")
    shots = tmp_path / "shots"
    proc = subprocess.run([sys.executable, str(BROWSER_SCRIPT), str(built.out),
                           "--screenshots", str(shots), "--chromium", chromium],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    report = json.loads((shots / "report.json").read_text())
    assert len(report) == len(built.pages)
    assert all(not r["errors"] for r in report)
    for r in report:
        assert Path(r["screenshot"]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # A tutorial whose Markdown has $...$ math shows it typeset (the check above found
    # every math element rendered, none left as TeX source).
    by_page = {r["page"]: r for r in report}
    for t in TUTORIALS:
        _doc, cells = book.split_cells(t.path.read_text(encoding="utf-8"))
        if any("$" in c.source for c in cells if c.kind == "markdown"):
            assert by_page[f"{book.GALLERY_DIR}/{t.name}.html"]["math"] > 0, t.name
    assert by_page["index.html"]["math"] > 0


# -- the command, on a throwaway tutorial --------------------------------------------------


def _docs_without_api(tmp_path) -> Path:
    """The real docs with a one-line API page (the book fixture builds the API reference)."""
    docs = tmp_path / "docs"
    shutil.copytree(ROOT / "docs", docs, ignore=shutil.ignore_patterns(
        "_build", "_gallery_src", book.GALLERY_DIR, "generated"))
    (docs / "api.rst").write_text("API reference\n=============\n\nBuilt by the real book.\n")
    return docs


@needs_docs
def test_book_command_builds_a_throwaway_tutorial(throwaway, tmp_path):
    out = tmp_path / "site"
    docs = _docs_without_api(tmp_path)
    env = {**os.environ, "VITOOLKIT_TUTORIALS": str(throwaway.parent), "VITOOLKIT_DOCS": str(docs)}
    proc = subprocess.run([sys.executable, "-m", "vitoolkit", "book", "--out", str(out),
                           "--quick"], env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    page = out / book.GALLERY_DIR / "98_throwaway.html"
    parsed = _parse(page)
    # The saved (then closed) figure is shown once; the unsaved one is not.
    assert sum("sphx-glr-single-img" in c for c in parsed.classes) == 1
    assert all(_local(page, src).is_file() for src in parsed.images)
    html = page.read_text(encoding="utf-8")
    assert "n_points = 3" in html and 'class="math' in html
    # The index still builds when the course's own tutorials are absent.
    assert "not part of this build yet" in (out / "index.html").read_text(encoding="utf-8")


@needs_docs
def test_book_without_running_shows_code_but_no_output(throwaway, tmp_path):
    result = book.build_book(tmp_path / "site", tutorials=throwaway.parent,
                             docs=_docs_without_api(tmp_path), run_tutorials=False, strict=True)
    html = result.tutorial_pages["98_throwaway"].read_text(encoding="utf-8")
    assert "savefig" in html and "n_points = 3" not in html
    assert "sphx-glr-single-img" not in html and "quick setting" not in html


def test_book_command_reports_missing_tutorials(tmp_path):
    if MISSING:
        pytest.skip(f"the docs extra is not installed (missing: {', '.join(MISSING)})")
    empty = tmp_path / "none"
    empty.mkdir()
    with pytest.raises(book.BookError, match="none found"):
        book.build_book(tmp_path / "out", tutorials=empty)
    with pytest.raises(book.BookError, match="conf.py"):
        book.build_book(tmp_path / "out", tutorials=ROOT / "tutorials", docs=empty)


def test_book_command_exits_non_zero_with_a_clear_message(tmp_path, monkeypatch, capsys):
    if MISSING:
        pytest.skip(f"the docs extra is not installed (missing: {', '.join(MISSING)})")
    from vitoolkit.cli import main

    empty = tmp_path / "none"
    empty.mkdir()
    monkeypatch.setenv("VITOOLKIT_TUTORIALS", str(empty))
    assert main(["book", "--out", str(tmp_path / "site"), "--quick"]) == 1
    assert "none found in" in capsys.readouterr().err


def test_docs_do_not_read_the_shared_folder():
    for path in (ROOT / "docs").rglob("*"):
        if path.is_file() and path.suffix in {".py", ".rst", ".txt"}:
            assert "../shared" not in path.read_text(encoding="utf-8"), path
