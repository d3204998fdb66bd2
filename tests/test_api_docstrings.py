"""The API reference's docstrings: valid reST after napoleon, formulas written as math.

The API pages are Sphinx's autodoc of every public module, with napoleon turning the
numpydoc sections into reST. A docstring that is not valid reST is a warning there,
and ``vitoolkit book --strict`` stops on it; a formula written as an ASCII literal
block renders as code, not as math. This file checks both without running Sphinx:
each public docstring goes through napoleon's ``NumpyDocstring`` and then docutils'
parser (the parser Sphinx runs), with Sphinx's cross-reference roles and directives
registered as stand-ins, and every warning docutils reports fails the test. The
rendered pages themselves (MathJax markup in the HTML) are checked on the built book
in ``tests/test_book.py``.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import io
import pkgutil
import re
import textwrap
from pathlib import Path

import pytest

import vitoolkit

napoleon = pytest.importorskip("sphinx.ext.napoleon", reason="the docs extra is not installed")
from docutils import nodes  # noqa: E402  (docutils comes with Sphinx)
from docutils.frontend import get_default_settings  # noqa: E402
from docutils.parsers.rst import Directive, Parser, directives, roles  # noqa: E402
from docutils.utils import new_document  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]

from _api_math import WITH_FORMULAS  # noqa: E402  (shared with tests/test_book.py)


def _public_modules() -> list[str]:
    names = ["vitoolkit"]
    for info in pkgutil.walk_packages(vitoolkit.__path__, "vitoolkit."):
        if not any(part.startswith("_") for part in info.name.split(".")):
            names.append(info.name)
    return sorted(names)


def _members(module):
    """What autodoc's ``automodule :members:`` documents: ``__all__``, else public names defined here."""
    names = getattr(module, "__all__", None)
    if names is None:
        names = [n for n, v in vars(module).items() if not n.startswith("_")
                 and getattr(v, "__module__", None) == module.__name__]
    for name in names:
        obj = getattr(module, name, None)
        if inspect.isclass(obj) or inspect.isfunction(obj):
            yield f"{module.__name__}.{name}", obj
            if inspect.isclass(obj):
                for attr, value in vars(obj).items():
                    if attr.startswith("_") and attr != "__call__":
                        continue
                    func = value.fget if isinstance(value, property) else value
                    if isinstance(func, (staticmethod, classmethod)):
                        func = func.__func__
                    if inspect.isfunction(func) and func.__doc__:
                        yield f"{module.__name__}.{name}.{attr}", func


def _module_of_entry(name: str) -> str:
    """The public module whose page documents ``name`` (module name or module.member[.attr])."""
    return MODULE_OF[name]


def _docstrings() -> dict[str, tuple[str, str]]:
    """Qualified name -> (napoleon ``what``, docstring) of every documented public object."""
    out = {}
    for modname in _public_modules():
        module = importlib.import_module(modname)
        if module.__doc__:
            out[modname] = ("module", module.__doc__)
            MODULE_OF[modname] = modname
        for qualname, obj in _members(module):
            doc = inspect.getdoc(obj)
            if doc and qualname not in out:
                what = "class" if inspect.isclass(obj) else "function"
                out[qualname] = (what, doc)
                MODULE_OF[qualname] = modname
    return out


MODULE_OF: dict[str, str] = {}
DOCSTRINGS = _docstrings()


# -- docutils with Sphinx's roles and directives as stand-ins ------------------------

def _xref_role(name, rawtext, text, lineno, inliner, options=None, content=None):
    return [nodes.literal(rawtext, text)], []


_SPHINX_ROLES = ["func", "class", "meth", "mod", "attr", "data", "obj", "exc", "ref", "doc",
                 "term", "const", "any", "envvar", "file", "program", "option", "numref", "eq"]
for _role in _SPHINX_ROLES:
    roles.register_local_role(_role, _xref_role)
    roles.register_local_role(f"py:{_role}", _xref_role)


class _Passthrough(Directive):
    """A Sphinx-only directive (``seealso``, ``versionadded``...): its body is parsed as reST."""

    has_content = True
    optional_arguments = 1
    final_argument_whitespace = True
    option_spec = {"noindex": directives.flag, "no-index": directives.flag,
                   "type": directives.unchanged, "value": directives.unchanged}

    def run(self):
        node = nodes.container()
        self.state.nested_parse(self.content, self.content_offset, node)
        return [node]


