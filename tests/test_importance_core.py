"""The importance-weight summary of the core (vitoolkit.divergences.importance) and its callers.

Each figure is checked against an independent route: NumPy on the weights themselves, the
spread of many repeated estimates, the closed-form ESS limit, the one-shot function for the
streamed accumulator, and the formulas the topic modules used before they called the core.
"""

from __future__ import annotations

import inspect
import math
import warnings

import numpy as np
import pytest
import torch

import vitoolkit.divergences as divergences
import vitoolkit.vae.model as vae_model
from vitoolkit.conjugate import ConjugateGaussian
from vitoolkit.distributions import MultivariateStudentT, sample
from vitoolkit.divergences import (
    ImportanceEstimate,
    StreamingImportanceEstimate,
    UnreliableEstimateWarning,
    effective_sample_size,
    importance_estimate,
    log_mean_exp,
    pareto_khat,
)
from vitoolkit.gradients.bbvi import BayesianLogisticRegression
from vitoolkit.vae import CategoricalVAE, diagnostics

F64 = torch.float64


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _log_weights(s=400, batch=(3,), sigma=1.0, seed=0, dtype=F64):
    """Log-normal weights: log w ~ N(-sigma^2 / 2, sigma^2), so E[w] = 1, relvar = e^(sigma^2) - 1."""
    return (torch.randn((s, *batch), generator=_gen(seed), dtype=dtype) * sigma - sigma**2 / 2)


# -- the one-shot summary against NumPy -------------------------------------------------------


def test_estimate_and_ess_equal_numpy_on_the_weights():
    lw = _log_weights(500, (4,), sigma=1.2, seed=1)
    w = np.exp(lw.numpy())
    s = w.shape[0]
    est = importance_estimate(lw, warn=False)
    assert isinstance(est, ImportanceEstimate) and est._fields == ("value", "stderr", "khat")
    np.testing.assert_allclose(est.value.numpy(), np.log(w.mean(0)), rtol=0, atol=1e-13)
    np.testing.assert_allclose(est.stderr.numpy(), w.std(0, ddof=1) / (math.sqrt(s) * w.mean(0)),
                               rtol=1e-12)
    torch.testing.assert_close(est.khat, pareto_khat(lw, dim=0), rtol=0, atol=0)
    np.testing.assert_allclose(effective_sample_size(lw).numpy(), w.sum(0) ** 2 / (w**2).sum(0),
                               rtol=1e-12)
    np.testing.assert_allclose(log_mean_exp(lw.T, dim=1).numpy(), np.log(w.mean(0)), atol=1e-13)
    # The ratios, not the scale: shifting every log weight by 700 moves only the value.
    shifted = importance_estimate(lw + 700.0, warn=False)
    torch.testing.assert_close(shifted.value, est.value + 700.0, rtol=0, atol=1e-12)
    torch.testing.assert_close(shifted.stderr, est.stderr, rtol=1e-12, atol=0)
    torch.testing.assert_close(effective_sample_size(lw + 700.0), effective_sample_size(lw))


def test_stderr_is_the_spread_of_repeated_estimates_and_ess_its_limit():
    """sd over 4000 independent estimates of log p_hat (and of p_hat / p) vs the mean stderr;
    ESS against S / (1 + relvar), relvar = e^(sigma^2) - 1 for log-normal weights."""
    sigma, s, reps = 0.6, 200, 4000
    lw = _log_weights(s, (reps,), sigma=sigma, seed=2)
    est = importance_estimate(lw, warn=False)
    # The sd of 4000 draws is uncertain by about 1/sqrt(2 * 4000) = 1.1 %.
    assert float(est.value.std()) == pytest.approx(float(est.stderr.mean()), rel=0.05)
    assert float(est.value.exp().std()) == pytest.approx(float(est.stderr.mean()), rel=0.05)
    ess = effective_sample_size(lw)
    assert float(ess.mean()) == pytest.approx(s / math.exp(sigma**2), rel=0.02)
    assert bool(((ess >= 1) & (ess <= s)).all())


def test_value_keeps_the_gradient_and_the_rest_is_detached():
    lw = _log_weights(50, (2,), seed=3).requires_grad_(True)
    est = importance_estimate(lw, warn=False)
    assert not est.stderr.requires_grad and not est.khat.requires_grad
    (grad,) = torch.autograd.grad(est.value.sum(), lw)
    torch.testing.assert_close(grad, torch.softmax(lw.detach(), 0))  # d LSE = the normalised weights
    assert log_mean_exp(lw).requires_grad


