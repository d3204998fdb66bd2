"""The course book: tutorials as executed notebooks (MyST-NB), and the browser check.

Cost control: the real book is built once per session (quick setting, strict) from
the notebooks the ``tutorial_run`` fixture executed (the session's notebook cache),
so building it executes nothing; the small builds use a throwaway tutorial and a
minimal copy of the docs (no API pages).
"""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest
from _api_math import WITH_FORMULAS, has_mathjax_math, rendered_section

from vitoolkit.course import book
from vitoolkit.course.cli import TutorialInfo, find_tutorials

ROOT = Path(__file__).resolve().parents[1]
TUTORIALS = find_tutorials(ROOT / "tutorials")
BROWSER_SCRIPT = ROOT / "scripts" / "check_book_browser.py"
MISSING = book.missing_modules()
pytestmark = [
    pytest.mark.skipif(bool(MISSING), reason=f"the docs extra is not installed (missing: "
                       f"{', '.join(MISSING)}); pip install -e '.[docs]'"),
    # With pytest -n N --dist loadgroup, one worker builds the book and runs its checks.
    pytest.mark.xdist_group("book"),
]

THROWAWAY = '''\
# %% [markdown]
# # A throwaway lesson: squares
#
# Question: Does every saved figure reach the page as the notebook shows it?
#
# The header is a Markdown cell: $x^2$.

# %%
# a comment that must stay in the code
from vitoolkit.plotting import subplots
from vitoolkit.course import Tutorial

tut = Tutorial("98_throwaway")

# %% [markdown]
# ## Squares
#
# The square $x^2$ of $x$, and a display:
#
# $$\\sum_{i=1}^n i = \\frac{n (n + 1)}{2}$$

# %%
fig, ax = subplots(1, 1, size=3)
ax.plot([0, 1, 2], [0, 1, 4], label="x^2")
ax.set(title="Squares grow", xlabel="x", ylabel="x^2")
tut.savefig(fig, "squares")

# %% tags=["hide-input"]
tut.claim("four is more than one", 4 > 1, four=4, one=1)
tut.record("n_points", 3)

# %%
tut.finish()
'''


def _code_ast(source: str) -> str:
    """ast.dump of a module without its docstring: what actually executes."""
    body = ast.parse(source).body
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
        body = body[1:]
    return ast.dump(ast.Module(body=body, type_ignores=[]))


class _Page(HTMLParser):
    """Ids, images, links, claim callouts and text of one HTML page."""

    def __init__(self, path: Path):
        super().__init__()
        self.ids, self.images, self.links, self.claims, self.text = set(), [], [], [], []
        self.feed(path.read_text(encoding="utf-8"))

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if "id" in a:
            self.ids.add(a["id"])
        if tag == "img":
            self.images.append(a.get("src", ""))
        if tag == "a" and a.get("href"):
            self.links.append(a["href"])
        if tag == "div" and "vt-claim" in (a.get("class") or "").split():
            self.claims.append(a.get("class"))

    def handle_data(self, data):
        self.text.append(data)


def _text(html: str) -> str:
    """The text of an HTML fragment (tags dropped, entities decoded)."""
    import html as _html

    return _html.unescape(re.sub(r"<[^>]+>", "", html))


@pytest.fixture
def throwaway(tmp_path):
    folder = tmp_path / "tutorials"
    folder.mkdir()
    path = folder / "98_throwaway.py"
    path.write_text(THROWAWAY)
    docs = tmp_path / "docs"
    (docs / "_static").mkdir(parents=True)
    shutil.copy(ROOT / "docs" / "conf.py", docs / "conf.py")
    shutil.copy(ROOT / "docs" / "_static" / "coursebook.css", docs / "_static")
    (docs / "index.md").write_text("# Book\n\n```{toctree}\ntutorials/index\n```\n")
    return TutorialInfo("98_throwaway", path, "A throwaway lesson: squares", ""), docs


def test_a_tutorial_becomes_a_notebook_with_its_code_untouched(throwaway):
    import jupytext

    info, _ = throwaway
    nb = book.tutorial_notebook(info.path)
    first = nb.cells[0]
    assert first.cell_type == "markdown"
    assert first.source.startswith("# A throwaway lesson: squares\n")
    assert "Question: Does every saved figure" in first.source
    code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    assert "# a comment that must stay in the code" in code
    assert _code_ast(jupytext.writes(nb, fmt="py:percent")) == _code_ast(THROWAWAY)
    assert nb.metadata["kernelspec"]["name"] == "python3"
    with_links = book.tutorial_notebook(info.path, downloads=True)
    assert "{download}" in with_links.cells[1].source