for _directive in ("seealso", "versionadded", "versionchanged", "deprecated", "attribute",
                   "method", "function", "autosummary", "plot", "code-block"):
    directives.register_directive(_directive, _Passthrough)


# docs/conf.py's napoleon settings.
_NAPOLEON = napoleon.Config(napoleon_use_rtype=False, napoleon_use_ivar=True,
                            napoleon_google_docstring=False, napoleon_numpy_docstring=True)


def _napoleon_rest(what: str, name: str, doc: str) -> str:
    return str(napoleon.docstring.NumpyDocstring(doc, _NAPOLEON, what=what, name=name))


_RST = Parser()
_SETTINGS = get_default_settings(Parser)
_SETTINGS.report_level, _SETTINGS.halt_level = 2, 5
_SETTINGS.file_insertion_enabled = _SETTINGS.raw_enabled = False


def _parse(text: str):
    """The doctree and the messages (level >= WARNING) docutils reports for ``text``."""
    _SETTINGS.warning_stream = io.StringIO()
    tree = new_document("<docstring>", _SETTINGS)
    _RST.parse(text, tree)
    problems = [m.astext() for m in tree.findall(nodes.system_message) if m["level"] >= 2]
    return tree, problems


def _math_problems(tree) -> list[str]:
    """LaTeX mistakes a reST parser cannot see: unbalanced braces, control characters,
    a ``\\left`` without ``\\right``."""
    out = []
    for node in tree.findall(lambda n: isinstance(n, (nodes.math, nodes.math_block))):
        tex = node.astext()
        depth = 0
        for ch in re.sub(r"\\[{}]", "", tex):
            depth += (ch == "{") - (ch == "}")
            if depth < 0:
                break
        if depth != 0:
            out.append(f"unbalanced braces in {tex!r}")
        if re.search(r"[\x00-\x08\x0b-\x1f]", tex):
            out.append(f"a control character in {tex!r} (write the docstring as r\"\"\"...\"\"\")")
        if len(re.findall(r"\\left\b", tex)) != len(re.findall(r"\\right\b", tex)):
            out.append(f"\\left and \\right do not pair in {tex!r}")
    return out


def _non_raw_math_docstrings(source: str) -> list[str]:
    """Names of the docstrings with math and a backslash that are not raw strings.

    In a plain triple-quoted string Python reads ``\\tau`` as a tab and ``\\frac`` as a
    form feed before the math ever reaches Sphinx; a raw string (``r`` prefix) keeps it.
    """
    tree = ast.parse(source)
    out = []
    lines = source.splitlines()
    for node in ast.walk(tree):
        if not isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            continue
        first = node.body[0] if node.body else None
        if not (isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant)
                and isinstance(first.value.value, str) and "math:" in first.value.value):
            continue
        segment = "\n".join(lines[first.lineno - 1:first.end_lineno])[first.col_offset:]
        if "\\" in segment and not segment.lower().startswith(("r", "br", "rb")):
            out.append(getattr(node, "name", "<module>"))
    return out


# -- the tests ------------------------------------------------------------------------

def test_the_stand_in_parser_catches_broken_rest_and_math():
    # An independent check that the checks can fail: known-bad inputs are reported.
    assert _parse("A *broken emphasis and :func:`fine`.\n")[1]
    assert _parse("Formula::\n\nno blank line\n  indented oddly\n")[1]
    tree, problems = _parse(r"The mean :math:`\frac{1}{n} \sum_i x_i`." + "\n")
    assert problems == [] and _math_problems(tree) == []
    assert _math_problems(_parse(r":math:`\frac{1}{n`" + "\n")[0])
    assert _non_raw_math_docstrings('def f():\n    """:math:`\\tau`"""\n') == ["f"]
    assert _non_raw_math_docstrings('def f():\n    r""":math:`\\tau`"""\n') == []


def test_every_public_module_is_found():
    assert len(DOCSTRINGS) > 300
    for name in ["vitoolkit.cavi.blei", "vitoolkit.divergences.alpha.alpha_divergence",
                 "vitoolkit.vae.training.train", "vitoolkit.vae.model.VAE.elbo"]:
        assert name in DOCSTRINGS, name


