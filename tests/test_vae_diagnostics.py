"""VAE diagnostics and latent tools against closed forms on a linear Gaussian model.

The test model follows the VAE interface (encode -> Independent Normal, decode ->
distribution, prior) with a linear Gaussian decoder p(x|z) = N(W z + b, s^2 I)
and a linear encoder, so that log p(x), the exact posterior, the best diagonal
Gaussian q* and every ELBO have closed forms (Bishop PRML section 2.3.3 and
10.1.2): p(x) = N(b, W W^T + s^2 I); the posterior has precision
Lambda = I + W^T W / s^2 and mean Lambda^-1 W^T (x - b) / s^2; the best
mean-field Gaussian under KL(q || p) keeps that mean with variances 1 / Lambda_dd.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from _stats import assert_mc_close, assert_variance_close
from hypothesis import given
from hypothesis import strategies as st
from scipy.stats import entropy as scipy_entropy
from sklearn.metrics import mutual_info_score
from torch import nn
from torch.distributions import Independent, MultivariateNormal, Normal

from vitoolkit.divergences import KHAT_THRESHOLD, UnreliableEstimateWarning
from vitoolkit.vae import diagnostics as diag
from vitoolkit.vae import latent

ROOT = Path(__file__).resolve().parents[1]


class LinearGaussianVAE(nn.Module):
    """q(z|x) = N(A x + c, diag(t^2)); p(z) = N(0, I); p(x|z) = N(W z + b, s^2 I)."""

    def __init__(self, W, b, s, A, c, t):
        super().__init__()
        self.W, self.b = nn.Parameter(W), nn.Parameter(b)
        self.A, self.c = nn.Parameter(A), nn.Parameter(c)
        self.log_t = nn.Parameter(torch.as_tensor(t).log())
        self.s = float(s)

    @property
    def prior(self):
        d = self.W.shape[1]
        zeros = torch.zeros(d, dtype=self.W.dtype)
        return Independent(Normal(zeros, torch.ones_like(zeros)), 1)

    def encode(self, x):
        loc = x @ self.A.T + self.c
        return Independent(Normal(loc, self.log_t.exp().expand_as(loc)), 1)

    def decode(self, z):
        return Independent(Normal(z @ self.W.T + self.b, self.s), 1)

    # -- closed forms -----------------------------------------------------------
    def log_evidence(self, x):
        D = self.W.shape[0]
        cov = self.W @ self.W.T + self.s**2 * torch.eye(D, dtype=self.W.dtype)
        return MultivariateNormal(self.b, cov).log_prob(x)

    def posterior(self, x):
        d = self.W.shape[1]
        prec = torch.eye(d, dtype=self.W.dtype) + self.W.T @ self.W / self.s**2
        cov = torch.linalg.inv(prec)
        mean = (x - self.b) @ self.W @ cov / self.s**2
        return mean, cov, prec

    def elbo_exact(self, x, loc, scale):
        """E_q log N(x; W z + b, s^2 I) - KL(q || N(0, I)) for q = N(loc, diag scale^2)."""
        D = self.W.shape[0]
        resid = x - loc @ self.W.T - self.b
        trace = (scale**2 @ (self.W**2).T).sum(-1)  # tr(W diag(scale^2) W^T)
        recon = -0.5 * D * math.log(2 * math.pi * self.s**2) - (
            (resid**2).sum(-1) + trace
        ) / (2 * self.s**2)
        kl = 0.5 * (loc**2 + scale**2 - 1 - torch.log(scale**2)).sum(-1)
        return recon - kl


def _model(D=4, d=2, seed=0, enc_noise=0.05, mix=0.3):
    g = torch.Generator().manual_seed(seed)
    W = torch.randn(D, d, generator=g, dtype=torch.float64)
    # Overlapping columns: z_1 and z_2 explain the same pixels, so the posterior is
    # correlated ("explaining away", rho = -0.43 with mix=0.3) and a diagonal q* has
    # a real approximation gap, -1/2 log(1 - rho^2) = 0.10 nats for d = 2.
    W[:, 1:] = mix * W[:, :1] + W[:, 1:]
    b = 0.5 * torch.randn(D, generator=g, dtype=torch.float64)
    s = 0.7
    # A deliberately imperfect encoder: a perturbed posterior-mean map and a
    # fixed scale, so both gaps are positive.
    prec = torch.eye(d, dtype=torch.float64) + W.T @ W / s**2
    exact_A = torch.linalg.solve(prec, W.T) / s**2
    A = exact_A + enc_noise * torch.randn(d, D, generator=g, dtype=torch.float64)
    c = -(A @ b)
    t = torch.full((d,), 0.8, dtype=torch.float64)
    return LinearGaussianVAE(W, b, s, A, c, t)


def _data(model, n, seed=1):
    g = torch.Generator().manual_seed(seed)
    d = model.W.shape[1]
    z = torch.randn(n, d, generator=g, dtype=torch.float64)
    with torch.no_grad():
        return z @ model.W.T + model.b + model.s * torch.randn(
            n, model.W.shape[0], generator=g, dtype=torch.float64
        )


# -- KL per dimension and active units ------------------------------------------------------


def test_kl_per_dimension_is_the_closed_form_and_sums_to_the_total():
    model = _model()
    x = _data(model, 50)
    kl = diag.kl_per_dimension(model, x)
    assert kl.shape == (50, 2)
    with torch.no_grad():
        q = model.encode(x)
        mu, sd = q.mean, q.stddev
        by_hand = 0.5 * (mu**2 + sd**2 - 1 - torch.log(sd**2))  # Kingma & Welling App. B
        total = torch.distributions.kl_divergence(q, model.prior)
    torch.testing.assert_close(kl, by_hand)
    torch.testing.assert_close(kl.sum(-1), total)


def test_kl_per_dimension_matches_monte_carlo(gen):
    model = _model()
    x = _data(model, 3)
    kl = diag.kl_per_dimension(model, x)
    with torch.no_grad():
        q = model.encode(x).base_dist
        z = q.loc + q.scale * torch.randn(200_000, *q.loc.shape, generator=gen, dtype=q.loc.dtype)
        terms = q.log_prob(z) - Normal(0.0, 1.0).log_prob(z)
    assert_mc_close(terms.mean(0), kl, terms.std(0) / math.sqrt(terms.shape[0]))


class _LinearEncoder(nn.Module):
    """Encoder means M x for x of shape (n, 4): Cov_x(mean) = M Cov(x) M^T."""

    def __init__(self, M):
        super().__init__()
        self.M = nn.Parameter(M)

    @property
    def prior(self):
        zeros = torch.zeros(self.M.shape[0], dtype=self.M.dtype)
        return Independent(Normal(zeros, torch.ones_like(zeros)), 1)

    def encode(self, x):
        loc = x @ self.M.T
        return Independent(Normal(loc, torch.ones_like(loc)), 1)


def test_active_units_on_means_of_known_covariance(gen):
    # x ~ N(0, I_4), so unit d's activity is ||M_d||^2: 1, 0.25, 1e-4, 0.
    M = torch.tensor(
        [[1.0, 0.0, 0.0, 0.0], [0.0, 0.3, 0.4, 0.0], [0.0, 0.0, 0.0, 0.01], [0.0, 0.0, 0.0, 0.0]],
        dtype=torch.float64,
    )
    enc = _LinearEncoder(M)
    x = torch.randn(4000, 4, generator=gen, dtype=torch.float64)
    res = diag.active_units(enc, x)
    exact = (M**2).sum(1)
    assert res.count == 2
    assert res.mask.tolist() == [True, True, False, False]
    means = (x @ M.T).numpy()
    np.testing.assert_allclose(res.activity.numpy(), np.var(means, axis=0, ddof=1), rtol=1e-12)
    assert_variance_close(torch.as_tensor(means[:, :3]), exact[:3])
    assert diag.active_units(enc, x, threshold=1e-5).count == 3
    assert diag.active_units(enc, x, threshold=2.0).count == 0


def test_active_units_bad_input():
    enc = _LinearEncoder(torch.eye(4, dtype=torch.float64))
    with pytest.raises(ValueError, match="at least 2 rows"):
        diag.active_units(enc, torch.zeros(1, 4, dtype=torch.float64))
    with pytest.raises(ValueError, match="threshold"):
        diag.active_units(enc, torch.zeros(3, 4, dtype=torch.float64), threshold=-1)
    with pytest.raises(ValueError, match="NaN"):
        diag.active_units(enc, torch.full((3, 4), float("nan"), dtype=torch.float64))
    with pytest.raises(ValueError, match=r"shape \(n, data_dim\)"):
        diag.active_units(enc, torch.zeros(4, dtype=torch.float64))


class _HalfCollapsed(nn.Module):
    """Units 0, 1 follow x; units 2, 3 have q(z_d|x) = p(z_d) exactly for every x."""

    def __init__(self, all_collapsed=False):
        super().__init__()
        self.w = nn.Parameter(torch.ones((), dtype=torch.float64))
        self.all_collapsed = all_collapsed

    @property
    def prior(self):
        zeros = torch.zeros(4, dtype=torch.float64)
        return Independent(Normal(zeros, torch.ones_like(zeros)), 1)

    def encode(self, x):
        loc = torch.zeros(x.shape[0], 4, dtype=x.dtype)
        scale = torch.ones_like(loc)
        if not self.all_collapsed:
            loc[:, :2] = self.w * x[:, :2]
            scale[:, :2] = 0.1
        return Independent(Normal(loc, scale), 1)


def test_posterior_collapse_report(gen):
    x = torch.randn(500, 4, generator=gen, dtype=torch.float64)
    rep = diag.check_posterior_collapse(_HalfCollapsed(), x)
    assert rep.collapsed_units.tolist() == [False, False, True, True]
    assert rep.inactive_units.tolist() == [False, False, True, True]
    assert rep.fraction_collapsed == 0.5 and not rep.collapsed
    torch.testing.assert_close(rep.mean_kl[2:], torch.zeros(2, dtype=torch.float64))
    full = diag.check_posterior_collapse(_HalfCollapsed(all_collapsed=True), x)
    assert full.collapsed and full.fraction_collapsed == 1.0
    with pytest.raises(ValueError, match="delta"):
        diag.check_posterior_collapse(_HalfCollapsed(), x, delta=1.0)


# -- the amortisation gap ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def gap_run():
    model = _model()
    x = _data(model, 12)
    params = {k: v.detach().clone() for k, v in model.state_dict().items()}
    res = diag.amortisation_gap(
        model, x, steps=400, num_samples=16, lr=0.05, eval_samples=20_000,
        generator=torch.Generator().manual_seed(7),
    )
    return model, x, params, res


def test_amortisation_gap_matches_closed_forms(gap_run):
    model, x, _, res = gap_run
    with torch.no_grad():
        log_px = model.log_evidence(x)
        q = model.encode(x)
        elbo_q = model.elbo_exact(x, q.mean, q.stddev)
        mean, _, prec = model.posterior(x)
        opt_scale = (1.0 / torch.diagonal(prec)).sqrt().expand_as(mean)
        elbo_opt = model.elbo_exact(x, mean, opt_scale)
    # L[q] is a plain Monte Carlo mean: within 4.5 standard errors of the closed form.
    assert_mc_close(res.elbo_amortised, elbo_q, res.elbo_amortised_stderr)
    # q* found by stochastic optimisation: its ELBO is at most the optimum, and close to it.
    assert_mc_close(res.elbo_optimised, elbo_opt, res.elbo_optimised_stderr, atol=0.01)
    # Adam on a noisy gradient leaves q*'s parameters a random walk of a few
    # hundredths around the optimum, which costs only ~1e-3 nats of ELBO.
    torch.testing.assert_close(res.loc, mean, atol=0.05, rtol=0)
    torch.testing.assert_close(res.scale, opt_scale, atol=0.05, rtol=0)
    # Importance sampling with a proposal close to the posterior: nearly exact
    # (the bias of log-mean-exp is about Var(w) / (2 k), here ~1e-2 at most).
    torch.testing.assert_close(res.log_likelihood, log_px, atol=0.02, rtol=0)
    exact_amort = elbo_opt - elbo_q
    exact_approx = log_px - elbo_opt
    assert float(exact_amort.min()) > 1.0  # the test encoder is really imperfect
    assert float(exact_approx.min()) > 0.09  # and the posterior really correlated
    # Noise: mostly the Monte Carlo error of L[q]; plus the optimiser's shortfall.
    assert_mc_close(res.amortisation_gap, exact_amort, res.elbo_amortised_stderr, atol=0.01)
    assert_mc_close(res.approximation_gap, exact_approx, res.elbo_optimised_stderr, atol=0.02)


def test_gap_with_an_external_log_likelihood():
    # A strongly correlated posterior (rho = -0.93): importance sampling with the
    # diagonal q* as proposal falls short, the exact log p(x) passed in does not.
    model = _model(mix=2.0)
    x = _data(model, 4)
    with torch.no_grad():
        log_px = model.log_evidence(x)
        mean, _, prec = model.posterior(x)
        elbo_opt = model.elbo_exact(x, mean, (1.0 / torch.diagonal(prec)).sqrt().expand_as(mean))
    kw = {"steps": 300, "num_samples": 16, "lr": 0.05, "eval_samples": 5000}
    given = diag.amortisation_gap(model, x, log_likelihood=log_px,
                                  generator=torch.Generator().manual_seed(3), **kw)
    # The diagonal q* is too narrow along the posterior's long axis: heavy-tailed weights,
    # and the Pareto k-hat says so (Vehtari et al. 2024).
    with pytest.warns(UnreliableEstimateWarning, match="of 4 examples have Pareto k-hat"):
        sampled = diag.amortisation_gap(model, x, generator=torch.Generator().manual_seed(3),
                                        **kw)
    assert bool(given.log_likelihood_khat.isnan().all())  # nothing sampled, nothing to judge
    assert float(sampled.log_likelihood_khat.max()) > KHAT_THRESHOLD
    torch.testing.assert_close(given.log_likelihood, log_px)
    assert_mc_close(given.approximation_gap, log_px - elbo_opt, given.elbo_optimised_stderr,
                    atol=0.02)
    assert float((log_px - elbo_opt).min()) > 0.9
    assert bool((sampled.log_likelihood < log_px - 0.05).all())
    with pytest.raises(ValueError, match="log_likelihood must have shape"):
        diag.amortisation_gap(model, x, log_likelihood=log_px[:2], **kw)


def test_gap_identity_and_signs(gap_run):
    _, _, _, res = gap_run
    # rho = -0.43: q* is close enough to the posterior for reliable weights.
    assert float(res.log_likelihood_khat.max()) < KHAT_THRESHOLD
    torch.testing.assert_close(res.inference_gap, res.approximation_gap + res.amortisation_gap)
    assert bool((res.amortisation_gap >= 0).all())
    assert bool((res.approximation_gap >= 0).all())
    assert bool((res.elbo_optimised <= res.log_likelihood).all())


def test_gap_leaves_the_model_untouched(gap_run):
    model, _, params, _ = gap_run
    for k, v in model.state_dict().items():
        assert torch.equal(v, params[k])
    assert all(p.grad is None for p in model.parameters())
    assert model.training  # the mode is restored


def test_gap_without_optimisation_is_zero_and_seeded():
    model = _model(seed=3)
    x = _data(model, 5)
    kw = {"steps": 0, "eval_samples": 500}
    a = diag.amortisation_gap(model, x, generator=torch.Generator().manual_seed(1), **kw)
    b = diag.amortisation_gap(model, x, generator=torch.Generator().manual_seed(1), **kw)
    assert torch.equal(a.amortisation_gap, torch.zeros_like(a.amortisation_gap))
    assert torch.equal(a.log_likelihood, b.log_likelihood)


@pytest.mark.parametrize(
    "kwargs, match",
    [({"steps": -1}, "steps"), ({"num_samples": 0}, "num_samples"),
     ({"eval_samples": 1}, "eval_samples"), ({"lr": 0.0}, "lr")],
)
def test_gap_bad_arguments(kwargs, match):
    model = _model()
    with pytest.raises(ValueError, match=match):
        diag.amortisation_gap(model, _data(model, 2), **kwargs)


# -- factor scores -----------------------------------------------------------------------------


def test_mutual_information_matches_sklearn():
    rng = np.random.default_rng(0)
    f = np.stack([rng.integers(0, 3, 3000), rng.uniform(0, 1, 3000)], axis=1)
    codes = np.stack([f[:, 0] + rng.normal(0, 0.5, 3000), f[:, 1] ** 2, rng.normal(size=3000)], 1)
    mi, ent = diag.mutual_information_matrix(codes, f, bins=10)
    for j in range(3):
        cj = np.digitize(codes[:, j], np.histogram_bin_edges(codes[:, j], 10)[1:-1])
        for k in range(2):
            fk = f[:, k].astype(int) if k == 0 else np.digitize(
                f[:, k], np.histogram_bin_edges(f[:, k], 10)[1:-1])
            assert float(mi[j, k]) == pytest.approx(mutual_info_score(cj, fk), abs=1e-12)
            if j == 0:
                assert float(ent[k]) == pytest.approx(scipy_entropy(np.bincount(fk)), abs=1e-12)


def test_mig_separates_aligned_from_mixed_codes():
    rng = np.random.default_rng(1)
    n = 20_000
    f = rng.uniform(-1, 1, size=(n, 2))
    noise = rng.normal(size=n)
    aligned = diag.mutual_information_gap(np.stack([f[:, 1], noise, f[:, 0]], 1), f)
    mixed = diag.mutual_information_gap(np.stack([f[:, 0] + f[:, 1], f[:, 0] - f[:, 1]], 1), f)
    assert aligned.mig > 0.95
    assert mixed.mig < 0.2
    # The best unit of each factor is the copy of it.
    assert torch.argmax(aligned.mutual_information, dim=0).tolist() == [2, 0]
    np.testing.assert_allclose(
        aligned.correlation.numpy(),
        np.abs(np.corrcoef(np.stack([f[:, 1], noise, f[:, 0]], 1).T, f.T)[:3, 3:]),
        atol=1e-10,
    )


@given(perm=st.permutations(range(4)), shift=st.integers(-3, 3))
def test_mig_is_invariant_to_unit_order_and_shifts(perm, shift):
    rng = np.random.default_rng(2)
    f = rng.uniform(size=(500, 2))
    codes = np.concatenate([f + rng.normal(0, 0.1, size=f.shape), rng.normal(size=(500, 2))], 1)
    base = diag.mutual_information_gap(codes, f)
    moved = diag.mutual_information_gap(codes[:, list(perm)] * 2.0 + shift, f)
    assert moved.mig == pytest.approx(base.mig, abs=1e-9)
    assert 0.0 <= base.mig <= 1.0


def test_factor_scores_bad_input():
    with pytest.raises(ValueError, match="constant"):
        diag.mutual_information_gap(np.random.default_rng(0).normal(size=(10, 2)), np.ones((10, 1)))
    with pytest.raises(ValueError, match="at least 2 units"):
        diag.mutual_information_gap(np.arange(10.0)[:, None], np.arange(10.0)[:, None])
    with pytest.raises(ValueError, match="rows"):
        diag.factor_correlation(np.zeros((10, 2)), np.zeros((9, 2)))


# -- latent tools ------------------------------------------------------------------------------


def test_interpolation_ends_and_slerp_norm():
    z0 = torch.tensor([3.0, 0.0, 0.0], dtype=torch.float64)
    z1 = torch.tensor([0.0, 3.0, 0.0], dtype=torch.float64)
    lin = latent.interpolate_codes(z0, z1, 5)
    sph = latent.interpolate_codes(z0, z1, 5, method="spherical")
    for path in (lin, sph):
        torch.testing.assert_close(path[0], z0)
        torch.testing.assert_close(path[-1], z1)
    torch.testing.assert_close(lin[2], (z0 + z1) / 2)
    # slerp between equal-norm points stays on the sphere, at equal angles.
    torch.testing.assert_close(sph.norm(dim=1), torch.full((5,), 3.0, dtype=torch.float64))
    angles = torch.atan2(sph[:, 1], sph[:, 0])
    torch.testing.assert_close(angles, torch.linspace(0, math.pi / 2, 5, dtype=torch.float64))
    with pytest.raises(ValueError, match="num_steps"):
        latent.interpolate_codes(z0, z1, 1)
    with pytest.raises(ValueError, match="method"):
        latent.interpolate_codes(z0, z1, 3, method="cubic")


def test_latent_tools_on_a_linear_decoder():
    # With decoder mean W z + b every operation has a closed form.
    model = _model()
    W, b = model.W.detach(), model.b.detach()
    x = _data(model, 6)
    with torch.no_grad():
        z = model.encode(x).mean
    torch.testing.assert_close(latent.latent_means(model, x), z)

    path = latent.interpolate(model, x[0], x[1], 4)
    t = torch.linspace(0, 1, 4, dtype=torch.float64)[:, None]
    torch.testing.assert_close(path.images, ((1 - t) * z[0] + t * z[1]) @ W.T + b)

    trav = latent.traverse(model, z[0], dims=[1], values=[-1.0, 2.0])
    assert trav.images.shape == (1, 2, 4)
    for j, v in enumerate([-1.0, 2.0]):
        code = z[0].clone()
        code[1] = v
        torch.testing.assert_close(trav.images[0, j], code @ W.T + b)
    assert latent.traverse(model).images.shape == (2, 7, 4)  # default: all units, 7 values

    mask = torch.tensor([True, True, False, False, False, True])
    vec = latent.attribute_vector(z, mask)
    torch.testing.assert_close(vec, z[mask].mean(0) - z[~mask].mean(0))
    shifted = latent.shift_codes(z, vec, [0.0, 1.0])
    torch.testing.assert_close(shifted[:, 1], z + vec)

    out = latent.analogy(model, x[:2], x[2:4], x[4:6])
    torch.testing.assert_close(out, (z[4:6] + z[2:4] - z[:2]) @ W.T + b)

    with pytest.raises(ValueError, match="both True and False"):
        latent.attribute_vector(z, torch.ones(6, dtype=torch.bool))
    with pytest.raises(ValueError, match="dims"):
        latent.traverse(model, z[0], dims=[5])


class _Conditional(nn.Module):
    """Decoder mean z @ W + y @ V: the grid has a closed form."""

    def __init__(self):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.W = nn.Parameter(torch.randn(2, 5, generator=g, dtype=torch.float64))
        self.V = nn.Parameter(torch.randn(3, 5, generator=g, dtype=torch.float64))

    def decode(self, z, y):
        return Independent(Normal(z @ self.W + y @ self.V, 1.0), 1)


def test_conditional_grid():
    model = _Conditional()
    z = torch.randn(4, 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    ys = torch.eye(3, dtype=torch.float64)
    grid = latent.conditional_grid(model, z, ys)
    assert grid.shape == (4, 3, 5)
    with torch.no_grad():
        expected = (z @ model.W)[:, None, :] + (ys @ model.V)[None, :, :]
    torch.testing.assert_close(grid, expected)


# -- with the toolkit's VAE and the tutorial -----------------------------------------------------


def test_diagnostics_on_the_toolkit_vae():
    from vitoolkit.datasets import load_digits
    from vitoolkit.vae import VAE

    X, y = load_digits(binarize=True, split="val")
    model = VAE(64, 4, (32,), seed=0)
    kl = diag.kl_per_dimension(model, X)
    with torch.no_grad():
        total = torch.distributions.kl_divergence(model.encode(X), model.prior)
    torch.testing.assert_close(kl.sum(-1), total)
    res = diag.amortisation_gap(model, X[:8], steps=20, eval_samples=200,
                                generator=torch.Generator().manual_seed(0))
    assert bool((res.amortisation_gap >= 0).all()) and bool((res.approximation_gap >= 0).all())

    # A conditional VAE: the label reaches encoder and decoder in every diagnostic.
    cvae = VAE(64, 3, (32,), conditional_dim=10, seed=0)
    Y = torch.nn.functional.one_hot(y, 10).float()
    kl_c = diag.kl_per_dimension(cvae, X, Y)
    with torch.no_grad():
        torch.testing.assert_close(kl_c.sum(-1), torch.distributions.kl_divergence(
            cvae.encode(X, Y), cvae.prior))
    res_c = diag.amortisation_gap(cvae, X[:4], Y[:4], steps=5, eval_samples=50,
                                  generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(res_c.inference_gap,
                               res_c.approximation_gap + res_c.amortisation_gap)


@pytest.mark.tutorial_run("06_vae_beyond")
def test_tutorial_06_quick(quick_run):
    """Reads the session's seed-0 quick run (claims and figures: test_tutorials.py)."""
    run = quick_run("06_vae_beyond")
    out_dir = run.out
    summary = run.summary
    assert summary["quick"] is True and summary["figures"]
    for name in summary["figures"]:
        assert (out_dir / f"{name}.png").is_file()
    numbers = summary["numbers"]
    # The bounds the tutorial reports are ordered as the theory says (Burda et al. 2015).
    assert numbers["test_elbo"] <= numbers["test_iwae_max_k"] + 0.05
    assert numbers["amortisation_gap_mean"] >= 0 and numbers["approximation_gap_mean"] >= 0


