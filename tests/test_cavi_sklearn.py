"""The CAVI mixtures as scikit-learn estimators (issue 11) and their public boundary (issue 12):
scikit-learn's own estimator checks, clone/GridSearchCV/Pipeline round trips, NotFittedError,
the shared fit loop's restarts and convergence rule, and refused inputs naming the argument."""

from __future__ import annotations

import math
import re
import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

from vitoolkit.cavi import BayesianGMM, ELBODecreaseError, StochasticBayesianGMM, UnitVarianceGMM
from vitoolkit.cavi._base import EXPECTED_FAILED_CHECKS
from vitoolkit.exceptions import ConvergenceWarning, NonFiniteError
from vitoolkit.exceptions import ELBODecreaseError as CoreELBODecreaseError

ESTIMATORS = [UnitVarianceGMM(3), BayesianGMM(3), StochasticBayesianGMM(3)]
CLASSES = [UnitVarianceGMM, BayesianGMM, StochasticBayesianGMM]


def blobs(seed, n_per=60, d=2, centres=((-6.0, 0.0), (6.0, 0.0), (0.0, 8.0))):
    rng = np.random.default_rng(seed)
    c = np.asarray(centres)[:, :d]
    return np.concatenate([m + rng.normal(size=(n_per, d)) for m in c])


@parametrize_with_checks(ESTIMATORS, expected_failed_checks=lambda est: EXPECTED_FAILED_CHECKS,
                         xfail_strict=True)
def test_scikit_learn_estimator_checks(estimator, check):
    # the checks test the API on data without clusters (uniform noise), where a fit may stop
    # at max_iter; that warning is not what they test
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        check(estimator)


@pytest.mark.parametrize("cls", CLASSES)
def test_every_expected_failure_and_skip_is_documented(cls):
    doc = cls.__doc__
    for name in [*EXPECTED_FAILED_CHECKS, "check_array_api_input"]:
        assert f"``{name}``" in doc, (cls.__name__, name)


def test_elbo_decrease_error_is_the_core_class():
    assert ELBODecreaseError is CoreELBODecreaseError


@pytest.mark.parametrize("est", ESTIMATORS, ids=lambda e: type(e).__name__)
def test_clone_refits_identically_and_set_params_round_trips(est):
    X = blobs(0)
    est = clone(est).set_params(random_state=5)
    copy = clone(est)
    assert copy is not est and copy.get_params() == est.get_params()
    a, b = est.fit(X), copy.fit(X)
    np.testing.assert_array_equal(a.means_, b.means_)
    np.testing.assert_array_equal(a.labels_, b.labels_)
    assert a.elbo_history_ == b.elbo_history_
    # cloning a fitted estimator drops the fit
    with pytest.raises(NotFittedError):
        clone(a).predict(X)
    params = {"n_components": 2, "max_iter": 7}
    assert {k: est.set_params(**params).get_params()[k] for k in params} == params


@pytest.mark.parametrize("est", ESTIMATORS, ids=lambda e: type(e).__name__)
def test_grid_search_finds_the_three_clusters(est):
    # three well-separated unit-variance clusters: the held-out predictive density is largest
    # with three components (one or two components must cover two clusters with one)
    X = blobs(1, n_per=80)
    rng = np.random.default_rng(1)
    X = X[rng.permutation(len(X))]
    search = GridSearchCV(clone(est).set_params(random_state=0), {"n_components": [1, 2, 3]},
                          cv=3).fit(X)
    assert search.best_params_ == {"n_components": 3}
    scores = search.cv_results_["mean_test_score"]
    assert scores[2] > scores[1] > scores[0]


@pytest.mark.parametrize("est", ESTIMATORS, ids=lambda e: type(e).__name__)
def test_pipeline_equals_fitting_the_scaled_data(est):
    X = blobs(2) * [3.0, 0.5] + [10.0, -4.0]
    pipe = make_pipeline(StandardScaler(), clone(est).set_params(random_state=0)).fit(X)
    Z = StandardScaler().fit_transform(X)
    direct = clone(est).set_params(random_state=0).fit(Z)
    np.testing.assert_array_equal(pipe.predict(X), direct.predict(Z))
    np.testing.assert_allclose(pipe.score_samples(X), direct.score_samples(Z), rtol=1e-12)
    np.testing.assert_array_equal(pipe.fit_predict(X), direct.labels_)


@pytest.mark.parametrize("cls", CLASSES)
@pytest.mark.parametrize("method", ["predict", "predict_proba", "score_samples", "score", "elbo"])
def test_not_fitted_error_before_fit(cls, method):
    with pytest.raises(NotFittedError, match=f"This {cls.__name__} instance is not fitted"):
        getattr(cls(2), method)(np.zeros((4, 2)))