def test_docstrings_with_math_are_raw_strings():
    sources = {p: p.read_text(encoding="utf-8") for p in sorted((ROOT / "vitoolkit").rglob("*.py"))}
    bad = {str(p.relative_to(ROOT)): names for p, text in sources.items()
           if "math:" in text and (names := _non_raw_math_docstrings(text))}
    assert bad == {}


@pytest.mark.parametrize("module", _public_modules())
def test_public_docstrings_are_valid_rest_after_napoleon(module):
    # Every documented object of the module's API page (its docstring, its members'):
    # the failures are listed together.
    failures = {}
    for name, (what, doc) in sorted(DOCSTRINGS.items()):
        if name != module and not (name.startswith(module + ".") and _module_of_entry(name) == module):
            continue
        tree, problems = _parse(_napoleon_rest(what, name, doc))
        problems += _math_problems(tree)
        if problems:
            failures[name] = problems
    assert failures == {}


@pytest.mark.parametrize("name", WITH_FORMULAS)
def test_formulas_are_written_as_math(name):
    assert name in DOCSTRINGS, f"{name} is not a documented public object"
    what, doc = DOCSTRINGS[name]
    tree, _ = _parse(_napoleon_rest(what, name, doc))
    assert any(True for _ in tree.findall(lambda n: isinstance(n, (nodes.math, nodes.math_block)))), \
        f"{name}: no :math: role or math directive"
    # No formula left as an ASCII literal block beside the math (a code example parses).
    blocks = [b.astext() for b in tree.findall(nodes.literal_block)]
    assert [b for b in blocks if not _is_python(b)] == [], f"{name}: a formula is still a literal block"


def _is_python(block: str) -> bool:
    try:
        ast.parse(textwrap.dedent(block).replace(">>> ", "").replace("... ", ""))
    except SyntaxError:
        return False
    return True


def test_a_formula_literal_block_is_told_from_a_code_example():
    assert _is_python("d = paired_difference(a, b)\ntut.claim('x', d.exceeds(3))")
    assert not _is_python("KL = (m^2 + s^2 - 1)/2 - log s")
    assert not _is_python("ECE = sum_b (n_b / n) |frac_positive_b - mean_prediction_b|.")


def _api_index_entries() -> tuple[list[str], list[str]]:
    """(modules with pages, objects in the summary tables) listed in ``docs/api.rst``."""
    text = (ROOT / "docs" / "api.rst").read_text(encoding="utf-8")
    modules, objects = [], []
    for block in re.split(r"\n(?=\.\. autosummary::)", text)[1:]:
        lines = block.splitlines()[1:]
        options = [ln for ln in lines if ln.strip().startswith(":")]
        names = [ln.strip().lstrip("~") for ln in lines if ln.startswith("   ") and ln.strip()
                 and not ln.strip().startswith(":")]
        (modules if any(":toctree:" in o for o in options) else objects).extend(names)
    return modules, objects


def test_api_index_groups_every_public_module_and_its_entries_import():
    modules, objects = _api_index_entries()
    assert len(modules) >= 10 and len(objects) >= 30
    top = sorted(m for m in _public_modules() if m.count(".") == 1)
    assert sorted(set(top) - set(modules)) == [], "public modules missing from docs/api.rst"
    assert len(modules) == len(set(modules))
    for name in objects:
        module, _, attr = name.rpartition(".")
        obj = getattr(importlib.import_module(module), attr, None)
        assert obj is not None, f"docs/api.rst lists {name}, which does not exist"
        summary = (inspect.getdoc(obj) or "").split("\n\n")[0]
        assert 10 < len(summary) and summary.rstrip().endswith("."), \
            f"{name}: its first docstring line is the index's one-line summary: {summary!r}"


def test_no_public_module_is_shadowed_by_a_name_in_its_package():
    # autosummary finds a module through its package's attribute: a function of the same
    # name (``divergences.entropy`` once) would take the module's API page.
    shadowed = []
    for name in _public_modules()[1:]:
        parent, _, last = name.rpartition(".")
        if not inspect.ismodule(getattr(importlib.import_module(parent), last, None)):
            shadowed.append(name)
    assert shadowed == []