# -- figures -------------------------------------------------------------------------------------


def test_image_mosaic_places_each_image():
    from vitoolkit.plotting.images import tile_images as image_mosaic

    imgs = torch.arange(2 * 3 * 4, dtype=torch.float64).reshape(2, 3, 4)  # 2 x 2 images
    m = image_mosaic(imgs, (2, 2), pad=1)
    assert m.shape == (2 * 3 - 1, 3 * 3 - 1)
    for r in range(2):
        for c in range(3):
            np.testing.assert_array_equal(m[3 * r:3 * r + 2, 3 * c:3 * c + 2],
                                          imgs[r, c].reshape(2, 2).numpy())
    assert np.isnan(m[2]).all() and np.isnan(m[:, 2]).all()
    with pytest.raises(ValueError, match="does not match"):
        image_mosaic(imgs, (3, 3))


def test_plot_functions_draw_what_they_are_given():
    from vitoolkit.plotting import subplots
    from vitoolkit.plotting import vae_beyond as pv

    fig, axes = subplots(2, 3)
    lines = pv.plot_kl_per_dimension({"a": [0.1, 1.0, 0.0], "b": [2.0, 0.5, 0.2]},
                                     threshold=0.5, ax=axes[0, 0])
    assert [list(line.get_ydata()) for line in lines][0] == [1.0, 0.1, 1e-4]  # sorted, floored
    bars = pv.plot_active_units({"a": 3, "b": 5}, latent_dim=8, ax=axes[0, 1])
    assert [b.get_height() for b in bars] == [3, 5]
    gaps = pv.plot_gaps({"train": (0.5, 0.25)}, ax=axes[0, 2])
    assert gaps["amortisation"][0].get_y() == 0.5 and gaps["amortisation"][0].get_height() == 0.25
    pv.plot_bounds_vs_samples([1, 10], {"m": [-3.0, -2.0]}, log_likelihood={"m": -1.5},
                              ax=axes[1, 0])
    im = pv.plot_factor_matrix(np.eye(2), factor_names=["u", "v"], ax=axes[1, 1])
    assert im.get_array().shape == (2, 2)
    pv.plot_curves({"a": [1, 2, 3]}, ax=axes[1, 2], ylabel="units")
    assert pv.square_shape(64) == (8, 8)


