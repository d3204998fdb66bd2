"""Shared test set-up and the policy for randomized tests.

Policy for randomized (Monte Carlo) tests
-----------------------------------------
- Every random draw comes from a local generator with a fixed seed
  (``torch.Generator().manual_seed(...)`` or ``numpy.random.default_rng(...)``);
  nothing seeds or reads the global random state, so each test is
  deterministic and order-independent.
- A Monte Carlo estimate is compared with its exact value through its standard
  error: ``|estimate - exact| <= Z * stderr`` (``assert_mc_close`` in
  ``tests/_stats.py``), with ``Z = 4.5`` unless a test states otherwise. Under
  the normal approximation a correct estimator fails such a check with
  probability 2 * (1 - Phi(4.5)) = 6.8e-6 per check, so across the few hundred
  such checks in the suite the chance that *some* seed would fail a correct
  implementation is below 1e-3. Because seeds are fixed, a check that passes
  once passes always; the bound is the false-failure rate over fresh seeds.
- The number of draws is chosen so that Z * stderr is small compared with the
  errors the check must catch (a wrong constant, a missing factor of 2).
- Variance checks compare a sample variance with the closed form through the
  standard error of the sample variance, sqrt((m4 - s^4) / n), estimated from
  the same draws.
- Hypothesis property tests use ``derandomize=True`` profiles (see below), so
  CI runs are reproducible too.

Other set-up: warnings are errors (pyproject ``filterwarnings = error``);
the classical algorithms run in float64, which the ``float64`` fixture makes
the torch default for a test that needs it; matplotlib uses the Agg backend.

Tutorial runs, shared by every test (``tutorial_run``)
------------------------------------------------------
Running a tutorial is the suite's main cost, so each (tutorial, seed, setting)
runs once per session and every test that needs it reads the same result::

    def test_my_numbers(tutorial_run):
        run = tutorial_run("02_cavi_gmm")              # seed 0, quick
        run = tutorial_run("02_cavi_gmm", seed=1)      # a subprocess run
        run = tutorial_run("02_cavi_gmm", quick=False) # full size
        run.summary["numbers"]["elbo_final"]         # summary.json, parsed
        run.out / "elbo_trace.png"                   # the output folder
        run.output                                   # what it printed (and any traceback)
        assert run.ok, run.tail()                    # exit code 0 / no notebook cell error

The seed-0 quick run executes the tutorial as a Jupyter notebook (jupytext
percent format, a plain ``python3`` kernel, ``nbclient``) with
``VITOOLKIT_QUICK=1``, so one run serves both the notebook tests (``run.notebook``,
the executed notebook) and the numbers; other runs are ``python tutorials/NN.py
--quick --seed S --out DIR`` subprocesses, as ``vitoolkit run`` does. Without
the notebook packages every run is a subprocess. A run whose claims fail still
returns (``run.ok`` is False, ``summary.json`` is there). Results live on disk
under a file lock, so ``pytest -n N`` (pytest-xdist) workers share them too.

Mark a test with the run it reads, ``@pytest.mark.tutorial_run("02_cavi_gmm", seed=1,
quick=True)``, and the fixture starts that run in the background (two at a time,
``VITOOLKIT_TEST_JOBS``) as soon as the session's first tutorial run is requested,
in the order the tests come; unmarked calls simply run on demand. Topic tests that
read a lesson's numbers use ``quick_run(name)`` (the seed-0 quick run, asserted to
have succeeded); claims and figures are checked once, in ``test_tutorials.py``.

The notebook executions go through :mod:`vitoolkit.course.notebooks` with a cache
private to the session (``VITOOLKIT_CACHE`` below), so the course-book test builds
the book from the very notebooks these tests executed, without running them again.

Test tiers (as SciPy and scikit-learn split theirs)
---------------------------------------------------
- The default run, ``python -m pytest``: every unit and property test, each tutorial
  once (quick, seed 0, as the notebook the book shows), the book built from those
  notebooks and its browser check. Tests marked ``slow`` are deselected.
- The slow tier, ``VITOOLKIT_TEST_SLOW=1 python -m pytest -m slow``: the full-size
  runs, the quick runs at seeds 1 and 2, the longer searches. ``-m slow`` alone also
  selects it. ``.ci/run`` runs both tiers.
- ``VITOOLKIT_TEST_SEEDS`` chooses the quick-setting seeds every tutorial is checked
  at ("0-2", "0,5,7", as scikit-learn's ``SKLEARN_TESTS_GLOBAL_RANDOM_SEED``); unset,
  seed 0 is in the default tier and seeds 1 and 2 in the slow tier; set, its seeds
  run in the default tier.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import matplotlib
import pytest
import torch
from hypothesis import HealthCheck, settings

matplotlib.use("Agg")
os.environ.setdefault("MPLBACKEND", "Agg")

_TRUE = {"1", "true", "yes", "on"}


def slow_tier(config=None) -> bool:
    """Whether tests marked ``slow`` run: ``VITOOLKIT_TEST_SLOW=1``, or ``-m`` naming ``slow``."""
    if os.environ.get("VITOOLKIT_TEST_SLOW", "").strip().lower() in _TRUE:
        return True
    return config is not None and "slow" in (config.getoption("markexpr", "") or "")


def _stage(item) -> int:
    """Tests that read tutorial runs go after the others, the book's last (see below)."""
    names = getattr(item, "fixturenames", ())
    if "built" in names:
        return 2
    return 1 if ("tutorial_run" in names or "quick_run" in names) else 0


