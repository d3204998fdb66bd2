"""vitoolkit.exceptions: one home for the toolkit's warnings and errors, cheap to import."""

from __future__ import annotations

import importlib
import inspect
import subprocess
import sys
import warnings

import pytest

import vitoolkit.exceptions as exc


def _fresh_python(code: str) -> str:
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_importing_the_module_does_not_import_sklearn_until_convergence_warning_is_used():
    code = ("import sys, vitoolkit.exceptions as e\n"
            "print('sklearn' in sys.modules)\n"
            "e.ResourceLimitError, e.UnreliableEstimateWarning, e.FileFormatError\n"
            "print('sklearn' in sys.modules)\n"
            "e.ConvergenceWarning\n"
            "print('sklearn' in sys.modules)")
    assert _fresh_python(code).split() == ["False", "False", "True"]


def test_from_import_of_convergence_warning_works_in_a_fresh_process():
    code = ("from vitoolkit.exceptions import ConvergenceWarning\n"
            "from sklearn.exceptions import ConvergenceWarning as S\n"
            "print(issubclass(ConvergenceWarning, S), ConvergenceWarning.__module__, "
            "ConvergenceWarning.__qualname__)")
    assert _fresh_python(code).split() == ["True", "vitoolkit.exceptions", "ConvergenceWarning"]


def test_convergence_warning_subclasses_sklearns_and_is_one_class():
    from sklearn.exceptions import ConvergenceWarning as SklearnConvergenceWarning

    assert issubclass(exc.ConvergenceWarning, SklearnConvergenceWarning)
    assert issubclass(exc.ConvergenceWarning, UserWarning)
    assert exc.ConvergenceWarning is exc.ConvergenceWarning  # built once, then cached
    assert exc.ConvergenceWarning is importlib.import_module("vitoolkit.exceptions").ConvergenceWarning


def test_a_filter_written_for_sklearns_warning_applies_to_ours():
    from sklearn.exceptions import ConvergenceWarning as SklearnConvergenceWarning

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        warnings.filterwarnings("ignore", category=SklearnConvergenceWarning)
        warnings.warn("stopped early", exc.ConvergenceWarning, stacklevel=1)
        warnings.warn("something else", UserWarning, stacklevel=1)
    assert [str(w.message) for w in caught] == ["something else"]
    with pytest.raises(SklearnConvergenceWarning):
        with warnings.catch_warnings():
            warnings.simplefilter("error", SklearnConvergenceWarning)
            warnings.warn("stopped early", exc.ConvergenceWarning, stacklevel=1)


def test_the_hierarchy_matches_the_fix_each_error_asks_for():
    assert issubclass(exc.ResourceLimitError, ValueError)  # the fix is a different argument
    assert issubclass(exc.NonFiniteError, ValueError)
    assert issubclass(exc.FileFormatError, ValueError)
    assert issubclass(exc.ELBODecreaseError, RuntimeError)
    assert not issubclass(exc.ELBODecreaseError, ValueError)
    assert issubclass(exc.UnreliableEstimateWarning, UserWarning)
    assert issubclass(exc.LocalOptimumWarning, UserWarning)  # the best start is still returned
    with pytest.raises(ValueError, match="n=3"):
        raise exc.ResourceLimitError("n=3 would need 1.0 TiB")


def test_every_name_in_all_resolves_and_unknown_names_raise_attribute_error():
    for name in exc.__all__:
        assert inspect.isclass(getattr(exc, name)), name
    with pytest.raises(AttributeError, match="NoSuchWarning"):
        exc.NoSuchWarning  # noqa: B018


#: Modules whose public warnings and errors must come from (or extend) vitoolkit.exceptions.
WALKED = ("vitoolkit.distributions", "vitoolkit.divergences", "vitoolkit.cavi", "vitoolkit.fitting",
          "vitoolkit.gradients", "vitoolkit.vae", "vitoolkit.datasets", "vitoolkit.conjugate",
          "vitoolkit.calibration")


def test_public_warning_and_error_classes_have_their_home_in_vitoolkit_exceptions():
    """A re-exported old name is the same class or a subclass, so ``except exceptions.X`` catches it."""
    homes = tuple(getattr(exc, name) for name in exc.__all__)
    strays = []
    for modname in WALKED:
        module = importlib.import_module(modname)
        for name in module.__all__:
            obj = getattr(module, name)
            if inspect.isclass(obj) and issubclass(obj, BaseException) and not issubclass(obj, homes):
                strays.append(f"{modname}.{name}")
    assert not strays, f"define these in (or derive them from) vitoolkit.exceptions: {strays}"


def test_diverged_is_one_class_under_every_old_name():
    from vitoolkit.fitting.optimise import OptimiserDivergedError
    from vitoolkit.vae.training import TrainingDivergedError

    assert TrainingDivergedError is OptimiserDivergedError is exc.DivergedError
    assert exc.TrainingDivergedError is exc.OptimiserDivergedError is exc.DivergedError
    assert issubclass(exc.DivergedError, exc.NonFiniteError)
    assert issubclass(exc.DivergedError, ValueError) and issubclass(exc.DivergedError, FloatingPointError)
    diverged = []
    for modname in WALKED:
        module = importlib.import_module(modname)
        diverged += [getattr(module, n) for n in module.__all__ if "Diverged" in n]
    assert diverged and all(cls is exc.DivergedError for cls in diverged)


def test_run_bbvi_divergence_raises_the_one_diverged_error():
    import torch

    from vitoolkit.gradients.bbvi import BayesianLogisticRegression, run_bbvi

    g = torch.Generator().manual_seed(0)
    X = torch.randn(20, 2, generator=g, dtype=torch.float64)
    y = (X[:, 0] > 0).to(torch.float64)
    model = BayesianLogisticRegression(X, y, prior_std=1.0)
    with pytest.raises(exc.DivergedError, match="diverged at iteration 1"):
        run_bbvi(model, estimator="pathwise", num_iterations=3, num_samples=4, learning_rate=1e300,
                 generator=g)


@pytest.mark.parametrize("value", [1.5, "3"])
def test_a_bad_constructor_parameter_is_caught_as_value_error_and_as_type_error(value):
    """scikit-learn's rule: ``except ValueError`` catches a bad hyper-parameter of any kind."""
    import numpy as np

    from vitoolkit.cavi import BayesianGMM, UnitVarianceGMM

    X = np.random.default_rng(0).normal(size=(30, 2))
    for cls in (BayesianGMM, UnitVarianceGMM):
        for handler in (ValueError, TypeError, exc.InvalidParameterError):
            with pytest.raises(handler, match="n_components"):
                cls(n_components=value).fit(X)
    with pytest.raises(ValueError, match="n_components"):  # a bad value (not type) stays caught too
        BayesianGMM(n_components=0).fit(X)