def test_not_fitted_error_for_the_bayesian_extras():
    with pytest.raises(NotFittedError):
        BayesianGMM(2).effective_n_components()
    with pytest.raises(NotFittedError):
        BayesianGMM(2).elbo_from_batches([np.zeros((3, 2))])


def test_a_failed_fit_leaves_the_estimator_unfitted():
    model = BayesianGMM(2, random_state=0).fit(blobs(0))
    with pytest.raises(ValueError, match="mean_prior"):
        model.set_params(mean_prior=[0.0, 0.0, 0.0]).fit(blobs(0))
    with pytest.raises(NotFittedError):
        model.predict(blobs(0))


@pytest.mark.parametrize("est", ESTIMATORS, ids=lambda e: type(e).__name__)
def test_labels_are_the_final_e_step(est):
    X = blobs(3)
    model = clone(est).set_params(random_state=1).fit(X)
    np.testing.assert_array_equal(model.labels_, model.predict(X))
    np.testing.assert_array_equal(model.labels_, np.argmax(model.predict_proba(X), axis=1))
    assert model.labels_.dtype == np.int64


@pytest.mark.parametrize("cls", [UnitVarianceGMM, BayesianGMM, StochasticBayesianGMM])
def test_restarts_keep_the_largest_final_elbo(cls):
    # the first restart of n_init=4 draws from the same random state as the n_init=1 fit, so
    # the kept run is at least as good as that one (by the exact ELBO of X)
    X = blobs(4, centres=((-3.0, 0.0), (3.0, 0.0), (0.0, 4.0)))
    one = cls(5, random_state=3).fit(X)
    four = cls(5, random_state=3, n_init=4).fit(X)
    assert four.elbo(X) >= one.elbo(X) - 1e-9 * abs(one.elbo(X))


def test_convergence_rule_is_the_change_of_the_elbo():
    X = blobs(5)
    for cls, kind in ((BayesianGMM, "absolute"), (UnitVarianceGMM, "relative")):
        tol = 1e-3 if kind == "absolute" else 1e-8
        model = cls(3, random_state=0, tol=tol, max_iter=500).fit(X)
        h = np.array(model.elbo_history_)
        scale = np.abs(h[:-1]) if kind == "relative" else 1.0
        change = np.abs(np.diff(h)) / scale
        assert model.converged_ and model.n_iter_ == len(h)
        assert change[-1] < tol and np.all(change[:-1] >= tol)
    with pytest.warns(ConvergenceWarning, match="max_iter=2"):
        BayesianGMM(3, random_state=0, tol=0.0, max_iter=2).fit(X)


def test_svi_tolerance_compares_epoch_means():
    X = blobs(6)
    svi = StochasticBayesianGMM(3, random_state=0, batch_size=45, max_iter=50, tol=1e-2).fit(X)
    assert svi.converged_ and svi.n_iter_ == len(svi.epoch_elbo_) < 50
    assert abs(svi.epoch_elbo_[-1] - svi.epoch_elbo_[-2]) < 1e-2
    per_epoch = math.ceil(len(X) / 45)
    np.testing.assert_allclose(svi.epoch_elbo_[-1], np.mean(svi.elbo_history_[-per_epoch:]))
    with pytest.warns(ConvergenceWarning, match="StochasticBayesianGMM did not converge"):
        StochasticBayesianGMM(3, random_state=0, max_iter=2, tol=0.0).fit(X)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        default = StochasticBayesianGMM(3, random_state=0, max_iter=2).fit(X)  # tol=None
    assert not default.converged_ and default.n_iter_ == 2


# -- the boundary (issue 12) ------------------------------------------------------------
@pytest.mark.parametrize("cls", CLASSES)
@pytest.mark.parametrize("name, value, error", [
    ("tol", True, TypeError),
    ("tol", "1e-3", TypeError),
    ("tol", -1.0, ValueError),
    ("tol", float("nan"), ValueError),
    ("random_state", 1.5, TypeError),
    ("random_state", 2.0, TypeError),
    ("random_state", True, TypeError),
    ("random_state", "0", TypeError),
    ("random_state", -1, ValueError),
    ("random_state", 2**40, ValueError),
    ("n_components", "3", TypeError),
    ("n_components", 3.0, TypeError),
    ("n_components", 0, ValueError),
    ("max_iter", "10", TypeError),
    ("n_init", 2.0, TypeError),
])
def test_bad_loop_settings_name_the_argument(cls, name, value, error):
    est = cls(2).set_params(**{name: value})  # no check in __init__/set_params
    with pytest.raises(error, match=re.escape(name)):
        est.fit(blobs(0))