@pytest.mark.parametrize("tutorial", TUTORIALS, ids=[t.name for t in TUTORIALS])
def test_every_tutorial_converts_without_losing_code(tutorial):
    import jupytext

    nb = book.tutorial_notebook(tutorial.path)
    assert nb.cells[0].source.startswith(f"# {tutorial.title}")
    source = tutorial.path.read_text(encoding="utf-8")
    assert _code_ast(jupytext.writes(nb, fmt="py:percent")) == _code_ast(source)


def test_throwaway_book_shows_figure_claim_and_downloads(throwaway, tmp_path, monkeypatch):
    info, docs = throwaway
    monkeypatch.setenv("VITOOLKIT_DOCS", str(docs))
    result = book.build_book(tmp_path / "site", quick=True, tutorials=[info], strict=True, jobs=1)
    assert result.pages == ["98_throwaway"] and not result.warnings
    page = _Page(result.out / "tutorials" / "98_throwaway.html")
    assert len(page.images) == 1 and (result.out / "tutorials" / page.images[0]).is_file()
    assert page.claims == ["vt-claim"]
    text = "".join(page.text)
    assert "four is more than one" in text and "[figure]" not in text and "[summary]" not in text
    downloads = [h for h in page.links if "_downloads" in h]
    assert {Path(h).suffix for h in downloads} == {".py", ".ipynb"}
    script = next(h for h in downloads if h.endswith(".py"))
    assert (result.out / "tutorials" / script).read_text() == THROWAWAY
    assert result.summaries["98_throwaway"]["figures"] == ["squares"]
    # The header's download menu links the same two files as the page's download cell.
    html = (result.out / "tutorials" / "98_throwaway.html").read_text(encoding="utf-8")
    menu = re.search(r'<div class="dropdown dropdown-download-buttons">.*?</ul>', html, re.S)
    assert menu is not None
    assert set(re.findall(r'href="([^"]+)"', menu.group(0))) == set(downloads)
    # The cell tagged hide-input is folded (its code inside a closed <details>); its
    # output, the claim callout, stays outside the fold. No other code is folded.
    folds = re.findall(r'<details class="[^"]*\bhide above-input\b[^"]*">.*?</details>', html, re.S)
    assert len(folds) == 1 and "open" not in folds[0].split(">", 1)[0]
    assert "tut.claim(" in _text(folds[0]) and "tut.record(" in _text(folds[0])
    outside = _text(html.replace(folds[0], ""))
    assert "tut.claim(" not in outside and "tut.savefig(" in outside
    assert "four is more than one" in outside and "Show the checking code" in _text(folds[0])
    # A quick build says so on every page; its banner is the theme's announcement.
    assert "Quick setting" in _text(html) and "Quick setting" in _text(
        (result.out / "index.html").read_text(encoding="utf-8"))


def test_a_failed_claim_fails_the_book_with_its_statement(throwaway, tmp_path, monkeypatch):
    info, docs = throwaway
    info.path.write_text(THROWAWAY.replace("4 > 1", "4 < 1"))
    monkeypatch.setenv("VITOOLKIT_DOCS", str(docs))
    with pytest.raises(book.BookError, match="four is more than one"):
        book.build_book(tmp_path / "site", quick=True, tutorials=[info], jobs=1)