def test_bound_and_khat_plots_draw_what_they_are_given():
    from vitoolkit.plotting import subplots
    from vitoolkit.plotting import vae_beyond as pv
    from vitoolkit.plotting.figure_check import check_figure

    fig, axes = subplots(1, 3, size=4.6)
    lines = pv.plot_bounds_vs_samples([1, 10, 100], {"m": [-3.0, -2.0, -1.8]},
                                      stderr={"m": [0.1, 0.05, 0.01]},
                                      log_likelihood={"m": -1.7}, log_likelihood_stderr={"m": 0.01},
                                      ax=axes[0], title="bounds")
    assert list(lines[0].get_ydata()) == [-3.0, -2.0, -1.8]
    gap = pv.plot_bound_gaps([1, 10, 100], {"m": [1.3, 0.3, 0.1]}, stderr={"m": [0.1, 0.2, 0.01]},
                             ax=axes[1], title="gaps")
    assert list(gap[0].get_ydata()) == [1.3, 0.3, 0.1] and axes[1].get_yscale() == "log"
    k = pv.plot_khat({"m": [0.9, float("nan"), 0.2, 0.5]}, ax=axes[2], title="k-hat")
    assert list(k[0].get_ydata()) == [0.2, 0.5, 0.9]  # sorted, NaN dropped
    assert check_figure(fig) == []