def test_edge_cases_are_the_documented_values():
    one = importance_estimate(torch.zeros(1, 3, dtype=F64), warn=False)
    assert bool(one.stderr.isnan().all()) and bool(one.khat.isnan().all())  # S = 1: no spread, no tail
    assert bool(importance_estimate(_log_weights(20), warn=False).khat.isnan().all())  # M < 5
    equal = importance_estimate(torch.zeros(100, dtype=F64), warn=False)
    assert float(equal.value) == 0.0 and float(equal.stderr) == 0.0 and float(equal.khat) == -math.inf
    # -inf is a zero weight: it counts as a draw but adds nothing.
    lw = torch.tensor([0.0, -math.inf, 0.0, -math.inf], dtype=F64)
    assert float(log_mean_exp(lw)) == pytest.approx(math.log(0.5))
    assert float(effective_sample_size(lw)) == pytest.approx(2.0)
    assert float(importance_estimate(lw, warn=False).value) == pytest.approx(math.log(0.5))
    assert importance_estimate([0.0, 1.0, 2.0], warn=False).value.dtype == F64


@pytest.mark.parametrize("bad, message", [
    (torch.tensor([0.0, math.nan]), r"log_weights contains 1 NaN or inf"),
    (torch.tensor([0.0, math.inf]), r"log_weights contains 1 NaN or inf"),
    (torch.zeros(0, 3), r"log_weights is empty"),
    (torch.tensor(1.0), r"log_weights must have at least 1 dimension"),
])
def test_bad_log_weights_are_refused_by_name(bad, message):
    for fn in (importance_estimate, log_mean_exp, effective_sample_size):
        with pytest.raises(ValueError, match=message):
            fn(bad)
    with pytest.raises(TypeError, match="log_weights"):
        importance_estimate("abc")
    with pytest.raises(ValueError, match="dim=2 is out of range"):
        log_mean_exp(torch.zeros(3, 2), dim=2)
    with pytest.raises(TypeError, match="warn"):
        importance_estimate(torch.zeros(3), warn=1)
    with pytest.raises(ValueError, match="stacklevel"):
        importance_estimate(torch.zeros(3), stacklevel=0)


def _heavy_tailed(s=2000, n=4, seed=4):
    """Pareto weights w = U^(-0.9): tail shape 0.9 > 0.7."""
    u = torch.rand(s, n, generator=_gen(seed), dtype=F64)
    return -0.9 * torch.log(u)


def test_the_warning_points_at_the_callers_line():
    lw = _heavy_tailed()
    with pytest.warns(UnreliableEstimateWarning, match=r"my estimate: \d of 4 examples") as record:
        est = importance_estimate(lw, what="my estimate")
    assert len(record) == 1 and record[0].filename == __file__
    assert float(est.khat.min()) > 0.7

    def wrapper():
        return importance_estimate(lw, stacklevel=3)

    with pytest.warns(UnreliableEstimateWarning) as record:
        wrapper()
    assert record[0].filename == __file__ and record[0].lineno == inspect.currentframe().f_lineno - 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        importance_estimate(lw, warn=False)


# -- the streamed accumulator against the one-shot function ----------------------------------


@pytest.mark.parametrize("chunks", [(3000,), (1000, 1000, 1000), (1, 2, 997, 2000), (7,) * 428 + (4,)])
def test_streaming_equals_the_one_shot_estimate(chunks):
    heavy = _heavy_tailed(1000, 6).reshape(1000, 2, 3)
    lw = torch.cat([_log_weights(2000, (2, 3), sigma=1.5, seed=5), heavy])
    acc = StreamingImportanceEstimate(lw.shape[0])
    start = 0
    for c in chunks:
        acc.update(lw[start:start + c])
        start += c
    streamed, once = acc.result(), importance_estimate(lw, warn=False)
    assert streamed.value.shape == (2, 3) and streamed.value.dtype == F64
    torch.testing.assert_close(streamed.value, once.value, rtol=0, atol=1e-12)
    torch.testing.assert_close(streamed.stderr, once.stderr, rtol=1e-9, atol=0)
    torch.testing.assert_close(streamed.khat, once.khat, rtol=0, atol=0)  # the same tail, the same fit
    torch.testing.assert_close(acc.effective_sample_size(), effective_sample_size(lw), rtol=1e-10, atol=0)
    assert acc.result(torch.float32).value.dtype == torch.float32


