"""Tests of the discrete-latent models: VQ-VAE, CategoricalVAE's estimators, sparse autoencoder.

Randomized checks follow the policy of ``conftest.py``: fixed local generators,
Monte Carlo against the exact value (here by enumerating every latent state)
within Z = 4.5 standard errors.
"""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import pytest
import torch
from _stats import Z, assert_mc_close
from torch.distributions import OneHotCategorical

from vitoolkit.datasets import load_digits
from vitoolkit.distributions import gumbel_softmax_sample
from vitoolkit.divergences import kl_divergence
from vitoolkit.vae import VQVAE, CategoricalVAE, SparseAutoencoder, train
from vitoolkit.vae.categorical import bias_and_variance

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def digits():
    X, _ = load_digits(binarize=True, split="train")
    Xv, _ = load_digits(binarize=True, split="val")
    return X[:256], Xv[:100]


def _tiny_categorical(estimator="reinforce", **kw):
    # 2 latents x 3 classes = 9 joint states: small enough to enumerate anything.
    model = CategoricalVAE(4, 2, 3, hidden_dims=(8,), estimator=estimator, seed=3, **kw).double()
    x = torch.tensor([[1, 0, 1, 1], [0, 0, 1, 0], [1, 1, 0, 0]], dtype=torch.float64)
    return model, x


# -- VQ-VAE -----------------------------------------------------------------------------------
def test_vqvae_straight_through_gradient_is_the_gradient_at_the_quantised_point():
    """d loss / d z_e equals d(-log p(x | z)) / dz evaluated at z = z_q (plus commitment)."""
    for commitment in (0.0, 0.25):
        model = VQVAE(6, 5, 3, hidden_dims=(7,), num_latents=2, commitment=commitment,
                      seed=1).double()
        x = torch.tensor([[1, 0, 1, 1, 0, 0], [0, 1, 1, 0, 1, 0]], dtype=torch.float64)
        last = model.encoder[-1]
        # Through the model's own loss.
        (g_w,) = torch.autograd.grad(model.loss(x).sum(), [last.weight])
        # By hand: the decoder's gradient at the quantised point, pulled back through the encoder.
        z_e = model.encode(x)
        z_q, _ = model.quantize(z_e.detach())
        z = z_q.detach().clone().requires_grad_(True)
        (g_z,) = torch.autograd.grad(-model.decode(z).log_prob(x).sum(), [z])
        g_z = g_z + commitment * 2 * (z_e.detach() - z_q.detach())  # the commitment term
        (g_w_hand,) = torch.autograd.grad(z_e, [last.weight], grad_outputs=g_z)
        torch.testing.assert_close(g_w, g_w_hand, rtol=1e-10, atol=1e-12)


def test_vqvae_codebook_moves_only_by_the_codebook_loss():
    model = VQVAE(6, 5, 3, hidden_dims=(7,), num_latents=2, seed=2).double()
    x = torch.tensor([[1, 0, 1, 1, 0, 0], [0, 1, 1, 0, 1, 0]], dtype=torch.float64)
    (g,) = torch.autograd.grad(model.loss(x).sum(), [model.codebook])
    z_e = model.encode(x).detach()
    _, idx = model.quantize(z_e)
    expected = torch.zeros_like(model.codebook)
    for n, lat in itertools.product(range(2), range(2)):
        k = idx[n, lat]
        expected[k] += 2 * (model.codebook[k].detach() - z_e[n, lat])
    torch.testing.assert_close(g, expected)


