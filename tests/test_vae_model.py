"""Tests of vitoolkit.vae's model: shapes, bounds against exact evidence, likelihoods, errors.

The anchor is a linear-Gaussian VAE (no hidden layers, Gaussian decoder): its
evidence p(x) = N(x; b, W W^T + s^2 I) and posterior are exact, so the ELBO,
the IWAE bound and the importance-sampled log-likelihood can be checked
against the closed form rather than against themselves.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
from _stats import assert_mc_close
from scipy import integrate, stats
from torch.distributions import Independent, MultivariateNormal

from vitoolkit.datasets import load_digits
from vitoolkit.divergences import KHAT_THRESHOLD, UnreliableEstimateWarning, mean_and_stderr
from vitoolkit.vae import VAE, Autoencoder, Likelihood, train
from vitoolkit.vae.model import ImportanceEstimate

D, L, S = 5, 2, 0.5


def _linear_gaussian_vae(exact_posterior: bool = True, scale_factor: float | None = None):
    """A VAE whose decoder is x = W z + b + N(0, S^2 I) with orthogonal columns of W.

    W^T W is diagonal, so the exact posterior N(Sigma W^T (x - b) / S^2, Sigma),
    Sigma = (I + W^T W / S^2)^-1, is a diagonal Gaussian the encoder can represent.
    Returns the model and the exact marginal p(x) (float64).
    """
    model = VAE(D, L, hidden_dims=(), likelihood="gaussian", observation_scale=S)
    q, _ = torch.linalg.qr(torch.randn(D, L, generator=torch.Generator().manual_seed(0),
                                       dtype=torch.float64))
    W = q * torch.tensor([1.5, 0.8], dtype=torch.float64)
    b = torch.linspace(-0.5, 0.5, D, dtype=torch.float64)
    sigma2 = 1.0 / (1.0 + (W * W).sum(0) / S**2)  # diagonal of Sigma
    A = sigma2[:, None] * W.T / S**2  # posterior mean = A (x - b)
    sigma = sigma2.sqrt()
    if not exact_posterior:
        A = 0.8 * A
        sigma = 1.3 * sigma
    if scale_factor is not None:  # exact posterior means, scales multiplied
        sigma = scale_factor * sigma
    raw = 2 * torch.log(sigma)  # the encoder outputs log sigma^2
    with torch.no_grad():
        enc, dec = model.encoder[0], model.decoder[0]
        enc.weight.copy_(torch.cat([A, torch.zeros(L, D, dtype=torch.float64)]).float())
        enc.bias.copy_(torch.cat([-A @ b, raw]).float())
        dec.weight.copy_(W.float())
        dec.bias.copy_(b.float())
    marginal = MultivariateNormal(b, W @ W.T + S**2 * torch.eye(D, dtype=torch.float64))
    return model, marginal


def _data(n=40, seed=1):
    return torch.randn(n, D, generator=torch.Generator().manual_seed(seed))


def test_exact_posterior_makes_elbo_and_iwae_equal_log_evidence():
    model, marginal = _linear_gaussian_vae(exact_posterior=True)
    x = _data()
    exact = marginal.log_prob(x.double())
    gen = torch.Generator().manual_seed(2)
    # With q = p(z|x) every importance weight equals p(x): no Monte Carlo error at all.
    # (The analytic-KL ELBO equals log p(x) only in expectation; the sampled-KL one exactly.)
    model.kl = "monte_carlo"
    torch.testing.assert_close(model.elbo(x, generator=gen).double(), exact, atol=2e-4, rtol=0)
    model.kl = "analytic"
    elbos = torch.stack([model.elbo(x, generator=gen).double() for _ in range(200)])
    est = mean_and_stderr(elbos)
    assert_mc_close(est.value, exact, est.stderr, atol=1e-4)
    torch.testing.assert_close(model.iwae_bound(x, 7, generator=gen).double(), exact,
                               atol=2e-4, rtol=0)
    torch.testing.assert_close(model.log_likelihood(x, 50, generator=gen).double(), exact,
                               atol=2e-4, rtol=0)


def test_importance_weights_are_unbiased_for_the_evidence():
    # E_q[p(x, z) / q(z|x)] = p(x) for any q: the ratio to the exact p(x) has mean 1.
    model, marginal = _linear_gaussian_vae(exact_posterior=False)
    x = _data(n=6)
    exact = marginal.log_prob(x.double())
    with torch.no_grad():
        log_w = model._log_weights(x, None, 20000, torch.Generator().manual_seed(3))
    ratio = torch.exp(log_w.double() - exact)
    est = mean_and_stderr(ratio)
    assert_mc_close(est.value, torch.ones(6), est.stderr)
    assert bool((est.stderr < 0.05).all())  # the check is sharp enough to see a wrong constant


def test_bounds_are_ordered_and_below_the_evidence():
    """E[ELBO] <= E[L_5] <= E[L_50] <= log p(x) (Burda et al. 2015, Theorem 1)."""
    model, marginal = _linear_gaussian_vae(exact_posterior=False)
    x = _data(n=30)
    exact = marginal.log_prob(x.double()).mean()
    gen = torch.Generator().manual_seed(4)
    reps = 100
    # q is wider than the posterior, so the weights are bounded (true k <= 0); but k-hat from
    # 50 draws rests on 10 tail draws, and among 3000 estimates a few cross 0.7 by chance.
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", UnreliableEstimateWarning)
        bounds = {k: torch.stack([model.iwae_bound(x, k, generator=gen).double().mean()
                                  for _ in range(reps)]) for k in (1, 5, 50)}
    e1, e5, e50 = (mean_and_stderr(bounds[k]) for k in (1, 5, 50))
    for lo, hi in ((e1, e5), (e5, e50)):
        # Independent replicates: the standard error of the difference adds in quadrature.
        gap = float(hi.value - lo.value)
        se = math.hypot(float(lo.stderr), float(hi.stderr))
        assert gap > 4.5 * se, (gap, se)
    assert float(e50.value) < float(exact) + 4.5 * float(e50.stderr)
    # The analytic-KL ELBO agrees in mean with L_1 (which uses the sampled KL).
    with torch.no_grad():
        elbos = torch.stack([model.elbo(x, generator=gen).double().mean() for _ in range(reps)])
    assert_mc_close(elbos.mean(), e1.value, math.hypot(float(e1.stderr),
                                                       float(elbos.std() / math.sqrt(reps))))


def test_log_likelihood_k5000_matches_exact_evidence():
    model, marginal = _linear_gaussian_vae(exact_posterior=False)
    x = _data(n=20)
    exact = marginal.log_prob(x.double())
    est = model.log_likelihood(x, 5000, generator=torch.Generator().manual_seed(5)).double()
    # Delta method: sd(log mean w) = sd(w) / (p(x) sqrt(k)), and the bias of L_k is about
    # Var(w) / (2 k p(x)^2); both from an independent draw of the weights.
    with torch.no_grad():
        w = torch.exp(model._log_weights(x, None, 5000, torch.Generator().manual_seed(6)).double()
                      - exact)
    rel_var = w.var(0) / w.mean(0) ** 2
    assert_mc_close(est, exact, (rel_var / 5000).sqrt(), atol=rel_var / (2 * 5000))
    assert float((est - exact).abs().max()) < 0.1
    assert est.requires_grad is False


def test_diagnostics_default_is_a_tensor_and_the_tuple_holds_the_same_value():
    model, _ = _linear_gaussian_vae(exact_posterior=False)
    x = _data(n=7)
    gen = lambda: torch.Generator().manual_seed(11)  # noqa: E731
    plain = model.log_likelihood(x, 300, generator=gen())
    est = model.log_likelihood_estimate(x, 300, generator=gen())
    assert isinstance(plain, torch.Tensor)
    assert isinstance(est, ImportanceEstimate) and est._fields == ("value", "stderr", "khat")
    torch.testing.assert_close(est.value, plain)
    assert est.stderr.shape == est.khat.shape == (7,)
    bound = model.iwae_estimate(x, 300, generator=gen())
    torch.testing.assert_close(bound.value, plain)  # same draws, same estimate
    assert bound.value.requires_grad and not bound.stderr.requires_grad
    # k = 1 has no spread to estimate an error from, and k <= 20 too few draws for a tail.
    one = model.iwae_estimate(x, 1, generator=gen())
    assert bool(one.stderr.isnan().all()) and bool(one.khat.isnan().all())
    assert bool(model.iwae_estimate(x, 10).khat.isnan().all())


def test_return_diagnostics_is_deprecated_and_still_returns_the_estimate():
    """The flag changed the return type; it now warns and points at the *_estimate methods."""
    model, _ = _linear_gaussian_vae(exact_posterior=False)
    x = _data(n=3)
    gen = lambda: torch.Generator().manual_seed(5)  # noqa: E731
    with pytest.warns(DeprecationWarning, match=r"call iwae_estimate") as rec:
        old = model.iwae_bound(x, 30, generator=gen(), return_diagnostics=True)
    assert rec[0].filename == __file__  # points at the caller
    torch.testing.assert_close(old.value, model.iwae_estimate(x, 30, generator=gen()).value)
    with pytest.warns(DeprecationWarning, match=r"call log_likelihood_estimate"):
        old = model.log_likelihood(x, 30, generator=gen(), return_diagnostics=True)
    assert isinstance(old, ImportanceEstimate)
    torch.testing.assert_close(old.value, model.log_likelihood(x, 30, generator=gen()))


def test_stderr_is_the_spread_of_repeated_estimates():
    """The delta-method standard error matches the spread of independent estimates."""
    model, _ = _linear_gaussian_vae(exact_posterior=False)
    x = _data(n=5)
    gen = torch.Generator().manual_seed(12)
    reps, k = 400, 200
    with torch.no_grad():
        runs = [model.iwae_estimate(x, k, generator=gen) for _ in range(reps)]
    values = torch.stack([r.value for r in runs]).double()
    stderr = torch.stack([r.stderr for r in runs]).double().mean(0)
    # sd of `reps` draws is itself uncertain by about 1/sqrt(2 reps) = 3.5 %.
    torch.testing.assert_close(values.std(0), stderr, rtol=0.15, atol=0)


def test_khat_flags_a_proposal_too_narrow_for_the_posterior():
    """q = the posterior with its scales times 0.4: the weights have a power-law tail.

    For a Gaussian target of sd s and proposal of sd c s (c < 1), w = p/q has the tail
    P(w > t) ~ t^(-1/k) with k = 1 - c^2 (0.84 for c = 0.4), beyond the 0.7 threshold.
    """
    x = _data(n=20)
    wide, marginal = _linear_gaussian_vae(exact_posterior=False)
    est = wide.log_likelihood_estimate(x, 5000, generator=torch.Generator().manual_seed(13))
    assert float(est.khat.max()) < KHAT_THRESHOLD  # a wider proposal: bounded weights, no warning
    narrow, _ = _linear_gaussian_vae(scale_factor=0.4)
    with pytest.warns(UnreliableEstimateWarning, match=r"(\d+) of 20 examples have Pareto k-hat"):
        bad = narrow.log_likelihood_estimate(x, 5000, generator=torch.Generator().manual_seed(13))
    assert float((bad.khat > KHAT_THRESHOLD).double().mean()) > 0.6  # 0.75 here, 0.84 true k
    assert float(bad.khat.median()) > float(est.khat.median()) + 0.3
    # Unreliable estimates fall short of the exact evidence on average (the wide proposal's
    # are within a few hundredths).
    exact = marginal.log_prob(x.double())
    assert float((exact - bad.value.double()).mean()) > 0.05
    assert float((exact - est.value.double()).abs().max()) < 0.05
    # One warning per call (not one per batch of examples).
    with pytest.warns(UnreliableEstimateWarning) as record:
        narrow.log_likelihood(x, 2000, batch_size=3, generator=torch.Generator().manual_seed(1))
    assert len(record) == 1 and record[0].filename == __file__
    with pytest.warns(UnreliableEstimateWarning) as record:
        narrow.iwae_bound(x, 2000, generator=torch.Generator().manual_seed(1))
    assert len(record) == 1 and record[0].filename == __file__


def test_analytic_kl_matches_monte_carlo_kl_within_stderr():
    x, _ = load_digits(binarize=True, split="val")
    x = x[:50]
    analytic = VAE(64, 3, hidden_dims=(32,), kl="analytic", seed=7)
    mc = VAE(64, 3, hidden_dims=(32,), kl="monte_carlo", seed=7)
    reps = 200
    g1, g2 = torch.Generator().manual_seed(8), torch.Generator().manual_seed(8)
    with torch.no_grad():
        # Same seed, same noise: the reconstruction terms cancel and the difference is
        # KL_analytic - (log q(z|x) - log p(z)), whose mean is zero.
        diffs = torch.stack([(mc.elbo(x, generator=g2) - analytic.elbo(x, generator=g1)).double()
                             for _ in range(reps)])
    est = mean_and_stderr(diffs)
    assert_mc_close(est.value, torch.zeros(50), est.stderr)
    # And the analytic KL itself against torch's closed form on the encoder's q.
    q = analytic.encode(x)
    kl = (0.5 * (q.mean**2 + q.variance - 1 - q.variance.log())).sum(-1)
    from vitoolkit.divergences import kl_divergence

    torch.testing.assert_close(kl_divergence(q, analytic.prior), kl, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian", "gaussian_learned",
                                        "continuous_bernoulli"])
@pytest.mark.parametrize("architecture", ["mlp", "conv"])
def test_shapes_of_the_interface(likelihood, architecture):
    kw = {"image_shape": (8, 8), "hidden_dims": (4, 8)} if architecture == "conv" else {}
    model = VAE(64, 3, likelihood=likelihood, architecture=architecture, conditional_dim=10,
                **kw)
    x, y = load_digits(split="val")
    x, y = x[:6], y[:6]
    q = model.encode(x, y)
    assert isinstance(q, Independent) and q.batch_shape == (6,) and q.event_shape == (3,)
    assert model.prior.event_shape == (3,) and model.prior.batch_shape == ()
    z = torch.randn(4, 6, 3, generator=torch.Generator().manual_seed(0))
    p = model.decode(z, torch.nn.functional.one_hot(y, 10).float())
    assert p.batch_shape == (4, 6) and p.event_shape == (64,)
    assert p.log_prob(x).shape == (4, 6) and p.mean.shape == (4, 6, 64)
    for out in (model.elbo(x, y=y), model.iwae_bound(x, 3, y=y), model.log_likelihood(x, 4, y=y)):
        assert out.shape == (6,) and bool(torch.isfinite(out).all())
    assert model.sample(5, y=torch.arange(5)).shape == (5, 64)
    assert model.sample(5, y=torch.arange(5), mean=False,
                        generator=torch.Generator().manual_seed(1)).shape == (5, 64)
    assert model.reconstruct(x, y).shape == (6, 64)


def test_likelihoods_against_scipy_and_normalisation():
    params = torch.linspace(-2, 2, 8).reshape(1, 8)
    x = torch.linspace(0.05, 0.95, 8).reshape(1, 8)
    xb = (x > 0.5).float()
    lam = torch.sigmoid(params).double().numpy()
    bern = Likelihood("bernoulli").distribution(params).log_prob(xb)
    assert abs(float(bern) - stats.bernoulli.logpmf(xb.numpy(), lam).sum()) < 1e-4
    gauss = Likelihood("gaussian", observation_scale=0.3).distribution(params).log_prob(x)
    assert abs(float(gauss) - stats.norm.logpdf(x.numpy(), params.numpy(), 0.3).sum()) < 1e-3
    two = torch.cat([params, torch.full_like(params, 0.2)], dim=-1)
    learned = Likelihood("gaussian_learned", min_scale=0.01).distribution(two).log_prob(x)
    scale = math.log1p(math.exp(0.2)) + 0.01
    assert abs(float(learned) - stats.norm.logpdf(x.numpy(), params.numpy(), scale).sum()) < 1e-3

    # The continuous Bernoulli integrates to 1 over [0, 1]; "BCE as a density" does not
    # (Loaiza-Ganem & Cunningham 2019, section 3).
    def one_pixel(name, logit):
        like = Likelihood(name)
        return lambda v: math.exp(float(like.distribution(torch.tensor([[logit]]))
                                        .log_prob(torch.tensor([[v]]))))

    for logit in (-3.0, 0.7, 2.5):
        total_cb, _ = integrate.quad(one_pixel("continuous_bernoulli", logit), 0, 1)
        total_bce, _ = integrate.quad(one_pixel("bernoulli", logit), 0, 1)
        assert abs(total_cb - 1) < 1e-4
        assert total_bce < 0.99


def test_trained_model_beats_the_independent_pixel_baseline():
    X, _ = load_digits(binarize=True, split="train")
    Xt, _ = load_digits(binarize=True, split="test")
    model = VAE(64, 8, hidden_dims=(64,), seed=0)
    train(model, X, epochs=12, batch_size=64, lr=3e-3, progress=False)
    # After 12 epochs the encoder is rough and a few digits get heavy-tailed weights (k-hat
    # > 0.7): their estimates are too low, which only makes the comparison below harder.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnreliableEstimateWarning)
        ll = model.log_likelihood(Xt, 200, generator=torch.Generator().manual_seed(0)).double()
    # Per-pixel Bernoulli MLE with add-one smoothing, the best model with no dependence.
    p = (X.double().sum(0) + 1) / (X.shape[0] + 2)
    base = (Xt.double() * p.log() + (1 - Xt.double()) * (1 - p).log()).sum(1)
    diff = mean_and_stderr(ll - base)
    assert float(diff.value) > 4.5 * float(diff.stderr)
    assert float(diff.value) > 2.0  # nats per image: a clear margin, not a tie


def test_autoencoder_loss_and_shapes():
    x, _ = load_digits(split="val")
    ae = Autoencoder(64, 2, hidden_dims=(16,))
    codes = ae.encode(x[:7])
    assert codes.shape == (7, 2)
    rec = ae.decode(codes)
    assert rec.shape == (7, 64) and bool(((rec > 0) & (rec < 1)).all())
    manual = -(x[:7] * rec.log() + (1 - x[:7]) * (1 - rec).log()).sum(-1)
    torch.testing.assert_close(ae.loss(x[:7]), manual, atol=1e-3, rtol=1e-4)
    mse = Autoencoder(64, 2, hidden_dims=(16,), loss="mse")
    torch.testing.assert_close(mse.loss(x[:7]), (mse.reconstruct(x[:7]) - x[:7]).pow(2).sum(-1))


def test_seeded_init_leaves_global_rng_alone():
    state = torch.get_rng_state()
    a, b = VAE(64, 2, seed=3), VAE(64, 2, seed=3)
    assert torch.equal(torch.get_rng_state(), state)
    for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(pa, pb)
    assert not torch.equal(next(VAE(64, 2, seed=4).parameters()), next(a.parameters()))


def test_fixed_posterior_scale():
    model = VAE(64, 3, posterior_scale=1.0)
    q = model.encode(load_digits(split="val")[0][:4])
    torch.testing.assert_close(q.base_dist.scale, torch.ones(4, 3))


def test_bad_input_raises_clear_errors():
    model = VAE(64, 2, hidden_dims=(8,))
    good = torch.rand(3, 64, generator=torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match=r"outside \[0, 1\].*bernoulli"):
        model.elbo(good * 3)
    with pytest.raises(ValueError, match=r"shape \(n, 64\).*\(3, 63\)"):
        model.elbo(good[:, :63])
    bad = good.clone()
    bad[1, 5] = float("nan")
    with pytest.raises(ValueError, match=r"NaN.*rows \[1\]"):
        model.elbo(bad)
    with pytest.raises(ValueError, match="latent_dim must be an integer >= 1"):
        VAE(64, 0)
    with pytest.raises(ValueError, match="num_samples must be an integer >= 1, got 0"):
        model.iwae_bound(good, 0)
    with pytest.raises(ValueError, match="num_samples"):
        model.log_likelihood(good, num_samples=-3)
    with pytest.raises(ValueError, match="likelihood name must be one of"):
        VAE(64, 2, likelihood="poisson")
    with pytest.raises(ValueError, match="unconditional"):
        model.elbo(good, y=torch.zeros(3, 10))
    with pytest.raises(ValueError, match="y is required"):
        VAE(64, 2, conditional_dim=10).elbo(good)
    with pytest.raises(ValueError, match="image_shape"):
        VAE(64, 2, architecture="conv")
    with pytest.raises(ValueError, match=r"z must have shape \(\.\.\., 2\)"):
        model.decode(torch.zeros(3, 5))
    with pytest.raises(ValueError, match="beta must be"):
        model.elbo(good, beta=-1)
    # A Gaussian likelihood accepts any finite value.
    assert VAE(64, 2, likelihood="gaussian").elbo(good * 3 - 1).shape == (3,)


def test_numpy_input_is_accepted():
    x = np.random.default_rng(0).random((4, 64))
    assert VAE(64, 2, hidden_dims=(8,)).elbo(x).shape == (4,)


def test_standard_normal_prior_kl_matches_the_general_normal_formula():
    from torch.distributions import Normal
    from torch.distributions.kl import _kl_normal_normal

    from vitoolkit.distributions import StandardNormal
    from vitoolkit.divergences import kl_divergence

    gen = torch.Generator().manual_seed(0)
    loc = torch.randn(50, 4, generator=gen, dtype=torch.float64) * 3
    scale = torch.rand(50, 4, generator=gen, dtype=torch.float64) * 5 + 1e-3
    q = Normal(loc, scale)
    zeros, ones = torch.zeros(4, dtype=torch.float64), torch.ones(4, dtype=torch.float64)
    fast = kl_divergence(q, StandardNormal(zeros, ones))
    torch.testing.assert_close(fast, _kl_normal_normal(q, Normal(zeros, ones)))
    prior = VAE(64, 4).prior
    assert isinstance(prior.base_dist, StandardNormal)
    # The prior is N(0, I): its log density against scipy's.
    z = torch.randn(7, 4, generator=gen)
    expected = stats.norm.logpdf(z.numpy()).sum(-1)
    np.testing.assert_allclose(prior.log_prob(z).numpy(), expected, rtol=1e-5)


def test_plotting_functions_draw_what_they_are_given():
    from vitoolkit.plotting import subplots
    from vitoolkit.plotting.vae import (
        plot_image_grid,
        plot_latent_scatter,
        plot_manifold,
        plot_metric_bars,
        plot_reconstructions,
        plot_training_curves,
        tile_images,
    )

    images = torch.arange(6 * 4, dtype=torch.float32).reshape(6, 4)
    mosaic = tile_images(images, (2, 2), ncols=3, pad=1)
    assert mosaic.shape == (2 * 3 - 1, 3 * 3 - 1)
    np.testing.assert_array_equal(mosaic[3:5, 6:8], images[5].reshape(2, 2).numpy())
    assert np.isnan(mosaic[2, 0])
    fig, axes = subplots(2, 3)
    assert plot_image_grid(images / 24, (2, 2), ax=axes[0, 0]).get_array().shape == (5, 8)
    recon = plot_reconstructions(images[:3], {"a": images[3:]}, (2, 2), ax=axes[0, 1])
    assert recon.get_array().shape == (5, 8)
    drawn = plot_latent_scatter(torch.randn(20, 2), torch.arange(20) % 3, ax=axes[0, 2])
    assert len(drawn) == 3 and sum(len(d.get_offsets()) for d in drawn) == 20
    grid = torch.linspace(-1, 1, 3)
    assert plot_manifold(torch.rand(9, 4), grid, (2, 2), ax=axes[1, 0]).get_array().shape \
        == (6, 6)
    lines = plot_training_curves({"run": {"epoch": [1, 2, 3], "val_elbo": [-3, -2, -1]}},
                                 ax=axes[1, 1])
    np.testing.assert_array_equal(lines[0].get_ydata(), [-3, -2, -1])
    bars = plot_metric_bars(["a", "b"], [1.0, 2.0], [0.1, 0.2], ax=axes[1, 2])
    assert [b.get_height() for b in bars] == [1.0, 2.0]
    with pytest.raises(ValueError, match="g\\*g = 9"):
        plot_manifold(torch.rand(8, 4), grid, (2, 2), ax=axes[1, 0])