def test_streaming_small_counts_and_misuse():
    for s in (1, 10, 30):
        lw = _log_weights(s, (2,), seed=s)
        acc = StreamingImportanceEstimate(s)
        acc.update(lw)
        torch.testing.assert_close(acc.result(), importance_estimate(lw, warn=False), equal_nan=True)
    acc = StreamingImportanceEstimate(10)
    acc.update(torch.zeros(4, 2))
    with pytest.raises(ValueError, match="4 of num_samples=10 draws"):
        acc.result()
    with pytest.raises(ValueError, match=r"log_weights must have shape \(S_c, 2\)"):
        acc.update(torch.zeros(4, 3))
    with pytest.raises(ValueError, match="more than num_samples=10"):
        acc.update(torch.zeros(7, 2))
    with pytest.raises(TypeError, match="log_weights"):
        acc.update(np.zeros((2, 2)))
    with pytest.raises(ValueError, match="num_samples"):
        StreamingImportanceEstimate(0)
    assert StreamingImportanceEstimate.tail_size(10**6) == 3001
    assert StreamingImportanceEstimate.tail_size(2**60) == 3 * math.isqrt(2**60) + 2


# -- the topic modules call the core: the same figures as their former formulas --------------


def test_reexports_from_the_vae_model_are_the_core_objects():
    assert vae_model.importance_estimate is divergences.importance_estimate
    assert vae_model.ImportanceEstimate is divergences.ImportanceEstimate
    params = inspect.signature(vae_model.importance_estimate).parameters
    assert list(params) == ["log_weights", "what", "warn", "stacklevel"]
    assert params["stacklevel"].default == 2
    from vitoolkit.vae.model import (  # noqa: F401  every name importable before the split
        MAX_DRAWS,
        check_draws,
        check_network_size,
        check_num_samples,
        log_importance_weights,
        posterior_importance,
        posterior_log_weights,
        posterior_params,
    )


def test_conjugate_evidence_equals_the_former_formula():
    model = ConjugateGaussian(prior_loc=0.0, prior_std=2.0, noise_scale=1.0)
    x = torch.randn(30, generator=_gen(8), dtype=F64) + 1.0
    post = model.posterior(x)
    for prop in (model.prior, torch.distributions.Normal(post.loc, post.scale * 0.5)):
        est = model.importance_evidence(x, prop, 4000, generator=_gen(9))
        log_w = model.importance_log_weights(x, prop, 4000, generator=_gen(9))
        s = log_w.shape[0]
        lse1, lse2 = torch.logsumexp(log_w, 0), torch.logsumexp(2 * log_w, 0)
        rel_var = torch.expm1(lse2 - 2 * lse1 + math.log(s)).clamp_min(0) * s / (s - 1)
        torch.testing.assert_close(est.log_evidence, lse1 - math.log(s), rtol=0, atol=1e-13)
        torch.testing.assert_close(est.relative_stderr, torch.sqrt(rel_var / s), rtol=1e-12, atol=0)
        torch.testing.assert_close(est.ess, torch.exp(2 * lse1 - lse2), rtol=1e-12, atol=0)
        torch.testing.assert_close(est.khat, pareto_khat(log_w, dim=0), rtol=0, atol=0)


def test_bbvi_reference_evidence_and_ess_equal_the_former_formula():
    x = torch.randn(40, 3, generator=_gen(10), dtype=F64)
    y = (torch.rand(40, generator=_gen(11), dtype=F64) < torch.sigmoid(x @ torch.tensor([1.0, -2, 0.5],
                                                                                       dtype=F64))).double()
    model = BayesianLogisticRegression(x, y, reference_samples=20000, seed=3)
    # The reference's own draws, rebuilt: Student-t (5 dof) at the Laplace approximation.
    proposal = MultivariateStudentT(5.0, model.laplace_mode, torch.linalg.cholesky(model.laplace_covariance))
    w = sample(proposal, (20000,), generator=_gen(3))
    log_w = model.log_joint(w) - proposal.log_prob(w)
    weights = torch.softmax(log_w, 0)
    assert model.effective_sample_size == pytest.approx(float(1.0 / (weights**2).sum()), rel=1e-12)
    assert model.log_evidence == pytest.approx(float(torch.logsumexp(log_w, 0)) - math.log(20000), abs=1e-12)