def test_vqvae_kl_is_log_k_and_elbo_is_a_bound():
    model = VQVAE(4, 3, 2, hidden_dims=(6,), num_latents=2, seed=0).double()
    one_hot = OneHotCategorical(probs=torch.tensor([0.0, 1.0, 0.0], dtype=torch.float64))
    uniform = OneHotCategorical(probs=torch.full((3,), 1 / 3, dtype=torch.float64))
    assert math.isclose(model.kl, 2 * float(kl_divergence(one_hot, uniform)), rel_tol=1e-12)
    assert math.isclose(model.kl, 2 * math.log(3), rel_tol=1e-12)
    # log p(x) under the uniform prior, by enumerating the 3^2 code pairs, bounds the ELBO.
    x = torch.tensor([[1, 0, 1, 1], [0, 0, 1, 0]], dtype=torch.float64)
    codes = torch.stack([model.codebook[list(c)] for c in itertools.product(range(3), repeat=2)])
    log_px = model.decode(codes.unsqueeze(1)).log_prob(x)  # (9, n)
    log_evidence = torch.logsumexp(log_px, 0) - model.kl
    assert bool((model.elbo(x) <= log_evidence + 1e-12).all())


def test_vqvae_codebook_usage(digits):
    X, Xv = digits
    model = VQVAE(64, 16, 3, hidden_dims=(32,), num_latents=2, seed=0)
    hist = train(model, X, epochs=3, batch_size=64, lr=3e-3, validation=Xv, progress=False)
    counts = model.codebook_usage(X)
    assert int(counts.sum()) == X.shape[0] * 2
    assert model.dead_codes(X) == int((counts == 0).sum())
    assert 1.0 <= model.codebook_perplexity(X) <= 16 - model.dead_codes(X) + 1e-9
    # The history's ELBO is log p(x | z_q) - L log K, and the KL column is that constant.
    assert math.isclose(hist.val_kl[-1], model.kl, rel_tol=1e-6)
    with torch.no_grad():
        assert math.isclose(float(model.elbo(Xv).mean()), hist.val_elbo[-1], rel_tol=1e-5)
    assert hist.val_elbo[-1] > hist.val_elbo[0]


# -- Gumbel-softmax --------------------------------------------------------------------------
def test_gumbel_max_draws_are_exactly_categorical(gen):
    probs = torch.tensor([0.5, 0.3, 0.15, 0.05], dtype=torch.float64)
    n = 40000
    hard = gumbel_softmax_sample(probs.log(), 1.0, (n,), generator=gen).hard
    freq = hard.mean(0)
    assert_mc_close(freq, probs, (probs * (1 - probs) / n).sqrt())


def test_gumbel_softmax_converges_in_distribution_as_temperature_falls(gen):
    """Each coordinate y_c of the relaxed sample tends in law to Bernoulli(pi_c) as tau -> 0.

    Distance: the largest gap between the empirical CDF of y_c and the CDF of
    Bernoulli(pi_c) on the grid 0.05..0.95 (a Kolmogorov distance on (0, 1)). With
    20,000 draws each CDF value has standard error <= 0.0036, so Monte Carlo noise
    moves the distance by less than Z * 0.0036 = 0.016. Stated tolerance: below
    0.035 at tau = 0.02, and falling at every step of the temperature ladder.
    """
    probs = torch.tensor([0.5, 0.3, 0.2], dtype=torch.float64)
    grid = torch.linspace(0.05, 0.95, 19, dtype=torch.float64)
    distances = []
    for tau in (1.0, 0.5, 0.2, 0.1, 0.05, 0.02):
        y = gumbel_softmax_sample(probs.log(), tau, (20000,), generator=gen).soft
        cdf = (y.unsqueeze(-1) <= grid).double().mean(0)  # (3, 19)
        distances.append(float((cdf - (1 - probs).unsqueeze(-1)).abs().max()))
    assert all(a > b for a, b in itertools.pairwise(distances)), distances
    assert distances[-1] < 0.035, distances
    assert distances[0] > 0.3, distances  # at tau = 1 the relaxation is far from one-hot


# -- CategoricalVAE: exact quantities and unbiased estimators ----------------------------------
def test_enumeration_matches_monte_carlo(gen):
    model, x = _tiny_categorical()
    with torch.no_grad():
        exact_ll = model.exact_log_likelihood(x)
        exact_elbo = model.exact_elbo(x)
        assert bool((exact_elbo <= exact_ll).all())
        # Each draw averages 10 one-hot samples; 400 draws.
        draws = torch.stack([model.elbo(x, num_samples=10, generator=gen) for _ in range(400)])
        assert_mc_close(draws.mean(0), exact_elbo, draws.std(0) / math.sqrt(400))
        # With 9 states, 20,000 importance samples from q make log p(x) essentially exact.
        torch.testing.assert_close(model.log_likelihood(x, 20000, generator=gen), exact_ll,
                                   atol=0.02, rtol=0)
        assert bool((model.iwae_bound(x, 50, generator=gen) <= exact_ll + 0.05).all())