def pytest_collection_modifyitems(config, items):
    if not slow_tier(config):
        slow = [item for item in items if item.get_closest_marker("slow") is not None]
        if slow:
            config.hook.pytest_deselected(items=slow)
            items[:] = [item for item in items if item.get_closest_marker("slow") is None]
            config._vitoolkit_slow_deselected = len(slow)
    # The tutorial runs start in the background with the session (_start_tutorial_runs);
    # the tests that wait for them come last, so the unit tests run meanwhile.
    items.sort(key=_stage)


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    n = getattr(config, "_vitoolkit_slow_deselected", 0)
    if n:
        terminalreporter.write_line(
            f"{n} slow tests not run (the slow tier: VITOOLKIT_TEST_SLOW=1 python -m pytest -m slow)")


settings.register_profile(
    "ci",
    derandomize=True,
    deadline=None,
    max_examples=40,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

#: The z-score of the standard-error tolerance used by Monte Carlo checks.
Z = 4.5


@pytest.fixture(autouse=True, scope="session")
def _notebook_cache(tmp_path_factory):
    """Executed notebooks cached per session, never in the user's cache.

    A session executes what it checks, once: the notebook tests and the book read the
    same executions. pytest-xdist workers of one session share the folder.
    """
    old = os.environ.get("VITOOLKIT_CACHE")
    os.environ["VITOOLKIT_CACHE"] = str(_shared_root(tmp_path_factory).parent / "notebook-cache")
    yield
    if old is None:
        os.environ.pop("VITOOLKIT_CACHE", None)
    else:
        os.environ["VITOOLKIT_CACHE"] = old


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread():
    """One intra-op thread for the whole suite.

    The suite runs many tiny tensor operations (small networks, batched
    estimators); a second thread only adds hand-off latency, and on a shared
    2-core machine it made small networks train up to 20x slower.
    """
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture
def float64():
    """Make float64 the torch default for one test, restoring the previous default."""
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        yield torch.float64
    finally:
        torch.set_default_dtype(old)


@pytest.fixture
def gen():
    """A fresh, fixed-seed local torch generator."""
    return torch.Generator().manual_seed(12345)


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    import matplotlib.pyplot as plt

    plt.close("all")


# -- tutorial runs ----------------------------------------------------------------------------

NOTEBOOK_MODULES = ("jupytext", "nbformat", "nbclient", "ipykernel")
#: Missing modules that notebook execution needs (empty when notebooks can run).
NOTEBOOK_MISSING = [m for m in NOTEBOOK_MODULES if importlib.util.find_spec(m) is None]
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
#: Seconds one tutorial may take (a full run on a loaded 2-core machine included).
TUTORIAL_TIMEOUT = 1500


@dataclass
class TutorialRun:
    """One run of a tutorial: where its outputs are and how it went."""

    name: str
    seed: int
    quick: bool
    out: Path
    returncode: int
    output: str
    seconds: float
    via: str  # "notebook" or "script"
    notebook: Any = field(default=None, repr=False)

    @property
    def ok(self) -> bool:
        """Exit code 0 (script) or no cell error (notebook)."""
        return self.returncode == 0

    @property
    def summary(self) -> dict:
        """``summary.json`` of the run (an assertion error naming the run when it is missing)."""
        path = self.out / "summary.json"
        assert path.is_file(), f"{self} wrote no summary.json:\n{self.tail()}"
        return json.loads(path.read_text(encoding="utf-8"))

    def tail(self, n: int = 4000) -> str:
        """The end of what the run printed, for assertion messages."""
        return self.output[-n:]

    def __str__(self) -> str:
        setting = "quick" if self.quick else "full"
        return f"{self.name} (seed {self.seed}, {setting}, as a {self.via})"


def _run_script(path: Path, seed: int, quick: bool, out: Path, running: set | None = None) -> tuple[int, str]:
    cmd = [sys.executable, str(path), "--out", str(out), "--seed", str(seed)] + (["--quick"] if quick else [])
    env = {**os.environ, "MPLBACKEND": "Agg", "PYTHONUNBUFFERED": "1"}
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env) as proc:
        if running is not None:
            running.add(proc)
        try:
            output, _ = proc.communicate(timeout=TUTORIAL_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            output, _ = proc.communicate()
            output += f"\n[test] killed after {TUTORIAL_TIMEOUT} s"
        finally:
            if running is not None:
                running.discard(proc)
    return proc.returncode, output


def _run_notebook(path: Path, seed: int, quick: bool, cache: Path):
    """Execute the tutorial as the book's notebook (or take the session's cached execution).

    :func:`vitoolkit.course.notebooks.execute`: a fresh ``python3`` kernel with Jupyter's
    inline backend, the settings through ``VITOOLKIT_*`` variables. The session's cache
    (``VITOOLKIT_CACHE``, set below) is the one the book test builds from.
    """
    from vitoolkit.course.notebooks import execute

    run = execute(path, quick=quick, seed=seed, timeout=TUTORIAL_TIMEOUT, root=cache)
    return (0 if run.ok else 1), run.output, run.out


def notebook_text(nb) -> str:
    """Everything the notebook's cells printed, and their tracebacks (ANSI colours removed)."""
    from vitoolkit.course.notebooks import output_text

    return output_text(nb)


def _shared_root(tmp_path_factory) -> Path:
    """A folder shared by all pytest-xdist workers of this session (the base temp dir otherwise)."""
    base = tmp_path_factory.getbasetemp()
    root = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    path = root / "tutorial_runs"
    path.mkdir(parents=True, exist_ok=True)
    return path


def pytest_configure(config):
    # pytest-xdist's marker, declared here too so that --strict-markers passes without it.
    config.addinivalue_line("markers", "xdist_group(name): tests that pytest -n N --dist loadgroup "
                            "keeps on one worker (the course book)")
    config.addinivalue_line(
        "markers", "tutorial_run(name, seed=0, quick=True): the test reads this run of a tutorial "
        "(the tutorial_run fixture starts the script runs a session needs in the background)")


class _Runs:
    """Each (tutorial, seed, setting) once per session, on disk under a file lock.

    ``prefetch`` starts runs in a pool of ``jobs`` threads (each waits on one tutorial
    subprocess or notebook kernel), in the order the session's tests need them, so
    that on a 2-core machine two tutorials run at a time while the other tests go on.
    """

    def __init__(self, root: Path, jobs: int):
        from vitoolkit.course.cli import find_tutorials

        # Found here, in the main thread: ast.parse is not thread-safe in CPython 3.11
        # ("AST constructor recursion depth mismatch").
        self.paths = {t.name: t.path for t in find_tutorials()}
        self.root = root
        # Fixed now: a test may point VITOOLKIT_CACHE elsewhere while runs go on in the background.
        self.notebook_cache = Path(os.environ["VITOOLKIT_CACHE"])
        self.jobs = jobs
        self.pool = None
        self.futures: dict[tuple, Any] = {}
        self.cache: dict[tuple, TutorialRun] = {}
        self.running: set = set()

    @staticmethod
    def via(key: tuple) -> str:
        _name, seed, quick = key
        return "notebook" if (seed == 0 and quick and not NOTEBOOK_MISSING) else "script"

    def _produce(self, key: tuple) -> dict:
        from filelock import FileLock

        name, seed, quick = key
        path = self.paths[name]
        out = self.root / f"{name}-seed{seed}-{'quick' if quick else 'full'}"
        record = self.root / f"{out.name}.run.json"
        with FileLock(str(out) + ".lock"):
            if record.is_file():
                return json.loads(record.read_text(encoding="utf-8"))
            out.mkdir(parents=True, exist_ok=True)
            start = time.perf_counter()
            if self.via(key) == "notebook":
                code, output, out = _run_notebook(path, seed, quick, self.notebook_cache)
            else:
                code, output = _run_script(path, seed, quick, out, self.running)
            meta = {"returncode": code, "output": output, "via": self.via(key),
                    "seconds": round(time.perf_counter() - start, 2), "out": str(out)}
            record.write_text(json.dumps(meta), encoding="utf-8")
            return meta

    def prefetch(self, keys) -> None:
        if self.jobs < 2:
            return
        from concurrent.futures import ThreadPoolExecutor

        if self.pool is None:
            self.pool = ThreadPoolExecutor(self.jobs, thread_name_prefix="tutorial-run")
        for key in keys:
            known = key[0] in self.paths
            if known and key not in self.futures and key not in self.cache:
                self.futures[key] = self.pool.submit(self._produce, key)

    def get(self, name: str, seed: int = 0, quick: bool = True) -> TutorialRun:
        key = (name, int(seed), bool(quick))
        if name not in self.paths:
            raise ValueError(f"unknown tutorial {name!r}; found: {', '.join(self.paths)}")
        if key not in self.cache:
            future = self.futures.get(key)
            meta = future.result() if future is not None else self._produce(key)
            notebook = None
            if meta["via"] == "notebook":
                import nbformat

                notebook = nbformat.read(Path(meta["out"]) / f"{name}.ipynb", as_version=4)
            self.cache[key] = TutorialRun(name, key[1], key[2], Path(meta["out"]), meta["returncode"],
                                          meta["output"], meta["seconds"], meta["via"], notebook)
        return self.cache[key]

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=False, cancel_futures=True)
        for proc in list(self.running):
            proc.kill()