@pytest.mark.parametrize("name, value, error", [
    ("weight_concentration_prior", -1.0, ValueError),
    ("weight_concentration_prior", float("nan"), ValueError),
    ("weight_concentration_prior", "0.1", TypeError),
    ("mean_precision_prior", float("nan"), ValueError),
    ("mean_precision_prior", float("inf"), ValueError),
    ("degrees_of_freedom_prior", float("nan"), ValueError),
    ("degrees_of_freedom_prior", -3.0, ValueError),
    ("degrees_of_freedom_prior", "4", TypeError),
    ("mean_prior", [0.0, float("nan")], ValueError),
    ("mean_prior", [[0.0, 0.0]], ValueError),
    ("mean_prior", ["a", "b"], TypeError),
    ("covariance_prior", [[1.0, 0.0], [0.0, float("nan")]], ValueError),
    ("covariance_prior", np.eye(2).ravel(), ValueError),
])
@pytest.mark.parametrize("cls", [BayesianGMM, StochasticBayesianGMM])
def test_bad_priors_name_the_argument(cls, name, value, error):
    with pytest.raises(error, match=re.escape(name)):
        cls(2, **{name: value}).fit(blobs(0))


def test_check_monotonic_must_be_a_bool():
    with pytest.raises(TypeError, match="check_monotonic must be True or False, got 1"):
        BayesianGMM(2, check_monotonic=1).fit(blobs(0))


@pytest.mark.parametrize("kwargs, error, match", [
    ({"prior_std": float("nan")}, ValueError, "prior_std"),
    ({"prior_std": "5"}, TypeError, "prior_std"),
    ({"prior_std": 1e200}, ValueError, "prior_std"),
    ({"record_steps": "yes"}, TypeError, "record_steps"),
    ({"init_means": np.zeros(6)}, ValueError, "init_means"),  # (K*d,), never reshaped
    ({"init_means": np.zeros((2, 3))}, ValueError, r"init_means must have shape \(3, 2\)"),
    ({"init_means": np.zeros((3, 2)), "n_init": 2}, ValueError, "n_init must be 1"),
    ({"init_means": [[0.0, np.nan]] * 3}, ValueError, "init_means"),
])
def test_unit_variance_settings_name_the_argument(kwargs, error, match):
    with pytest.raises(error, match=match):
        UnitVarianceGMM(3, **kwargs).fit(blobs(0))


@pytest.mark.parametrize("est", ESTIMATORS, ids=lambda e: type(e).__name__)
def test_overflowing_data_is_refused_naming_x(est):
    X = blobs(7) * 1e200  # finite, but its squares are not
    with pytest.raises(NonFiniteError, match=r"X has entries as large as .* rescale X"):
        clone(est).fit(X)


@pytest.mark.parametrize("est", ESTIMATORS, ids=lambda e: type(e).__name__)
def test_complex_sparse_and_non_numeric_data_are_refused(est):
    X = blobs(8)
    with pytest.raises(ValueError, match="Complex data not supported: X"):
        clone(est).fit(X + 1j)
    with pytest.raises(TypeError, match="X must be a dense array; sparse input"):
        clone(est).fit(sp.csr_matrix(X))
    with pytest.raises(TypeError, match="X must hold real numbers, got a boolean"):
        clone(est).fit(X > 0)
    with pytest.raises(TypeError, match="X must hold real numbers, got dtype <U"):
        clone(est).fit([["1", 2.0]] * 5)  # string numbers are not parsed
    with pytest.raises(TypeError, match="X must be an array of real numbers.*not 'dict'"):
        clone(est).fit(np.array([[{"a": 1}, 2.0]] * 5, dtype=object))


def test_a_list_of_rows_is_one_batch_for_the_stochastic_fit():
    X = blobs(9)
    kw = dict(random_state=0, batch_size=40, max_iter=3)
    as_list = StochasticBayesianGMM(3, **kw).fit(X.tolist())
    as_array = StochasticBayesianGMM(3, **kw).fit(X)
    assert as_list.n_features_in_ == 2 and as_list.n_samples_seen_ == 3 * len(X)
    np.testing.assert_array_equal(as_list.means_, as_array.means_)
    # a list of 2-D arrays (or a generator) is a stream, one step per batch
    stream = StochasticBayesianGMM(3, random_state=0, total_samples=len(X)).fit(
        [X[:90], X[90:]])
    assert stream.n_steps_ == 2 and stream.n_samples_seen_ == len(X)