def _draws(model, x, replicas: int, num_draws: int, **kw):
    """Encoder-gradient estimates, each the average of ``replicas`` independent ones.

    The batch is x repeated ``replicas`` times, so one autograd call averages that many
    independent estimates; the batch-mean objective (and so the exact gradient) is unchanged.
    """
    return model.encoder_gradients(x.repeat(replicas, 1), num_draws, **kw)


def _assert_unbiased(draws, exact):
    mean = draws.mean(0)
    stderr = draws.std(0) / math.sqrt(draws.shape[0])
    assert_mc_close(mean, exact, stderr)
    # The check has power: the Monte Carlo error is small compared with the gradient.
    assert float((Z * stderr).norm()) < 0.5 * float(exact.norm())


@pytest.mark.parametrize("baseline", ["none", "running", "learned", -2.5])
def test_reinforce_encoder_gradient_is_unbiased_against_enumeration(baseline, gen):
    kw = {"baseline": "learned"} if baseline == "learned" else {}
    model, x = _tiny_categorical("reinforce", **kw)
    if baseline == "running":
        model.running_baseline.fill_(-2.0)
    exact = model.exact_encoder_gradient(x)
    draws = _draws(model, x, 50, 400, num_samples=4, baseline=baseline, generator=gen)
    _assert_unbiased(draws, exact)


def _exact_vimco_gradient(model, x, k):
    """d/d(encoder) of E[L_K] by enumerating all (C^L)^K tuples of joint states."""
    log_probs = model._log_probs(x)
    states = model.all_states()
    log_q = torch.einsum("slc,nlc->sn", states, log_probs)  # (S, n)
    log_w = model._enumerated_log_px(x) + model.log_prior - log_q
    tuples = torch.tensor(list(itertools.product(range(states.shape[0]), repeat=k)))
    lw, lq = log_w[tuples], log_q[tuples].sum(1)  # (S^K, K, n), (S^K, n)
    bound = (lq.exp() * (torch.logsumexp(lw, 1) - math.log(k))).sum(0)
    grads = torch.autograd.grad(bound.mean(), model.encoder_parameters())
    return torch.cat([g.reshape(-1) for g in grads])


@pytest.mark.parametrize("k", [2, 3])
def test_vimco_encoder_gradient_is_unbiased_against_enumeration(k, gen):
    model, x = _tiny_categorical("vimco")
    exact = _exact_vimco_gradient(model, x, k)
    draws = _draws(model, x, 50, 400, num_samples=k, generator=gen)
    _assert_unbiased(draws, exact)


def test_gumbel_softmax_gradient_is_biased_and_the_bias_shrinks_with_temperature(gen):
    model, x = _tiny_categorical("gumbel_softmax")
    exact = model.exact_encoder_gradient(x)
    bias = {}
    for tau in (2.0, 0.1):
        draws = _draws(model, x, 50, 200, temperature=tau, generator=gen)
        bias[tau] = float((draws.mean(0) - exact).norm())
        noise = float((draws.var(0).sum() / draws.shape[0]).sqrt())
        bias[tau] = (bias[tau], noise)
    assert bias[2.0][0] > 10 * bias[2.0][1]  # far outside the Monte Carlo noise: biased
    assert bias[0.1][0] < 0.5 * bias[2.0][0]