def test_a_rebuild_with_unchanged_tutorials_executes_nothing(throwaway, tmp_path, monkeypatch, capsys):
    """The book reuses the notebook a `vitoolkit run --notebook` executed; a changed input does not."""
    from vitoolkit.course import notebooks
    from vitoolkit.course.cli import main

    info, docs = throwaway
    monkeypatch.setenv("VITOOLKIT_DOCS", str(docs))
    monkeypatch.setenv("VITOOLKIT_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("VITOOLKIT_TUTORIALS", str(info.path.parent))
    runs = tmp_path / "runs"
    assert main(["run", info.name, "--quick", "--notebook", "--out", str(runs)]) == 0
    assert "executing as a notebook" in capsys.readouterr().out
    assert json.loads((runs / info.name / "summary.json").read_text())["numbers"] == {"n_points": 3}
    assert main(["run", info.name, "--quick", "--notebook", "--out", str(runs)]) == 0
    assert "from the cache" in capsys.readouterr().out
    built_once = book.build_book(tmp_path / "a", quick=True, tutorials=[info], jobs=1)
    assert built_once.executed[info.name].cached
    assert built_once.summaries[info.name]["figures"] == ["squares"]
    assert len(_Page(built_once.out / "tutorials" / "98_throwaway.html").images) == 1
    # Another seed or setting, or a changed lesson, is another entry: executed again.
    key = notebooks._key(info.path, True, 0)
    assert key != notebooks._key(info.path, True, 1) and key != notebooks._key(info.path, False, 0)
    info.path.write_text(THROWAWAY.replace("[0, 1, 4]", "[0, 1, 4.0]"))
    assert notebooks._key(info.path, True, 0) != key


def test_a_book_without_running_shows_code_and_is_never_replaced_beside_a_users_file(
        throwaway, tmp_path, monkeypatch):
    from vitoolkit.course.cli import main

    info, docs = throwaway
    monkeypatch.setenv("VITOOLKIT_DOCS", str(docs))
    out = tmp_path / "site"
    result = book.build_book(out, run=False, tutorials=[info], jobs=1)
    page = _Page(result.out / "tutorials" / "98_throwaway.html")
    assert "tut.savefig" in "".join(page.text) and page.images == [] and page.claims == []
    book._check_out(out, "out")  # a book alone may be replaced
    (out / "my_notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="my_notes.txt"):
        book._check_out(out, "out")
    assert main(["book", "--out", str(out), "--no-run"]) == 2
    assert (out / "my_notes.txt").read_text() == "mine" and (out / "index.html").is_file()


def test_book_command_rejects_a_file_as_output(tmp_path, capsys):
    from vitoolkit.course.cli import main

    target = tmp_path / "a_file"
    target.write_text("x")
    assert main(["book", "--out", str(target), "--no-run"]) == 2
    assert "--out must be a directory" in capsys.readouterr().err


# -- the real book, built once ---------------------------------------------------------

@pytest.fixture(scope="module")
def built(tmp_path_factory, tutorial_run):
    # The notebooks the notebook tests check (executed in the background, two at a time).
    for t in TUTORIALS:
        tutorial_run(t.name)
    out = tmp_path_factory.mktemp("book") / "site"
    return book.build_book(out, quick=True, strict=True)


def test_the_book_renders_the_notebooks_the_tests_executed(built):
    assert all(e.cached for e in built.executed.values()), \
        [str(e) for e in built.executed.values() if not e.cached]


def test_book_builds_every_tutorial_strictly(built):
    assert built.pages == [t.name for t in TUTORIALS]
    assert built.warnings == []


def test_each_page_shows_every_figure_and_claim_of_its_notebook_run(built):
    for name in built.pages:
        summary = built.summaries[name]
        page = _Page(built.out / "tutorials" / f"{name}.html")
        assert len(page.images) >= len(summary["figures"]), name
        assert len(page.claims) == len(summary["claims"]) >= 1, name
        assert not any("failed" in c for c in page.claims), name
        text = "".join(page.text)
        assert "[figure]" not in text and "[summary]" not in text, name


def test_index_links_every_question_to_an_existing_section(built):
    index = _Page(built.out / "index.html")
    links = [h for h in index.links if h.startswith("tutorials/") and "#" in h]
    assert len(links) >= 20
    for href in links:
        page, anchor = href.split("#", 1)
        target = built.out / page
        assert target.is_file(), href
        assert anchor in _Page(target).ids, f"{href}: no section with that id"
    linked = {h.split("#")[0] for h in links}
    assert linked == {f"tutorials/{n}.html" for n in built.pages}


def test_the_exercises_page_lists_every_exercise_with_its_lesson(built):
    from vitoolkit.exercises import get_exercise, list_exercises

    page = (built.out / "exercises.html").read_text(encoding="utf-8")
    for name in list_exercises():
        assert f'<span class="pre">{name}</span>' in page, name
        assert f'href="tutorials/{get_exercise(name).lesson}.html"' in page, name
    index = (built.out / "index.html").read_text(encoding="utf-8")
    assert 'href="exercises.html"' in index  # in the sidebar and the contents


def test_math_is_served_locally(built):
    html = (built.out / "tutorials" / f"{built.pages[0]}.html").read_text(encoding="utf-8")
    scripts = re.findall(r'<script[^>]+src="([^"]+)"', html)
    assert not [s for s in scripts if s.startswith(("http:", "https:", "//"))], scripts
    assert any("mathjax" in s for s in scripts)
    assert (built.out / "_static" / "mathjax" / "tex-chtml.js").is_file()


def test_api_pages_render_the_docstring_formulas_as_mathjax_math(built):
    # Each object whose docstring states a formula shows MathJax markup in its own entry
    # of its API page (tests/_api_math.py lists them); a page without formulas shows none.
    missing = [name for name in WITH_FORMULAS if not has_mathjax_math(rendered_section(built.out, name))]
    assert missing == []
    assert not has_mathjax_math(rendered_section(built.out, "vitoolkit.datasets.digits.load_digits"))
    pages = sorted((built.out / "generated").glob("vitoolkit.*.html"))
    with_math = [p.name for p in pages if has_mathjax_math(p.read_text(encoding="utf-8"))]
    assert len(with_math) >= 30, (len(with_math), len(pages))


def _untagged_check_cells() -> dict[str, int]:
    """Per tutorial, its code cells holding tut.claim( or tut.record( without the hide-input tag."""
    out = {}
    for t in TUTORIALS:
        cells = [c for c in book.tutorial_notebook(t.path).cells if c.cell_type == "code"
                 and ("tut.claim(" in c.source or "tut.record(" in c.source)
                 and "hide-input" not in c.metadata.get("tags", [])]
        if cells:
            out[t.name] = len(cells)
    return out


@pytest.fixture(scope="module")
def browser_report(built, tmp_path_factory):
    """One headless-Chromium session over the real book, at 1280 px and 412 px.

    Screenshots of each tutorial page's top at both widths go to
    ``$VITOOLKIT_SCREENSHOTS`` (else a folder of the pytest basetemp) for review.
    """
    if not (shutil.which("chromium") and shutil.which("chromedriver")):
        if os.environ.get("VITOOLKIT_REQUIRE_BROWSER"):
            pytest.fail("VITOOLKIT_REQUIRE_BROWSER is set but chromium/chromedriver are missing")
        pytest.skip("Chromium and chromedriver are not installed (apt-get install chromium "
                    "chromium-driver; .ci/run installs them)")
    shots = os.environ.get("VITOOLKIT_SCREENSHOTS") or str(tmp_path_factory.mktemp("screenshots"))
    proc = subprocess.run([sys.executable, str(BROWSER_SCRIPT), str(built.out), "--screenshots", shots],
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode in (0, 1), proc.stdout[-4000:] + proc.stderr[-2000:]
    report = json.loads((Path(shots) / "report.json").read_text())
    report["stdout"] = proc.stdout
    return report


def _problems(report: dict, visible_checks: bool) -> dict[str, list[str]]:
    from importlib import import_module

    sys.path.insert(0, str(BROWSER_SCRIPT.parent))
    try:
        prefix = import_module(BROWSER_SCRIPT.stem).CHECKS_VISIBLE
    finally:
        sys.path.remove(str(BROWSER_SCRIPT.parent))
    found = {}
    for page, result in report["pages"].items():
        kept = [p for p in result["problems"] if p.startswith(prefix) == visible_checks]
        if kept:
            found[page] = kept
    return found


def test_browser_check_passes_on_every_page(built, browser_report):
    """Every page loads clean; every tutorial page, at 1280 px and at 412 px, lists every
    lesson in its sidebar, does not overflow, typesets its headings' math, and its
    interactive figures keep their axis ranges while their slider is driven."""
    report = browser_report
    assert not report["server_errors"], report["server_errors"]
    assert _problems(report, visible_checks=False) == {}, report["stdout"][-4000:]
    for name in built.pages:
        for key in (f"tutorials/{name}.html", f"tutorials/{name}.html@412"):
            assert key in report["pages"], key
            info = report["pages"][key]["info"]
            assert info["scrollWidth"] <= info["width"], key
            assert {u.rsplit("/", 1)[-1] for u in info["sidebarLinks"]} >= {
                f"{n}.html" for n in built.pages}, key
    # The dial (tutorial 03) and the explorer (01) were driven through their steps.
    runs = [r for name in built.pages
            for r in report["pages"][f"tutorials/{name}.html"]["info"].get("slider_runs", [])]
    assert len(runs) >= 2 and all(len(set(r["active"])) >= min(r["steps"], 3) for r in runs), runs
    assert all(len(r["y_ranges"]) == 1 for r in runs), runs
    assert len(report["pages"]) >= 2 * len(built.pages) + 2


def test_no_checking_code_is_visible_by_default(browser_report):
    """No tut.claim( / tut.record( code shows before the reader unfolds it (issue 21)."""
    assert _untagged_check_cells() == {}, "checking cells without the hide-input tag"
    assert _problems(browser_report, visible_checks=True) == {}


def test_api_pages_with_formulas_show_them_typeset(browser_report):
    """The API pages whose docstrings carry :math: render it (MathJax output checked above)."""
    pages = browser_report["api_pages_with_math"]
    assert pages, "docstrings use :math: but no API page of the book has a formula"
    for page in pages:
        info = browser_report["pages"][page]["info"]
        assert info["math"] >= 1 and not info["unrendered"] and not info["texErrors"], page