def _wanted_runs(items) -> list[tuple]:
    """The (name, seed, quick) runs that the selected tests declare with the ``tutorial_run`` marker."""
    keys = []
    for item in items:
        for mark in item.iter_markers("tutorial_run"):
            args = dict(zip(("name", "seed", "quick"), mark.args, strict=False)) | mark.kwargs
            key = (args["name"], int(args.get("seed", 0)), bool(args.get("quick", True)))
            if key not in keys:
                keys.append(key)
    return keys


@pytest.fixture(autouse=True, scope="session")
def _start_tutorial_runs(request):
    """Start the selected tests' tutorial runs in the background as the session begins."""
    if _wanted_runs(request.session.items):
        request.getfixturevalue("tutorial_run")


@pytest.fixture(scope="session")
def quick_run(tutorial_run):
    """``quick_run(name) -> TutorialRun``: the seed-0 quick run, asserted to have succeeded."""

    def get(name: str) -> TutorialRun:
        run = tutorial_run(name)
        assert run.ok, f"{run} failed:\n{run.tail()}"
        return run

    return get


@pytest.fixture(scope="session")
def tutorial_run(tmp_path_factory, request, _notebook_cache):
    """``run(name, seed=0, quick=True) -> TutorialRun``: each tutorial runs once per setting.

    See the module docstring for the usage and for which runs execute as a notebook.
    On first use it starts, in the background, the script runs that the selected
    tests declare with ``@pytest.mark.tutorial_run(name, seed, quick)``, two at a
    time (``VITOOLKIT_TEST_JOBS``, default the number of CPUs; 1 turns this off;
    off under pytest-xdist, which parallelises by itself).
    """
    jobs = int(os.environ.get("VITOOLKIT_TEST_JOBS", os.cpu_count() or 1))
    if os.environ.get("PYTEST_XDIST_WORKER"):
        jobs = 1
    runs = _Runs(_shared_root(tmp_path_factory), jobs)
    runs.prefetch(_wanted_runs(request.session.items))
    yield runs.get
    runs.close()
