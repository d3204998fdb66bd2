"""Gaussian gradient estimators, exact gradients and test costs (vitoolkit.gradients).

Independent routes: closed forms vs Gauss-Hermite quadrature and finite differences,
Monte Carlo means vs exact gradients within 4.5 standard errors (fixed seeds), sample
variances vs closed forms (Mohamed et al. 2020, section 3), and one hand-derived draw.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from _stats import assert_mc_close, assert_variance_close
from hypothesis import given
from hypothesis import strategies as st

from vitoolkit.gradients import (
    COSTS,
    ESTIMATORS,
    GradientEstimator,
    Linear,
    Quadratic,
    Step,
    exact_gaussian_gradient,
    gauss_hermite_expectation,
    gaussian_gradients,
    make_cost,
)
from vitoolkit.gradients.experiments import (
    estimator_table,
    mohamed_sweep,
    variance_vs_dimension,
    variance_vs_num_samples,
)

D64 = torch.float64
SMOOTH = ("linear", "quadratic", "gaussian", "cosine")


def _t(x):
    return torch.tensor(x, dtype=D64)


# -- exact gradients ------------------------------------------------------------------------


@given(
    name=st.sampled_from(SMOOTH),
    mu=st.floats(-2.0, 2.0),
    sigma=st.floats(0.2, 2.0),
    k=st.floats(0.1, 3.0),
)
def test_closed_form_matches_gauss_hermite(name, mu, sigma, k):
    cost = make_cost(name, k)
    loc, scale = _t([mu, -0.5 * mu]), _t([sigma, 0.7])
    closed = exact_gaussian_gradient(cost, loc, scale, method="closed_form")
    quad = exact_gaussian_gradient(cost, loc, scale, method="quadrature")
    for a, b in zip(closed, quad, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-8, atol=1e-9)


@pytest.mark.parametrize("name", list(COSTS))
def test_closed_form_gradient_is_derivative_of_expectation(name):
    cost = make_cost(name, 0.8)
    loc, scale, h = _t([0.4]), _t([1.3]), 1e-5
    g_loc, g_scale = exact_gaussian_gradient(cost, loc, scale)
    fd_loc = (cost.expectation(loc + h, scale) - cost.expectation(loc - h, scale)) / (2 * h)
    fd_scale = (cost.expectation(loc, scale + h) - cost.expectation(loc, scale - h)) / (2 * h)
    torch.testing.assert_close(g_loc.sum(), fd_loc, rtol=1e-7, atol=1e-9)
    torch.testing.assert_close(g_scale.sum(), fd_scale, rtol=1e-7, atol=1e-9)


def test_step_expectation_against_scipy_quad():
    from scipy import integrate, stats

    mu, sigma, k = 0.3, 0.8, 0.5
    value, _ = integrate.quad(lambda x: stats.norm.pdf(x, mu, sigma), k, np.inf)
    got = Step(k).expectation(_t([mu]), _t([sigma]))
    assert abs(float(got) - value) < 1e-10


def test_product_quadrature_for_a_non_separable_cost():
    # f = x1 x2 has E = mu1 mu2, d/dmu = (mu2, mu1), d/dsigma = 0.
    loc, scale = _t([0.7, -1.2]), _t([0.5, 1.5])
    g_loc, g_scale = exact_gaussian_gradient(lambda x: x[..., 0] * x[..., 1], loc, scale)
    torch.testing.assert_close(g_loc, _t([-1.2, 0.7]), atol=1e-10, rtol=0)
    torch.testing.assert_close(g_scale, _t([0.0, 0.0]), atol=1e-10, rtol=0)
    value = gauss_hermite_expectation(lambda x: (x**2).sum(-1), loc, scale)
    assert abs(float(value) - float((loc**2 + scale**2).sum())) < 1e-10


@pytest.mark.parametrize("name", ["linear", "quadratic"])
@pytest.mark.parametrize("estimator", ["score", "pathwise"])
def test_closed_form_variances_match_quadrature_of_second_moment(name, estimator):
    # Independent route for the D-dimensional formulas: E[g^2] by product Gauss-Hermite.
    cost = make_cost(name, 0.6)
    loc, scale = _t([0.9, -0.4, 0.2]), _t([1.1, 0.6, 1.4])
    t, w = np.polynomial.hermite.hermgauss(12)
    t, w = torch.from_numpy(t), torch.from_numpy(w / math.sqrt(math.pi))
    grid = torch.stack(torch.meshgrid(t, t, t, indexing="ij"), -1).reshape(-1, 3)
    weight = torch.stack(torch.meshgrid(w, w, w, indexing="ij"), -1).reshape(-1, 3).prod(-1)
    eps = math.sqrt(2) * grid
    x = loc + scale * eps
    if estimator == "score":
        f = cost(x).unsqueeze(-1)
        g_loc, g_scale = f * eps / scale, f * (eps**2 - 1) / scale
    else:
        xg = x.clone().requires_grad_(True)
        (d,) = torch.autograd.grad(cost(xg).sum(), xg)
        g_loc, g_scale = d, d * eps
    closed_forms = cost.estimator_variance(estimator, loc, scale)
    for g, closed in zip((g_loc, g_scale), closed_forms, strict=True):
        mean = (weight.unsqueeze(-1) * g).sum(0)
        var = (weight.unsqueeze(-1) * g**2).sum(0) - mean**2
        torch.testing.assert_close(var, closed, rtol=1e-9, atol=1e-9)


# -- unbiasedness of every estimator -----------------------------------------------------------


# Every (cost, estimator) pair except pathwise on the step, which must refuse (tested below).
PAIRS = [(c, e) for c in COSTS for e in ESTIMATORS if (c, e) != ("step", "pathwise")]


@pytest.mark.parametrize(("name", "estimator"), PAIRS)
def test_every_estimator_is_unbiased(name, estimator):
    cost = make_cost(name, 1.5)
    loc, scale = _t([1.0, -0.3]), _t([1.0, 0.6])
    gen = torch.Generator().manual_seed(hash((name, estimator)) % 2**31)
    s = gaussian_gradients(cost, loc, scale, estimator=estimator, num_samples=40_000,
                           generator=gen)
    exact = exact_gaussian_gradient(cost, loc, scale)
    for samples, truth in zip(s, exact, strict=True):
        assert samples.shape == (40_000, 2)
        assert_mc_close(samples.mean(0), truth, samples.std(0) / math.sqrt(40_000))


@pytest.mark.parametrize("estimator", ESTIMATORS)
def test_unbiased_for_a_generic_non_separable_cost(estimator):
    def cost(x):
        return torch.sin(x[..., 0]) * x[..., 1] ** 2

    loc, scale = _t([0.5, 0.8]), _t([0.7, 0.5])
    exact = exact_gaussian_gradient(cost, loc, scale)  # product Gauss-Hermite
    s = gaussian_gradients(cost, loc, scale, estimator=estimator, num_samples=40_000,
                           generator=torch.Generator().manual_seed(11))
    for samples, truth in zip(s, exact, strict=True):
        assert_mc_close(samples.mean(0), truth, samples.std(0) / math.sqrt(40_000))


# -- variances against closed forms ----------------------------------------------------------------


@pytest.mark.parametrize("cost", [Linear(), Quadratic(2.5), Quadratic(-0.5)], ids=repr)
@pytest.mark.parametrize("estimator", ["score", "pathwise"])
def test_one_dimensional_variances_match_closed_forms(cost, estimator):
    loc, scale = _t([0.7]), _t([1.3])
    s = gaussian_gradients(cost, loc, scale, estimator=estimator, num_samples=200_000,
                           generator=torch.Generator().manual_seed(3))
    closed_forms = cost.estimator_variance(estimator, loc, scale)
    for samples, closed in zip(s, closed_forms, strict=True):
        assert_variance_close(samples, closed)


def test_reference_values_are_the_published_ones():
    # Mohamed et al. (2020), section 3, at mu = 1, sigma = 1 (a = mu - k): linear 3 and 12; quadratic k = 0:
    # a^4 + 14 a^2 + 15 = 30, 2 a^4 + 60 a^2 + 74 = 136; pathwise 4 and 4 a^2 + 8 = 12.
    one = _t([1.0])
    assert [float(v) for v in Linear().estimator_variance("score", one, one)] == [3.0, 12.0]
    assert [float(v) for v in Quadratic(0.0).estimator_variance("score", one, one)] == [30.0, 136.0]
    assert [float(v) for v in Quadratic(0.0).estimator_variance("pathwise", one, one)] == [4.0, 12.0]


@pytest.mark.parametrize("dim", [1, 4, 16])
def test_dimension_formula(dim):
    # q = N(mu 1, sigma^2 I_D), f = sum x_d: Var_SF[d/dmu_i] = (D mu)^2 / sigma^2 + D + 1.
    mu, sigma = 0.8, 1.2
    loc, scale = torch.full((dim,), mu, dtype=D64), torch.full((dim,), sigma, dtype=D64)
    s = gaussian_gradients(Linear(), loc, scale, estimator="score", num_samples=100_000,
                           generator=torch.Generator().manual_seed(dim))
    expected = (dim * mu) ** 2 / sigma**2 + dim + 1
    assert_variance_close(s.loc, torch.full((dim,), expected, dtype=D64))
    closed, _ = Linear().estimator_variance("score", loc, scale)
    torch.testing.assert_close(closed, torch.full((dim,), expected, dtype=D64))
    p = gaussian_gradients(Linear(), loc, scale, estimator="pathwise", num_samples=100,
                           generator=torch.Generator().manual_seed(0))
    assert bool((p.loc == 1).all())


# -- one hand-derived draw -----------------------------------------------------------------------


def test_fixed_seed_sample_against_hand_derived_values():
    # f(x) = x^2 (Quadratic(0)), mu = 1, sigma = 2. With eps the generator's first standard
    # normal draw, x = 1 + 2 eps and by hand: score d/dmu = x^2 eps / 2,
    # score d/dsigma = x^2 (eps^2 - 1) / 2, pathwise d/dmu = 2x, d/dsigma = 2x eps.
    eps = torch.randn((2, 1), generator=torch.Generator().manual_seed(7), dtype=D64)[0, 0].item()
    x = 1 + 2 * eps
    loc, scale = _t([1.0]), _t([2.0])
    s = gaussian_gradients(Quadratic(0.0), loc, scale, estimator="score", num_samples=2,
                           generator=torch.Generator().manual_seed(7))
    assert s.loc[0, 0].item() == pytest.approx(x**2 * eps / 2, rel=1e-14)
    assert s.scale[0, 0].item() == pytest.approx(x**2 * (eps**2 - 1) / 2, rel=1e-14)
    p = gaussian_gradients(Quadratic(0.0), loc, scale, estimator="pathwise", num_samples=2,
                           generator=torch.Generator().manual_seed(7))
    assert p.loc[0, 0].item() == pytest.approx(2 * x, rel=1e-14)
    assert p.scale[0, 0].item() == pytest.approx(2 * x * eps, rel=1e-14)


def test_local_generator_is_deterministic_and_leaves_global_state():
    state = torch.random.get_rng_state()
    a = gaussian_gradients(Quadratic(1.0), [0.0], [1.0], estimator="measure_valued_coupled",
                           num_samples=50, generator=torch.Generator().manual_seed(5))
    b = gaussian_gradients(Quadratic(1.0), [0.0], [1.0], estimator="measure_valued_coupled",
                           num_samples=50, generator=torch.Generator().manual_seed(5))
    assert torch.equal(a.loc, b.loc) and torch.equal(a.scale, b.scale)
    assert torch.equal(state, torch.random.get_rng_state())


def test_enum_members_are_accepted_and_documented():
    s = gaussian_gradients(Linear(), [0.0], [1.0], estimator=GradientEstimator.PATHWISE,
                           num_samples=4)
    assert s.loc.shape == (4, 1)
    for member in GradientEstimator:
        assert f'("{member.value}")' in GradientEstimator.__doc__


def test_batched_k_equals_separate_problems():
    ks = _t([[0.5], [2.0]])
    batched = exact_gaussian_gradient(make_cost("cosine", ks), _t([[1.0], [1.0]]), _t([[1.0]]))
    for i, k in enumerate((0.5, 2.0)):
        single = exact_gaussian_gradient(make_cost("cosine", k), _t([1.0]), _t([1.0]))
        torch.testing.assert_close(batched[0][i], single[0])
        torch.testing.assert_close(batched[1][i], single[1])
    s = gaussian_gradients(make_cost("cosine", ks), _t([[1.0], [1.0]]), _t([[1.0]]),
                           estimator="measure_valued", num_samples=10)
    assert s.loc.shape == (10, 2, 1)


# -- bad input -------------------------------------------------------------------------------------


def _bad(match, **kw):
    args = {"cost": Quadratic(1.0), "loc": [0.0], "scale": [1.0], "estimator": "score",
            "num_samples": 10}
    args.update(kw)
    cost = args.pop("cost")
    loc = args.pop("loc")
    scale = args.pop("scale")
    with pytest.raises(ValueError, match=match):
        gaussian_gradients(cost, loc, scale, **args)


def test_bad_inputs_raise_clear_errors():
    _bad("scale must be positive", scale=[0.0])
    _bad("scale must be positive", scale=[-1.0])
    _bad("num_samples must be an integer >= 2", num_samples=1)
    _bad(r"estimator must be one of .*'pathwise'.*'score'", estimator="reinforce")
    _bad("loc must have shape", loc=0.0)
    _bad(r"expected output \(10,\), got \(10, 1\)", cost=lambda x: x)
    _bad("non-finite", cost=lambda x: torch.log(x.sum(-1) - 100.0))
    _bad("loc contains 1 NaN", loc=[float("nan")])
    _bad("do not broadcast", loc=[0.0, 1.0], scale=[1.0, 1.0, 1.0])


def test_pathwise_refuses_non_differentiable_costs():
    _bad("pathwise estimator needs a differentiable cost", cost=Step(0.0), estimator="pathwise")
    # Not declared, but autograd's gradient is zero at every draw while f varies.
    _bad("autograd gradient is zero at every draw",
         cost=lambda x: torch.floor(x).sum(-1), estimator="pathwise")
    # A comparison, or a cost not written in torch: no autograd graph at all.
    _bad("carries no gradient", cost=lambda x: (x > 0).to(x.dtype).sum(-1), estimator="pathwise")
    _bad("carries no gradient",
         cost=lambda x: torch.from_numpy(np.cos(x.detach().numpy()).sum(-1)), estimator="pathwise")
    with pytest.raises(ValueError, match="method must be one of"):
        exact_gaussian_gradient(Linear(), [0.0], [1.0], method="exact")
    with pytest.raises(ValueError, match="no closed form"):
        exact_gaussian_gradient(lambda x: x.sum(-1), [0.0], [1.0], method="closed_form")


def test_constant_cost_is_not_mistaken_for_a_step():
    # The same constant written three ways: with a graph, as ones_like (no graph), outside torch.
    for cost in (lambda x: 0.0 * x.sum(-1) + 3.0,
                 lambda x: 3.0 * torch.ones_like(x[..., 0]),
                 lambda x: torch.from_numpy(np.full(x.shape[:-1], 3.0))):
        s = gaussian_gradients(cost, [0.2, -1.0], [1.0, 0.5], estimator="pathwise",
                               num_samples=50, generator=torch.Generator().manual_seed(0))
        assert s.loc.shape == (50, 2)
        assert bool((s.loc == 0).all()) and bool((s.scale == 0).all())
        # ... and it agrees with the exact gradient (zero) and the score function's mean.
        exact = exact_gaussian_gradient(cost, [0.2, -1.0], [1.0, 0.5])
        assert float(torch.cat(exact).abs().max()) < 1e-12
    # A step whose draws all land on one side is constant on the draws: zero, as its gradient
    # (the density at the step is about 1e-300) - but one whose draws straddle it is refused.
    s = gaussian_gradients(lambda x: (x > 40.0).to(x.dtype).sum(-1), [0.0], [1.0],
                           estimator="pathwise", num_samples=100)
    assert bool((s.loc == 0).all())
    _bad("carries no gradient", cost=lambda x: (x > 0.0).to(x.dtype).sum(-1), estimator="pathwise",
         num_samples=100)


def test_a_constant_log_joint_leaves_the_entropy_gradient():
    # ELBO = c + H[q], so the pathwise per-sample gradient is exactly (0, 1/scale).
    from vitoolkit.gradients.elbo import elbo_gradients

    loc, scale = _t([0.3, -0.2]), _t([0.5, 2.0])
    for log_joint in (lambda z: -2.0 * torch.ones_like(z[..., 0]), lambda z: 0.0 * z.sum(-1) - 2.0):
        s = elbo_gradients(log_joint, loc, scale, estimator="pathwise", num_samples=20,
                           generator=torch.Generator().manual_seed(1))
        torch.testing.assert_close(s.loc, torch.zeros(20, 2, dtype=D64), rtol=0, atol=1e-14)
        torch.testing.assert_close(s.scale, (1 / scale).expand(20, 2), rtol=1e-14, atol=1e-14)
    with pytest.raises(ValueError, match="carries no gradient"):
        elbo_gradients(lambda z: torch.from_numpy(np.cos(z.detach().numpy()).sum(-1)), loc, scale,
                       estimator="stl", num_samples=20)


# -- the boundary: resources and coercion ------------------------------------------------------


def test_oversized_requests_are_refused_before_allocation():
    import resource

    from vitoolkit.exceptions import ResourceLimitError

    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    for estimator in ("score", "pathwise", "measure_valued"):
        with pytest.raises(ResourceLimitError, match=r"num_samples=1000000000000 would need .*TiB"):
            gaussian_gradients(Quadratic(1.0), [0.0], [1.0], estimator=estimator,
                               num_samples=10**12)
    # The guard counts the batch: 10**7 draws of a (1000, 100) problem.
    with pytest.raises(ResourceLimitError, match="num_samples"):
        gaussian_gradients(Linear(), torch.zeros(1000, 100), [1.0], estimator="score",
                           num_samples=10**7)
    with pytest.raises(ValueError, match=r"num_nodes must be an integer <= 300"):
        exact_gaussian_gradient(Quadratic(1.0), [0.0], [1.0], num_nodes=10**9)
    with pytest.raises(ValueError, match="num_nodes"):
        gauss_hermite_expectation(lambda x: x.sum(-1), [0.0, 0.0], [1.0, 1.0], num_nodes=301)
    # Refused, not attempted: the peak memory did not grow by the request (or by much at all).
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 200_000  # KiB


def test_memory_limit_is_read_from_the_environment(monkeypatch):
    from vitoolkit.exceptions import ResourceLimitError

    monkeypatch.setenv("VITOOLKIT_MAX_MEMORY", "1M")
    gaussian_gradients(Quadratic(1.0), [0.0], [1.0], estimator="score", num_samples=1000)
    with pytest.raises(ResourceLimitError, match=r"num_samples=100000 would need 6\.1 MiB"):
        gaussian_gradients(Quadratic(1.0), [0.0], [1.0], estimator="score", num_samples=100_000)
    # Quadrature: 200 nodes for a batch of 2000 parameters is 19 MiB of nodes and values.
    with pytest.raises(ResourceLimitError, match="num_nodes=200"):
        exact_gaussian_gradient(Quadratic(1.0), torch.zeros(2000, 1), [1.0], method="quadrature")


@pytest.mark.parametrize(("kw", "error", "match"), [
    ({"num_samples": 10.0}, TypeError, "num_samples must be an integer >= 2, got 10.0"),
    ({"num_samples": True}, TypeError, "num_samples must be an integer"),
    ({"num_samples": "10"}, TypeError, "num_samples must be an integer"),
    ({"loc": ["a"]}, TypeError, "loc must"),
    ({"scale": [True]}, TypeError, "scale must hold real numbers, got a boolean"),
    ({"loc": [1 + 2j]}, TypeError, "loc must hold real numbers, got complex"),
    ({"estimator": 3}, ValueError, "estimator must be one of"),
    ({"cost": "quadratic"}, TypeError, "cost must be callable"),
    ({"estimator": "score_baseline", "baseline": [1.0, 2.0]}, ValueError,
     r"baseline must broadcast to the batch shape \(\)"),
])
def test_no_silent_coercion(kw, error, match):
    args = {"cost": Quadratic(1.0), "loc": [0.0], "scale": [1.0], "estimator": "score",
            "num_samples": 10}
    args.update(kw)
    with pytest.raises(error, match=match):
        gaussian_gradients(args.pop("cost"), args.pop("loc"), args.pop("scale"), **args)


def test_numpy_and_torch_integers_are_counts_and_lists_are_float64():
    a = gaussian_gradients(Quadratic(1.0), [-0.3], [0.7], estimator="score",
                           num_samples=np.int64(10), generator=torch.Generator().manual_seed(0))
    b = gaussian_gradients(Quadratic(1.0), _t([-0.3]), _t([0.7]), estimator="score",
                           num_samples=torch.tensor(10), generator=torch.Generator().manual_seed(0))
    # A Python list is read in float64 (not through float32, which would move -0.3 by 1e-8).
    assert torch.equal(a.loc, b.loc) and torch.equal(a.scale, b.scale)


# -- experiments -------------------------------------------------------------------------------------


def test_mohamed_sweep_structure_and_closed_forms():
    ks = np.geomspace(0.1, 10, 5)
    sweep = mohamed_sweep(ks, num_samples=20_000, generator=torch.Generator().manual_seed(1))
    assert set(sweep) == {"quadratic", "gaussian", "cosine"}
    quad = sweep["quadratic"]
    assert set(quad["closed_form"]) == {"score", "pathwise"}
    np.testing.assert_allclose(quad["closed_form"]["pathwise"]["loc"], 4.0)
    # Each mean agrees with the exact gradient (bias within 4.5 standard errors).
    for c in sweep.values():
        for est in c["mean"]:
            for p in ("loc", "scale"):
                assert_mc_close(c["mean"][est][p], c["exact"][p], c["stderr"][est][p])
    # Mohamed et al. section 3: pathwise loses to the score function for cos(kx), large k.
    cos = sweep["cosine"]["variance"]
    assert cos["pathwise"]["loc"][-1] > 10 * cos["score"]["loc"][-1]
    assert cos["pathwise"]["loc"][0] < cos["score"]["loc"][0] / 10


def test_other_experiments_return_arrays():
    gen = torch.Generator().manual_seed(2)
    d = variance_vs_dimension([1, 4], num_samples=5_000, generator=gen)
    np.testing.assert_allclose(d["closed_form"]["score"]["loc"], [3.0, 21.0])
    assert d["variance"]["score"]["loc"][1] > d["variance"]["score"]["loc"][0]
    n = variance_vs_num_samples("quadratic", [1, 10], k=2.0, replicates=200, generator=gen)
    r = n["results"]["score"]
    assert r["variance"].shape == (2,) and r["snr"][1] > r["snr"][0]
    table = estimator_table("step", k=0.0, num_samples=20_000, generator=gen)
    assert "pathwise" not in table["estimators"]
    for est, row in table["estimators"].items():
        assert abs(row["loc"]["bias_z"]) < 4.5, est


def test_gradient_statistics_variance_stderr_matches_the_gaussian_formula():
    # For normal draws the sample variance has standard error sigma^2 sqrt(2 / n)
    # (m4 = 3 sigma^4); the moment-based estimate agrees to a few percent at n = 40,000.
    from vitoolkit.gradients.experiments import gradient_statistics

    gen = torch.Generator().manual_seed(5)
    x = 2.0 * torch.randn((40_000, 3), generator=gen, dtype=D64)
    st_ = gradient_statistics(x)
    np.testing.assert_allclose(st_["variance_stderr"], 4.0 * math.sqrt(2 / 40_000), rtol=0.1)
    assert st_["variance_stderr"].shape == (3,)
    # Experiments expose it next to each variance, with the same shapes.
    sweep = mohamed_sweep([0.5, 2.0], costs=("quadratic",), num_samples=2_000, generator=gen)
    q = sweep["quadratic"]
    for est in q["variance"]:
        for p in ("loc", "scale"):
            assert q["variance_stderr"][est][p].shape == q["variance"][est][p].shape
    d = variance_vs_dimension([1, 3], num_samples=2_000, generator=gen)
    for est in d["variance"]:
        assert d["variance_stderr"][est]["loc"].shape == (2,)
        assert np.all(d["variance_stderr"][est]["loc"] >= 0)