def test_categorical_bounds_equal_the_former_formula():
    model = CategoricalVAE(8, 2, 3, hidden_dims=(6,), seed=1)
    x = (torch.rand(5, 8, generator=_gen(12)) < 0.5).float()
    with torch.no_grad():
        log_w = model._log_weights(x, 40, _gen(13))
        bound = model.iwae_bound(x, 40, generator=_gen(13))
    torch.testing.assert_close(bound, torch.logsumexp(log_w, 0) - math.log(40), rtol=0, atol=0)


def test_iwae_curve_groups_equal_the_former_formula():
    from test_vae_model import _linear_gaussian_vae

    model, _ = _linear_gaussian_vae(exact_posterior=False)
    x = torch.randn(6, 5, generator=_gen(3))
    curve = diagnostics.iwae_curve(model, x, (1, 10, 100), pool=1000, generator=_gen(6))
    with torch.no_grad():
        log_w = vae_model.posterior_log_weights(model, x, None, 1000, _gen(6))
    for row, k in enumerate((1, 10, 100)):
        groups = torch.logsumexp(log_w.reshape(1000 // k, k, -1), dim=1) - math.log(k)
        torch.testing.assert_close(curve.bounds[row], groups.mean(0), rtol=0, atol=1e-6)
    w = torch.exp(log_w.double())
    torch.testing.assert_close(curve.log_likelihood.value.double(), w.mean(0).log(), rtol=0, atol=1e-5)
    torch.testing.assert_close(curve.log_likelihood.stderr.double(), w.std(0) / (w.mean(0) * math.sqrt(1000)),
                               rtol=1e-4, atol=0)


# -- edge cases (issue 24): zero weights, non-finite chunks, huge log weights ------------------


@pytest.mark.parametrize("s", [5, 100])
def test_all_zero_weights_give_minus_inf_with_nan_diagnostics_and_a_warning(s):
    lw = torch.randn(s, 3, generator=_gen(20), dtype=F64)
    lw[:, 1] = -math.inf  # column 1: every weight zero
    with pytest.warns(UnreliableEstimateWarning, match="1 of 3 examples have every importance weight zero"):
        est = importance_estimate(lw)
    assert est.value[1] == -math.inf
    # k-hat must not read as "reliable" (-inf < 0.7): it is NaN, like the standard error
    assert math.isnan(est.khat[1]) and math.isnan(est.stderr[1])
    assert torch.isfinite(est.value[[0, 2]]).all() and torch.isfinite(est.stderr[[0, 2]]).all()
    assert math.isnan(effective_sample_size(lw)[1])
    acc = StreamingImportanceEstimate(s)
    for chunk in lw.split(7):
        acc.update(chunk)
    streamed = acc.result()
    assert streamed.value[1] == -math.inf and math.isnan(streamed.khat[1])
    assert math.isnan(streamed.stderr[1]) and math.isnan(acc.effective_sample_size()[1])
    torch.testing.assert_close(streamed.value, est.value, rtol=0, atol=1e-12)


def test_zero_weight_warning_silenced_by_warn_false():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        est = importance_estimate(torch.full((30, 2), -math.inf, dtype=F64), warn=False)
    assert (est.value == -math.inf).all() and est.khat.isnan().all()


@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_streaming_refuses_the_chunks_the_one_shot_estimator_refuses(bad):
    lw = _log_weights(50, (2,), seed=21)
    lw[3, 1] = bad
    with pytest.raises(ValueError, match="log_weights"):
        importance_estimate(lw)
    acc = StreamingImportanceEstimate(50)
    acc.update(lw[:2])  # clean
    with pytest.raises(ValueError, match=r"log_weights contains 1 NaN or \+inf"):
        acc.update(lw[2:])
    assert acc.seen == 2  # the refused chunk changed nothing
    acc.update(lw[2:].nan_to_num(nan=0.0, posinf=0.0))
    assert torch.isfinite(acc.result().value).all()


def test_streaming_minus_inf_is_a_zero_weight_as_in_the_one_shot_estimator():
    lw = _log_weights(60, (2,), seed=22)
    lw[:40, 0] = -math.inf  # the first chunks of column 0 hold no weight at all
    acc = StreamingImportanceEstimate(60)
    for chunk in lw.split(20):
        acc.update(chunk)
    one = importance_estimate(lw, warn=False)
    got = acc.result()
    torch.testing.assert_close(got.value, one.value, rtol=0, atol=1e-12)
    torch.testing.assert_close(got.stderr, one.stderr, rtol=1e-10, atol=0)
    torch.testing.assert_close(acc.effective_sample_size(), effective_sample_size(lw), rtol=1e-10, atol=0)


def test_streaming_ess_and_stderr_keep_their_precision_for_huge_log_weights():
    # Kish's ESS and the relative standard error do not depend on a common factor of the
    # weights. Log weights 1e15 + b_s (b_s on a grid of 1/8, so the sum is exact in float64)
    # must give the ESS of the b_s; unshifted, 2 LSE(log w) - LSE(2 log w) cancels 2e15 to
    # ~0.25, and the ESS is off by a factor up to e^0.25.
    base = torch.round(_log_weights(300, (3,), sigma=1.0, seed=23) * 8) / 8
    shifted = base + 1e15
    assert torch.equal(shifted - 1e15, base)
    acc = StreamingImportanceEstimate(300)
    ref = StreamingImportanceEstimate(300)
    for chunk, plain in zip(shifted.split(70), base.split(70), strict=True):
        acc.update(chunk)
        ref.update(plain)
    ess_ref = effective_sample_size(base)  # the one-shot route, on the unshifted weights
    torch.testing.assert_close(acc.effective_sample_size(), ess_ref, rtol=1e-12, atol=0)
    torch.testing.assert_close(acc.result().stderr, importance_estimate(base, warn=False).stderr,
                               rtol=1e-10, atol=0)
    torch.testing.assert_close(acc.result().value - 1e15, ref.result().value, rtol=0, atol=0.125)


@pytest.mark.parametrize("offset", [1e200, -1e200])
def test_streaming_equal_huge_log_weights_have_ess_s_and_zero_stderr(offset):
    # S equal weights: ESS = S and the relative standard error is 0 exactly. Near 1e200 the
    # unshifted sums lose log S entirely (1e200 + log S == 1e200) and gave ESS = 1.
    lw = torch.full((300, 2), offset, dtype=F64)
    acc = StreamingImportanceEstimate(300)
    for chunk in lw.split(70):
        acc.update(chunk)
    torch.testing.assert_close(acc.effective_sample_size(), torch.full((2,), 300.0, dtype=F64),
                               rtol=1e-12, atol=0)
    assert (acc.result().stderr == 0).all() and (acc.result().value == offset).all()
    torch.testing.assert_close(effective_sample_size(lw), acc.effective_sample_size(), rtol=1e-12, atol=0)


@pytest.mark.parametrize("dtype", [torch.int64, torch.bool, torch.complex64, "float64", 3])
def test_streaming_result_refuses_a_dtype_that_is_not_floating(dtype):
    acc = StreamingImportanceEstimate(30)
    acc.update(_log_weights(30, (2,), seed=24))
    with pytest.raises(TypeError, match="dtype must be None or a floating torch dtype"):
        acc.result(dtype)
    assert acc.result(torch.float32).value.dtype == torch.float32


def test_the_public_kernels_equal_the_checked_functions_and_keep_the_old_private_names():
    from vitoolkit.divergences import (
        effective_sample_size_unchecked,
        importance_estimate_unchecked,
        log_mean_exp_unchecked,
    )
    from vitoolkit.divergences import importance as imp

    lw = torch.randn(500, 3, generator=_gen(21), dtype=F64) * 2.0
    lw[:, 1] = lw[:, 1] - 800.0  # far below 0: the log-space forms must not underflow
    torch.testing.assert_close(log_mean_exp_unchecked(lw), log_mean_exp(lw), rtol=0, atol=0)
    torch.testing.assert_close(log_mean_exp_unchecked(lw), torch.log(torch.exp(lw + 800.0 * (
        torch.arange(3) == 1)).mean(0)) - 800.0 * (torch.arange(3) == 1), rtol=1e-12, atol=1e-12)
    w = torch.exp(lw - lw.amax(0))
    torch.testing.assert_close(effective_sample_size_unchecked(lw), w.sum(0) ** 2 / (w**2).sum(0),
                               rtol=1e-12, atol=0)
    torch.testing.assert_close(effective_sample_size_unchecked(lw), effective_sample_size(lw), rtol=0, atol=0)
    a, b = importance_estimate_unchecked(lw), importance_estimate(lw, warn=False)
    for x, y in zip(a, b, strict=True):
        torch.testing.assert_close(x, y, rtol=0, atol=0, equal_nan=True)
    assert imp._log_mean_exp is log_mean_exp_unchecked and imp._kish_ess is effective_sample_size_unchecked
    assert imp._importance_estimate is importance_estimate_unchecked