def test_bias_and_variance_removes_the_noise_of_the_mean(gen):
    exact = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)
    shift = torch.tensor([0.3, 0.0, -0.4], dtype=torch.float64)  # ||shift|| = 0.5
    draws = exact + shift + 2.0 * torch.randn(4000, 3, generator=gen, dtype=torch.float64)
    bv = bias_and_variance(draws, exact)
    assert abs(bv.variance - 12.0) < Z * 12.0 * math.sqrt(2 / 4000) * math.sqrt(3)
    assert abs(bv.bias - 0.5) < 0.1
    unbiased = bias_and_variance(exact + 2.0 * torch.randn(4000, 3, generator=gen,
                                                           dtype=torch.float64), exact)
    assert unbiased.bias < 0.12
    assert math.isclose(bv.norm, float(exact.norm()))


def test_calibrate_baseline_sets_the_mean_reconstruction(gen):
    model, x = _tiny_categorical()
    value = model.calibrate_baseline(x, 4000, generator=gen)
    with torch.no_grad():
        log_probs = model._log_probs(x)
        exact = (model.exact_elbo(x) + model._kl_dims(log_probs).sum(-1)).mean()
    assert abs(value - float(exact)) < 0.05
    assert float(model.running_baseline) == pytest.approx(value)


def test_discrete_plots_draw_without_figure_problems():
    import matplotlib.pyplot as plt

    from vitoolkit.plotting import discrete
    from vitoolkit.plotting.figure_check import check_figure

    fig, axes = plt.subplots(1, 5, figsize=(26, 4), layout="constrained")
    discrete.plot_grouped_bars({"a": {"x": 1.0, "y": 10.0}, "b": {"x": 2.0, "y": 30.0}},
                               ax=axes[0], title="grouped")
    discrete.plot_sweep([0.1, 1.0], {"s": [3.0, 1.0], "t": [2.0, 0.5]}, ax=axes[1],
                        title="sweep")
    discrete.plot_codebook_usage({"K=4": [5, 3, 0, 1]}, ax=axes[2], title="usage")
    discrete.plot_curves_xy({"c": ([1e3, 1e4, 5e4], [-30.0, -25.0, -22.0])}, ax=axes[3],
                            logx=True, title="curves")
    discrete.plot_ratio_bars(["p", "q"], [0.5, 1.0], ax=axes[4], references={"one": 1.0},
                             title="ratios")
    assert check_figure(fig) == []
    with pytest.raises(ValueError, match="same series"):
        discrete.plot_grouped_bars({"a": {"x": 1.0}, "b": {"y": 1.0}})


# -- training through vitoolkit.vae.train ---------------------------------------------------------
@pytest.mark.parametrize("estimator,objective,k,kw", [
    ("gumbel_softmax", "elbo", 1, {"temperature": 0.5}),
    ("reinforce", "elbo", 1, {"baseline": "running"}),
    ("reinforce", "elbo", 2, {"baseline": "learned"}),
    ("vimco", "iwae", 3, {}),
])
def test_every_estimator_trains(digits, estimator, objective, k, kw):
    X, Xv = digits
    model = CategoricalVAE(64, 3, 4, hidden_dims=(32,), estimator=estimator, seed=0, **kw)
    hist = train(model, X, epochs=3, batch_size=64, lr=5e-3, objective=objective,
                 num_samples=k, validation=Xv, progress=False, restore_best=False)
    assert hist.val_elbo[-1] > hist.val_elbo[0] + 1.0
    for e in range(3):
        assert math.isclose(hist.train_elbo[e], hist.train_recon[e] - hist.train_kl[e],
                            rel_tol=1e-6)
    if estimator == "reinforce":
        assert int(model.baseline_count) == 3 * math.ceil(X.shape[0] / 64)
        assert float(model.running_baseline) < 0