def test_unit_variance_predictive_density_matches_monte_carlo_over_q():
    # log sum_k 1/K N(x; m_k, (1 + s_k^2) I) against the average over mu ~ q(mu) of the
    # model's density 1/K sum_k N(x; mu_k, I)
    X = blobs(10, n_per=5, d=2)  # few points: s_k^2 is not negligible
    model = UnitVarianceGMM(3, random_state=0, prior_std=4.0).fit(X)
    x_new = np.array([[0.0, 0.0], [-5.0, 1.0], [1.0, 7.0]])
    rng = np.random.default_rng(0)
    S = 400_000
    mu = model.means_[None] + np.sqrt(model.mean_variances_)[None, :, None] * rng.normal(
        size=(S, 3, 2))
    sq = np.sum((x_new[:, None, None, :] - mu[None]) ** 2, axis=-1)  # (3 points, S, K)
    dens = np.mean(np.exp(-0.5 * sq) / (2 * np.pi), axis=-1)  # (3, S)
    est, se = dens.mean(axis=1), dens.std(axis=1) / math.sqrt(S)
    got = np.exp(model.score_samples(x_new))
    assert np.all(np.abs(got - est) < 4 * se + 1e-12), (got, est, se)


def test_feature_names_are_checked_like_scikit_learn():
    pd = pytest.importorskip("pandas")
    X = blobs(11)
    frame = pd.DataFrame(X, columns=["a", "b"])
    model = BayesianGMM(3, random_state=0).fit(frame)
    assert list(model.feature_names_in_) == ["a", "b"]
    with pytest.warns(UserWarning, match="feature names"):
        model.predict(X)


def test_elbo_from_batches_reads_one_array_as_one_batch():
    X = blobs(12)
    model = BayesianGMM(3, random_state=0).fit(X)
    exact = model.elbo(X)
    for batches in (X, X.tolist(), [X[:50], X[50:]], (b for b in np.array_split(X, 4))):
        value, n = model.elbo_from_batches(batches)
        assert n == len(X) and value == pytest.approx(exact, rel=1e-12)


# -- property test: every hyper-parameter and X fed wrong types, shapes, signs, sizes and
# non-finite values; each fit either succeeds with finite output or raises a ValueError or
# TypeError naming the argument ----------------------------------------------------------
_HOSTILE = st.one_of(
    st.none(), st.booleans(), st.integers(-3, 40), st.integers(2**31, 2**70),
    st.floats(allow_nan=True, allow_infinity=True), st.sampled_from(["1", "full", "", "kmeans"]),
    st.lists(st.floats(-5, 5), min_size=1, max_size=4), st.complex_numbers(max_magnitude=3),
    st.sampled_from([np.eye(2), np.zeros((2, 2)), np.ones(2), np.float64(2.0), np.int64(2),
                     np.array([1.0, np.nan]), -np.eye(2)]),
)
_LOOP_COUNTS = {"max_iter", "n_init"}  # drawn <= 40: a count of 2**70 iterations runs that long


def _fit_or_named_error(est, X, name):
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            est.fit(X)
    except (ValueError, TypeError) as err:
        assert name in str(err), (name, str(err))
        return
    assert math.isfinite(est.lower_bound_)
    assert np.all(np.isfinite(est.means_))
    assert np.all(np.isfinite(est.score_samples(X)))


@settings(max_examples=150, deadline=None)
@given(data=st.data(), cls=st.sampled_from(CLASSES))
def test_hostile_hyper_parameters_fit_finitely_or_are_named(data, cls):
    names = sorted(cls().get_params())
    name = data.draw(st.sampled_from(names), label="name")
    value = data.draw(_HOSTILE.filter(lambda v: name not in _LOOP_COUNTS
                                      or not isinstance(v, int) or v < 2**31), label="value")
    _fit_or_named_error(cls(2, random_state=0).set_params(**{name: value}), blobs(13, n_per=15),
                        name)


@settings(max_examples=100, deadline=None)
@given(cls=st.sampled_from(CLASSES), X=st.one_of(
    st.builds(lambda s, shape: np.random.default_rng(0).normal(size=shape) * s,
              st.sampled_from([1e-200, 1e-100, 1.0, 1e100, 1e160, 1e200, 1e300]),
              st.sampled_from([(30, 2), (30,), (3, 2), (1, 2), (0, 2), (30, 0), (2, 2, 2)])),
    _HOSTILE))
def test_hostile_data_fits_finitely_or_is_named(cls, X):
    _fit_or_named_error(cls(2, random_state=0), X, "X")


@pytest.mark.parametrize("cls, kwargs, name", [
    (BayesianGMM, {"mean_prior": [1e300, 0.0]}, "mean_prior"),
    (StochasticBayesianGMM, {"mean_prior": [0.0, -1e300]}, "mean_prior"),
    (UnitVarianceGMM, {"init_means": np.full((2, 2), 1e300)}, "init_means"),
])
def test_overflowing_starting_values_are_refused_by_name(cls, kwargs, name):
    with pytest.raises(NonFiniteError, match=f"{name} has entries as large as 1e\\+300"):
        cls(2, **kwargs).fit(blobs(14))
