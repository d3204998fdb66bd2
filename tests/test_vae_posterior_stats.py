"""Tests of the aggregate posterior, code correlations, two-stage sampling, gradient noise and the
BCE floor (vitoolkit.vae.posterior_stats, .generation, .gradient_noise, .likelihoods).

Each closed form is checked against an independent route (torch's mixture and
multivariate normal, scipy quadrature, brute force); each Monte Carlo estimate
against the exact value within a tolerance of k standard errors. With k = 4.5
a correct estimator fails about 7 times in a million runs (two-sided normal
tail), and the seeds are fixed, so the tests are deterministic.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import integrate
from torch.distributions import (
    Categorical,
    ContinuousBernoulli,
    Independent,
    MixtureSameFamily,
    MultivariateNormal,
    Normal,
)

from vitoolkit.vae import VAE
from vitoolkit.vae.generation import (
    ancestral_samples,
    grid_neighbour_distance,
    image_roughness,
    mean_pairwise_distance,
    nearest_distance,
    variance_decomposition,
)
from vitoolkit.vae.gradient_noise import elbo_gradients, gradient_noise, with_kl
from vitoolkit.vae.likelihoods import bce_floor, continuous_bernoulli_log_normaliser
from vitoolkit.vae.posterior_stats import (
    AggregatePosterior,
    aggregate_kl_to_prior,
    aggregate_posterior,
    aggregate_total_correlation,
    correlation_matrix,
    gaussian_total_correlation,
    kl_decomposition,
    max_abs_off_diagonal,
)

K = 4.5  # standard errors


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def _mixture(loc, scale):
    loc, scale = torch.as_tensor(loc, dtype=torch.float64), torch.as_tensor(scale, dtype=torch.float64)
    n = loc.shape[0]
    return MixtureSameFamily(Categorical(probs=torch.full((n,), 1.0 / n, dtype=torch.float64)),
                             Independent(Normal(loc, scale), 1))


# -- the aggregate posterior ------------------------------------------------------


def test_aggregate_density_is_torchs_mixture_and_integrates_to_one():
    g = _gen(1)
    loc = torch.randn(7, 3, generator=g, dtype=torch.float64)
    scale = 0.2 + torch.rand(7, 3, generator=g, dtype=torch.float64)
    agg = AggregatePosterior(loc, scale)
    z = 2 * torch.randn(50, 3, generator=g, dtype=torch.float64)
    torch.testing.assert_close(agg.log_prob(z, batch_size=8), _mixture(loc, scale).log_prob(z))
    # The marginal of z[1] is the mixture of the components' marginals; it integrates to 1.
    grid = torch.linspace(-15, 15, 30_001, dtype=torch.float64)
    total = float(torch.trapezoid(agg.marginal_log_prob(grid, 1).exp(), grid))
    assert abs(total - 1) < 1e-8
    v = torch.linspace(-3, 3, 11, dtype=torch.float64)
    expected = _mixture(loc[:, 1:2], scale[:, 1:2]).log_prob(v[:, None])
    torch.testing.assert_close(agg.marginal_log_prob(v, 1), expected)


def test_aggregate_moments_are_the_mixtures():
    g = _gen(2)
    loc = torch.randn(5, 2, generator=g, dtype=torch.float64)
    scale = 0.3 + torch.rand(5, 2, generator=g, dtype=torch.float64)
    agg = AggregatePosterior(loc, scale)
    mix = _mixture(loc, scale)
    torch.testing.assert_close(agg.mean, mix.mean)
    torch.testing.assert_close(agg.covariance.diagonal(), mix.variance)
    # Off-diagonal covariance against many draws of the mixture (Monte Carlo, K s.e.).
    z, idx = agg.sample(200_000, generator=g)
    assert set(idx.unique().tolist()) == set(range(5))
    prod = (z[:, 0] - agg.mean[0]) * (z[:, 1] - agg.mean[1])
    se = float(prod.std() / math.sqrt(len(prod)))
    assert abs(float(prod.mean()) - float(agg.covariance[0, 1])) < K * se


def test_one_component_aggregate_kl_is_the_closed_form_and_information_is_zero():
    loc = torch.tensor([[0.7, -1.2]], dtype=torch.float64)
    scale = torch.tensor([[0.5, 1.5]], dtype=torch.float64)
    agg = AggregatePosterior(loc, scale)
    exact = float(torch.distributions.kl_divergence(
        Independent(Normal(loc[0], scale[0]), 1), Independent(Normal(torch.zeros(2), torch.ones(2)), 1)))
    est = aggregate_kl_to_prior(agg, 100_000, generator=_gen(3))
    assert abs(float(est.value) - exact) < K * float(est.stderr)
    dec = kl_decomposition(agg, 1000, generator=_gen(4))
    assert abs(dec.average_kl - exact) < 1e-12
    assert float(dec.mutual_information.value) == 0.0 and dec.log_num_components == 0.0


def test_kl_decomposition_against_quadrature_in_one_dimension():
    loc = torch.tensor([[-1.5], [0.2], [2.0]], dtype=torch.float64)
    scale = torch.tensor([[0.4], [0.8], [0.3]], dtype=torch.float64)
    agg = AggregatePosterior(loc, scale)

    def q(v):
        return float(agg.log_prob(torch.tensor([[v]], dtype=torch.float64)).exp())

    def kl_integrand(v):
        qv = q(v)
        return qv * (math.log(qv) - (-0.5 * v * v - 0.5 * math.log(2 * math.pi))) if qv > 0 else 0.0

    exact_kl, _ = integrate.quad(kl_integrand, -10, 10, points=[-1.5, 0.2, 2.0], limit=200)
    dec = kl_decomposition(agg, 200_000, generator=_gen(5))
    assert abs(float(dec.aggregate_kl.value) - exact_kl) < K * float(dec.aggregate_kl.stderr)
    # I = average KL - KL(aggregate || prior) (Hoffman & Johnson 2016, eq. 2).
    exact_mi = dec.average_kl - exact_kl
    assert abs(float(dec.mutual_information.value) - exact_mi) < K * float(dec.mutual_information.stderr)
    assert 0 < exact_mi < dec.log_num_components
    # The aggregate is closer to the prior than the average component.
    assert exact_kl < dec.average_kl


def test_separated_components_carry_log_n_nats():
    loc = torch.tensor([[-30.0], [0.0], [30.0], [60.0]], dtype=torch.float64)
    agg = AggregatePosterior(loc, torch.ones_like(loc))
    dec = kl_decomposition(agg, 20_000, generator=_gen(6))
    assert abs(float(dec.mutual_information.value) - math.log(4)) < 1e-6


def test_aggregate_posterior_of_a_model_uses_its_encoder():
    model = VAE(6, 2, hidden_dims=(8,), seed=0)
    x = torch.rand(11, 6, generator=_gen(7)).round()
    agg = aggregate_posterior(model, x, batch_size=4)
    q = model.encode(x)
    torch.testing.assert_close(agg.loc, q.mean.double().detach())
    torch.testing.assert_close(agg.scale, q.stddev.double().detach())


def test_aggregate_input_checks():
    with pytest.raises(ValueError, match="shape"):
        AggregatePosterior(torch.zeros(3, 2), torch.ones(3))
    with pytest.raises(ValueError, match="positive"):
        AggregatePosterior(torch.zeros(3, 2), torch.zeros(3, 2))
    agg = AggregatePosterior(torch.zeros(3, 2), torch.ones(3, 2))
    with pytest.raises(ValueError, match="num_samples"):
        agg.sample(0)
    with pytest.raises(ValueError, match=r"\(\.\.\., 2\)"):
        agg.log_prob(torch.zeros(4, 3))
    with pytest.raises(ValueError, match="dim"):
        agg.marginal_log_prob([0.0], 2)


# -- correlation of codes ---------------------------------------------------------


def test_total_correlation_of_the_aggregate():
    # A product: one component with a diagonal covariance has independent coordinates.
    one = AggregatePosterior(torch.tensor([[0.5, -1.0, 2.0]]), torch.tensor([[0.3, 1.2, 0.7]]))
    assert abs(float(aggregate_total_correlation(one, 500, generator=_gen(16)).value)) < 1e-12
    # Two tight components on the diagonal: the coordinates are copies of one fair coin,
    # so the total correlation tends to H(z0) + H(z1) - H(z) = log 2.
    tight = AggregatePosterior(torch.tensor([[-5.0, -5.0], [5.0, 5.0]]), torch.full((2, 2), 0.1))
    est = aggregate_total_correlation(tight, 2000, generator=_gen(17))
    assert abs(float(est.value) - math.log(2)) < 1e-6
    # Overlapping components: against a 2-D grid quadrature of the same integral.
    loc = torch.tensor([[-0.8, -0.5], [0.9, 0.6], [0.1, -1.2]], dtype=torch.float64)
    scale = torch.tensor([[0.6, 0.5], [0.7, 0.4], [0.5, 0.8]], dtype=torch.float64)
    agg = AggregatePosterior(loc, scale)
    axis = torch.linspace(-7, 7, 1401, dtype=torch.float64)
    gx, gy = torch.meshgrid(axis, axis, indexing="xy")
    log_q = agg.log_prob(torch.stack([gx, gy], -1))
    log_m = agg.marginal_log_prob(axis, 0)[None, :] + agg.marginal_log_prob(axis, 1)[:, None]
    h = float(axis[1] - axis[0])
    exact = float((log_q.exp() * (log_q - log_m)).sum() * h * h)
    est = aggregate_total_correlation(agg, 100_000, generator=_gen(18))
    assert exact > 0.01
    assert abs(float(est.value) - exact) < K * float(est.stderr)
    # A subset of coordinates: a single coordinate has no total correlation.
    assert abs(float(aggregate_total_correlation(agg, 100, dims=[1], generator=_gen(19)).value)) < 1e-12
    with pytest.raises(ValueError, match="dims"):
        aggregate_total_correlation(agg, 10, dims=[2])


def test_correlation_and_total_correlation():
    g = _gen(8)
    codes = torch.randn(300, 4, generator=g, dtype=torch.float64)
    codes[:, 1] += 0.8 * codes[:, 0]
    codes[:, 3] = 0.0  # a constant (inactive) unit
    corr = correlation_matrix(codes)
    expected = np.corrcoef(codes[:, :3].numpy(), rowvar=False)
    np.testing.assert_allclose(corr[:3, :3].numpy(), expected, atol=1e-12)
    assert corr[3, 3] == 1 and bool((corr[3, :3] == 0).all())
    assert max_abs_off_diagonal(corr) == pytest.approx(abs(expected[0, 1]))
    assert max_abs_off_diagonal(torch.eye(1)) == 0.0
    rho = 0.6
    cov = torch.tensor([[2.0, rho], [rho, 0.5]], dtype=torch.float64)
    assert gaussian_total_correlation(cov) == pytest.approx(-0.5 * math.log(1 - rho**2), rel=1e-12)
    # Independent route: KL(N(0, S) || N(0, diag S)) with torch's multivariate normal.
    s = torch.tensor([[1.0, 0.3, -0.2], [0.3, 2.0, 0.5], [-0.2, 0.5, 1.5]], dtype=torch.float64)
    kl = torch.distributions.kl_divergence(MultivariateNormal(torch.zeros(3, dtype=torch.float64), s),
                                           MultivariateNormal(torch.zeros(3, dtype=torch.float64),
                                                              torch.diag(s.diagonal())))
    assert gaussian_total_correlation(s) == pytest.approx(float(kl), rel=1e-10)
    with pytest.raises(ValueError, match="n >= 2"):
        correlation_matrix(torch.zeros(1, 3))


# -- two-stage sampling -------------------------------------------------------------


def test_variance_decomposition_is_the_law_of_total_variance():
    model = VAE(9, 2, hidden_dims=(8,), likelihood="gaussian_learned", min_scale=0.05, seed=1)
    s = ancestral_samples(model, 20_000, 2, generator=_gen(9))
    assert s.z.shape == (20_000, 2) and s.draws.shape == (2, 20_000, 9)
    dec = variance_decomposition(s.means, s.variances)
    assert dec.total == pytest.approx(dec.between_z + dec.within_z)
    # The variance of the draws themselves (one per z, independent) estimates the total:
    # per pixel the sample variance of 20,000 draws has relative s.e. ~ sqrt(2 / 20,000) = 1%
    # for Gaussian-like pixels; 6% allows K = 4.5 standard errors with heavier tails.
    empirical = float(s.draws[0].double().var(0).mean())
    assert empirical == pytest.approx(dec.total, rel=0.06)
    # Two draws for the same z differ only through the pixel noise: E(x1 - x2)^2 / 2 = within.
    half_sq = float(((s.draws[0] - s.draws[1]).double() ** 2).mean() / 2)
    assert half_sq == pytest.approx(dec.within_z, rel=0.06)
    assert 0 < dec.noise_fraction < 1
    with pytest.raises(ValueError, match="m >= 2"):
        variance_decomposition(torch.zeros(1, 3), torch.zeros(1, 3))
    with pytest.raises(ValueError, match="num_x"):
        ancestral_samples(model, 3, 0)


def test_roughness_and_nearest_distance_by_hand():
    img = torch.tensor([[0.0, 1.0, 1.0, 1.0]])  # 2x2: [[0, 1], [1, 1]]
    # Horizontal pairs (0,1), (1,1); vertical pairs (0,1), (1,1): mean of [1, 0, 1, 0].
    assert float(image_roughness(img)) == pytest.approx(0.5)
    assert float(image_roughness(torch.ones(1, 6), (2, 3))) == 0.0
    with pytest.raises(ValueError, match="does not match"):
        image_roughness(torch.ones(1, 6), (2, 2))
    g = _gen(10)
    a, b = torch.randn(13, 5, generator=g), torch.randn(40, 5, generator=g)
    brute = torch.tensor([min(float((ai - bj).norm()) for bj in b) for ai in a], dtype=torch.float64)
    torch.testing.assert_close(nearest_distance(a, b, batch_size=4), brute, rtol=1e-6, atol=1e-6)
    pairs = [float((a[i] - a[j]).norm()) for i in range(13) for j in range(13) if i != j]
    assert mean_pairwise_distance(a) == pytest.approx(sum(pairs) / len(pairs), rel=1e-6)
    # A 2x3 grid of scalars: horizontal pairs |1-0|, |3-1| ... by hand.
    grid = torch.tensor([[0.0], [1.0], [3.0], [0.0], [2.0], [2.0]])
    # Horizontal: 1, 2, 2, 0; vertical: 0, 1, 1.
    assert grid_neighbour_distance(grid, 2, 3) == pytest.approx(7 / 7)
    with pytest.raises(ValueError, match="grid"):
        grid_neighbour_distance(grid, 3, 3)


# -- gradient noise and the Monte Carlo KL -----------------------------------------


def test_monte_carlo_kl_gradient_is_unbiased_and_leaves_the_decoder_alone():
    model = VAE(6, 2, hidden_dims=(8,), seed=3)
    twin = with_kl(model, "monte_carlo")
    assert twin.kl == "monte_carlo" and model.kl == "analytic" and with_kl(model, "analytic") is model
    for p, q in zip(model.parameters(), twin.parameters(), strict=True):
        assert torch.equal(p, q)
    x = torch.rand(5, 6, generator=_gen(11)).round()
    n = 600
    # Same seed, same noise: the decoder's gradient does not see how the KL is computed.
    dec_a = elbo_gradients(model, x, 3, parameters="decoder", generator=_gen(12))
    dec_m = elbo_gradients(model, x, 3, kl="monte_carlo", parameters="decoder", generator=_gen(12))
    torch.testing.assert_close(dec_a, dec_m)
    enc_a = elbo_gradients(model, x, n, generator=_gen(13))
    enc_m = elbo_gradients(model, x, n, kl="monte_carlo", generator=_gen(13))
    # Unbiased: the mean difference of the paired gradients is zero within K s.e. per coordinate
    # (Bonferroni over coordinates would allow more; K is already conservative here).
    diff = enc_m - enc_a
    sd = diff.std(0)
    assert bool((diff[:, sd == 0] == 0).all())  # e.g. weights of dead units: no gradient at all
    z = diff.mean(0)[sd > 0] / (sd[sd > 0] / math.sqrt(n))
    assert float(z.abs().max()) < 5.0
    # The Monte Carlo KL adds noise: sigma * eps to d/d mu and (mu eps + sigma (eps^2 - 1)) to d/d sigma.
    assert gradient_noise(enc_m).total_variance > gradient_noise(enc_a).total_variance
    assert all(p.grad is None for p in model.parameters())


def test_gradient_noise_summary():
    g = torch.tensor([[1.0, 0.0], [3.0, 2.0]])
    s = gradient_noise(g)
    assert s.mean_norm == pytest.approx(math.hypot(2, 1))
    assert s.total_variance == pytest.approx(2.0 + 2.0)
    assert s.snr == pytest.approx(math.hypot(2, 1) / 2)
    with pytest.raises(ValueError, match="num_samples >= 2"):
        gradient_noise(torch.zeros(1, 3))
    with pytest.raises(ValueError, match="kl must be"):
        with_kl(VAE(4, 1, hidden_dims=(4,)), "exact")


# -- BCE on non-binary targets -----------------------------------------------------


def test_bce_floor_is_the_binary_entropy_and_the_minimum_over_predictions():
    y = torch.tensor([0.0, 0.1, 0.5, 0.77, 1.0], dtype=torch.float64)
    floor = bce_floor(y)
    assert floor[0] == 0 and floor[-1] == 0
    assert float(floor[2]) == pytest.approx(math.log(2))
    p = torch.linspace(1e-6, 1 - 1e-6, 200_001, dtype=torch.float64)
    for yi, fi in zip(y.tolist(), floor.tolist(), strict=True):
        bce = -(yi * p.log() + (1 - yi) * (1 - p).log())
        # The grid stops 1e-6 short of 0 and 1, where BCE at y = 0 or 1 is ~1e-6 above the floor.
        assert float(bce.min()) == pytest.approx(fi, abs=2e-6)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        bce_floor(torch.tensor([1.5]))


@pytest.mark.parametrize("lam", [0.01, 0.2, 0.4999, 0.5, 0.5004, 0.73, 0.999])
def test_continuous_bernoulli_normaliser_against_quadrature_and_torch(lam):
    integral, _ = integrate.quad(lambda x: lam**x * (1 - lam) ** (1 - x), 0, 1, epsabs=1e-13)
    ours = float(continuous_bernoulli_log_normaliser(torch.tensor(lam, dtype=torch.float64)))
    assert ours == pytest.approx(-math.log(integral), abs=1e-9)
    assert ours >= math.log(2) - 1e-15
    x = torch.tensor(0.3, dtype=torch.float64)
    cb = ContinuousBernoulli(probs=torch.tensor(lam, dtype=torch.float64))
    bern = x * math.log(lam) + (1 - x) * math.log(1 - lam)
    assert float(cb.log_prob(x) - bern) == pytest.approx(ours, abs=1e-6)


def test_continuous_bernoulli_normaliser_rejects_the_ends():
    with pytest.raises(ValueError, match="strictly inside"):
        continuous_bernoulli_log_normaliser(torch.tensor([0.0, 0.5]))


# -- paths between codes ------------------------------------------------------------


def test_interpolation_distances_for_a_vae_and_an_autoencoder():
    from vitoolkit.vae import Autoencoder
    from vitoolkit.vae.latent import encode_batched, interpolation_distances, latent_means

    x = torch.rand(6, 9, generator=_gen(14)).round()
    ref = torch.rand(20, 9, generator=_gen(15))
    for model in (VAE(9, 2, hidden_dims=(8,), seed=0), Autoencoder(9, 2, hidden_dims=(8,), seed=0)):
        d = interpolation_distances(model, x[:3], x[3:], ref, num_steps=5)
        assert d.shape == (5, 3)
        # The end points are the decoded codes of the inputs themselves.
        with torch.no_grad():
            z = latent_means(model, x[:3])
            out = model.decode(z)
            img = out if isinstance(out, torch.Tensor) else out.mean
        torch.testing.assert_close(d[0], nearest_distance(img, ref))
    loc, scale = encode_batched(Autoencoder(9, 2, hidden_dims=(8,), seed=0), x)
    assert bool((scale == 0).all()) and loc.shape == (6, 2)
