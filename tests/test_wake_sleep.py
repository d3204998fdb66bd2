"""Tests of wake-sleep, reweighted wake-sleep and the linear-Gaussian VAE with exact posterior.

Randomized checks follow ``conftest.py``: fixed local generators, Monte Carlo
against a closed form within Z = 4.5 standard errors (plus, where stated, the
known O(1/K) bias of self-normalised importance sampling).
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from _stats import Z, assert_mc_close

from vitoolkit.datasets import load_digits
from vitoolkit.vae import (
    VAE,
    Autoencoder,
    linear_gaussian_evidence,
    linear_gaussian_posterior,
    rws_loss,
    train,
    wake_sleep_loss,
)
from vitoolkit.vae.wake_sleep import rws_encoder_surrogate

ROOT = Path(__file__).resolve().parents[1]


def _linear_gaussian(d=6, sigma=0.5, seed=0, correlation=0.9):
    """A linear-Gaussian VAE (probabilistic PCA) with strongly correlated posterior, float64."""
    model = VAE(d, 2, hidden_dims=(), likelihood="gaussian", observation_scale=sigma,
                seed=seed).double()
    g = torch.Generator().manual_seed(seed)
    u = torch.randn(d, generator=g, dtype=torch.float64)
    v = torch.randn(d, generator=g, dtype=torch.float64)
    v = v - (v @ u) / (u @ u) * u
    v = v / v.norm() * u.norm()
    w = torch.stack([u, correlation * u + math.sqrt(1 - correlation**2) * v], 1) * 0.6
    with torch.no_grad():
        model.decoder[0].weight.copy_(w)
        model.decoder[0].bias.copy_(0.1 * torch.randn(d, generator=g, dtype=torch.float64))
    return model


def _data(model, n, seed=1):
    g = torch.Generator().manual_seed(seed)
    w, b = model.decoder[0].weight.detach().double(), model.decoder[0].bias.detach().double()
    z = torch.randn(n, w.shape[1], generator=g, dtype=torch.float64)
    return z @ w.T + b + model.likelihood.observation_scale * torch.randn(
        n, w.shape[0], generator=g, dtype=torch.float64)


def _grads(loss, params):
    return torch.cat([g.reshape(-1) for g in torch.autograd.grad(loss, params, retain_graph=True)])


def test_linear_gaussian_posterior_satisfies_bayes_rule(gen):
    model = _linear_gaussian()
    x = _data(model, 4)
    post = linear_gaussian_posterior(model, x)
    evidence = linear_gaussian_evidence(model, x)
    for _ in range(3):
        z = torch.randn(4, 2, generator=gen, dtype=torch.float64)
        with torch.no_grad():
            joint = model.decode(z).log_prob(x) + model.prior.log_prob(z)
        # log p(x, z) - log p(z | x) = log p(x) at every z.
        torch.testing.assert_close(joint - post.log_prob(z), evidence)
    assert float(post.covariance_matrix[0, 0, 1]) < 0  # correlated: a diagonal q cannot match it
    with pytest.raises(ValueError, match="hidden_dims"):
        linear_gaussian_posterior(VAE(6, 2), torch.zeros(1, 6))


def test_rws_wake_phase_encoder_gradient_is_the_forward_kl_gradient(gen):
    """sum_k w~_k grad log q(z_k | x) estimates -grad_phi KL(p(z|x) || q_phi(z|x)).

    Exact: on the linear-Gaussian VAE p(z|x) = N(m, S) is known, and for a diagonal
    q = N(mu, diag s^2), KL(p || q) = sum_i [log s_i + ((m_i - mu_i)^2 + S_ii) / (2 s_i^2)]
    + const, differentiated by autograd. Estimate: 40 repetitions of K = 4000 samples.
    Tolerance: Z = 4.5 standard errors of the mean plus 2% of the gradient's norm for the
    O(1/K) bias of self-normalised weights (about 0.1% here, measured with K = 40000).
    """
    model = _linear_gaussian()
    x = _data(model, 5)
    enc = list(model.encoder.parameters())
    post = linear_gaussian_posterior(model, x)
    m, var = post.mean, post.covariance_matrix.diagonal(dim1=-2, dim2=-1)
    loc, scale = model._encode_params(x, None)
    forward_kl = (scale.log() + ((m - loc) ** 2 + var) / (2 * scale**2)).sum(-1).mean()
    exact = _grads(forward_kl, enc)
    draws = torch.stack([
        _grads(-rws_encoder_surrogate(model, x, num_samples=4000, generator=gen).mean(), enc)
        for _ in range(40)])
    stderr = draws.std(0) / math.sqrt(40)
    assert_mc_close(draws.mean(0), exact, stderr, atol=0.02 * float(exact.norm()))
    assert float(exact.norm()) > 10 * float((Z * stderr).norm())  # a check with power
    # And it is not the reverse KL's gradient (the ELBO's encoder gradient differs).
    assert float((draws.mean(0) - _grads(-model.elbo(x, generator=gen).mean(), enc)).norm()) \
        > 0.1 * float(exact.norm())


def test_rws_decoder_gradient_is_the_iwae_decoder_gradient():
    """With the same draws, RWS's decoder update equals the IWAE bound's (Le et al. 2019)."""
    model = _linear_gaussian()
    x = _data(model, 7)
    dec = list(model.decoder.parameters())
    loss, _ = rws_loss(model, x, num_samples=6, generator=torch.Generator().manual_seed(3))
    iwae = -model.iwae_bound(x, 6, generator=torch.Generator().manual_seed(3)).mean()
    torch.testing.assert_close(_grads(loss, dec), _grads(iwae, dec))
    # Its encoder update is exactly the wake-phase surrogate's.
    enc = list(model.encoder.parameters())
    surrogate = rws_encoder_surrogate(model, x, num_samples=6,
                                      generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(_grads(loss, enc), _grads(-surrogate.mean(), enc))


def test_wake_sleep_updates_each_network_from_its_own_phase(gen):
    model = VAE(6, 2, hidden_dims=(5,), seed=1).double()
    x = (torch.rand(9, 6, generator=gen) < 0.5).double()
    dec, enc = list(model.decoder.parameters()), list(model.encoder.parameters())
    loss, stats = wake_sleep_loss(model, x, num_samples=3, generator=torch.Generator().manual_seed(5))
    # Wake: the decoder's gradient is -grad mean log p(x | z) at the same (detached) draws.
    g = torch.Generator().manual_seed(5)
    loc, scale = model._encode_params(x, None)
    z = (loc + scale * torch.randn((3, *loc.shape), generator=g, dtype=loc.dtype)).detach()
    wake = -model.decode(z).log_prob(x).mean()
    torch.testing.assert_close(_grads(loss, dec), _grads(wake, dec))
    # Sleep: the encoder's gradient comes from dreams only (the real x does not enter it).
    other_x = 1 - x
    loss2, _ = wake_sleep_loss(model, other_x, num_samples=3,
                               generator=torch.Generator().manual_seed(5))
    torch.testing.assert_close(_grads(loss, enc), _grads(loss2, enc))
    assert stats["kl_dims"].shape == (9, 2)


@pytest.mark.parametrize("objective", ["elbo", "wake_sleep", "rws"])
def test_encoder_width_on_linear_gaussian_follows_the_kl_direction(objective):
    """Training only the encoder: the reverse KL (ELBO) gives each coordinate the standard
    deviation 1/sqrt(Lambda_ii), the forward KL (wake-sleep, exact forward KL on the model's
    own data) the marginal sqrt(Sigma_ii) (Bishop PRML 10.1.2); RWS with K = 50 lies close
    to the forward-KL answer. Tolerance 10% of the target width."""
    model = _linear_gaussian(d=8, seed=2).float()
    for p in model.decoder.parameters():
        p.requires_grad_(False)
    X = _data(model, 2000).float()
    k = 50 if objective == "rws" else 1
    train(model, X, epochs=30, batch_size=100, lr=2e-2, objective=objective, num_samples=k,
          progress=False)
    with torch.no_grad():
        q_std = model.encode(X[:200]).stddev.double().mean(0)
    cov = linear_gaussian_posterior(model, X[:1]).covariance_matrix[0]
    target = cov.diagonal().sqrt() if objective != "elbo" else \
        torch.linalg.inv(cov).diagonal().rsqrt()
    torch.testing.assert_close(q_std, target, rtol=0.1, atol=0)


@pytest.fixture(scope="module")
def digits():
    X, _ = load_digits(binarize=True, split="train")
    Xv, _ = load_digits(binarize=True, split="val")
    return X[:256], Xv[:100]


@pytest.mark.parametrize("objective,k", [("wake_sleep", 1), ("rws", 5)])
def test_training_with_the_forward_kl_objectives(digits, objective, k, tmp_path):
    X, Xv = digits
    kw = dict(batch_size=64, lr=3e-3, objective=objective, num_samples=k, validation=Xv,
              seed=2, progress=False, restore_best=False)
    model = VAE(64, 3, hidden_dims=(32,), seed=0)
    hist = train(model, X, epochs=4, **kw)
    assert hist.val_elbo[-1] > hist.val_elbo[0]
    for e in range(4):
        assert math.isclose(hist.train_elbo[e], hist.train_recon[e] - hist.train_kl[e],
                            rel_tol=1e-5)
    # Validation is the ELBO: val_loss is minus the validation ELBO.
    assert math.isclose(hist.val_loss[-1], -hist.val_elbo[-1], rel_tol=1e-5)
    # Resuming reproduces the uninterrupted run.
    part = VAE(64, 3, hidden_dims=(32,), seed=0)
    train(part, X, epochs=2, checkpoint=tmp_path / "c.pt", **kw)
    resumed = VAE(64, 3, hidden_dims=(32,), seed=0)
    h2 = train(resumed, X, epochs=4, checkpoint=tmp_path / "c.pt", resume=True, **kw)
    assert h2.val_elbo == hist.val_elbo


def test_bad_input_for_the_forward_kl_objectives(digits):
    X, _ = digits
    model = VAE(64, 2, hidden_dims=(8,))
    for k, error in ((0, ValueError), (-1, ValueError), (1.5, TypeError), (True, TypeError)):
        with pytest.raises(error, match="num_samples"):
            train(model, X, epochs=1, batch_size=64, objective="rws", num_samples=k,
                  progress=False)
    with pytest.raises(ValueError, match="objective"):
        train(model, X, epochs=1, batch_size=64, objective="sleep_wake", progress=False)
    with pytest.raises(ValueError, match="beta and free_bits"):
        train(model, X, epochs=1, batch_size=64, objective="rws", num_samples=2, beta=0.5,
              progress=False)
    with pytest.raises(ValueError, match="needs a vitoolkit.vae.VAE"):
        train(Autoencoder(64, 2, hidden_dims=(8,)), X, epochs=1, batch_size=64,
              objective="wake_sleep", progress=False)