def test_categorical_resume_reproduces_the_uninterrupted_run(digits, tmp_path):
    X, Xv = digits
    kw = dict(batch_size=64, lr=5e-3, seed=4, progress=False, validation=Xv, restore_best=False)

    def make():
        return CategoricalVAE(64, 2, 4, hidden_dims=(16,), estimator="reinforce", seed=1)

    full = make()
    h_full = train(full, X, epochs=3, **kw)
    part = make()
    train(part, X, epochs=1, checkpoint=tmp_path / "c.pt", **kw)
    resumed = make()
    h_res = train(resumed, X, epochs=3, checkpoint=tmp_path / "c.pt", resume=True, **kw)
    assert h_res.val_elbo == h_full.val_elbo
    for a, b in zip(full.state_dict().values(), resumed.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_sparse_autoencoder_penalty_pulls_average_activation_to_target(digits):
    X, _ = digits
    rates = {}
    for weight in (0.0, 3.0):
        model = SparseAutoencoder(64, 16, sparsity=0.05, weight=weight, seed=0)
        hist = train(model, X, epochs=15, batch_size=64, lr=1e-2, progress=False)
        rates[weight] = model.mean_activation(X)
        assert len(hist.train_loss) == 15 and hist.train_elbo == []
    assert float((rates[3.0] - 0.05).abs().mean()) < 0.5 * float((rates[0.0] - 0.05).abs().mean())
    # The penalty is the closed-form Bernoulli KL of torch's registry.
    model = SparseAutoencoder(64, 4, sparsity=0.1, seed=0)
    rate = model.mean_activation(X).double()
    by_hand = (0.1 * (0.1 / rate).log() + 0.9 * (0.9 / (1 - rate)).log()).sum()
    assert math.isclose(model.penalty(X), float(by_hand), rel_tol=1e-4)


# -- bad input ------------------------------------------------------------------------------------
def test_bad_input_names_the_argument(digits):
    X, _ = digits
    with pytest.raises(ValueError, match="num_embeddings"):
        VQVAE(64, 0, 4)
    with pytest.raises(ValueError, match="embedding_dim"):
        VQVAE(64, 8, 0)
    with pytest.raises(ValueError, match="commitment"):
        VQVAE(64, 8, 2, commitment=-1.0)
    for tau in (0.0, -1.0, float("inf"), float("nan"), "hot"):
        with pytest.raises(TypeError if tau == "hot" else ValueError, match="temperature"):
            CategoricalVAE(64, 2, 3, temperature=tau)
        with pytest.raises(TypeError if tau == "hot" else ValueError, match="temperature"):
            gumbel_softmax_sample(torch.zeros(3), tau)
    with pytest.raises(ValueError, match="estimator"):
        CategoricalVAE(64, 2, 3, estimator="straight_through_magic")
    with pytest.raises(ValueError, match="baseline"):
        CategoricalVAE(64, 2, 3, baseline="average")
    with pytest.raises(ValueError, match="num_categories"):
        CategoricalVAE(64, 2, 1)
    with pytest.raises(ValueError, match="num_latents"):
        CategoricalVAE(64, 0, 3)
    vimco = CategoricalVAE(64, 2, 3, hidden_dims=(8,), estimator="vimco")
    for k in (0, 1):
        with pytest.raises(ValueError, match="num_samples"):
            train(vimco, X, epochs=1, batch_size=64, objective="iwae", num_samples=k,
                  progress=False)
    with pytest.raises(ValueError, match="objective='iwae'"):
        train(vimco, X, epochs=1, batch_size=64, progress=False)
    gs = CategoricalVAE(64, 2, 3, hidden_dims=(8,))
    with pytest.raises(ValueError, match="vimco"):
        train(gs, X, epochs=1, batch_size=64, objective="iwae", num_samples=2, progress=False)
    with pytest.raises(ValueError, match="objective"):
        train(gs, X, epochs=1, batch_size=64, objective="rws", num_samples=2, progress=False)
    with pytest.raises(ValueError, match="baseline='learned'"):
        gs.encoder_gradients(X[:4], 1, estimator="reinforce", baseline="learned")
    with pytest.raises(ValueError, match="enumeration"):
        CategoricalVAE(64, 17, 2).all_states()
    with pytest.raises(ValueError, match="sparsity"):
        SparseAutoencoder(64, 8, sparsity=1.0)
    with pytest.raises(TypeError, match="model must be"):
        train(torch.nn.Linear(2, 2), X, epochs=1, batch_size=8)
