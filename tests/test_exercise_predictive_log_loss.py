"""The ``predictive_log_loss`` exercise (lesson 09): the reference passes, the stub fails cleanly,
each plausible mistake fails with a message naming it, and the grader's reference equals -log of
the probability ``vitoolkit.fitting.predictive`` averages from the same draws."""

from __future__ import annotations

import math

import pytest
import torch
from torch.nn.functional import logsigmoid

from vitoolkit.exercises import check, list_exercises, solution, stub
from vitoolkit.exercises.classification import _reference
from vitoolkit.fitting import LogisticPosterior, predictive

NAME = "predictive_log_loss"
SEED = 9090


def _ll(design, y, draws):
    return logsigmoid((2 * y - 1) * (draws @ design.T))


def _lme(t, dim=0):
    return torch.logsumexp(t, dim) - math.log(t.shape[dim])


def expected_log_lik(design, y, draws):
    return -_ll(design, y, draws).mean(0)


def plug_in_at_mean(design, y, draws):
    return -logsigmoid((2 * y - 1) * (design @ draws.mean(0)))


def label_ignored(design, y, draws):
    return -_lme(logsigmoid(draws @ design.T))


def labels_flipped(design, y, draws):
    return -_lme(logsigmoid(-(2 * y - 1) * (draws @ design.T)))


def wrong_sign(design, y, draws):
    return _lme(_ll(design, y, draws))


def naive_log_of_mean(design, y, draws):
    p = torch.sigmoid(draws @ design.T).mean(0)
    return -(y * torch.log(p) + (1 - y) * torch.log(1 - p))


def mean_over_examples(design, y, draws):
    return -_ll(design, y, draws).mean()


def wrong_axis(design, y, draws):
    return -_lme(_ll(design, y, draws), 1)


MUTANTS = [
    (expected_log_lik, "expected log-likelihood"),
    (plug_in_at_mean, "plug-in at the mean of the draws"),
    (label_ignored, "the label is ignored"),
    (labels_flipped, "labels are flipped"),
    (wrong_sign, "MINUS the log predictive"),
    (naive_log_of_mean, "work with log-probabilities"),
    (mean_over_examples, "one loss per example"),
    (wrong_axis, "wrong axis"),
]


def _messages(report) -> str:
    return "\n".join(f"{c.name}: {c.message}" for c in report.failed)


def test_registered_with_its_signature_and_the_reference_passes():
    assert NAME in list_exercises("09")
    assert f"def {NAME}(design, y, draws):" in stub(NAME)
    namespace: dict = {}
    exec(compile(solution(NAME), "<solution>", "exec"), namespace)  # noqa: S102
    for seed in (0, 1, SEED):
        assert check(NAME, namespace[NAME], seed=seed, isolate=False).passed


def test_the_stub_fails_as_a_check_not_a_crash():
    namespace: dict = {}
    exec(compile(stub(NAME), "<stub>", "exec"), namespace)  # noqa: S102
    report = check(NAME, namespace[NAME], seed=SEED, isolate=False)
    assert not report.passed
    assert "not implemented" in report.diagnosis


@pytest.mark.parametrize("mutant, fragment", MUTANTS, ids=[m[0].__name__ for m in MUTANTS])
def test_a_plausible_mistake_fails_with_a_message_naming_it(mutant, fragment):
    report = check(NAME, mutant, seed=SEED, isolate=False)
    assert not report.passed
    assert fragment in _messages(report), _messages(report)


def test_the_reference_is_minus_log_of_the_toolkits_predictive_probability():
    g = torch.Generator().manual_seed(1)
    X = torch.randn(15, 2, generator=g, dtype=torch.float64)
    y = (torch.rand(15, generator=g, dtype=torch.float64) < 0.5).double()
    post = LogisticPosterior(X, y, prior_std=2.0)  # with an intercept: design (1, x)
    draws = 1.5 * torch.randn(300, 3, generator=g, dtype=torch.float64)
    p = predictive(post, X, draws).prob
    want = -(y * torch.log(p) + (1 - y) * torch.log1p(-p))
    torch.testing.assert_close(_reference(post.design_matrix(X), y, draws), want, rtol=1e-10,
                               atol=1e-12)
    # the mean over the examples is scikit-learn's log_loss
    from sklearn.metrics import log_loss

    assert abs(float(want.mean()) - log_loss(y.numpy(), p.numpy(), labels=[0, 1])) < 1e-10
